"""The shared machinery on its own, with no table: a gate from any thresholds model, and the
report frame with the (ε, δ) statement."""

from __future__ import annotations

import json
import re

import pytest
from pydantic import BaseModel

from synthset.privacy.gate import Threshold, apply_thresholds
from synthset.privacy.report import dp_statement, html_table, render_report, write_report


class Thresholds(BaseModel):
    max_leak: float | None = 0.5
    min_quality: float | None = 0.8
    max_other: float | None = None


CHECKS = (
    Threshold("max_leak", "leak", "<="),
    Threshold("min_quality", "quality", ">="),
    Threshold("max_other", "other", "<="),
)


def test_gate_passes_fails_skips_and_relaxes():
    result = apply_thresholds({"leak": 0.7, "quality": 0.9}, Thresholds(), CHECKS, {"leak": "x"})
    assert not result.passed
    assert result.reasons == ["leak = 0.7, 0.2 past the allowed <= 0.5 (x)"]
    assert [c["metric"] for c in result.checks] == ["leak", "quality"]
    relaxed = apply_thresholds({"leak": 0.7}, Thresholds(max_leak=None), CHECKS)
    assert relaxed.passed
    assert relaxed.checks[0]["status"].startswith("off (relaxed: max_leak")
    assert relaxed.checks[1]["status"] == "skipped (not measured)"
    assert relaxed.checks[0]["threshold"] is None


def test_statement_and_frame_for_any_unit(tmp_path):
    privacy = {
        "spent": {"epsilon": 2.0, "delta": 1e-6},
        "mechanisms": [
            {
                "name": "dp-sgd",
                "covers": "w",
                "noise_multiplier": 1.0,
                "sample_rate": 0.1,
                "steps": 5,
            }
        ],
    }
    statement = dp_statement(privacy, ["the image size"], unit="image")
    assert "one image of the training data" in statement["summary"]
    assert statement["not_covered"] == ["the image size"]
    assert not dp_statement(None, [], unit="image")["differential_privacy"]
    gate = apply_thresholds({"leak": 0.1, "quality": 0.9}, Thresholds(), CHECKS)
    page, document = render_report(
        "demo",
        gate,
        privacy,
        statement,
        {"metrics": {"leak": 0.1, "unmeasured": float("nan")}},
        [("Metrics", html_table([{"metric": "leak", "value": 0.1}]))],
        [],
        {"source": "x"},
    )
    path = write_report(tmp_path, page, document)
    assert "Release gate: PASSED" in page and "<h2>Metrics</h2>" in page
    embedded = re.search(r'id="synthset-audit">(.*?)</script>', page, re.S).group(1)
    strict = json.loads(embedded, parse_constant=lambda c: pytest.fail(f"{c} in the report"))
    assert strict["gate"]["passed"] is True and strict["audit"]["metrics"]["unmeasured"] is None
    assert json.loads((path.parent / "audit.json").read_text())["source"] == "x"
