"""SDV's own virtual environment for the tabular bench, and the bridge to `sdv_worker.py` there.

SDV 2.0 and SDMetrics need pandas < 3 and this project runs on pandas 3, so they cannot share
an environment: SDV lives in `.bench-venv-sdv/` at the repository root, created on first use
(`python -m venv` + `pip install 'sdv==2.0.0' 'pandas<3'`; pip pulls the default torch wheel,
several GB), and the bench talks to it over CSV and JSON files only. The CSVs are written here
with every kind spelled out (ISO dates, True/False, empty for missing) and read back into the
training frame's dtypes, so nothing depends on pandas 2 and 3 guessing types the same way.

    python bench/sdv_env.py          # create (or check) the environment and print its python
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import venv
from pathlib import Path
from typing import Any

import pandas as pd

from synthset.privacy.tabular.schema import ColumnSpec, TableSchema

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".bench-venv-sdv"
WORKER = Path(__file__).resolve().parent / "sdv_worker.py"
REQUIREMENTS = ("sdv==2.0.0", "pandas<3")
SDTYPES = {"numeric": "numerical", "categorical": "categorical", "boolean": "boolean"}
DATE, DATETIME = "%Y-%m-%d", "%Y-%m-%d %H:%M:%S"


def python() -> Path:
    """The environment's interpreter, creating the environment first if it is missing or was
    installed with other requirements (a stamp file records them)."""
    exe = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    wanted = "\n".join(REQUIREMENTS) + "\n"
    if exe.exists() and stamp.exists() and stamp.read_text() == wanted:
        return exe
    print(f"# creating {VENV.name} with {' '.join(REQUIREMENTS)} (once; minutes)", flush=True)
    if not exe.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    install = [str(exe), "-m", "pip", "install", "--quiet", *REQUIREMENTS]
    subprocess.run(install, check=True, stdout=sys.stderr)
    stamp.write_text(wanted)
    return exe


def call(*args: str, timeout: float | None = None) -> dict[str, Any]:
    """Run one worker subcommand in the SDV environment and return its JSON answer.

    SDV's warnings and progress go to stderr, which is shown only when the worker fails, so
    that the bench's own output stays readable.
    """
    result = subprocess.run(
        [str(python()), str(WORKER), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-25:])
        raise RuntimeError(f"sdv_worker {args[0]} failed (exit {result.returncode}):\n{tail}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _datetime_format(series: pd.Series) -> str:
    """Dates only when every real value is at midnight (as in `mixed`), else seconds."""
    values = series.dropna()
    return DATE if bool((values == values.dt.normalize()).all()) else DATETIME


def metadata(schema: TableSchema, train: pd.DataFrame) -> dict[str, Any]:
    """SDV single-table metadata from synthset's kinds (datetime formats read off `train`)."""
    columns: dict[str, dict[str, str]] = {}
    for spec in schema.columns:
        if spec.kind == "datetime":
            columns[spec.name] = {
                "sdtype": "datetime",
                "datetime_format": _datetime_format(train[spec.name]),
            }
        else:
            columns[spec.name] = {"sdtype": SDTYPES[spec.kind]}
    return {"columns": columns}


def write_csv(frame: pd.DataFrame, meta: dict[str, Any], path: Path) -> None:
    """Write rows so that pandas 2 reads them back exactly: ISO datetimes, True/False, and an
    empty field for every missing value."""
    out = frame[list(meta["columns"])].copy()
    for name, column in meta["columns"].items():
        if column["sdtype"] == "datetime":
            out[name] = pd.to_datetime(out[name]).dt.strftime(column["datetime_format"])
        elif column["sdtype"] == "boolean":
            out[name] = out[name].astype("boolean").map({True: "True", False: "False"})
    out.to_csv(path, index=False, na_rep="")


def _categories(text: pd.Series, spec: ColumnSpec, like: pd.Series) -> pd.Series:
    """Map CSV text back to the training column's own values (1 vs 1.0 vs "1")."""
    known = [*like.dropna().unique(), *(spec.categories or [])]
    lookup = {str(v): v for v in known}
    values = text.map(lambda t: lookup.get(t, t) if isinstance(t, str) else None)
    try:
        return values.astype(like.dtype)
    except (TypeError, ValueError):
        return values


def read_csv(path: Path, schema: TableSchema, like: pd.DataFrame) -> pd.DataFrame:
    """Read a worker's CSV into the dtypes of `like` (the training rows), column by kind."""
    text = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    out = {}
    for spec in schema.columns:
        column, dtype = text[spec.name], like[spec.name].dtype
        if spec.kind == "numeric":
            out[spec.name] = pd.to_numeric(column).astype("float64")
        elif spec.kind == "datetime":
            out[spec.name] = pd.to_datetime(column, format="ISO8601").astype(dtype)
        elif spec.kind == "boolean":
            out[spec.name] = column.map({"True": True, "False": False}).astype("boolean")
        else:
            out[spec.name] = _categories(column, spec, like[spec.name])
    return pd.DataFrame(out)


def fit_sample(
    method: str,
    train: pd.DataFrame,
    schema: TableSchema,
    rows: int,
    *,
    epochs: int | None = None,
    seed: int = 0,
    threads: int = 2,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Fit SDV's `method` on `train` in its own environment; the sampled rows and the worker's
    answer (CPU seconds of fit+sample, epochs)."""
    meta = metadata(schema, train)
    with tempfile.TemporaryDirectory(prefix="sdv-") as tmp:
        folder = Path(tmp)
        write_csv(train, meta, folder / "train.csv")
        (folder / "meta.json").write_text(json.dumps(meta))
        args = ["fit-sample", "--method", method, "--rows", str(rows), "--seed", str(seed)]
        args += ["--train", str(folder / "train.csv"), "--meta", str(folder / "meta.json")]
        args += ["--out", str(folder / "synthetic.csv"), "--threads", str(threads)]
        answer = call(*args, *(["--epochs", str(epochs)] if epochs else []))
        return read_csv(folder / "synthetic.csv", schema, train), answer


def quality(real: pd.DataFrame, synthetic: pd.DataFrame, schema: TableSchema) -> dict[str, Any]:
    """SDMetrics' QualityReport of `synthetic` against `real`, computed by sdmetrics itself."""
    meta = metadata(schema, real)
    with tempfile.TemporaryDirectory(prefix="sdmetrics-") as tmp:
        folder = Path(tmp)
        write_csv(real, meta, folder / "real.csv")
        write_csv(synthetic, meta, folder / "synthetic.csv")
        (folder / "meta.json").write_text(json.dumps(meta))
        return call(
            "quality",
            "--real",
            str(folder / "real.csv"),
            "--synthetic",
            str(folder / "synthetic.csv"),
            "--meta",
            str(folder / "meta.json"),
        )


if __name__ == "__main__":
    print(python())
