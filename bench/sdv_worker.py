"""Runs inside `.bench-venv-sdv/` (SDV 2.0, SDMetrics 0.32, pandas < 3); never imports synthset.

The tabular bench calls it over files, because SDV cannot share synthset's pandas 3:

    python bench/sdv_worker.py fit-sample --method tvae --train train.csv --meta meta.json \
        --rows 400 --out synthetic.csv [--epochs E] [--seed S] [--threads T]
    python bench/sdv_worker.py quality --real train.csv --synthetic synthetic.csv --meta meta.json

Each prints one JSON line. `meta.json` is `{"columns": {name: {"sdtype": ..., ...}}}` in SDV's
single-table form (numerical, categorical, boolean, or datetime with a `datetime_format`).

Settings, chosen to be fair to SDV rather than fast: every synthesizer keeps SDV's defaults
(min/max and rounding enforced, GaussianCopula's default marginals, CTGAN's 300 epochs, batch
500, pac 10) except TVAE, which gets 1,500 epochs instead of 300 because that is the setting
the issue compares against (TVAE keeps improving well past 300 epochs on tables this small).
`--epochs` overrides CTGAN's and TVAE's epochs, for quick checks only.

CPU seconds are `getrusage` user+system time of this process and its children, for fit plus
sample only (imports and CSV reading excluded), to match `time.process_time()` in the bench.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

DEFAULT_EPOCHS = {"ctgan": 300, "tvae": 1500}
TABLE = "table"


def cpu_seconds() -> float:
    """User+system CPU time of this process and its finished children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def read(path: str, meta: dict[str, Any]) -> pd.DataFrame:
    """Read a bench CSV with every column typed by its sdtype, not by pandas' guesses: text
    for categories (so 1 and 1.0 cannot drift apart), floats for numbers, True/False/NaN for
    booleans, and datetimes left as the ISO text that `datetime_format` describes."""
    columns = meta["columns"]
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    for name, column in columns.items():
        sdtype = column["sdtype"]
        if sdtype == "numerical":
            frame[name] = pd.to_numeric(frame[name]).astype("float64")
        elif sdtype == "boolean":
            frame[name] = frame[name].map({"True": True, "False": False}).astype("object")
    return frame[list(columns)]


def write(frame: pd.DataFrame, path: str, meta: dict[str, Any]) -> None:
    """Write SDV's rows back with datetimes in the declared format and booleans as True/False."""
    out = frame.copy()
    for name, column in meta["columns"].items():
        if column["sdtype"] == "datetime" and not pd.api.types.is_string_dtype(out[name]):
            values = pd.to_datetime(out[name], errors="coerce")
            out[name] = values.dt.strftime(column["datetime_format"])
    out.to_csv(path, index=False)


def synthesizer(method: str, metadata: Any, epochs: int | None) -> Any:
    from sdv.single_table import CTGANSynthesizer, GaussianCopulaSynthesizer, TVAESynthesizer

    if method == "gaussian_copula":
        return GaussianCopulaSynthesizer(metadata)
    epochs = epochs or DEFAULT_EPOCHS[method]
    if method == "ctgan":
        return CTGANSynthesizer(metadata, epochs=epochs, enable_gpu=False)
    return TVAESynthesizer(metadata, epochs=epochs, enable_gpu=False)


def fit_sample(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from sdv.metadata import Metadata

    meta = json.loads(Path(args.meta).read_text())
    train = read(args.train, meta)
    torch.set_num_threads(args.threads)
    for seed_fn in (random.seed, np.random.seed, torch.manual_seed):
        seed_fn(args.seed)
    metadata = Metadata.load_from_dict(meta, single_table_name=TABLE)
    start = cpu_seconds()
    model = synthesizer(args.method, metadata, args.epochs)
    model.fit({TABLE: train})
    rows = model.sample(num_rows=args.rows)
    if isinstance(rows, dict):
        rows = rows[TABLE]
    seconds = cpu_seconds() - start
    write(rows[list(meta["columns"])], args.out, meta)
    epochs = None if args.method == "gaussian_copula" else model.get_parameters()["epochs"]
    return {"method": args.method, "rows": len(rows), "cpu_seconds": seconds, "epochs": epochs}


def report(real: pd.DataFrame, synthetic: pd.DataFrame, meta: dict, all_pairs: bool) -> Any:
    from sdmetrics.reports.single_table import QualityReport

    quality_report = QualityReport()
    if all_pairs:
        quality_report.real_correlation_threshold = 0
        quality_report.real_association_threshold = 0
    quality_report.generate(real, synthetic, meta, verbose=False)
    return quality_report


def quality(args: argparse.Namespace) -> dict[str, Any]:
    """SDMetrics 0.32's QualityReport as shipped, plus the same report over every column pair.

    Since 0.2x the report only averages pair trends over pairs whose real correlation is above
    0.5 or real association above 0.3; on tables with weak dependencies (mixed) no pair
    qualifies and the score is column shapes alone. `*_all_pairs` sets both thresholds to 0,
    which is the classic report that older published numbers use.
    """
    meta = json.loads(Path(args.meta).read_text())
    real, synthetic = read(args.real, meta), read(args.synthetic, meta)
    default, every = (report(real, synthetic, meta, flag) for flag in (False, True))
    properties = default.get_properties().set_index("Property")["Score"]
    every_properties = every.get_properties().set_index("Property")["Score"]
    shapes = default.get_details("Column Shapes")
    pairs = default.get_details("Column Pair Trends")
    scored = pairs["Meets Threshold?"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    return {
        "score": float(default.get_score()),
        "column_shapes": float(properties["Column Shapes"]),
        "column_pair_trends": float(properties["Column Pair Trends"]),
        "pairs_scored": int(scored.sum()),
        "score_all_pairs": float(every.get_score()),
        "column_pair_trends_all_pairs": float(every_properties["Column Pair Trends"]),
        "per_column": {str(r["Column"]): float(r["Score"]) for _, r in shapes.iterrows()},
        "per_pair": {
            f"{r['Column 1']} × {r['Column 2']}": float(r["Score"])
            for _, r in pairs[scored].iterrows()
        },
    }


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fit = commands.add_parser("fit-sample")
    fit.add_argument("--method", choices=["gaussian_copula", "ctgan", "tvae"], required=True)
    fit.add_argument("--train", required=True)
    fit.add_argument("--meta", required=True)
    fit.add_argument("--rows", type=int, required=True)
    fit.add_argument("--out", required=True)
    fit.add_argument("--epochs", type=int, default=None)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--threads", type=int, default=2)
    score = commands.add_parser("quality")
    score.add_argument("--real", required=True)
    score.add_argument("--synthetic", required=True)
    score.add_argument("--meta", required=True)
    args = parser.parse_args()
    result = fit_sample(args) if args.command == "fit-sample" else quality(args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
