"""The quality report of real runs: built between publish and record, logged with the version
in MLflow, compared with the previous version, rebuilt by `synthset report`, and rendered by
a real headless browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from PIL import Image

from synthset.cli import main
from synthset.pipeline import run_dataset
from synthset.quality.summary import headline_markdown
from synthset.runners.local import LocalRunner
from synthset.storage.formats import version_digest
from synthset.storage.pull import pull
from tests.conftest import write_manifest

NAME = "quality-report"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _text(model: str, extra: str = "") -> str:
    return f"""
dataset: {NAME}
generator: {{model: {model}, steps: 2, batch_size: 4, device: cpu}}
shard_size: 4
curation:
  keep_top_fraction: 0.5
  attempt_budget: 1
  tags: {{vocabulary: [seven, three, one], top_k: 1}}
report: {{reference: synthset/digits}}
items:
  - {{prompt: a red seven, count: 4, seed: 1}}
  - {{prompt: a blue three, count: 4, seed: 9}}
{extra}"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model, tracking_uri):
    """Two versions of one dataset: v2 adds a prompt."""
    folder = tmp_path_factory.mktemp("quality-runs")
    root = folder / "datasets"
    results = []
    for n, extra in enumerate(("", "  - {prompt: a green one, count: 2, seed: 5}\n")):
        path = write_manifest(folder, _text(tiny_model, extra), f"v{n + 1}.yaml")
        results.append(
            run_dataset(path, LocalRunner(), datasets_root=root, tracking_uri=tracking_uri)
        )
    return root, results


def _report(result) -> dict:
    return json.loads((result.published.path / "report" / "quality.json").read_text())


def test_the_run_builds_the_report_and_logs_it_with_the_version(runs, tracking_uri):
    _, (first, _) = runs
    document = _report(first)
    assert (document["dataset"], document["version"]) == (NAME, 1)
    assert document["feature_space"]["model"] == "synthset-tiny-clip"
    assert document["feature_space"]["source"].startswith("the version's stored curation")
    fidelity = document["fidelity"]
    assert (
        fidelity["reference"]["spec"] == "synthset/digits" and fidelity["reference_images"] == 360
    )
    assert fidelity["generated_images"] == first.published.images == document["headline"]["images"]
    assert fidelity["fd"] > 0 and fidelity["prdc"]["k"] >= 1
    assert document["headline"]["generated"] == first.generated
    assert {r["reason"] for r in document["rejections"]["by_reason"]} and document[
        "comparison"
    ] is None
    assert document["rejections"]["thumbnails"].startswith("Rejected images as the run's staging")
    page = (first.published.path / "report" / "quality.html").read_text()
    assert "≈" in page or page.count("class='thumb'") > first.published.images
    assert version_digest(first.published.path) == first.published.digest

    client = MlflowClient(tracking_uri)
    run = client.get_run(first.mlflow_run_id)
    assert run.data.metrics["quality.fd"] == pytest.approx(fidelity["fd"])
    assert run.data.metrics["quality.images"] == first.published.images
    assert "quality.duplicate_rate" in run.data.metrics and "seconds_report" in run.data.metrics
    logged = {
        Path(a.path).name for a in client.list_artifacts(first.mlflow_run_id, "dataset/report")
    }
    assert logged == {"quality.html", "quality.json"}


def test_the_next_version_is_compared_with_the_previous_one(runs):
    _, (first, second) = runs
    comparison = _report(second)["comparison"]
    assert comparison["version"] == 1
    assert comparison["changes"]["prompts_added"] == ["a green one"]
    assert comparison["changes"]["images_added"] >= 1
    figures = {f["key"]: f for f in comparison["figures"]}
    assert figures["images"]["previous"] == first.published.images
    assert figures["images"]["current"] == second.published.images
    assert figures["fd"]["previous"] == pytest.approx(_report(first)["headline"]["fd"])
    assert {"vendi", "duplicate_rate", "clip_score_mean"} <= set(figures)


def test_the_prefect_artifact_has_the_headline_and_the_run(runs, tracking_uri):
    _, (_, second) = runs
    text = headline_markdown(second.published.path, second.mlflow_run_id, tracking_uri)
    assert f"{NAME} v2: quality" in text and second.mlflow_run_id in text
    assert "Fréchet distance to the reference" in text and "dataset/report/quality.html" in text


def test_synthset_report_rebuilds_a_local_version_against_another_reference(
    runs, tracking_uri, tmp_path, capsys
):
    root, (first, _) = runs
    real = tmp_path / "real"
    real.mkdir()
    for i in range(6):
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(real / f"{i}.png")
    code = main(
        [
            "report",
            f"{NAME}@1",
            "--reference",
            str(real),
            "--tracking-uri",
            tracking_uri,
            "--datasets-root",
            str(root),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert str(first.published.path / "report" / "quality.html") in capsys.readouterr().out
    document = _report(first)
    assert document["fidelity"]["reference"]["kind"] == "folder"
    assert document["fidelity"]["reference_images"] == 6
    assert document["rejections"]["thumbnails"].startswith(
        "Thumbnails of rejected images are unavailable"
    )


def test_synthset_report_pulls_a_version_and_compares_it_with_the_registry(
    runs, tracking_uri, tmp_path, capsys
):
    code = main(
        [
            "report",
            f"{NAME}@2",
            "--reference",
            f"{NAME}@1",
            "--tracking-uri",
            tracking_uri,
            "--datasets-root",
            str(tmp_path / "elsewhere"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    pulled = pull(NAME, 2, tracking_uri=tracking_uri)
    document = json.loads((pulled.path / "report" / "quality.json").read_text())
    assert document["fidelity"]["reference"]["identity"]["kind"] == "version"
    assert document["comparison"].get("version") == 1, document["comparison"]
    assert document["comparison"]["features_reused"]


def test_the_page_renders_with_every_image_in_headless_chromium(runs, tmp_path):
    browser = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if browser is None:
        pytest.skip("no chromium on PATH (make test installs Debian's chromium)")
    _, (_, second) = runs
    path = second.published.path / "report" / "quality.html"
    page = path.read_text()
    assert not re.search(r"""(src|href)=["']https?://""", page)
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path}"]
    dom = subprocess.run(
        [*args, "--virtual-time-budget=10000", "--dump-dom", path.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    total = int(re.search(r'data-images-total="(\d+)"', dom).group(1))
    assert total > 10 and f'data-images-loaded="{total}"' in dom
    assert 'data-version="2"' in dom
    shot = tmp_path / "report.png"
    subprocess.run(
        [*args, "--window-size=1200,1600", f"--screenshot={shot}", path.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 20_000
