"""The tabular benchmark's datasets, each a `Table` ready for `split_holdout`.

breast_cancer, diabetes (scikit-learn) and actg320 (scikit-survival) are real tables that pip
packages ship; `mixed` is generated here so that the bench (and tests) have one table with
every column kind, missing values, rare categories, a sensitive boolean and a binary target
that a model can actually learn, without downloading anything.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from synthset.privacy.tabular.schema import Table, prepare_table

SITES = ["central", "north", "east", "south", "west", "rural"]
SITE_SHARES = [0.35, 0.25, 0.15, 0.12, 0.08, 0.05]
SITE_EFFECT = {"central": 0.0, "north": 0.3, "east": -0.4, "south": 0.6, "west": -0.3, "rural": 1.2}
SMOKERS = ["never", "former", "current"]
SMOKER_EFFECT = {"never": 0.0, "former": 0.6, "current": 1.4}
FIRST_VISIT = pd.Timestamp("2020-01-01")
LAST_VISIT = pd.Timestamp("2024-02-05")
OUTCOME_INTERCEPT = -3.8


def breast_cancer() -> Table:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    return prepare_table(frame, "breast_cancer", target="target", categories={"target": [0, 1]})


def diabetes() -> Table:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    return prepare_table(frame, "diabetes", target="target", categories={"sex": [1.0, 2.0]})


def actg320() -> Table:
    try:
        from sksurv.datasets import load_aids
    except ImportError:
        raise ImportError(
            "ACTG 320 comes from scikit-survival: pip install 'synthset[tabular-bench]'"
        ) from None
    features, outcome = load_aids()
    frame = features.assign(time=outcome["time"], censor=outcome["censor"])
    return prepare_table(frame, "actg320", target="censor")


def _missing(values: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Values as objects with a random `rate` of them set to None (missing completely at random)."""
    out = values.astype(object)
    out[rng.random(len(values)) < rate] = None
    return out


def _visits(rows: int, rng: np.random.Generator) -> pd.Series:
    """Visit dates skewed towards later years, with a dip in spring 2020 (not uniform)."""
    span = (LAST_VISIT - FIRST_VISIT).days
    days = np.floor(rng.beta(1.6, 1.1, rows) * (span + 1)).astype(int)
    dip = (days >= 70) & (days < 160) & (rng.random(rows) < 0.6)
    days[dip] = rng.integers(160, span + 1, int(dip.sum()))
    return pd.Series(FIRST_VISIT + pd.to_timedelta(days, unit="D"), name="visit")


def _outcome(frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """A logistic model of age, BMI, smoking, site and HIV status; missing inputs count as the
    mean (missing smoking status as 'former'), so missingness itself carries little signal."""
    age = pd.to_numeric(frame["age"]).fillna(52.0).to_numpy(dtype=float)
    bmi = pd.to_numeric(frame["bmi"]).fillna(27.0).to_numpy(dtype=float)
    smoker = frame["smoker"].map(SMOKER_EFFECT).fillna(SMOKER_EFFECT["former"]).to_numpy()
    logit = (
        OUTCOME_INTERCEPT
        + 0.065 * (age - 52.0)
        + 0.14 * (bmi - 27.0)
        + smoker.astype(float)
        + frame["site"].map(SITE_EFFECT).to_numpy(dtype=float)
        + 1.8 * frame["hiv"].to_numpy(dtype=float)
    )
    return rng.random(len(frame)) < 1.0 / (1.0 + np.exp(-logit))


def mixed_frame(rows: int = 800, seed: int = 0) -> pd.DataFrame:
    """The raw generated frame behind `mixed` (pandas dtypes, before `prepare_table`)."""
    rng = np.random.default_rng(seed)
    age = np.clip(np.round(rng.normal(52.0, 16.0, rows)), 18, 90)
    bmi = np.clip(np.round(rng.lognormal(np.log(26.5), 0.17, rows), 1), 15.0, 55.0)
    frame = pd.DataFrame(
        {
            "visit": _visits(rows, rng),
            "age": pd.to_numeric(_missing(age, 0.03, rng)).astype("float64"),
            "bmi": pd.to_numeric(_missing(bmi, 0.05, rng)).astype("float64"),
            "sex": rng.choice(["F", "M"], rows, p=[0.52, 0.48]),
            "site": rng.choice(SITES, rows, p=SITE_SHARES),
            "smoker": _missing(rng.choice(SMOKERS, rows, p=[0.55, 0.28, 0.17]), 0.08, rng),
            "hiv": rng.random(rows) < 0.10,
        }
    )
    frame["outcome"] = np.where(_outcome(frame, rng), "yes", "no")
    return frame


def mixed(rows: int = 800, seed: int = 0) -> Table:
    """A generated clinical-style table with all four kinds: datetime `visit`, whole `age` (3%
    missing), one-decimal `bmi` (5% missing), `sex`, `site` (6 sites, the rarest 5%), `smoker`
    (8% missing), sensitive boolean `hiv` (~10%) and binary target `outcome` (~9% "yes")."""
    return prepare_table(
        mixed_frame(rows, seed),
        "mixed",
        types={"outcome": "categorical"},
        target="outcome",
        sensitive=["hiv"],
        categories={
            "sex": ["F", "M"],
            "site": SITES,
            "smoker": SMOKERS,
            "outcome": ["no", "yes"],
        },
    )


DATASETS: dict[str, Callable[[], Table]] = {
    "breast_cancer": breast_cancer,
    "diabetes": diabetes,
    "actg320": actg320,
    "mixed": mixed,
}
