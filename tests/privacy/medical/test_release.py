"""A synthetic-image release end to end on phantom DICOMs with fake PHI in every attribute of
the de-identification profile: published and pulled as name@version through the Prefect flow,
with no planted value in any output (files, Parquet, MLflow params, tags, metrics and
artifacts, Prefect artifacts and logs, the console); blocked with nothing published; DP
within its budget; the report rendered by headless chromium; the config and the CLI."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from synthset.cli import main
from synthset.errors import InputError
from synthset.privacy.errors import ReleaseBlocked
from synthset.privacy.medical import phantoms
from synthset.privacy.medical.config import load_config, parse_config
from synthset.privacy.medical.deid import contains_phi, scan_for_phi
from synthset.privacy.medical.release import release
from synthset.storage.pull import pull
from synthset.storage.versioning import list_versions

N = 24
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
TINY = {
    "size": 16,
    "holdout": 0.25,
    "train": {"epochs": 2, "channels": [8, 16], "batch_size": 8, "timesteps": 50, "threads": 1},
    "generate": {"count": 12, "steps": 4},
    "utility": {"epochs": 2},
    "gate": {"max_rejected_share": 1.0, "min_tstr_ratio": None},
}


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """24 phantom DICOMs at 16 px with planted PHI, and labels.csv."""
    folder = tmp_path_factory.mktemp("scans")
    images, labels = phantoms.make_phantoms(N, size=16, seed=0)
    phantoms.write_dicoms(folder, images, labels, seed=0)
    return folder


@pytest.fixture(scope="module")
def planted():
    return phantoms.phi_values(N, seed=0)


def config_for(scans: Path, name: str, **extra):
    data = {"dataset": name, "data": str(scans), "labels": str(scans / "labels.csv"), **TINY}
    return parse_config(data | extra)


DATA_URI = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)")


def _scan(folder: Path, planted: list[str]) -> dict[str, list[str]]:
    """`scan_for_phi` over a folder, a report page read as its text and its decoded images:
    base64 is text in which short values (an age such as 069Y) turn up by chance."""
    found = scan_for_phi(folder, planted)
    for page in folder.rglob("*.html"):
        key = page.relative_to(folder).as_posix()
        if key not in found:
            continue
        text = page.read_text()
        real = contains_phi(DATA_URI.sub("data:image/png;base64,", text), planted)
        for payload in DATA_URI.findall(text):
            real += contains_phi(base64.b64decode(payload), planted)
        if real:
            found[key] = real
        else:
            del found[key]
    return found


def _artifacts_of(tracking_uri: str, run_id: str, into: Path) -> Path:
    import mlflow

    return Path(
        mlflow.artifacts.download_artifacts(
            run_id=run_id, dst_path=str(into), tracking_uri=tracking_uri
        )
    )


async def _prefect_texts(flow_run_id: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )

    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
        logs = await client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
        )
        run = await client.read_flow_run(flow_run_id)
    texts = [json.dumps([a.key, a.description, a.data], default=str) for a in artifacts]
    texts += [log.message for log in logs]
    texts.append(json.dumps([run.name, run.parameters, run.tags], default=str))
    return texts, {a.key for a in artifacts}, [log.message for log in logs]


@pytest.mark.slow
def test_flow_release_publishes_pulls_and_leaks_no_phi(
    scans, planted, tracking_uri, tmp_path, prefect_api, capfd, caplog
):
    from prefect.logging.handlers import APILogWorker

    from synthset.flows.medical import release_synthetic_images

    # Every planted value is found where it is: the check can see PHI.
    assert scan_for_phi(scans, planted)
    config = config_for(scans, "med-flow").model_dump(mode="json")
    result = release_synthetic_images(config, str(tmp_path / "ds"), tracking_uri)
    APILogWorker.drain_all()

    assert result["version"] == 1 and result["images"] == 12
    folder = Path(result["path"])
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "images",
        "metadata.parquet",
        "privacy.json",
    ]
    pulled = pull("med-flow", tracking_uri=tracking_uri, to=tmp_path / "pulled")
    assert pulled.kind == "images" and pulled.digest == result["digest"]
    frame = pulled.to_pandas()
    assert len(frame) == 12 and set(frame["label"]) <= {0, 1}
    assert {"sample_id", "file_name", "seed", "generator", "pixel_ratio", "ssim"} <= set(frame)
    assert (frame["generator"] == "unet2d").all()
    (info,) = list_versions("med-flow", tracking_uri)
    assert info.aliases == ("latest",) and info.images == 12

    mlflow = MlflowClient(tracking_uri)
    run = mlflow.get_run(result["mlflow_run_id"])
    assert run.data.tags["synthset.kind"] == "medical-images"
    assert run.data.params["data"] == scans.name and run.data.params["train.epochs"] == "2"
    assert {"tstr_accuracy", "trtr_accuracy", "rejected_share", "images"} <= set(run.data.metrics)
    downloaded = _artifacts_of(tracking_uri, run.info.run_id, tmp_path / "artifacts")
    assert {p.name for p in downloaded.iterdir()} == {"dataset", "report", "sample_grid.png"}
    assert {p.name for p in (downloaded / "report").iterdir()} == {"report.html", "audit.json"}

    texts, keys, logs = asyncio.run(_prefect_texts(result["flow_run_id"]))
    assert {"med-flow-release", "med-flow-gate", "med-flow-report"} <= keys
    assert any("de-identified" in line for line in logs)

    leaks: dict[str, list[str]] = {}
    for where in (tmp_path / "ds", downloaded, tmp_path / "pulled"):
        leaks |= {f"{where.name}/{k}": v for k, v in _scan(where, planted).items()}
    record = json.dumps(
        [run.data.params, run.data.tags, sorted(run.data.metrics), run.info.run_name]
    )
    captured = capfd.readouterr()
    for name, text in (
        ("mlflow record", record),
        ("flow result", json.dumps(result, default=str)),
        ("prefect", "\n".join(texts)),
        ("console", captured.out + captured.err),
        ("logs", caplog.text),
    ):
        if found := contains_phi(text, planted):
            leaks[name] = found
    assert not leaks, f"PHI reached outputs: {leaks}"


def test_release_without_prefect_and_a_second_version(scans, tracking_uri, tmp_path):
    outcome = release(config_for(scans, "med-plain"), tmp_path / "ds", tracking_uri)
    assert outcome.passed and outcome.version == 1 and outcome.rows == 12
    privacy = json.loads((outcome.path / "privacy.json").read_text())
    assert privacy["accounting"] is None
    assert "no differential privacy" in privacy["statement"]["summary"].lower()
    card = (outcome.path / "README.md").read_text()
    assert "Memorization gate" in card and 'synthset.pull("med-plain", version=1)' in card
    checkpoints = list((tmp_path / "ds" / "med-plain" / ".checkpoints").iterdir())
    second = release(config_for(scans, "med-plain"), tmp_path / "ds", tracking_uri)
    assert second.version == 2
    assert list((tmp_path / "ds" / "med-plain" / ".checkpoints").iterdir()) == checkpoints


def test_blocked_release_publishes_nothing_and_says_why(scans, tracking_uri, tmp_path):
    config = config_for(scans, "med-blocked", gate={"min_released": 1000})
    with pytest.raises(ReleaseBlocked) as error:
        release(config, tmp_path / "ds", tracking_uri)
    assert "released = 12" in str(error.value) and "nothing published" in str(error.value)
    root = tmp_path / "ds" / "med-blocked"
    assert not [p for p in root.iterdir() if p.name.startswith("v")]
    assert list_versions("med-blocked", tracking_uri) == []
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("synthset/med-blocked")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED" and "released" in run.data.tags["synthset.blocked"]


def test_dp_release_reports_its_budget_and_public_pretraining(scans, tracking_uri, tmp_path):
    train = TINY["train"] | {"epsilon": 10.0, "delta": 1e-5, "pretrain": {"source": "digits"}}
    train["pretrain"]["epochs"] = 1
    outcome = release(config_for(scans, "med-dp", train=train), tmp_path / "ds", tracking_uri)
    privacy = json.loads((outcome.path / "privacy.json").read_text())
    assert privacy["accounting"]["spent"]["epsilon"] <= 10.0 + 1e-6
    assert "digits" in privacy["public_pretraining"]
    assert privacy["statement"]["summary"].startswith("(ε = ")
    assert any("digits" in note for note in privacy["statement"]["notes"])
    assert any("memorization gate" in c for c in privacy["statement"]["not_covered"])
    assert outcome.metrics["epsilon"] <= 10.0 + 1e-6
    report = json.loads((outcome.report.parent / "audit.json").read_text())
    assert "digits" in report["public_pretraining"]


def test_report_renders_in_headless_chromium(scans, tracking_uri, tmp_path):
    browser = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if browser is None:
        pytest.skip("no chromium on PATH (make test installs Debian's chromium)")
    outcome = release(config_for(scans, "med-report"), tmp_path / "ds", tracking_uri)
    page = outcome.report.read_text()
    assert not re.search(r"""(src|href)=["']https?://""", page)
    assert "Closest pairs" in page and "TSTR vs TRTR" in page
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path}"]
    dom = subprocess.run(
        [*args, "--virtual-time-budget=10000", "--dump-dom", outcome.report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert 'data-plots-loaded="4"' in dom and 'data-plots-total="4"' in dom
    assert 'data-gate="pass"' in dom
    shot = tmp_path / "report.png"
    subprocess.run(
        [*args, "--window-size=1200,1600", f"--screenshot={shot}", outcome.report.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 20_000


def test_config_errors_name_the_field(tmp_path):
    path = tmp_path / "release.yaml"
    path.write_text("dataset: x\ndata: scans\ntrain: {epohcs: 3}\n")
    with pytest.raises(InputError, match=r"release.yaml: field 'train.epohcs': unknown field"):
        load_config(path)
    path.write_text("dataset: x\ndata: scans\ngate: {ratio_threshold: 2}\n")
    with pytest.raises(InputError, match=r"field 'gate.ratio_threshold'"):
        load_config(path)
    path.write_text("dataset: x\ndata: scans\ntrain: {delta: 1.0e-5}\n")
    with pytest.raises(InputError, match="delta is given without epsilon"):
        load_config(path)
    path.write_text("dataset: x\ndata: scans\nlabels: labels.csv\n")
    config = load_config(path)
    assert config.data == str(tmp_path / "scans") and config.public()["data"] == "scans"


def test_cli_validate_and_demo(tmp_path, capsys):
    assert main(["medical", "demo", str(tmp_path / "demo"), "--count", "12", "--size", "16"]) == 0
    config = tmp_path / "demo" / "release.yaml"
    assert main(["medical", "validate", str(config)]) == 0
    out = capsys.readouterr().out
    assert "ok:" in out and "12 images in scans at 16×16" in out and "2 classes" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: x\ndata: nowhere\n")
    assert main(["medical", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "nowhere" in err
    frame = pd.read_csv(tmp_path / "demo" / "scans" / "labels.csv")
    assert len(frame) == 12


def test_cli_run_publishes_and_a_blocked_run_exits_3(tmp_path, tracking_uri, capsys):
    assert main(["medical", "demo", str(tmp_path / "d"), "--count", "12", "--size", "16"]) == 0
    config = str(tmp_path / "d" / "release.yaml")
    common = ["--no-prefect", "--tracking-uri", tracking_uri, "--datasets-root", str(tmp_path)]
    fast = ["--epochs", "1", "--count", "8", "--threads", "1"]
    relaxed = Path(config).read_text().replace("min_tstr_ratio: 0.8", "min_tstr_ratio: null")
    Path(config).write_text(relaxed)
    assert main(["medical", "run", config, "--name", "med-cli", *fast, *common]) == 0
    out = capsys.readouterr().out
    assert "version:     v1  (8 images)" in out and "of 8 rejected as near-copies" in out
    blocked = tmp_path / "blocked.yaml"
    blocked.write_text(
        (tmp_path / "d" / "release.yaml")
        .read_text()
        .replace("data: scans", "data: d/scans")
        .replace("labels: scans/", "labels: d/scans/")
        + "utility: {epochs: 1}\n"
    )
    text = blocked.read_text().replace(
        "max_rejected_share: 0.05}", "max_rejected_share: 0.05, min_released: 99}"
    )
    blocked.write_text(text)
    assert main(["medical", "run", str(blocked), "--name", "med-cli-b", *fast, *common]) == 3
    assert "release blocked" in capsys.readouterr().err


def test_a_release_that_teaches_a_classifier_little_is_blocked_by_default():
    from synthset.privacy.medical.config import MedicalConfig
    from synthset.privacy.medical.memorization import check_with_config
    from synthset.privacy.medical.phantoms import make_phantoms
    from synthset.privacy.medical.release import decide
    from synthset.privacy.medical.utility import Utility

    training, _ = make_phantoms(16, size=16, seed=1)
    novel, _ = make_phantoms(16, size=16, seed=2)
    config = MedicalConfig(dataset="useless", data="unused")
    memo = check_with_config(novel, training, config.gate)
    useless = Utility({"accuracy": 0.51}, {"accuracy": 0.98}, 1.0, 100)
    useful = Utility({"accuracy": 0.95}, {"accuracy": 0.98}, 1.0, 100)

    blocked = decide(config, memo, useless)

    assert memo.passed and decide(config, memo, useful).passed
    assert not blocked.passed and any("tstr_ratio" in reason for reason in blocked.reasons)
    gate = config.gate.model_copy(update={"min_tstr_ratio": None})
    assert decide(config.model_copy(update={"gate": gate}), memo, useless).passed
