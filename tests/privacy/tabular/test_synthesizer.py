"""The synthesizer: fit, seeded sampling, conditioning, save/load without pickle, and DP-SGD
with Opacus to a budget."""

import json

import numpy as np
import pandas as pd
import pytest

from synthset.privacy.tabular.schema import prepare_table
from synthset.privacy.tabular.synthesizer import CONFIG, WEIGHTS, TabularSynthesizer
from tests.privacy.conftest import TINY


@pytest.fixture
def table(frame):
    return prepare_table(frame, identifiers=["patient"], target="risk")


@pytest.fixture
def fitted(table):
    return TabularSynthesizer(**TINY).fit(table.frame, table.schema)


def test_sample_has_the_schema_and_is_seeded(fitted, table):
    a, b, c = fitted.sample(50, seed=1), fitted.sample(50, seed=1), fitted.sample(50, seed=2)
    assert list(a.columns) == table.schema.names and len(a) == 50
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert a["age"].dtype == np.int64 and a["smoker"].dtype == bool
    assert set(a["city"]) <= {"north", "south", "east"} and set(a["risk"]) <= {"high", "low"}
    assert pd.api.types.is_datetime64_any_dtype(a["visit"])
    assert a["age"].between(18, 89).all()
    assert fitted.privacy() is None


def test_conditioning_on_the_target(fitted):
    rows = fitted.sample(30, seed=0, target="high")
    assert (rows["risk"] == "high").all()
    mixed = fitted.sample(4, seed=0, target=["low", "high", "low", "high"])
    assert mixed["risk"].tolist() == ["low", "high", "low", "high"]
    with pytest.raises(ValueError, match="not a class"):
        fitted.sample(3, target="medium")


def test_save_and_load_are_safetensors_and_json(fitted, tmp_path):
    folder = fitted.save(tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == sorted([WEIGHTS, CONFIG])
    meta = json.loads((folder / CONFIG).read_text())
    assert meta["format"].startswith("synthset-tabddpm")
    again = TabularSynthesizer.load(folder)
    pd.testing.assert_frame_equal(again.sample(40, seed=3), fitted.sample(40, seed=3))
    assert len(again.class_shares) == len(fitted.class_shares) > 0
    for loaded, kept in zip(again.class_shares, fitted.class_shares, strict=True):
        np.testing.assert_array_equal(loaded, kept)


def test_learns_a_simple_table_with_missing_values():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, 600)
    gaps = np.where(rng.random(600) < 0.2, np.nan, rng.normal(5, 1, 600))
    frame = pd.DataFrame(
        {"x": x, "y": 2 * x + rng.normal(0, 0.3, 600), "g": np.where(x > 0, "pos", "neg")}
    ).assign(gaps=gaps)
    table = prepare_table(frame)
    settings = TINY | {"hidden": [128, 128], "steps": 1500, "timesteps": 100, "sample_steps": 50}
    settings["dropout"] = 0.0
    synthetic = TabularSynthesizer(**settings).fit(table.frame, table.schema).sample(600)
    assert np.corrcoef(synthetic["x"], synthetic["y"])[0, 1] > 0.8
    agree = ((synthetic["x"] > 0) == (synthetic["g"] == "pos")).mean()
    assert agree > 0.8
    assert 0.1 < synthetic["gaps"].isna().mean() < 0.3


def test_dp_sgd_spends_exactly_the_budget(table):
    synthesizer = TabularSynthesizer(**TINY | {"steps": 15}, epsilon=3.0, delta=1e-5)
    synthesizer.fit(table.frame, table.schema)
    privacy = synthesizer.privacy()
    names = [m["name"] for m in privacy["mechanisms"]]
    assert names[:3] == ["preprocessing histograms", "prior correlation", "pair selection"]
    assert names[-1] == "dp-sgd" and privacy["mechanisms"][-1]["steps"] == 15
    spent = privacy["spent"]
    assert 2.5 < spent["epsilon"] <= 3.0 + 1e-6 and spent["delta"] <= 1e-5
    assert "category sets of city, risk" in privacy["mechanisms"][0]["covers"]
    rows = synthesizer.sample(20)
    assert list(rows.columns) == table.schema.names
    assert (synthesizer.sample(10, target="high")["risk"] == "high").all()


