"""Is the synthetic set useful? TSTR vs TRTR: the same small classifier trained on synthetic
images and on real training images, both tested on the real holdout the generator never saw.

The classifier is a three-block CNN with GroupNorm (no BatchNorm: its statistics would mix
the images of a batch, and the same network can then be trained with Opacus if needed). Its
accuracy and, for two classes, its ROC AUC on the holdout are reported; TSTR ÷ TRTR says how
much of the real data's usefulness the synthetic set keeps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from synthset.privacy.medical.config import UtilityConfig


class SmallCNN(nn.Module):
    """conv → GroupNorm → SiLU → pool, three times, then a linear head."""

    def __init__(self, classes: int, channels: tuple[int, ...] = (16, 32, 64), groups: int = 8):
        super().__init__()
        layers: list[nn.Module] = []
        previous = 1
        for width in channels:
            layers += [
                nn.Conv2d(previous, width, 3, padding=1),
                nn.GroupNorm(groups, width),
                nn.SiLU(),
                nn.MaxPool2d(2),
            ]
            previous = width
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(previous, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def fit_classifier(
    images: np.ndarray, labels: np.ndarray, classes: int, config: UtilityConfig
) -> SmallCNN:
    """Train a `SmallCNN` on `images` (n, size, size) in [0, 1] with integer `labels`."""
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    model = SmallCNN(classes)
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None]
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    steps = config.epochs * max(1, -(-len(x) // config.batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=steps)
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), config.batch_size):
            index = order[start : start + config.batch_size]
            batch = x[index]
            if torch.rand(1, generator=generator).item() < 0.5:
                batch = batch.flip(-1)
            loss = nn.functional.cross_entropy(model(batch), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


@torch.no_grad()
def predict(model: SmallCNN, images: np.ndarray) -> np.ndarray:
    """Class probabilities, (n, classes)."""
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None]
    return torch.cat([model(x[i : i + 256]).softmax(-1) for i in range(0, len(x), 256)]).numpy()


def scores(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, and ROC AUC (two classes, else one-vs-rest macro) where both sides occur."""
    from sklearn.metrics import roc_auc_score

    out = {"accuracy": float((probabilities.argmax(1) == labels).mean())}
    present = np.unique(labels)
    if len(present) > 1:
        if probabilities.shape[1] == 2:
            out["auc"] = float(roc_auc_score(labels, probabilities[:, 1]))
        elif len(present) == probabilities.shape[1]:
            out["auc"] = float(roc_auc_score(labels, probabilities, multi_class="ovr"))
    return out


@dataclass
class Utility:
    """TSTR and TRTR on the real holdout, and the seconds each classifier took."""

    tstr: dict[str, float]
    trtr: dict[str, float]
    seconds: float
    holdout: int
    note: str = ""

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for side, values in (("tstr", self.tstr), ("trtr", self.trtr)):
            for key, value in values.items():
                out[f"{side}_{key}"] = value
        if self.trtr.get("accuracy"):
            out["tstr_ratio"] = self.tstr["accuracy"] / self.trtr["accuracy"]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "tstr": self.tstr,
            "trtr": self.trtr,
            "metrics": self.metrics(),
            "holdout_images": self.holdout,
            "seconds": self.seconds,
            "classifier": "SmallCNN (3 × conv/GroupNorm/SiLU/max-pool, linear head)",
            "note": self.note,
        }


def tstr_vs_trtr(
    real: np.ndarray,
    real_labels: np.ndarray,
    synthetic: np.ndarray,
    synthetic_labels: np.ndarray,
    holdout: np.ndarray,
    holdout_labels: np.ndarray,
    classes: int,
    config: UtilityConfig,
) -> Utility:
    """Train on synthetic (TSTR) and on real training images (TRTR), test both on the real
    holdout."""
    t0 = time.perf_counter()
    on_synthetic = fit_classifier(synthetic, synthetic_labels, classes, config)
    on_real = fit_classifier(real, real_labels, classes, config)
    return Utility(
        tstr=scores(predict(on_synthetic, holdout), holdout_labels),
        trtr=scores(predict(on_real, holdout), holdout_labels),
        seconds=time.perf_counter() - t0,
        holdout=len(holdout),
    )
