"""Synthetic phantoms: TSTR vs TRTR without DP and at ε = 10, and the memorization gate's pass
rate on novel samples, with the time each step took (CPU, one torch thread per run).

The task: phantoms with or without a lesion (`synthset.privacy.medical.phantoms`, 32×32).
The private set is `--train` phantoms (seed 0); the real holdout `--holdout` others (seed 1)
the generator never sees. Each setting trains a class-conditional DDPM
(`synthset.privacy.medical.train`), generates `--count` images (DDIM), runs the memorization
gate against the training images (`check_with_config`, default thresholds) and trains the
GroupNorm CNN on the released images (TSTR) and on the real training images (TRTR), both
tested on the holdout. Settings run as parallel processes (`--jobs`), one thread each.

    python bench/medical.py                  # the closing-note table, ~11–14 min on 2 cores
    python bench/medical.py --quick          # a smoke run in about a minute
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

SETTINGS = {
    "no DP": {"epochs": 60, "guidance": [2.0]},
    "DP ε=10": {
        "epochs": 20,
        "epsilon": 10.0,
        "batch_size": 128,
        "guidance": [2.0],
    },
    "DP ε=10, public pretraining": {
        "epochs": 15,
        "epsilon": 10.0,
        "batch_size": 128,
        "lr": 2e-2,
        "draws": 4,
        "finetune": "class",
        "pretrain": {"source": "phantoms", "epochs": 8, "count": 1000},
        "guidance": [2.0, 4.0],
    },
}
"""Each setting's training overrides and the guidance scales it is sampled at. Under DP the
private set is too small for the whole UNet at ε = 10 (noise on 463k weights); after
pretraining on public phantoms only the class embedding is fine-tuned, with 4 (t, noise)
draws per image (DPDM's noise multiplicity)."""
QUICK = {"epochs": 1, "pretrain_epochs": 1, "train": 64, "holdout": 64, "count": 32, "steps": 5}


def run_setting(name: str, overrides: dict, args: dict) -> dict:
    """One setting end to end in this process; returns its figures and seconds."""
    import torch

    torch.set_num_threads(1)
    from synthset.privacy.medical.config import (
        GenerateConfig,
        MedicalGateConfig,
        TrainConfig,
        UtilityConfig,
    )
    from synthset.privacy.medical.generate import generate
    from synthset.privacy.medical.memorization import check_with_config
    from synthset.privacy.medical.phantoms import make_phantoms
    from synthset.privacy.medical.train import train
    from synthset.privacy.medical.utility import tstr_vs_trtr

    images, labels = make_phantoms(args["train"], size=32, seed=0)
    holdout, holdout_labels = make_phantoms(args["holdout"], size=32, seed=1)
    settings = {"channels": args["channels"], "threads": 1, "checkpoint_every": 10_000}
    settings |= {k: v for k, v in overrides.items() if k != "guidance"}
    if args["quick"]:
        settings["draws"] = 1
        settings["epochs"] = QUICK["epochs"]
        if "pretrain" in settings:
            settings["pretrain"] = settings["pretrain"] | {"epochs": 1, "count": 64}
    config = TrainConfig(**settings)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        model = train(images, labels, [0, 1], config, Path(tmp) / "model")
        seconds_train = time.perf_counter() - t0
        privacy = model.privacy()
        for guidance in overrides["guidance"]:
            t1 = time.perf_counter()
            gen = GenerateConfig(
                count=args["count"], scheduler="ddim", steps=args["steps"], guidance=guidance
            )
            synthetic = generate(model, gen, "cpu")
            t2 = time.perf_counter()
            memo = check_with_config(synthetic.images, images, MedicalGateConfig())
            seconds_gate = time.perf_counter() - t2
            kept = memo.kept
            utility = tstr_vs_trtr(
                images,
                labels,
                synthetic.images[kept],
                synthetic.labels[kept],
                holdout,
                holdout_labels,
                2,
                UtilityConfig(epochs=args["utility_epochs"]),
            )
            rows.append(
                {
                    "setting": name,
                    "guidance": guidance,
                    "epsilon": privacy["spent"]["epsilon"] if privacy else None,
                    "delta": privacy["spent"]["delta"] if privacy else None,
                    "noise_multiplier": model.history["noise_multiplier"],
                    "steps": model.history["steps"],
                    "trainable": model.history["trainable_parameters"],
                    "tstr_accuracy": utility.tstr["accuracy"],
                    "trtr_accuracy": utility.trtr["accuracy"],
                    "tstr_auc": utility.tstr.get("auc"),
                    "trtr_auc": utility.trtr.get("auc"),
                    "gate_pass_rate": float(kept.mean()),
                    "rejected": int((~kept).sum()),
                    "generated": len(kept),
                    "final_loss": model.history["final_loss"],
                    "seconds_pretrain": model.history["seconds_pretrain"],
                    "seconds_train": seconds_train - model.history["seconds_pretrain"],
                    "seconds_generate": synthetic.seconds,
                    "seconds_gate": seconds_gate,
                    "seconds_utility": utility.seconds,
                    "seconds_total": seconds_train + time.perf_counter() - t1,
                    "public": model.public,
                }
            )
    return rows


def _table(rows: list[dict]) -> str:
    head = (
        f"{'setting':<30} {'ε':>6} {'cfg':>4} {'steps':>5} {'TSTR acc':>8} {'TRTR acc':>8} "
        f"{'TSTR AUC':>8} {'TRTR AUC':>8} {'gate pass':>9} {'pretrain s':>10} {'train s':>8} "
        f"{'gen s':>6} {'gate s':>6} {'util s':>6} {'total s':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        eps = f"{r['epsilon']:.2f}" if r["epsilon"] is not None else "none"
        lines.append(
            f"{r['setting']:<30} {eps:>6} {r['guidance']:>4g} {r['steps']:>5} "
            f"{r['tstr_accuracy']:>8.3f} {r['trtr_accuracy']:>8.3f} "
            f"{r['tstr_auc'] or float('nan'):>8.3f} {r['trtr_auc'] or float('nan'):>8.3f} "
            f"{r['gate_pass_rate']:>9.1%} {r['seconds_pretrain']:>10.0f} "
            f"{r['seconds_train']:>8.0f} {r['seconds_generate']:>6.0f} {r['seconds_gate']:>6.0f} "
            f"{r['seconds_utility']:>6.0f} {r['seconds_total']:>8.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=500, help="private phantoms")
    parser.add_argument("--holdout", type=int, default=400, help="real holdout phantoms")
    parser.add_argument("--count", type=int, default=300, help="synthetic images per setting")
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps")
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--utility-epochs", type=int, default=30)
    parser.add_argument("--only", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--jobs", type=int, default=len(SETTINGS))
    parser.add_argument("--quick", action="store_true", help="a smoke run in about a minute")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = vars(parser.parse_args(argv))
    if args["quick"]:
        args |= {k: QUICK[k] for k in ("train", "holdout", "count", "steps")}
        args["utility_epochs"] = 2
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args["jobs"]) as pool:
        futures = [pool.submit(run_setting, n, SETTINGS[n], args) for n in args["only"]]
        rows = [row for f in futures for row in f.result()]
    print(
        f"phantoms 32×32: {args['train']} private, {args['holdout']} real holdout; "
        f"{args['count']} synthetic per setting (DDIM {args['steps']} steps); UNet channels "
        f"{args['channels']}; {os.cpu_count()} CPUs, one torch thread per setting, "
        f"{args['jobs']} at once; wall {time.perf_counter() - t0:.0f} s"
    )
    print(_table(rows))
    for setting, public in {r["setting"]: r["public"] for r in rows if r["public"]}.items():
        print(f"public pretraining ({setting}): {public}")
    if args["json"]:
        args["json"].write_text(json.dumps(rows, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
