"""Quality of synthetic tables: synthset side by side with SDV, every method scored the same way.

Methods: synthset (non-DP defaults), synthset DP ε=10, DP ε=3 (mixed only, unless named in
`--methods`), DP ε=1 (with `--eps1`), synthset's own Gaussian copula and SMOTE baselines, and
SDV 2.0's GaussianCopula, CTGAN (300 epochs, its default) and TVAE (1,500 epochs), which run
in their own environment (`bench/sdv_env.py`, created on first use: SDV needs pandas < 3).

Datasets (`bench/tabular_data.py`): breast_cancer, diabetes (numeric target: R² instead of
ROC AUC), actg320, and `mixed`, a generated table with every column kind, missing values and
rare categories. Each is split once (holdout 0.3, seed 0); every method is fitted on the
training rows and samples as many rows. Yardsticks, the same for every method:

- TSTR and TRTR with two model families (`synthset.privacy.tabular.utility.tstr`, linear and gbm);
- SDMetrics' QualityReport computed by sdmetrics 0.32 itself, in the SDV environment, as
  shipped (pairs scored only where the real correlation > 0.5 or association > 0.3) and over
  all pairs (the classic report);
- DCR share, exact matches and membership-inference AUC (`synthset.privacy.tabular.audit`);
- CPU seconds of fit + sample (`time.process_time()` in process; `getrusage` in the worker);
- per categorical/boolean column the largest category-share difference and per column the
  missing-rate difference against the training rows, in points, and the categories with at
  least 5% of the training rows that the synthetic rows lost.

Every row is mean ± sd over fits: `--repeats` fits with seeds 0, 1, ... (one-fit figures on
hundreds of rows move by more than the gaps between methods: gbm TSTR R² on diabetes has an
sd of 0.07); DP fits draw their noise from OS entropy and are `--dp-repeats` fits.

    python bench/tabular_quality.py                                   # everything (hours)
    python bench/tabular_quality.py --datasets diabetes --methods "SDV TVAE" --sdv-epochs 50
    python bench/tabular_quality.py --methods "SDV GaussianCopula,SDV CTGAN,SDV TVAE" \
        --json bench/results/sdv.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import sdv_env  # noqa: E402
from bench.tabular_data import DATASETS  # noqa: E402
from synthset.privacy.tabular.audit import audit  # noqa: E402
from synthset.privacy.tabular.baselines import GaussianCopula, SmoteInterpolation  # noqa: E402
from synthset.privacy.tabular.schema import Table, TableSchema, split_holdout  # noqa: E402
from synthset.privacy.tabular.synthesizer import DEFAULTS, TabularSynthesizer  # noqa: E402
from synthset.privacy.tabular.utility import tstr  # noqa: E402

HOLDOUT = 0.3
DP = DEFAULTS["dp"]
"""The library's DP defaults (budget split and diffusion draws per row included): the DP rows
measure what a user gets."""
DELTA = 1e-5
MODELS = ("linear", "gbm")
SURVIVE_SHARE = 0.05
SDV_METHODS = {"SDV GaussianCopula": "gaussian_copula", "SDV CTGAN": "ctgan", "SDV TVAE": "tvae"}
Runner = Callable[[pd.DataFrame, Table, int, int], tuple[pd.DataFrame, dict[str, Any]]]


@dataclass
class Method:
    """A way to make synthetic rows; `only` limits where it runs by default."""

    name: str
    run: Runner
    dp: bool = False
    only: tuple[str, ...] | None = None


def _timed(make: Callable[[pd.DataFrame, Table, int, int], pd.DataFrame]) -> Runner:
    """CPU seconds of an in-process fit + sample, counted like the SDV worker counts them."""

    def run(
        train: pd.DataFrame, table: Table, n: int, seed: int
    ) -> tuple[pd.DataFrame, dict[str, Any]]:
        start = time.process_time()
        rows = make(train, table, n, seed)
        return rows, {"cpu_seconds": time.process_time() - start}

    return run


def _synthset(settings: dict[str, Any]) -> Runner:
    """synthset with `settings`, trained and sampled with the fit's seed."""

    def make(train: pd.DataFrame, table: Table, n: int, seed: int) -> pd.DataFrame:
        model = TabularSynthesizer(**settings, seed=seed).fit(train, table.schema)
        return model.sample(n, seed=seed)

    return _timed(make)


