"""Datetimes as float seconds since the epoch, and back, for any unit and time zone.

The model works on floats. pandas stores datetimes in one of four units (s, ms, us, ns;
pandas 3 reads text as microseconds) and optionally a time zone, so the integer behind a
timestamp means different things in different columns: reading it with `astype("int64")`
and assuming nanoseconds put 2020 dates in January 1970. Here values are converted through
timedeltas, which carry their unit, and aware values through UTC, so a column comes back in
the unit and zone it went in with.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

_EPOCH = pd.Timestamp("1970-01-01")
_SECOND = pd.Timedelta(seconds=1)
RESOLUTIONS = {"D": 86400.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
"""Rounding steps, in seconds, of the `resolution` a datetime column is written back at."""


def parse_bound(value: Any) -> float:
    """A declared datetime bound (text, date or timestamp) in seconds since the epoch."""
    return float(to_seconds(pd.Series([value]))[0])


def to_seconds(series: pd.Series) -> np.ndarray:
    """Seconds since 1970-01-01 UTC as float64; missing values are NaN."""
    values = pd.to_datetime(series)
    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    seconds = (values - _EPOCH) / _SECOND
    return seconds.to_numpy(dtype="float64", na_value=np.nan)


def resolution_of(seconds: np.ndarray) -> str | None:
    """The coarsest step all values fall on ("D" for dates at midnight), None for finer."""
    observed = seconds[~np.isnan(seconds)]
    for name, step in RESOLUTIONS.items():
        ratio = observed / step
        if np.all(np.abs(ratio - np.round(ratio)) <= 1e-6):
            return name
    return None


def from_seconds(seconds: np.ndarray, dtype: str, resolution: str | None = None) -> pd.Series:
    """Seconds since the epoch → a datetime series of `dtype` (unit and zone kept).

    Values are rounded to `resolution` (to microseconds at least: a float of seconds
    since 1970 holds no more), missing values stay missing.
    """
    step = RESOLUTIONS.get(resolution or "us", 1e-6)
    micros = np.round(np.round(seconds / step) * step * 1e6)
    stamps = pd.Series(pd.to_datetime(micros, unit="us"))
    target = _datetime_dtype(dtype)
    if isinstance(target, pd.DatetimeTZDtype):
        stamps = stamps.dt.tz_localize("UTC").dt.tz_convert(target.tz)
    try:
        return stamps.astype(target) if target is not None else stamps
    except (TypeError, ValueError, OverflowError):
        return stamps


def _datetime_dtype(dtype: str) -> Any:
    try:
        parsed = pd.api.types.pandas_dtype(dtype)
    except TypeError:
        return None
    return parsed if pd.api.types.is_datetime64_any_dtype(parsed) else None
