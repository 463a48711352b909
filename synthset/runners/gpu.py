"""One Prefect global concurrency limit per GPU, so that the shards of concurrent flow runs (two
deployments served by one worker machine, containers sharing a host's GPUs) never share a
device unless configured to.

A limit is named after the device's UUID (`synthset-gpu-<uuid>`): one physical GPU has one name
whatever `CUDA_VISIBLE_DEVICES`, container or Ray worker it is seen from, and a fleet has one
limit per GPU rather than one per pod. Where the driver reports no UUID the name is the host's
and the device index. Limits are created on demand with one slot; `per_gpu` sets more.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from synthset.devices import resolve_device
from synthset.errors import SynthsetError

LIMIT_PREFIX = "synthset-gpu-"


@dataclass(frozen=True)
class GpuSlots:
    """How GPU shards take slots.

    `per_gpu`: shards that may share one GPU; `None` leaves an existing limit as an operator
    set it (`prefect gcl update`) and creates a missing one with 1 slot. `key` names the device
    instead of asking CUDA (a device torch cannot identify; tests on machines without a GPU).
    """

    per_gpu: int | None = None
    key: str | None = None

    def __post_init__(self) -> None:
        if self.per_gpu is not None and self.per_gpu < 1:
            raise SynthsetError(f"shards per GPU is {self.per_gpu}; give 1 or more")

    def limit_name(self, device: str) -> str | None:
        """The limit a shard on `device` (a `generator.device`) takes; None off CUDA."""
        key = self.key or device_key(device)
        return None if key is None else LIMIT_PREFIX + key


def device_key(device: str) -> str | None:
    """The UUID of the CUDA device `device` resolves to (else host and index); None off CUDA."""
    resolved = resolve_device(device)
    if not resolved.startswith("cuda"):
        return None
    import torch

    index = torch.device(resolved).index
    index = torch.cuda.current_device() if index is None else index
    uuid = str(getattr(torch.cuda.get_device_properties(index), "uuid", "") or "")
    uuid = uuid.removeprefix("GPU-")
    if re.fullmatch(r"[0-9a-fA-F-]{8,}", uuid):
        return uuid.lower()
    return f"{socket.gethostname()}-{index}"


def ensure_limit(name: str, per_gpu: int | None) -> None:
    """Create the limit if it is missing (1 slot, or `per_gpu`); set it to `per_gpu` if given."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        for _ in range(2):
            try:
                if per_gpu is None:
                    client.create_global_concurrency_limit(
                        GlobalConcurrencyLimitCreate(name=name, limit=1)
                    )
                else:
                    client.upsert_global_concurrency_limit_by_name(name, per_gpu)
                return
            except ObjectAlreadyExists:
                if per_gpu is None:
                    return


@contextmanager
def gpu_slot(slots: GpuSlots, device: str) -> Iterator[str | None]:
    """Hold one slot of this device's limit (waiting for one to free up); yields the limit's
    name, or None when the shard does not run on a GPU."""
    name = slots.limit_name(device)
    if name is None:
        yield None
        return
    from prefect.concurrency.sync import concurrency

    ensure_limit(name, slots.per_gpu)
    with concurrency(name, occupy=1, strict=True, raise_on_lease_renewal_failure=False):
        yield name
