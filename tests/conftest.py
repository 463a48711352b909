"""Shared fixtures: an isolated, offline environment, a tiny real model, real stores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# Tests bring their own stores; servers configured in the caller's shell must not leak in.
for _name in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI"):
    os.environ.pop(_name, None)

# Prefect binds its console log handler to the stderr of the moment it first logs; set it up
# now so the handler is not bound to a per-test stream that capsys closes afterwards.
from prefect.logging.configuration import setup_logging  # noqa: E402

setup_logging()


@pytest.fixture(scope="session", autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Caches (built-in models, pulled datasets, HF datasets) go to a session temp folder."""
    home = tmp_path_factory.mktemp("home")
    os.environ["SYNTHSET_CACHE"] = str(home / "synthset")
    os.environ["HF_HOME"] = str(home / "hf")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own folder, so `./datasets` and `./mlruns` are its own."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SYNTHSET_DATASETS", str(tmp_path / "datasets"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny real StableDiffusionPipeline saved with save_pretrained (loads offline)."""
    from synthset.generators.tiny import save_tiny_sd_pipeline

    return str(save_tiny_sd_pipeline(tmp_path_factory.mktemp("tiny-sd")))


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real MLflow tracking store (SQLite); tests use distinct dataset names."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="session")
def prefect_api():
    """A real Prefect API (the test harness's server), started once per session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def write_manifest(folder: Path, text: str, name: str = "manifest.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def generate_and_publish(text: str):
    """Write manifest `text` to the current folder, generate all its shards and publish them."""
    from synthset.generators.shard import generate_shard
    from synthset.manifest import load_manifest
    from synthset.plan import make_plan
    from synthset.storage.publish import publish, release_staging

    manifest = load_manifest(write_manifest(Path.cwd(), text))
    plan = make_plan(manifest)
    for shard in plan.shards:
        generate_shard(manifest.generator, shard)
    published = publish(plan.layout, plan.digest, [s.folder for s in plan.shards], manifest)
    release_staging(plan.layout, plan.digest)
    return manifest, plan, published
