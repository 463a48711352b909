"""`synthset tabular ...`: inspect a private table, check a release config and its table,
release a synthetic copy (fit, audit, gate, publish), or fit and sample a model directly.

Exit codes: 0 success, 1 a run failed, 2 a usage error (bad table, config or arguments),
3 the release gate blocked the release (nothing was published; the report says why).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from synthset.privacy.command import run_release, standalone
from synthset.privacy.errors import TableError


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise TableError("<arguments>", f"--{what} {item!r}: expected COLUMN=VALUE")
        out[name] = value
    return out


def _bounds(values: list[str] | None) -> dict[str, tuple[str, str]]:
    out = {}
    for name, text in _pairs(values, "bounds").items():
        low, sep, high = text.partition(":")
        if not sep:
            raise TableError("<arguments>", f"--bounds {name}={text!r}: expected COLUMN=LOW:HIGH")
        try:
            out[name] = (float(low), float(high))
        except ValueError:
            out[name] = (low, high)
    return out


def _table_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "types": _pairs(args.type, "type"),
        "identifiers": args.id or [],
        "drop": args.drop or [],
        "target": args.target,
        "sensitive": args.sensitive or [],
        "bounds": _bounds(args.bounds),
        "categories": {k: v.split(",") for k, v in _pairs(args.categories, "categories").items()},
    }


def _synth_overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("epsilon", "delta", "steps", "seed", "threads"):
        value = getattr(args, name, None)
        if value is not None:
            out[name] = value
    return out


def cmd_inspect(args: argparse.Namespace) -> int:
    from synthset.privacy.tabular.schema import load_table

    table = load_table(args.data, **_table_options(args))
    schema = table.schema
    print(f"{args.data}: {len(table.frame)} rows, {len(schema.columns)} modelled columns")
    if schema.identifiers or schema.dropped:
        print(f"dropped: {', '.join([*schema.identifiers, *schema.dropped])}")
    print(f"{'column':<28} {'kind':<12} {'source':<9} missing  detail")
    for spec in schema.columns:
        series = table.frame[spec.name]
        detail = ""
        if spec.kind == "numeric":
            detail = "whole numbers" if spec.integer else f"decimals {spec.decimals}"
        elif spec.kind in ("categorical", "boolean"):
            detail = f"{series.nunique()} values"
        role = " (target)" if spec.name == schema.target else ""
        role += " (sensitive)" if spec.name in schema.sensitive else ""
        source = "declared" if spec.declared else "inferred"
        print(
            f"{spec.name[:28]:<28} {spec.kind:<12} {source:<9} "
            f"{series.isna().mean():>6.1%}  {detail}{role}"
        )
    return 0


def _load_config(path: str) -> Any:
    """A release config, its file checked first (encoding, nesting, aliases, repeated keys):
    a malformed file is refused before the synthesizer's modules (torch) are imported."""
    from synthset.inputs.paths import is_file
    from synthset.inputs.structured import read_structured

    if is_file(Path(path)):
        read_structured(Path(path))
    from synthset.privacy.tabular.config import load_config

    return load_config(path)


def _config(args: argparse.Namespace) -> Any:
    if args.config:
        config = _load_config(args.config)
        data = config.model_dump(mode="json") | {"synthesizer": config.synthesizer.given()}
    else:
        if not args.data or not args.name:
            raise TableError("<arguments>", "give a CONFIG file, or --data FILE and --name NAME")
        data = {"dataset": args.name, "data": str(Path(args.data).resolve())}
    if args.data and args.config:
        data["data"] = str(Path(args.data).resolve())
    if args.name:
        data["dataset"] = args.name
    options = _table_options(args)
    for key in ("types", "bounds", "categories"):
        data[key] = {**data.get(key, {}), **options[key]}
    for key in ("identifiers", "drop", "sensitive"):
        data[key] = list(dict.fromkeys([*data.get(key, []), *options[key]]))
    if options["target"]:
        data["target"] = options["target"]
    if args.holdout is not None:
        data["holdout"] = args.holdout
    if args.rows is not None:
        data["rows"] = args.rows
    data["synthesizer"] = {**data.get("synthesizer", {}), **_synth_overrides(args)}
    from synthset.privacy.tabular.config import parse_config

    return parse_config(data, args.config or "<arguments>")


def _print_outcome(result: dict[str, Any]) -> None:
    print(f"dataset:     {result['name']}")
    print(f"version:     v{result['version']}  ({result['rows']} rows)")
    print(f"folder:      {result['path']}")
    print(f"digest:      {result['digest']}")
    privacy = result.get("privacy")
    if privacy:
        spent = privacy["spent"]
        print(f"privacy:     (ε = {spent['epsilon']:.3g}, δ = {spent['delta']:.3g})-DP")
    else:
        print("privacy:     no differential privacy (audit and gate only)")
    m = result["metrics"]
    print(
        f"audit:       DCR share {m['dcr_share']:.3f}, exact matches {int(m['exact_matches'])}, "
        f"MIA AUC {m['mia_auc']:.3f}"
        + (f", TSTR {m['tstr']:.3f} vs TRTR {m['trtr']:.3f}" if "tstr" in m else "")
    )
    print(f"report:      {result['report']}  (private)")
    print(f"MLflow run:  {result['mlflow_run_id']}")


