"""`synthset medical ...`: check a release config and its images, release synthetic images
(train, generate, memorization gate, utility, publish), or write demo phantoms to try it on.

Exit codes: 0 success, 1 a run failed, 2 a usage error (bad images, labels, config or
arguments), 3 the release gate blocked the release (nothing was published; the report says
why).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from synthset.errors import InputError
from synthset.privacy.command import run_release, standalone

DEMO_CONFIG = """\
dataset: {name}
data: {folder}
labels: {folder}/labels.csv
size: {size}
holdout: 0.25
train:
  epochs: 40
  channels: [16, 32, 64]
  threads: 1
  # epsilon: 10          # DP-SGD to (epsilon, delta) per image
  # delta: 1.0e-5
  # pretrain: {{source: phantoms, epochs: 8}}   # public data first, then under DP
  # finetune: class                           # train the class embedding only
  # draws: 4
generate: {{count: 200, scheduler: ddim, steps: 50, guidance: 2}}
gate: {{ratio_threshold: 0.5, ssim_threshold: 0.95, min_tstr_ratio: 0.8, max_rejected_share: 0.05}}
"""


def _load_config(path: str) -> Any:
    """A release config, its file checked before torch is imported."""
    from synthset.inputs.paths import is_file
    from synthset.inputs.structured import read_structured

    if is_file(Path(path)):
        read_structured(Path(path))
    from synthset.privacy.medical.config import load_config

    return load_config(path)


def _config(args: argparse.Namespace) -> Any:
    from synthset.privacy.medical.config import parse_config

    config = _load_config(args.config)
    data = config.model_dump(mode="json")
    train = data["train"]
    for name in ("epsilon", "delta", "epochs", "threads"):
        value = getattr(args, name, None)
        if value is not None:
            train[name] = value
    if args.count is not None:
        data["generate"]["count"] = args.count
    if args.name:
        data["dataset"] = args.name
    return parse_config(data, args.config)


def cmd_validate(args: argparse.Namespace) -> int:
    config = _load_config(args.config)
    from synthset.privacy.medical.release import prepare

    prepared = prepare(config)
    classes = prepared.classes
    print(
        f"ok: {args.config}: dataset '{config.dataset}', {len(prepared.ingested)} images "
        f"in {Path(config.data).name} at {config.size}×{config.size} "
        f"({len(prepared.train)} training, {len(prepared.holdout)} holdout), "
        + (f"{len(classes)} classes" if classes else "no labels")
        + (f", DP ε = {config.train.epsilon:g}" if config.train.private else ", no DP")
    )
    return 0


def _print_outcome(result: dict[str, Any]) -> None:
    print(f"dataset:     {result['name']}")
    print(f"version:     v{result['version']}  ({result['images']} images)")
    print(f"folder:      {result['path']}")
    print(f"digest:      {result['digest']}")
    privacy = result.get("privacy")
    if privacy:
        spent = privacy["spent"]
        print(f"privacy:     (ε = {spent['epsilon']:.3g}, δ = {spent['delta']:.3g})-DP per image")
    else:
        print("privacy:     no differential privacy (memorization gate only)")
    if result.get("public_pretraining"):
        print(f"pretrained:  {result['public_pretraining']}")
    m = result["metrics"]
    line = f"gate:        {int(m['rejected'])} of {int(m['generated'])} rejected as near-copies"
    if "tstr_accuracy" in m:
        line += f"; TSTR {m['tstr_accuracy']:.3f} vs TRTR {m['trtr_accuracy']:.3f} accuracy"
    print(line)
    print(f"report:      {result['report']}  (private)")
    print(f"MLflow run:  {result['mlflow_run_id']}")


def cmd_run(args: argparse.Namespace) -> int:
    config = _config(args)
    from synthset.privacy.medical.release import prepare
    from synthset.servers import require_reachable

    prepare(config)
    require_reachable(args.tracking_uri)

    def run() -> dict[str, Any]:
        if args.no_prefect:
            from synthset.privacy.medical.release import release

            outcome = release(config, args.datasets_root, args.tracking_uri, print)
            return {
                "name": outcome.name,
                "version": outcome.version,
                "path": str(outcome.path),
                "digest": outcome.digest,
                "images": outcome.rows,
                "report": str(outcome.report),
                "metrics": outcome.metrics,
                "privacy": outcome.privacy,
                "mlflow_run_id": outcome.mlflow_run_id,
            }
        from synthset.flows.medical import release_synthetic_images

        return release_synthetic_images(
            config.model_dump(mode="json"), args.datasets_root, args.tracking_uri
        )

    return run_release(run, _print_outcome, (InputError,))


def cmd_demo(args: argparse.Namespace) -> int:
    from synthset.privacy.medical.phantoms import make_phantoms, write_dicoms

    folder = Path(args.folder)
    if folder.exists() and any(folder.iterdir()):
        raise InputError(str(folder), "exists and is not empty; give a new folder")
    images, labels = make_phantoms(args.count, size=args.size, seed=args.seed)
    write_dicoms(folder / "scans", images, labels, seed=args.seed)
    config = folder / "release.yaml"
    config.write_text(DEMO_CONFIG.format(name=args.name, folder="scans", size=args.size))
    print(
        f"{args.count} phantom DICOMs (fake PHI in every profile attribute) and labels.csv in "
        f"{folder / 'scans'}; config: {config}\n"
        f"next: synthset medical validate {config} && synthset medical run {config}"
    )
    return 0


def add_medical_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `synthset medical {validate,run,demo}` on the main parser's subparsers."""
    medical = subparsers.add_parser(
        "medical",
        help="private medical images → synthetic images behind a memorization gate",
        description="Private medical images (DICOM de-identified on ingest, PNG, NPY) → a "
        "DDPM (optionally DP-SGD) → synthetic images, near-copies of training images removed, "
        "published as a version. Exit codes: 0 ok, 1 failed, 2 bad input, 3 release blocked.",
    )
    sub = medical.add_subparsers(dest="medical_command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check a release config and read its images")
    p.set_defaults(func=cmd_validate)
    p.add_argument("config", help="release config (YAML/JSON)")

    p = sub.add_parser(
        "run", help="train, generate, gate and publish synthetic images (a Prefect flow)"
    )
    p.set_defaults(func=cmd_run)
    p.add_argument("config", help="release config (YAML/JSON); flags override it")
    p.add_argument("--name", help="name of the synthetic dataset")
    p.add_argument("--epsilon", type=float, help="train with DP-SGD to this ε (per image)")
    p.add_argument("--delta", type=float, help="δ of the DP guarantee")
    p.add_argument("--epochs", type=int, help="training epochs")
    p.add_argument("--threads", type=int, help="torch threads")
    p.add_argument("--count", type=int, help="images to generate")
    p.add_argument("--datasets-root", default=None)
    p.add_argument("--tracking-uri", default=None)
    p.add_argument("--no-prefect", action="store_true", help="run the steps without Prefect")

    p = sub.add_parser("demo", help="write phantom DICOMs with fake PHI and a config to try")
    p.set_defaults(func=cmd_demo)
    p.add_argument("folder", help="new folder for scans/ and release.yaml")
    p.add_argument("--count", type=int, default=400)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="phantoms-synth")
    return medical


def main(argv: list[str] | None = None) -> int:
    """`python -m synthset.privacy.medical.cli ...`: the medical commands alone."""
    return standalone(add_medical_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
