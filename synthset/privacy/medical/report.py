"""The medical sections and plots of the audit report, in the shared frame
(`synthset.privacy.report`): the data as ingested (counts only), training and its privacy
ledger, the memorization gate with the closest pairs side by side, TSTR vs TRTR, a sample
grid of what is released.

The report is private: the closest pairs show training images. It lives beside the
versions (`.reports/`) and in the MLflow run's `report/` artifacts, which `pull` never
fetches; the page says so.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np

from synthset.privacy.gate import GateResult
from synthset.privacy.report import dp_statement, figure_uri, html_table, pyplot, render_report

if TYPE_CHECKING:
    from synthset.privacy.medical.generate import Synthetic
    from synthset.privacy.medical.memorization import MemorizationResult
    from synthset.privacy.medical.release import Prepared
    from synthset.privacy.medical.train import TrainedModel
    from synthset.privacy.medical.utility import Utility

WARNING = """This report is computed from the private images and shows some of them (the
closest pairs); it is not covered by any differential-privacy guarantee. Share the released
synthetic images, not this report."""

NOT_COVERED = [
    "the memorization gate: it compares every synthetic image with the training images, and "
    "which images it removes depends on them",
    "the TSTR vs TRTR check and the release decision: they read the training and holdout images",
    "this report (its closest pairs show training images)",
    "the number of training images (DP-SGD's sampling rate assumes it public)",
    "a patient with several images: the guarantee is per image; m images of one patient are "
    "protected as a group, at about m·ε",
]


def privacy_statement(privacy: dict[str, Any] | None, public: str | None) -> dict[str, Any]:
    """What the (ε, δ) of a release covers and not, per image; public pretraining named."""
    statement = dp_statement(privacy, NOT_COVERED, unit="image")
    if public:
        statement.setdefault("notes", [])
        statement["notes"] = [
            *statement["notes"],
            f"pretrained on public data first, at no privacy cost: {public}",
        ]
    return statement


def _tiles(images: list[np.ndarray], captions: list[str], columns: int, title: str) -> str:
    plt = pyplot()
    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.45 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, captions, strict=False):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(caption, fontsize=6)
    fig.suptitle(title, fontsize=9)
    return figure_uri(fig)


def sample_grid(synthetic: Synthetic, kept: np.ndarray, limit: int = 32) -> str:
    """Up to `limit` released images, spread over the set, captioned with their class."""
    at = np.flatnonzero(kept)
    chosen = at[:: max(1, len(at) // limit)][:limit] if len(at) else at
    labels = synthetic.rows["label"].tolist() if "label" in synthetic.rows else None
    captions = [f"class {labels[i]}" if labels else "" for i in chosen]
    return _tiles([synthetic.images[i] for i in chosen], captions, 8, "released images")


def closest_pairs(
    synthetic: Synthetic, training: np.ndarray, memo: MemorizationResult, limit: int = 8
) -> str:
    """The most suspicious synthetic images beside the training image each is closest to."""
    pairs = memo.closest_pairs[:limit]
    images, captions = [], []
    for pair in pairs:
        verdict = "REJECTED" if pair.rejected else "kept"
        images += [synthetic.images[pair.synthetic], training[pair.training]]
        captions += [
            f"synthetic ({verdict})",
            f"training · r={pair.pixel_ratio:.2f} ssim={pair.ssim:.2f}",
        ]
    return _tiles(images, captions, 4, "closest pairs: synthetic | nearest training image")


def ratio_histogram(memo: MemorizationResult) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 2.8))
    for values, name in ((memo.pixel_ratio, "pixel"), (memo.embedding_ratio, "embedding")):
        finite = values[np.isfinite(values)]
        if len(finite):
            ax.hist(finite, bins=30, range=(0, 1), alpha=0.6, label=name)
    for threshold in (memo.config.ratio_threshold, memo.config.embedding_ratio_threshold):
        if threshold is not None:
            ax.axvline(threshold, color="red", linestyle="--", linewidth=1)
    ax.set_xlabel("nearest ÷ mean of k nearest training images (below the line: rejected)")
    ax.set_ylabel("synthetic images")
    ax.legend(fontsize=8)
    return figure_uri(fig)


def loss_curve(history: dict[str, Any]) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 2.5))
    losses = history.get("losses") or []
    ax.plot(np.arange(1, len(losses) + 1), losses)
    ax.set_xlabel("epoch")
    ax.set_ylabel("noise-prediction MSE")
    return figure_uri(fig)


def _training_rows(model: TrainedModel) -> list[dict[str, Any]]:
    h = model.history
    rows = {
        "images": h.get("images"),
        "epochs": h.get("epochs"),
        "optimizer steps": h.get("steps"),
        "parameters": h.get("parameters"),
        "trained on the private images": h.get("trainable_parameters"),
        "final loss": h.get("final_loss"),
        "seconds (training)": h.get("seconds_train"),
        "seconds (public pretraining)": h.get("seconds_pretrain"),
        "public pretraining": model.public or "none",
        "DP-SGD noise multiplier": h.get("noise_multiplier"),
        "DP-SGD sampling rate": h.get("sample_rate"),
    }
    return [{"setting": k, "value": v} for k, v in rows.items() if v is not None]


def _gate_rows(memo: MemorizationResult) -> list[dict[str, Any]]:
    s = memo.summary()
    rows = [
        {"figure": "synthetic images checked", "value": s["synthetic"]},
        {"figure": "training images compared", "value": s["training"]},
        {"figure": "rejected as near-copies", "value": s["rejected"]},
        {"figure": "rejected share", "value": s["rejected_share"]},
        {"figure": "embedding", "value": s["embedding"]},
    ]
    rows += [{"figure": f"rejected by {k}", "value": v} for k, v in s["rejected_by_check"].items()]
    for space in ("pixel_ratio", "embedding_ratio", "ssim"):
        rows += [{"figure": f"{space} {q}", "value": v} for q, v in s[space].items()]
    return rows


def _pair_rows(memo: MemorizationResult) -> list[dict[str, Any]]:
    return [
        {
            "synthetic": p.synthetic,
            "training image": p.training,
            "pixel distance": p.pixel_distance,
            "pixel ratio": p.pixel_ratio,
            "embedding ratio": p.embedding_ratio,
            "SSIM": p.ssim,
            "decision": "rejected" if p.rejected else "kept",
            "reason": p.reason or "",
        }
        for p in memo.closest_pairs
    ]


def _utility_rows(utility: Utility | None) -> str:
    if utility is None:
        return "<p>not measured (no labels or no holdout)</p>"
    rows = [
        {"trained on": "synthetic (TSTR)", **utility.tstr},
        {"trained on": "real (TRTR)", **utility.trtr},
    ]
    ratio = utility.metrics().get("tstr_ratio")
    note = f"<p>TSTR ÷ TRTR accuracy: {ratio:.3f}; holdout: {utility.holdout} real images.</p>"
    return html_table(rows) + (note if ratio is not None else "")


def build_report(
    name: str,
    prepared: Prepared,
    model: TrainedModel,
    synthetic: Synthetic,
    memo: MemorizationResult,
    utility: Utility | None,
    gate: GateResult,
    extra: dict[str, Any],
) -> tuple[str, dict[str, Any]]:
    """The HTML page and the JSON document of one medical release."""
    privacy = model.privacy()
    statement = privacy_statement(privacy, model.public)
    ingest = prepared.ingested.summary()
    data_rows = [
        {"figure": k, "value": v}
        for k, v in {
            **ingest,
            "training images": len(prepared.train),
            "holdout images": len(prepared.holdout),
        }.items()
    ]
    sections = [
        ("Data (de-identified on ingest)", html_table(data_rows)),
        ("Training", html_table(_training_rows(model))),
        ("Memorization gate", html_table(_gate_rows(memo))),
        ("Closest pairs", html_table(_pair_rows(memo))),
        ("Utility: TSTR vs TRTR", _utility_rows(utility)),
        (
            "Public pretraining",
            f"<p>{html.escape(model.public or 'none: trained on the private images only')}</p>",
        ),
    ]
    training = prepared.images("train")
    plots = [
        ("Sample grid (released images)", sample_grid(synthetic, memo.kept)),
        ("Closest pairs, side by side", closest_pairs(synthetic, training, memo)),
        ("Nearest-neighbour ratios", ratio_histogram(memo)),
        ("Training loss", loss_curve(model.history)),
    ]
    audit = {
        "ingest": ingest,
        "training": {k: v for k, v in model.history.items() if k != "losses"}
        | {"losses": model.history.get("losses", [])},
        "memorization": memo.summary(),
        "closest_pairs": [p.__dict__ for p in memo.closest_pairs],
        "utility": utility.to_dict() if utility else None,
        "public_pretraining": model.public,
    }
    return render_report(
        name, gate, privacy, statement, audit, sections, plots, extra, warning=WARNING
    )
