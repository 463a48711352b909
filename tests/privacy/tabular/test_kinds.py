"""Every supported kind survives fit and sample, with and without DP: ranges, missing rates,
category sets, and datetimes in every unit and time zone."""

import numpy as np
import pandas as pd
import pytest

from synthset.privacy.tabular.schema import prepare_table
from synthset.privacy.tabular.synthesizer import TabularSynthesizer
from synthset.privacy.tabular.timestamps import from_seconds, resolution_of, to_seconds
from tests.privacy.conftest import TINY

ROWS = 1500
DATETIMES = ["datetime64[ns]", "datetime64[us, UTC]", "datetime64[s, Europe/Berlin]"]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC", "America/New_York"])
def test_seconds_round_trip_every_unit_and_zone(unit, tz):
    stamps = pd.Series(pd.date_range("2020-01-01 08:30", "2024-02-05", periods=9, tz=tz))
    stamps = stamps.dt.as_unit(unit)
    stamps[3] = pd.NaT
    seconds = to_seconds(stamps)
    first = pd.Timestamp(np.nanmin(seconds), unit="s", tz="UTC")
    assert first == pd.Timestamp("2020-01-01 08:30", tz=tz or "UTC")
    back = from_seconds(seconds, str(stamps.dtype), resolution_of(seconds))
    pd.testing.assert_series_equal(back, stamps)


def test_dates_at_midnight_come_back_as_dates():
    seconds = to_seconds(pd.Series(pd.to_datetime(["2021-03-04", "2022-05-06"])))
    assert resolution_of(seconds) == "D"
    back = from_seconds(seconds + 3 * 3600, "datetime64[us]", "D")
    assert list(back.dt.strftime("%Y-%m-%d %H:%M")) == ["2021-03-04 00:00", "2022-05-06 00:00"]


def kinds_frame(visit_dtype: str, rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10, 0.4, rows).round(2)
    income[rng.random(rows) < 0.15] = np.nan
    site = rng.choice(list("ABCDE"), rows, p=[0.5, 0.25, 0.13, 0.07, 0.05]).astype(object)
    smoker = rng.choice(["never", "former", "current"], rows, p=[0.6, 0.25, 0.15]).astype(object)
    smoker[rng.random(rows) < 0.1] = None
    days = rng.integers(0, 1496, rows)
    visit = pd.Series(pd.Timestamp("2020-01-01") + pd.to_timedelta(days, unit="D"))
    visit[rng.random(rows) < 0.05] = pd.NaT
    if "UTC" in visit_dtype or "/" in visit_dtype:
        visit = visit.dt.tz_localize("UTC")
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, rows),
            "income": income,
            "site": site,
            "smoker": smoker,
            "hiv": rng.random(rows) < 0.1,
            "visit": visit.astype(visit_dtype),
        }
    )


def fit_sample(
    frame: pd.DataFrame, private: bool
) -> tuple[pd.DataFrame, pd.DataFrame, TabularSynthesizer]:
    table = prepare_table(frame, "kinds.csv")
    settings = {"epsilon": 10.0, "steps": 30, "dp_draws": 1} if private else TINY | {"steps": 600}
    model = TabularSynthesizer(**settings).fit(table.frame, table.schema)
    return table.frame, model.sample(ROWS, seed=0), model


@pytest.mark.slow
@pytest.mark.parametrize("private", [False, True], ids=["plain", "dp"])
@pytest.mark.parametrize("visit_dtype", DATETIMES)
def test_every_kind_survives_fit_and_sample(visit_dtype, private):
    real, synthetic, model = fit_sample(kinds_frame(visit_dtype), private)
    tolerance = 0.04
    for name in real.columns:
        r, s = real[name], synthetic[name]
        assert abs(r.isna().mean() - s.isna().mean()) <= tolerance, name
    assert synthetic["visit"].dtype == real["visit"].dtype
    visit = synthetic["visit"].dropna()
    real_times = set(real["visit"].dropna().dt.strftime("%H:%M:%S"))
    assert set(visit.dt.strftime("%H:%M:%S")) <= real_times
    bounds, seconds = model.encoder.stats["visit"], to_seconds(visit)
    assert bounds.lower <= seconds.min() and seconds.max() <= bounds.upper
    years = 2 * 366 * 86400 if private else 0
    real_seconds = to_seconds(real["visit"].dropna())
    assert real_seconds.min() - years <= bounds.lower
    assert bounds.upper <= real_seconds.max() + years, "DP bounds grow by calendar years"
    shift = abs(visit.quantile(0.5) - real["visit"].quantile(0.5))
    assert shift < pd.Timedelta(days=270), "a tiny model; under DP, 10 bins of 6 months"
    age = model.encoder.stats["age"]
    rounding = 0.5
    assert age.lower - rounding <= synthetic["age"].min()
    assert synthetic["age"].max() <= age.upper + rounding
    width = real["age"].max() - real["age"].min() if private else 0
    assert real["age"].min() - width <= age.lower and age.upper <= real["age"].max() + width
    assert pd.api.types.is_bool_dtype(synthetic["hiv"])
    for name in ("site", "smoker", "hiv"):
        shares = real[name].value_counts(normalize=True)
        seen = set(synthetic[name].dropna())
        assert seen <= set(shares.index), name
        assert set(shares.index[shares >= 0.05]) <= seen, name
        off = synthetic[name].value_counts(normalize=True).reindex(shares.index, fill_value=0)
        assert (off - shares).abs().max() <= 0.08, name


def test_datetime_text_from_a_csv_round_trips(tmp_path):
    frame = kinds_frame("datetime64[ns]", rows=300)
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    table = prepare_table(pd.read_csv(path), str(path))
    assert table.schema.column("visit").kind == "datetime"
    model = TabularSynthesizer(**TINY).fit(table.frame, table.schema)
    visit = model.sample(300, seed=1)["visit"].dropna()
    assert visit.min() >= pd.Timestamp("2020-01-01") and visit.max() <= pd.Timestamp("2024-02-05")
