"""Ray through prefect-ray: which resources a shard asks for, and a refusal, before anything is
submitted, of shards no node can ever run (Ray would leave them pending forever).

GPU shards ask `num_gpus=1` with `max_calls=0` (Ray's default for GPU tasks is a fresh worker
process per task, which would load the model for every shard) and get a timeout; CPU shards
ask `num_cpus=1`. Every worker process loads a model once and keeps it. The staging folder
must be storage every worker sees (the same machine, or a shared mount).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any

from synthset.errors import SynthsetError
from synthset.manifest import Manifest

GPU_SHARD_TIMEOUT = 3600.0
"""Seconds a GPU shard may run before Prefect fails it (a wedged device must not hang a run)."""


@dataclass(frozen=True)
class RaySettings:
    """`address`: `host:port` or `ray://host:port` of an existing cluster; `auto` connects to
    the cluster started on this machine or starts one; `local` always starts a new one."""

    address: str = "auto"


def _require_ray() -> Any:
    try:
        import ray
        from prefect_ray import RayTaskRunner
    except ImportError:
        raise SynthsetError(
            "--runner ray needs Ray and prefect-ray: pip install 'synthset[ray]'"
        ) from None
    return ray, RayTaskRunner


def task_runner(settings: RaySettings) -> Any:
    """prefect-ray's `RayTaskRunner` for `settings.address`. A cluster started here gets a
    private temp folder, no dashboard and, unless set, `RAY_AUTH_MODE=disabled`."""
    _, RayTaskRunner = _require_ray()
    if settings.address in ("auto", "local"):
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        init = {"include_dashboard": False}
        if settings.address == "local":
            init["_temp_dir"] = tempfile.mkdtemp(prefix="synthset-ray-")
        address = None if settings.address == "auto" else "local"
        return RayTaskRunner(address=address, init_kwargs=init)
    return RayTaskRunner(address=settings.address)


def preflight(settings: RaySettings, manifest: Manifest) -> None:
    """Connect to the cluster and check the shards' resources before any flow run exists, so
    that a plan the cluster can never run fails with one line and no failed run. The task
    runner then reuses this connection."""
    ray, _ = _require_ray()
    if not ray.is_initialized():
        runner = task_runner(settings)
        ray.init(runner.address, **runner.init_kwargs)
    shard_resources(manifest)


def is_ray(task_runner: Any) -> bool:
    """Whether a flow's task runner is prefect-ray's (without importing Ray otherwise)."""
    return type(task_runner).__name__ == "RayTaskRunner"


def _describe(nodes: list[dict[str, float]]) -> str:
    return "; ".join(
        f"node {i}: {r.get('CPU', 0):g} CPU, {r.get('GPU', 0):g} GPU" for i, r in enumerate(nodes)
    )


def shard_resources(manifest: Manifest) -> dict[str, Any]:
    """The Ray options of this manifest's shards, checked against the live nodes now.

    `generator.device` `cuda…` asks for a GPU, `cpu` for a CPU, `auto` for a GPU where the
    cluster has one. Raises a `SynthsetError` when no node has what a shard asks for."""
    ray, _ = _require_ray()
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    device = manifest.generator.device
    has_gpu = any(r.get("GPU", 0) >= 1 for r in nodes)
    if device == "mps":
        raise SynthsetError("generator.device 'mps' cannot run on Ray workers; use auto or cuda")
    gpu = device.startswith("cuda") or (device == "auto" and has_gpu)
    key = "GPU" if gpu else "CPU"
    if not any(r.get(key, 0) >= 1 for r in nodes):
        raise SynthsetError(
            f"generator.device is {device!r}: each shard needs 1 {key}, and no node of the Ray "
            f"cluster has one ({_describe(nodes) or 'no live nodes'}); "
            "Ray would wait forever, so nothing was submitted"
        )
    return {"num_gpus": 1, "max_calls": 0} if gpu else {"num_cpus": 1}


def gpu_timeout(resources: dict[str, Any]) -> float | None:
    """The timeout of a shard asking for these resources (GPU shards only)."""
    return GPU_SHARD_TIMEOUT if resources.get("num_gpus") else None


def remote_options(resources: dict[str, Any]) -> Any:
    """prefect-ray's context that passes `resources` to `ray.remote` for tasks submitted in it."""
    from prefect_ray.context import remote_options as options

    return options(**resources)