def cmd_validate(args: argparse.Namespace) -> int:
    config = _load_config(args.config)
    from synthset.privacy.tabular.release import prepare

    prepared = prepare(config)
    schema = prepared.table.schema
    print(
        f"ok: {args.config}: dataset '{config.dataset}', table {config.data}: "
        f"{len(prepared.table.frame)} rows ({len(prepared.train)} training, "
        f"{len(prepared.holdout)} holdout), {len(schema.columns)} modelled columns"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    config = _config(args)
    from synthset.privacy.tabular.release import prepare
    from synthset.servers import require_reachable

    prepare(config)

    require_reachable(args.tracking_uri)

    def run() -> dict[str, Any]:
        if args.no_prefect:
            from dataclasses import asdict

            from synthset.privacy.tabular.release import release

            outcome = release(config, args.datasets_root, args.tracking_uri)
            return asdict(outcome) | {"report": str(outcome.report)}
        from synthset.flows.tabular import release_synthetic_table

        return release_synthetic_table(
            config.model_dump(mode="json"), args.datasets_root, args.tracking_uri
        )

    return run_release(run, _print_outcome, (TableError,))


def cmd_fit(args: argparse.Namespace) -> int:
    from synthset.privacy.tabular.schema import load_table
    from synthset.privacy.tabular.synthesizer import TabularSynthesizer

    table = load_table(args.data, **_table_options(args))
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise TableError(str(out), "exists and is not empty; give a new folder with --out")
    try:
        synthesizer = TabularSynthesizer(**_synth_overrides(args))
    except ValueError as exc:
        raise TableError("<arguments>", str(exc).splitlines()[0]) from None
    synthesizer.fit(table.frame, table.schema)
    synthesizer.save(out)
    privacy = synthesizer.privacy()
    history = synthesizer.history
    print(f"model:   {out}  ({history['steps']} steps, {history['seconds_train']:.1f} s)")
    if privacy:
        print(json.dumps(privacy["spent"], indent=2))
    else:
        print("privacy: no differential privacy; do not share this model")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from synthset.privacy.tabular.synthesizer import CONFIG, TabularSynthesizer

    if not (Path(args.model) / CONFIG).is_file():
        raise TableError(args.model, f"not a saved synthesizer (no {CONFIG})")
    out = Path(args.out)
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise TableError(str(out), "the output must end in .csv or .parquet")
    frame = TabularSynthesizer.load(args.model).sample(args.rows, seed=args.seed)
    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix.lower() == ".csv":
        frame.to_csv(tmp, index=False)
    else:
        frame.to_parquet(tmp, index=False)
    tmp.replace(out)
    print(f"{len(frame)} rows → {out}")
    return 0


def _table_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--id", action="append", metavar="COL", help="identifier column (dropped)")
    p.add_argument("--drop", action="append", metavar="COL", help="column to leave out")
    p.add_argument(
        "--type",
        action="append",
        metavar="COL=KIND",
        help="numeric, categorical, boolean or datetime",
    )
    p.add_argument("--target", metavar="COL", help="conditioning and TSTR target")
    p.add_argument("--sensitive", action="append", metavar="COL", help="attribute-inference check")
    p.add_argument(
        "--bounds", action="append", metavar="COL=LOW:HIGH", help="declared public bounds"
    )
    p.add_argument(
        "--categories", action="append", metavar="COL=A,B,C", help="declared public category set"
    )


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epsilon", type=float, help="train with DP-SGD to this ε")
    p.add_argument("--delta", type=float, help="δ of the DP guarantee (default min(1e-5, 1/(10n)))")
    p.add_argument("--steps", type=int, help="optimizer steps")
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=int, help="torch threads")


def add_tabular_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `synthset tabular {inspect,validate,run,fit,sample}` on the main parser's
    subparsers."""
    tabular = subparsers.add_parser(
        "tabular",
        help="private tables → audited synthetic tables",
        description="Private tables → audited synthetic tables: inspect a table, validate a "
        "release config, run a release (fit, audit, gate, publish), or fit and sample a "
        "model. Exit codes: 0 ok, 1 failed, 2 bad input, 3 release blocked by the audit gate.",
    )
    sub = tabular.add_subparsers(dest="tabular_command", required=True, metavar="COMMAND")

    p = sub.add_parser("inspect", help="show the kinds synthset reads from a table")
    p.set_defaults(func=cmd_inspect)
    p.add_argument("data", help="CSV or Parquet file")
    _table_args(p)

    p = sub.add_parser(
        "validate", help="check a release config and its table without fitting anything"
    )
    p.set_defaults(func=cmd_validate)
    p.add_argument("config", help="release config (YAML/JSON)")

    p = sub.add_parser(
        "run", help="fit, audit, gate and publish a synthetic table (a Prefect flow)"
    )
    p.set_defaults(func=cmd_run)
    p.add_argument("config", nargs="?", help="release config (YAML/JSON); flags override it")
    p.add_argument("--data", help="private table (CSV or Parquet)")
    p.add_argument("--name", help="name of the synthetic dataset")
    p.add_argument("--holdout", type=float, help="holdout fraction for the audit (default 0.3)")
    p.add_argument("--rows", type=int, help="synthetic rows (default: training rows)")
    p.add_argument("--datasets-root", default=None)
    p.add_argument("--tracking-uri", default=None)
    p.add_argument("--no-prefect", action="store_true", help="run the steps without Prefect")
    _table_args(p)
    _train_args(p)

    p = sub.add_parser("fit", help="fit a synthesizer on a whole table and save it")
    p.set_defaults(func=cmd_fit)
    p.add_argument("data")
    p.add_argument("--out", required=True, help="new folder for the model")
    _table_args(p)
    _train_args(p)

    p = sub.add_parser("sample", help="sample rows from a saved synthesizer")
    p.set_defaults(func=cmd_sample)
    p.add_argument("model", help="folder written by `synthset tabular fit`")
    p.add_argument("-n", "--rows", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help=".csv or .parquet file")
    return tabular


def main(argv: list[str] | None = None) -> int:
    """`python -m synthset.privacy.tabular.cli ...`: the tabular commands alone."""
    return standalone(add_tabular_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