def test_dp_model_saves_and_loads_with_its_accounting(table, tmp_path):
    synthesizer = TabularSynthesizer(**TINY | {"steps": 5, "dp_draws": 2}, epsilon=8.0)
    synthesizer.fit(table.frame, table.schema)
    again = TabularSynthesizer.load(synthesizer.save(tmp_path / "dp"))
    assert again.privacy() == synthesizer.privacy()
    assert again.privacy()["budget"]["delta"] == 1e-5
    assert synthesizer.class_shares is None and again.class_shares is None
    pd.testing.assert_frame_equal(again.sample(30, seed=5), synthesizer.sample(30, seed=5))


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="unknown scheduler"):
        TabularSynthesizer(scheduler="fast")
    with pytest.raises(ValueError, match="delta is given without epsilon"):
        TabularSynthesizer(delta=1e-5)
    shares = "preprocessing_share \\+ prior_share \\+ pair_share must leave part"
    with pytest.raises(ValueError, match=shares):
        TabularSynthesizer(epsilon=1.0, preprocessing_share=0.65)
    assert TabularSynthesizer(epsilon=1.0, preprocessing_share=0.6, pairs=0).config.pairs == 0


def test_unset_settings_follow_the_privacy_mode():
    from synthset.privacy.tabular.synthesizer import DEFAULTS, SynthesizerConfig

    plain, private = SynthesizerConfig(), SynthesizerConfig(epsilon=1.0)
    assert plain.hidden == DEFAULTS["plain"]["hidden"] and plain.steps == 1500
    assert plain.prior == "gaussian" and plain.max_epochs == 600
    assert private.max_epochs is None
    assert (plain.oversample, private.oversample) == (3.0, 6.0)
    assert private.hidden == DEFAULTS["dp"]["hidden"] and private.batch_size == 4096
    mixed = TabularSynthesizer(SynthesizerConfig(steps=9), epsilon=2.0).config
    assert mixed.steps == 9 and mixed.hidden == DEFAULTS["dp"]["hidden"]


@pytest.mark.parametrize(
    ("mode", "mechanism", "text"),
    [
        ("maps", "preprocessing histograms", "one per target class"),
        ("models", "dp-sgd", "one model per target class"),
    ],
)
def test_dp_per_class_maps_or_models(frame, mode, mechanism, text):
    table = prepare_table(
        frame, identifiers=["patient"], target="risk", categories={"risk": ["high", "low"]}
    )
    settings = TINY | {"steps": 5, "dp_draws": 2, "dp_partition": mode}
    synthesizer = TabularSynthesizer(**settings, epsilon=5.0).fit(table.frame, table.schema)
    privacy = synthesizer.privacy()
    covers = {m["name"]: m["covers"] for m in privacy["mechanisms"]}
    assert text in covers[mechanism]
    assert privacy["spent"]["epsilon"] <= 5.0 + 1e-6
    classes = synthesizer.encoder.stats["risk"].categories
    assert synthesizer.encoder.stats["age"].class_levels.shape[0] == len(classes)
    assert (synthesizer.sample(12, target="low")["risk"] == "low").all()


def test_a_numeric_target_is_modelled_as_a_column_unless_asked(frame):
    table = prepare_table(frame, identifiers=["patient"], target="age")
    joint = TabularSynthesizer(**TINY | {"steps": 2}).fit(table.frame, table.schema)
    assert joint.encoder.target_kind is None and "age" in joint.encoder.numeric
    conditioned = TabularSynthesizer(**TINY | {"steps": 2, "conditional": True})
    conditioned.fit(table.frame, table.schema)
    assert conditioned.encoder.target_kind == "numeric"
    assert (conditioned.sample(5, target=40)["age"] == 40).all()


def test_training_stops_at_steps_or_max_epochs_whichever_comes_first(table):
    capped = TabularSynthesizer(**TINY | {"steps": 100, "max_epochs": 5})
    assert capped.fit(table.frame, table.schema).history["steps"] == 19  # ⌈5 · 240 / 64⌉
    exact = TabularSynthesizer(**TINY | {"steps": 15, "max_epochs": 5})
    assert exact.fit(table.frame, table.schema).history["steps"] == 15