def _baseline(cls: type) -> Runner:
    """synthset's own copula and SMOTE baselines: the floor a learned synthesizer must clear."""
    return _timed(lambda train, table, n, seed: cls().fit(train, table.schema).sample(n, seed))


def _sdv(method: str, epochs: int | None, threads: int) -> Runner:
    """SDV in its own environment; CPU seconds are the worker's (this process only waits)."""

    def run(
        train: pd.DataFrame, table: Table, n: int, seed: int
    ) -> tuple[pd.DataFrame, dict[str, Any]]:
        rows, answer = sdv_env.fit_sample(
            method, train, table.schema, n, seed=seed, epochs=epochs, threads=threads
        )
        return rows, {"cpu_seconds": answer["cpu_seconds"], "epochs": answer["epochs"]}

    return run


def methods(threads: int, steps: int | None, sdv_epochs: int | None) -> list[Method]:
    """Every method; `steps` and `sdv_epochs` shorten training for quick checks only."""
    plain = {"threads": threads} | ({"steps": steps} if steps else {})

    def dp(epsilon: float) -> dict[str, Any]:
        return DP | plain | {"epsilon": epsilon, "delta": DELTA}

    return [
        Method("synthset", _synthset(plain)),
        Method("synthset DP ε=10", _synthset(dp(10.0)), dp=True),
        Method("synthset DP ε=3", _synthset(dp(3.0)), dp=True, only=("mixed",)),
        Method("synthset DP ε=1", _synthset(dp(1.0)), dp=True),
        Method("Gaussian copula", _baseline(GaussianCopula)),
        Method("SMOTE", _baseline(SmoteInterpolation)),
        *(Method(name, _sdv(m, sdv_epochs, threads)) for name, m in SDV_METHODS.items()),
    ]


def _shares(series: pd.Series) -> pd.Series:
    return series.dropna().astype(str).value_counts(normalize=True)


def column_drift(train: pd.DataFrame, synthetic: pd.DataFrame, schema: TableSchema) -> dict:
    """Per column, in points: the largest category-share difference (categorical and boolean
    columns, shares among present values), the missing-rate difference (columns missing in
    either set), and the categories with ≥ 5% of training rows that the synthetic rows lack."""
    share, missing, lost = {}, {}, {}
    for spec in schema.columns:
        real, syn = train[spec.name], synthetic[spec.name]
        if spec.kind in ("categorical", "boolean"):
            r, s = _shares(real), _shares(syn)
            both = r.index.union(s.index)
            share[spec.name] = float(
                (r.reindex(both, fill_value=0) - s.reindex(both, fill_value=0)).abs().max() * 100
            )
            gone = [c for c in r.index[r >= SURVIVE_SHARE] if c not in s.index]
            if gone:
                lost[spec.name] = gone
        if real.isna().any() or syn.isna().any():
            missing[spec.name] = float((syn.isna().mean() - real.isna().mean()) * 100)
    return {"share_diff": share, "missing_diff": missing, "lost": lost}


def score(
    train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, table: Table
) -> dict[str, Any]:
    """Every yardstick for one synthetic table (TSTR by model family, QualityReport, audit)."""
    schema, target = table.schema, table.schema.target
    out: dict[str, Any] = {}
    for model in MODELS:
        utility = tstr(train, synthetic, holdout, schema, target, model=model)
        out[f"tstr_{model}"], out[f"trtr_{model}"] = utility["tstr"], utility["trtr"]
    report = sdv_env.quality(train, synthetic, schema)
    out |= {k: v for k, v in report.items() if k != "per_column"}
    metrics = audit(train, holdout, synthetic, schema, target=None).metrics
    out |= {k: metrics[k] for k in ("dcr_share", "exact_matches", "mia_auc")}
    return out | column_drift(train, synthetic, schema)


SCALARS = (
    *(f"{k}_{m}" for m in MODELS for k in ("tstr", "trtr")),
    "score",
    "column_shapes",
    "column_pair_trends",
    "score_all_pairs",
    "dcr_share",
    "exact_matches",
    "mia_auc",
    "cpu_seconds",
)


