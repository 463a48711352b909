"""Small mixed-type tables and tiny synthesizer settings shared by the privacy tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

TINY = {
    "hidden": [32, 32],
    "d_embed": 16,
    "timesteps": 50,
    "scheduler": "ddpm",
    "sample_steps": 10,
    "steps": 60,
    "batch_size": 64,
}

UTILITY_RELAXED = {
    "min_tstr_skill": None,
    "min_column_shape": None,
    "min_worst_column_shape": None,
    "min_pair_trends": None,
    "max_category_share_error": None,
    "max_vanished_categories": None,
    "max_missing_rate_error": None,
}
"""Gate settings that switch the utility checks off: plumbing tests train for a few steps,
and the default gate rightly blocks what that makes (tests/privacy/tabular/test_gate.py
checks it)."""


def mixed_frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Numbers (one with gaps, one whole), text categories, a boolean, dates and a label."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, n)
    income = np.round(np.exp(rng.normal(10, 0.5, n)) + 100 * age, 2)
    income[rng.random(n) < 0.1] = np.nan
    city = rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2])
    smoker = rng.random(n) < 0.3
    visit = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    risk = (age / 90 + smoker + rng.normal(0, 0.3, n) > 0.9).astype(int)
    return pd.DataFrame(
        {
            "patient": [f"P{i:05d}" for i in range(n)],
            "age": age,
            "income": income,
            "city": city,
            "smoker": smoker,
            "visit": visit,
            "risk": np.where(risk == 1, "high", "low"),
        }
    )


@pytest.fixture
def frame() -> pd.DataFrame:
    return mixed_frame()


@pytest.fixture
def csv_file(tmp_path, frame):
    path = tmp_path / "patients.csv"
    frame.to_csv(path, index=False)
    return path
