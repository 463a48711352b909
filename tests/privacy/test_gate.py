"""Release gate thresholds: pass, fail with reasons, skip what was not measured."""

from synthset.privacy.gate import GateConfig, evaluate


def test_failures_say_which_metric_and_threshold():
    metrics = {"dcr_share": 0.7, "mia_auc": 0.55, "exact_match_rate": 0.0}
    result = evaluate(metrics, GateConfig())
    assert not result.passed
    assert result.reasons == ["dcr_share = 0.7 (allowed <= 0.6)"]


def test_exact_matches_beyond_the_holdout_rate_only():
    config = GateConfig(max_exact_match_rate=0.0)
    natural = {"exact_match_rate": 0.02, "holdout_exact_match_rate": 0.03}
    assert evaluate(natural, config).passed
    leaky = {"exact_match_rate": 0.10, "holdout_exact_match_rate": 0.03}
    assert evaluate(leaky, config).reasons[0].startswith("exact_match_excess = 0.07")


def test_unmeasured_checks_are_skipped_and_none_switches_off():
    config = GateConfig(max_tstr_gap=0.05, max_mia_auc=None)
    result = evaluate({"dcr_share": 0.5, "mia_auc": 0.99}, config)
    assert result.passed
    statuses = {c["metric"]: c["status"] for c in result.checks}
    assert statuses["tstr_gap"] == "skipped (not measured)"
    assert "mia_auc" not in statuses
