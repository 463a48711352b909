"""The audit report: self-contained HTML with embedded plots and JSON, rendered by a real
headless browser (Debian's chromium, which `make test` installs when it can)."""

import json
import re
import shutil
import subprocess

import pytest

from synthset.privacy.report import write_report
from synthset.privacy.tabular.audit import audit
from synthset.privacy.tabular.gate import GateConfig, evaluate
from synthset.privacy.tabular.report import build_report, privacy_statement
from synthset.privacy.tabular.schema import prepare_table
from tests.privacy.conftest import mixed_frame

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    table = prepare_table(mixed_frame(400, seed=2), identifiers=["patient"], target="risk")
    f = table.frame
    train, holdout, synthetic = f.iloc[:200], f.iloc[200:300], f.iloc[300:]
    result = audit(train, holdout, synthetic.reset_index(drop=True), table.schema, "risk", ["city"])
    gate = evaluate(result.metrics, GateConfig(max_mia_auc=0.01))
    page, document = build_report("demo", result, gate, table.schema, train, synthetic, None)
    return write_report(tmp_path_factory.mktemp("report"), page, document), document


def test_page_is_self_contained_with_json(report):
    path, document = report
    page = path.read_text()
    assert not re.search(r"""(src|href)=["']https?://""", page)
    assert page.count("data:image/png;base64,") == 5
    embedded = re.search(r'id="synthset-audit">(.*?)</script>', page, re.S).group(1)
    assert json.loads(embedded.replace("<\\/", "</"))["gate"]["passed"] is False
    assert "FAILED, nothing published" in page and "mia_auc" in page
    on_disk = json.loads((path.parent / "audit.json").read_text())
    assert on_disk["audit"]["metrics"] == document["audit"]["metrics"]


def test_statement_says_what_dp_covers_and_not():
    table = prepare_table(mixed_frame(100), identifiers=["patient"], types={"age": "numeric"})
    privacy = {
        "spent": {"epsilon": 1.0, "delta": 1e-6},
        "mechanisms": [
            {
                "name": "dp-sgd",
                "covers": "weights",
                "noise_multiplier": 1.1,
                "sample_rate": 0.1,
                "steps": 10,
            }
        ],
    }
    statement = privacy_statement(privacy, table.schema)
    assert statement["summary"].startswith("(ε = 1, δ = 1e-06)")
    assert "dp-sgd: weights" in statement["covered"][0]
    assert "city" in statement["not_covered"][0] and "age" not in statement["not_covered"][0]
    assert any("report" in line for line in statement["not_covered"])
    assert not privacy_statement(None, table.schema)["differential_privacy"]


def test_renders_with_its_plots_in_headless_chromium(report, tmp_path):
    browser = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if browser is None:
        pytest.skip("no chromium on PATH (make test installs Debian's chromium)")
    path, _ = report
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path}"]
    dom = subprocess.run(
        [*args, "--virtual-time-budget=10000", "--dump-dom", path.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert 'data-plots-loaded="5"' in dom and 'data-plots-total="5"' in dom
    assert 'data-gate="fail"' in dom
    shot = tmp_path / "report.png"
    subprocess.run(
        [*args, "--window-size=1200,1600", f"--screenshot={shot}", path.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 20_000
