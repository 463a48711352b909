"""How useful synthetic rows are: column shapes, pairwise associations, and TSTR vs TRTR.

- Column shapes follow SDMetrics: KSComplement (1 − Kolmogorov–Smirnov statistic, numeric and
  datetime columns, missing values left out) and TVComplement (1 − total variation distance
  of the category shares, missing counted as a category).
- Associations: one matrix per table, Pearson r for numeric pairs, Cramér's V for categorical
  pairs and the correlation ratio η for mixed pairs; the correlation difference is the mean
  absolute difference between the real and synthetic matrices over all pairs.
- Pair trends follow SDMetrics' Column Pair Trends: CorrelationSimilarity (1 − |Δ Pearson r|/2)
  for two numeric columns, ContingencySimilarity (1 − total variation distance of the joint
  shares, numbers cut into ten equal-width bins of the real range) for the other pairs.
- Marginal errors: per categorical column the largest share difference of one category
  (missing counted), categories that vanished, and per column the missing-rate difference.
- TSTR (train on synthetic, test on real holdout) against TRTR (train on real training rows,
  same test), with ROC AUC for a categorical target and R² for a numeric one; the skill is
  (TSTR − chance) / (TRTR − chance), chance being 0.5 for AUC and 0 for R².
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from synthset.privacy.tabular.encoder import as_float
from synthset.privacy.tabular.schema import ColumnSpec, TableSchema

LINEAR_BELOW_ROWS = 5000


def _numeric(spec: ColumnSpec) -> bool:
    return spec.kind in ("numeric", "datetime")


def _tokens(series: pd.Series) -> pd.Series:
    return series.astype(object).where(series.notna(), "<missing>").map(str)


def column_shapes(real: pd.DataFrame, synthetic: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """One row per column: its metric (KSComplement or TVComplement) and score in [0, 1]."""
    rows = []
    for spec in schema.columns:
        if _numeric(spec):
            r, s = as_float(real[spec.name], spec), as_float(synthetic[spec.name], spec)
            r, s = r[~np.isnan(r)], s[~np.isnan(s)]
            score = 1 - ks_2samp(r, s).statistic if len(r) and len(s) else 0.0
            metric = "KSComplement"
        else:
            p = _tokens(real[spec.name]).value_counts(normalize=True)
            q = _tokens(synthetic[spec.name]).value_counts(normalize=True)
            p, q = p.align(q, fill_value=0.0)
            score = 1 - 0.5 * float(np.abs(p - q).sum())
            metric = "TVComplement"
        rows.append({"column": spec.name, "kind": spec.kind, "metric": metric, "score": score})
    return pd.DataFrame(rows)


def _binned(real: np.ndarray, synthetic: np.ndarray, bins: int = 10) -> tuple[pd.Series, ...]:
    ok = real[~np.isnan(real)]
    edges = np.linspace(ok.min(), ok.max(), bins + 1) if len(ok) else np.array([0.0, 1.0])
    cut = [
        pd.Series(np.where(np.isnan(v), -1, np.clip(np.searchsorted(edges, v) - 1, 0, bins - 1)))
        for v in (real, synthetic)
    ]
    return cut[0].map(str), cut[1].map(str)


def _contingency(a: tuple[pd.Series, pd.Series], b: tuple[pd.Series, pd.Series]) -> float:
    p = pd.Series(a[0].to_numpy() + "|" + b[0].to_numpy()).value_counts(normalize=True)
    q = pd.Series(a[1].to_numpy() + "|" + b[1].to_numpy()).value_counts(normalize=True)
    p, q = p.align(q, fill_value=0.0)
    return 1 - 0.5 * float(np.abs(p - q).sum())


def pair_trends(real: pd.DataFrame, synthetic: pd.DataFrame, schema: TableSchema) -> float:
    """Mean pair-trend similarity over column pairs (SDMetrics' Column Pair Trends)."""
    numbers, tokens = {}, {}
    for spec in schema.columns:
        if _numeric(spec):
            numbers[spec.name] = (
                as_float(real[spec.name], spec),
                as_float(synthetic[spec.name], spec),
            )
            tokens[spec.name] = _binned(*numbers[spec.name])
        else:
            tokens[spec.name] = (_tokens(real[spec.name]), _tokens(synthetic[spec.name]))
    scores = []
    names = schema.names
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if a in numbers and b in numbers:
                r = [_pearson(numbers[a][k], numbers[b][k]) for k in (0, 1)]
                scores.append(1 - abs(r[0] - r[1]) / 2)
            else:
                scores.append(_contingency(tokens[a], tokens[b]))
    return float(np.mean(scores)) if scores else 1.0


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    ok = ~(np.isnan(x) | np.isnan(y))
    if ok.sum() < 3 or x[ok].std() == 0 or y[ok].std() == 0:
        return 0.0
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def marginal_errors(
    real: pd.DataFrame, synthetic: pd.DataFrame, schema: TableSchema, vanish_share: float = 0.05
) -> dict[str, Any]:
    """The worst category-share and missing-rate differences, and vanished categories
    (at least `vanish_share` of the real rows, none of the synthetic ones), with where."""
    share, share_at, vanished = 0.0, "", []
    missing, missing_at = 0.0, ""
    for spec in schema.columns:
        r, s = real[spec.name], synthetic[spec.name]
        gap = abs(float(r.isna().mean()) - float(s.isna().mean()))
        if gap > missing:
            missing, missing_at = (
                gap,
                f"{spec.name}: {r.isna().mean():.1%} real, {s.isna().mean():.1%} synthetic",
            )
        if _numeric(spec):
            continue
        p, q = _tokens(r).value_counts(normalize=True), _tokens(s).value_counts(normalize=True)
        p, q = p.align(q, fill_value=0.0)
        worst = (p - q).abs().idxmax()
        if abs(p[worst] - q[worst]) > share:
            share = float(abs(p[worst] - q[worst]))
            share_at = f"{spec.name}={worst}: {p[worst]:.1%} real, {q[worst]:.1%} synthetic"
        vanished += [
            f"{spec.name}={k} ({p[k]:.1%} real)"
            for k in p.index
            if p[k] >= vanish_share and q[k] == 0
        ]
    return {
        "category_share_error": share,
        "category_share_error_at": share_at,
        "missing_rate_error": missing,
        "missing_rate_error_at": missing_at,
        "vanished_categories": vanished,
    }


def tstr_skill(result: dict[str, Any]) -> float:
    """(TSTR − chance) / (TRTR − chance): 1 is as useful as the real rows, 0 is chance."""
    chance = 0.5 if result["task"] == "classification" else 0.0
    room = result["trtr"] - chance
    return float((result["tstr"] - chance) / room) if room > 1e-9 else float("nan")


def _cramers_v(a: pd.Series, b: pd.Series) -> float:
    table = pd.crosstab(a, b).to_numpy(dtype=float)
    if min(table.shape) < 2:
        return 0.0
    n = table.sum()
    expected = table.sum(1, keepdims=True) @ table.sum(0, keepdims=True) / n
    chi2 = float(((table - expected) ** 2 / np.where(expected > 0, expected, 1)).sum())
    return float(np.sqrt(chi2 / (n * (min(table.shape) - 1))))


def _eta(groups: pd.Series, values: np.ndarray) -> float:
    ok = ~np.isnan(values)
    values, groups = values[ok], groups[ok]
    if len(values) < 2 or values.var() == 0:
        return 0.0
    frame = pd.DataFrame({"g": groups.to_numpy(), "v": values})
    stats = frame.groupby("g")["v"].agg(["mean", "count"])
    between = float((stats["count"] * (stats["mean"] - values.mean()) ** 2).sum())
    return float(np.sqrt(between / (values.var() * len(values))))


def associations(frame: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """The association matrix (|Pearson r|, Cramér's V or η, all in [0, 1]) of a table."""
    names = schema.names
    out = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    numbers = {s.name: as_float(frame[s.name], s) for s in schema.columns if _numeric(s)}
    tokens = {s.name: _tokens(frame[s.name]) for s in schema.columns if not _numeric(s)}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if a in numbers and b in numbers:
                x, y = numbers[a], numbers[b]
                ok = ~(np.isnan(x) | np.isnan(y))
                value = 0.0
                if ok.sum() > 2 and x[ok].std() > 0 and y[ok].std() > 0:
                    value = abs(float(np.corrcoef(x[ok], y[ok])[0, 1]))
            elif a in tokens and b in tokens:
                value = _cramers_v(tokens[a], tokens[b])
            else:
                cat, num = (a, b) if a in tokens else (b, a)
                value = _eta(tokens[cat], numbers[num])
            out.loc[a, b] = out.loc[b, a] = value
    return out


def correlation_difference(
    real: pd.DataFrame, synthetic: pd.DataFrame, schema: TableSchema
) -> tuple[float, pd.DataFrame, pd.DataFrame]:
    """Mean |real − synthetic| association over column pairs, and both matrices."""
    r, s = associations(real, schema), associations(synthetic, schema)
    upper = np.triu_indices(len(r), k=1)
    diff = np.abs(r.to_numpy() - s.to_numpy())[upper]
    return float(diff.mean()) if len(diff) else 0.0, r, s


def _features(schema: TableSchema, target: str) -> tuple[list[str], list[str]]:
    numeric = [s.name for s in schema.columns if s.name != target and _numeric(s)]
    categorical = [s.name for s in schema.columns if s.name != target and not _numeric(s)]
    return numeric, categorical


def _matrix(frame: pd.DataFrame, schema: TableSchema, target: str) -> pd.DataFrame:
    numeric, categorical = _features(schema, target)
    out = {n: as_float(frame[n], schema.column(n)) for n in numeric}
    out |= {c: _tokens(frame[c]).to_numpy() for c in categorical}
    return pd.DataFrame(out, index=frame.index)


def _pipeline(schema: TableSchema, target: str, task: str, model: str, rows: int) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric, categorical = _features(schema, target)
    prep = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
        ]
    )
    if model == "auto":
        model = "linear" if rows < LINEAR_BELOW_ROWS else "gbm"
    if task == "classification":
        estimator = (
            LogisticRegression(max_iter=5000, C=1.0)
            if model == "linear"
            else HistGradientBoostingClassifier(random_state=0)
        )
    else:
        estimator = (
            RidgeCV(alphas=np.logspace(-3, 3, 13))
            if model == "linear"
            else HistGradientBoostingRegressor(random_state=0)
        )
    return make_pipeline(prep, estimator), model