def summarise(dataset: str, method: str, fits: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sd of each scalar over fits; per-column drifts as the mean and the worst fit."""
    row: dict[str, Any] = {"dataset": dataset, "method": method, "fits": len(fits)}
    for key in SCALARS:
        values = np.array([f[key] for f in fits], dtype=float)
        row[key] = float(np.mean(values))
        row[f"{key}_sd"] = float(np.std(values))
    for key in ("share_diff", "missing_diff"):
        names = list(dict.fromkeys(c for f in fits for c in f[key]))
        diffs = {c: [abs(f[key].get(c, 0.0)) for f in fits] for c in names}
        row[key] = {c: float(np.mean(v)) for c, v in diffs.items()}
        row[f"{key}_worst"] = {c: float(max(v)) for c, v in diffs.items()}
    row["lost"] = sorted({f"{c}={v}" for f in fits for c, vs in f["lost"].items() for v in vs})
    row["epochs"] = fits[0].get("epochs")
    row["per_fit"] = fits
    return row


def run_one(method: Method, table: Table, repeats: int) -> list[dict[str, Any]]:
    """Fit `method` `repeats` times (seeds 0, 1, ...) on the fixed split and score each fit."""
    train, holdout = split_holdout(table, HOLDOUT, seed=0)
    fits = []
    for seed in range(repeats):
        synthetic, info = method.run(train, table, len(train), seed)
        fits.append(score(train, holdout, synthetic, table) | info)
    return fits


def label(row: dict[str, Any]) -> str:
    """The method's name, with its epochs for SDV's neural synthesizers (TVAE-1500)."""
    return f"{row['method']}-{row['epochs']}" if row.get("epochs") else row["method"]


def _cell(row: dict[str, Any], key: str) -> str:
    value = row[key]
    if np.isnan(value):
        return "–"
    if key in ("exact_matches", "cpu_seconds"):
        return f"{value:.3g}" if value < 1000 else f"{value:.0f}"
    text = f"{value:.3f}"
    return text + (f" ± {row[key + '_sd']:.3f}" if row["fits"] > 1 else "")


COLUMNS = (
    ("TSTR lin", "tstr_linear"),
    ("TRTR lin", "trtr_linear"),
    ("TSTR gbm", "tstr_gbm"),
    ("TRTR gbm", "trtr_gbm"),
    ("QR", "score"),
    ("shapes", "column_shapes"),
    ("pairs", "column_pair_trends"),
    ("QR all pairs", "score_all_pairs"),
    ("DCR share", "dcr_share"),
    ("exact", "exact_matches"),
    ("MIA AUC", "mia_auc"),
    ("CPU s", "cpu_seconds"),
)


def table_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One markdown table of every (dataset, method) row."""
    head = ["dataset", "method", "fits", *(name for name, _ in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        cells = [r["dataset"], label(r), str(r["fits"]), *(_cell(r, k) for _, k in COLUMNS)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def drift_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Category-share and missing-rate differences, for DP rows and every row on mixed."""
    lines = []
    for r in rows:
        if "DP" not in r["method"] and r["dataset"] != "mixed":
            continue
        shares = ", ".join(f"{c} {v:.1f}" for c, v in r["share_diff"].items())
        missing = ", ".join(f"{c} {v:.1f}" for c, v in r["missing_diff"].items()) or "none"
        lines.append(f"  {r['dataset']} / {label(r)} (mean |diff| over {r['fits']} fit(s)):")
        lines.append(f"    max category-share diff, points: {shares}")
        lines.append(f"    missing-rate diff, points: {missing}")
        lines.append(f"    lost categories (≥ 5% in training): {', '.join(r['lost']) or 'none'}")
    return lines


def _find(rows: list[dict[str, Any]], dataset: str, method: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["dataset"] == dataset and r["method"] == method), None)


def _per_fit(fits: list[dict[str, Any]], check: Callable[[dict[str, Any]], bool], text: str) -> str:
    """A DP bar judged fit by fit: DP noise differs between fits, and a user gets one of
    them, so the bar holds only when every fit meets it."""
    passed = sum(bool(check(f)) for f in fits)
    return f"{'PASS' if passed == len(fits) else 'MISS'}  {text} ({passed}/{len(fits)} fits)"


def _worst(fit: dict[str, Any], key: str) -> float:
    return max(map(abs, fit[key].values()), default=0.0)


def bars(rows: list[dict[str, Any]]) -> list[str]:
    """The issue's bars, for whichever rows were run (QR is sdmetrics' score as shipped)."""
    lines = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        ours, tvae = _find(rows, dataset, "synthset"), _find(rows, dataset, "SDV TVAE")
        if ours and tvae:
            for key in ("tstr_linear", "tstr_gbm", "score"):
                ok = ours[key] >= tvae[key]
                lines.append(
                    f"{'PASS' if ok else 'MISS'}  {dataset:<14} synthset {key} {_cell(ours, key)} "
                    f"≥ {label(tvae)} {_cell(tvae, key)}"
                )
        if ours:
            ok = abs(ours["dcr_share"] - 0.5) <= 0.05
            lines.append(
                f"{'PASS' if ok else 'MISS'}  {dataset:<14} synthset DCR share "
                f"{_cell(ours, 'dcr_share')} within 0.50 ± 0.05"
            )
    lines += _dp_bars(rows)
    return lines


def _dp_bars(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    actg = _find(rows, "actg320", "synthset DP ε=10")
    if actg:
        fits = actg["per_fit"]
        qr = ", ".join(f"{f['score']:.3f}" for f in fits)
        lines.append(
            _per_fit(
                fits,
                lambda f: f["score"] >= 0.80,
                f"actg320        DP ε=10 QualityReport ≥ 0.80: {qr}",
            )
        )
        worst = ", ".join(f"{_worst(f, 'share_diff'):.1f}" for f in fits)
        lines.append(
            _per_fit(
                fits,
                lambda f: _worst(f, "share_diff") <= 5,
                f"actg320        DP ε=10 no category share off by > 5 points: worst {worst}",
            )
        )
    mixed = _find(rows, "mixed", "synthset DP ε=3")
    if mixed:
        fits = mixed["per_fit"]
        lost = ", ".join(mixed["lost"]) or "none"
        lines.append(
            _per_fit(
                fits,
                lambda f: not f["lost"],
                f"mixed          DP ε=3 every category with ≥ 5% share survives: lost {lost}",
            )
        )
        worst = ", ".join(f"{_worst(f, 'missing_diff'):.1f}" for f in fits)
        lines.append(
            _per_fit(
                fits,
                lambda f: _worst(f, "missing_diff") <= 3,
                f"mixed          DP ε=3 missing rates within 3 points: worst {worst}",
            )
        )
    return lines


def chosen(all_methods: list[Method], names: str | None, eps1: bool) -> list[tuple[Method, bool]]:
    """The methods to run and whether each was named (named ones ignore `only`)."""
    if names:
        wanted = [n.strip() for n in names.split(",")]
        known = {m.name: m for m in all_methods}
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise SystemExit(f"unknown method(s) {unknown}; known: {', '.join(known)}")
        return [(known[n], True) for n in wanted]
    return [(m, False) for m in all_methods if m.name != "synthset DP ε=1" or eps1]


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--methods", default=None, help="comma-separated subset of the methods")
    parser.add_argument("--eps1", action="store_true", help="also run synthset DP ε=1")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="fits per non-DP row")
    parser.add_argument("--dp-repeats", type=int, default=3, help="fits per DP row")
    parser.add_argument("--steps", type=int, default=None, help="synthset steps (quick checks)")
    parser.add_argument("--sdv-epochs", type=int, default=None, help="CTGAN/TVAE epochs (quick)")
    parser.add_argument("--json", type=Path, default=None, help="also write every row as JSON")
    return parser.parse_args()


def main() -> None:
    args = parse()
    torch.set_num_threads(args.threads)
    todo = chosen(methods(args.threads, args.steps, args.sdv_epochs), args.methods, args.eps1)
    rows = []
    for dataset in args.datasets.split(","):
        table = DATASETS[dataset]()
        for method, named in todo:
            if method.only and not named and dataset not in method.only:
                continue
            start = time.perf_counter()
            fits = run_one(method, table, args.dp_repeats if method.dp else args.repeats)
            rows.append(summarise(dataset, method.name, fits))
            wall = time.perf_counter() - start
            print(f"# {dataset} / {label(rows[-1])}: {len(fits)} fit(s), {wall:.0f} s", flush=True)
            if args.json:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(rows, indent=1, default=str) + "\n")
    print("\n" + "\n".join(table_lines(rows)))
    print("\nQR: sdmetrics QualityReport as shipped (pairs with real |corr| > 0.5 or association")
    print("> 0.3 only; '–' when none qualify); QR all pairs: thresholds 0. diabetes: R², else AUC.")
    print("Mean ± sd over each row's fits (the fits column).\n")
    print("\n".join(drift_lines(rows)) + "\n")
    print("\n".join(bars(rows)))


if __name__ == "__main__":
    main()
