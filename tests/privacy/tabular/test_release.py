"""A release end to end with a real MLflow store: published and pulled as name@version, or
blocked with nothing published; and the same through the Prefect flow."""

import json

import pandas as pd
import pytest
from mlflow import MlflowClient

from synthset.privacy.errors import ReleaseBlocked, TableError
from synthset.privacy.tabular.config import load_config, parse_config
from synthset.privacy.tabular.release import release
from synthset.storage.pull import pull
from synthset.storage.versioning import list_versions
from tests.privacy.conftest import TINY, UTILITY_RELAXED


def config_for(csv_file, name, **extra):
    data = {
        "dataset": name,
        "data": str(csv_file),
        "identifiers": ["patient"],
        "target": "risk",
        "sensitive": ["smoker"],
        "synthesizer": TINY,
        "gate": {"max_dcr_share": 1.0, "max_mia_auc": 1.0, "max_attribute_risk": 1.0}
        | UTILITY_RELAXED,
    }
    return parse_config(data | extra)


def test_release_publishes_a_version_that_pulls(csv_file, tracking_uri, tmp_path):
    outcome = release(config_for(csv_file, "tab-ok"), tmp_path / "ds", tracking_uri)
    assert outcome.passed and outcome.version == 1
    files = sorted(p.name for p in outcome.path.iterdir())
    assert files == ["README.md", "data.parquet", "privacy.json", "schema.json"]
    assert (
        "no differential privacy"
        in json.loads((outcome.path / "privacy.json").read_text())["statement"]["summary"].lower()
    )
    pulled = pull("tab-ok", "1", tracking_uri=tracking_uri, to=tmp_path / "pulled")
    assert pulled.kind == "table" and pulled.digest == outcome.digest
    frame = pulled.to_pandas()
    pd.testing.assert_frame_equal(frame, pd.read_parquet(outcome.path / "data.parquet"))
    assert "patient" not in frame and len(frame) == outcome.rows
    (info,) = list_versions("tab-ok", tracking_uri)
    assert info.aliases == ("latest",) and info.images == outcome.rows
    run = MlflowClient(tracking_uri).get_run(outcome.mlflow_run_id)
    assert run.data.tags["synthset.kind"] == "table"
    assert "mia_auc" in run.data.metrics and run.data.params["synthesizer.steps"] == "60"
    artifacts = {a.path for a in MlflowClient(tracking_uri).list_artifacts(run.info.run_id)}
    assert artifacts == {"dataset", "report"}
    second = release(config_for(csv_file, "tab-ok"), tmp_path / "ds", tracking_uri)
    assert second.version == 2


def test_blocked_release_publishes_nothing_and_says_why(csv_file, tracking_uri, tmp_path):
    config = config_for(csv_file, "tab-blocked", gate={"max_mia_auc": 0.0})
    with pytest.raises(ReleaseBlocked) as error:
        release(config, tmp_path / "ds", tracking_uri)
    assert "mia_auc" in str(error.value) and "nothing published" in str(error.value)
    root = tmp_path / "ds" / "tab-blocked"
    assert not [p for p in root.iterdir() if p.name.startswith("v")]
    assert not (root / ".staging").exists()
    assert list_versions("tab-blocked", tracking_uri) == []
    assert (tmp_path / "ds" / "tab-blocked" / ".reports").is_dir()
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs(
        [client.get_experiment_by_name("synthset/tab-blocked").experiment_id]
    )
    assert run.info.status == "FAILED" and "mia_auc" in run.data.tags["synthset.blocked"]


def test_dp_release_reports_its_budget(csv_file, tracking_uri, tmp_path):
    config = config_for(
        csv_file, "tab-dp", synthesizer=TINY | {"steps": 10, "epsilon": 4.0, "delta": 1e-5}
    )
    outcome = release(config, tmp_path / "ds", tracking_uri)
    privacy = json.loads((outcome.path / "privacy.json").read_text())
    assert privacy["accounting"]["spent"]["epsilon"] <= 4.0 + 1e-6
    assert privacy["statement"]["differential_privacy"] is True
    stated = f"(ε = {privacy['accounting']['spent']['epsilon']:.3g}, δ = "
    assert stated in (outcome.path / "README.md").read_text()
    assert stated in outcome.report.read_text()


def test_config_file_errors_name_the_field(tmp_path):
    path = tmp_path / "release.yaml"
    path.write_text("dataset: x\ndata: t.csv\nsynthesizer: {stepz: 3}\n")
    with pytest.raises(TableError, match=r"release.yaml: field 'synthesizer.stepz'"):
        load_config(path)
    path.write_text("dataset: x\ndata: t.csv\n")
    assert load_config(path).data == str(tmp_path / "t.csv")


@pytest.mark.slow
def test_prefect_flow_publishes_with_artifacts(csv_file, tracking_uri, tmp_path, prefect_api):
    from prefect.client.orchestration import get_client

    from synthset.flows.tabular import release_synthetic_table

    config = config_for(csv_file, "tab-flow").model_dump(mode="json")
    result = release_synthetic_table(config, str(tmp_path / "ds"), tracking_uri)
    assert result["version"] == 1 and pull("tab-flow", tracking_uri=tracking_uri).kind == "table"

    async def artifact_keys():
        async with get_client() as client:
            return {a.key for a in await client.read_artifacts()}

    import asyncio

    keys = asyncio.run(artifact_keys())
    assert {"tab-flow-audit", "tab-flow-gate", "tab-flow-report"} <= keys