def _score(task: str, fitted: Any, x: pd.DataFrame, y: np.ndarray, classes: list[str]) -> float:
    from sklearn.metrics import r2_score, roc_auc_score

    if task == "regression":
        return float(r2_score(y, fitted.predict(x)))
    learned = list(fitted.classes_)
    if len(learned) < 2:
        return 0.5
    proba = fitted.predict_proba(x)
    full = np.zeros((len(x), len(classes)))
    for j, c in enumerate(learned):
        full[:, classes.index(c)] = proba[:, j]
    present = sorted(set(y))
    if len(present) < 2:
        return float("nan")
    if len(classes) == 2:
        return float(roc_auc_score(y == classes[1], full[:, 1]))
    cols = [classes.index(c) for c in present]
    sub = full[:, cols] / np.clip(full[:, cols].sum(1, keepdims=True), 1e-12, None)
    return float(roc_auc_score(y, sub, multi_class="ovr", labels=present))


def tstr(
    train: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame,
    schema: TableSchema,
    target: str,
    model: str = "auto",
) -> dict[str, Any]:
    """Train the same model on synthetic and on real training rows; score both on the holdout.

    `model` is `linear` (logistic / ridge regression), `gbm` (histogram gradient boosting)
    or `auto` (linear below 5,000 training rows). Rows with a missing target are left out.
    """
    spec = schema.column(target)
    task = "regression" if _numeric(spec) else "classification"

    def xy(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        keep = frame[target].notna().to_numpy()
        frame = frame[keep]
        y = (
            as_float(frame[target], spec)
            if task == "regression"
            else _tokens(frame[target]).to_numpy()
        )
        return _matrix(frame, schema, target), y

    x_real, y_real = xy(train)
    x_syn, y_syn = xy(synthetic)
    x_test, y_test = xy(holdout)
    classes = sorted(set(y_real) | set(y_syn) | set(y_test)) if task == "classification" else []
    pipe, used = _pipeline(schema, target, task, model, len(x_real))
    from sklearn.base import clone

    trtr = _score(task, clone(pipe).fit(x_real, y_real), x_test, y_test, classes)
    if task == "classification" and len(set(y_syn)) < 2:
        tstr_score = 0.5
    else:
        tstr_score = _score(task, clone(pipe).fit(x_syn, y_syn), x_test, y_test, classes)
    return {
        "target": target,
        "task": task,
        "metric": "roc_auc" if task == "classification" else "r2",
        "model": used,
        "tstr": tstr_score,
        "trtr": trtr,
        "gap": trtr - tstr_score,
    }
