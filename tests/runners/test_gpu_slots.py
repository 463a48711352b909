"""GPU shards hold a slot of their device's Prefect global concurrency limit: a real Prefect API
and real limits, observed through the client while shards run; the device is named by the test
(no GPU here), everything else is the shard task's own path."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from PIL import Image
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.task_runners import ThreadPoolTaskRunner

from synthset.cli import main
from synthset.errors import SynthsetError
from synthset.generators.base import Generator
from synthset.generators.pipeline import GenerationResult
from synthset.pipeline import run_dataset
from synthset.runners.gpu import LIMIT_PREFIX, GpuSlots, device_key, ensure_limit
from synthset.runners.prefect import PrefectRunner
from tests.conftest import write_manifest


class _Probe:
    """What the shards saw: the limit's occupied slots, and how many generated at once."""

    def __init__(self, limit: str | None, want: int):
        self.limit, self.want = limit, want
        self.lock = threading.Lock()
        self.running = self.most_running = 0
        self.slots_seen: list[int] = []


PROBE = _Probe(None, 1)


def _active_slots(name: str) -> int:
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name).active_slots


class SlotProbe(Generator):
    """Reads its device's limit while it generates; waits (≤ 5 s) until `want` slots are taken,
    so that shards allowed to share a GPU are seen sharing it."""

    kind = "slot-probe"

    def generate(self, requests):
        with PROBE.lock:
            PROBE.running += 1
            PROBE.most_running = max(PROBE.most_running, PROBE.running)
        try:
            deadline = time.monotonic() + 5
            while PROBE.limit:
                slots = _active_slots(PROBE.limit)
                PROBE.slots_seen.append(slots)
                if slots >= PROBE.want or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            time.sleep(0.3)
        finally:
            with PROBE.lock:
                PROBE.running -= 1
        return [
            GenerationResult(r, image=Image.new("RGB", (8, 8), (r.seed % 256, 0, 0)))
            for r in requests
        ]


@flow(task_runner=ThreadPoolTaskRunner(max_workers=3))
def three_shards_at_once(path: str, slots: GpuSlots, tracking_uri: str) -> dict:
    return run_dataset(path, PrefectRunner(gpu=slots), tracking_uri=tracking_uri).summary()


def _manifest(tmp_path, name: str, device: str = "cpu"):
    return write_manifest(
        tmp_path,
        f"""
dataset: {name}
generator: {{kind: "tests.runners.test_gpu_slots:SlotProbe", device: {device}}}
shard_size: 1
curation: {{enabled: false}}
items:
  - {{prompt: a probe, count: 3, seed: 1}}
""",
    )


def _run(tmp_path, tracking_uri, slots: GpuSlots, want: int) -> str:
    global PROBE
    name = slots.limit_name("cpu")
    PROBE = _Probe(name, want)
    key = uuid.uuid4().hex[:8]
    result = three_shards_at_once(str(_manifest(tmp_path, f"probe-{key}")), slots, tracking_uri)
    assert result["images"] == 3
    return name


@pytest.mark.slow
def test_gpu_shards_of_one_device_run_one_at_a_time(prefect_api, tracking_uri, tmp_path):
    name = _run(tmp_path, tracking_uri, GpuSlots(key=f"test-{uuid.uuid4().hex[:8]}"), want=1)

    assert name.startswith(LIMIT_PREFIX)
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(name)
    assert (limit.limit, limit.active, limit.active_slots) == (1, True, 0)
    assert PROBE.most_running == 1
    assert PROBE.slots_seen == [1, 1, 1]


@pytest.mark.slow
def test_shards_per_gpu_lets_that_many_share_a_device(prefect_api, tracking_uri, tmp_path):
    slots = GpuSlots(per_gpu=2, key=f"test-{uuid.uuid4().hex[:8]}")
    name = _run(tmp_path, tracking_uri, slots, want=2)

    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(name)
    assert (limit.limit, limit.active_slots) == (2, 0)
    assert PROBE.most_running == 2
    assert max(PROBE.slots_seen) == 2


@pytest.mark.slow
def test_cpu_shards_take_no_gpu_slot(prefect_api, tracking_uri, tmp_path):
    def gpu_limits() -> set[str]:
        with get_client(sync_client=True) as client:
            found = client.read_global_concurrency_limits(limit=200)
        return {x.name for x in found if x.name.startswith(LIMIT_PREFIX)}

    before = gpu_limits()
    _run(tmp_path, tracking_uri, GpuSlots(), want=1)

    assert gpu_limits() == before
    assert PROBE.most_running == 3


def test_an_operators_limit_is_kept_unless_shards_per_gpu_is_given(prefect_api):
    name = f"{LIMIT_PREFIX}test-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=3))

        ensure_limit(name, None)
        assert client.read_global_concurrency_limit_by_name(name).limit == 3
        ensure_limit(name, 2)
        assert client.read_global_concurrency_limit_by_name(name).limit == 2

        fresh = f"{LIMIT_PREFIX}test-{uuid.uuid4().hex[:8]}"
        ensure_limit(fresh, None)
        assert client.read_global_concurrency_limit_by_name(fresh).limit == 1


def test_limit_names_follow_the_device():
    assert device_key("cpu") is None
    assert GpuSlots().limit_name("cpu") is None
    assert GpuSlots(key="ab12").limit_name("cpu") == "synthset-gpu-ab12"
    with pytest.raises(SynthsetError, match="shards per GPU is 0"):
        GpuSlots(per_gpu=0)


def test_cuda_without_a_gpu_is_a_user_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(SynthsetError, match="no CUDA device is visible"):
        device_key("cuda:0")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--runner", "local", "--shards-per-gpu", "2"], "not with --runner local"),
        (["--shards-per-gpu", "0"], "shards per GPU is 0; give 1 or more"),
    ],
)
def test_run_refuses_bad_shards_per_gpu_in_one_line(tmp_path, capsys, extra, message):
    path = _manifest(tmp_path, "probe-cli")

    assert main(["run", str(path), *extra]) == 2

    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
