"""Training a DDPM on private images: a diffusers `UNet2DModel` (class-conditional when the
images have labels; GroupNorm, no BatchNorm, so Opacus can clip per image), plain AdamW or
Opacus DP-SGD to an (ε, δ) budget, checkpointed with `save_pretrained` and resumable.

Under DP everything that reads the private images is in one ledger
(`synthset.privacy.dp.PrivacyLedger`, composed with Opacus' RDP accountant): the class shares
that generation draws labels from (a Gaussian histogram, `label_share` of the budget) and
DP-SGD (Poisson sampling, per-image clipping, noise multiplier searched so that the whole
composition stays within ε). Pixel scaling is fixed ([0, 1] → [-1, 1]), never estimated
from the data. An optional public pretraining step (Ghalebikesabi et al. 2023: pretrain on
public data, fine-tune with DP-SGD) costs no budget; the public set is named in the report.

A checkpoint folder is a `DDPMPipeline` folder (`model_index.json`, `unet/` with the EMA
weights, `scheduler/`), `classes.json` (what each class index means, the class shares), and
`training/` (raw weights, optimizer, progress and ledger) to resume from. It is written as a
whole and renamed into place, every `checkpoint_every` epochs and at the end.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthset.atomic import atomic_path
from synthset.errors import SynthsetError
from synthset.privacy.dp import (
    Mechanism,
    PrivacyBudget,
    PrivacyLedger,
    default_delta,
    quiet_opacus,
)
from synthset.privacy.ema import EMA
from synthset.privacy.errors import missing_extra
from synthset.privacy.medical.config import PretrainConfig, TrainConfig

CLASSES = "classes.json"
CONDITIONING = ("class_embedding", "time_embedding")
_PROJ = "time_emb_proj"
STATE = "training"
FORMAT = "synthset-medical-ddpm/1"
PUBLIC_SETS = {
    "digits": "scikit-learn's handwritten digits (load_digits: 1,797 public 8×8 images, "
    "resized to {size}×{size})",
    "phantoms": "{count} synthetic phantoms made by synthset.privacy.medical.phantoms "
    "(seed {seed}): public, no patient data",
}


def build_unet(config: TrainConfig, size: int, classes: int) -> Any:
    """A small `UNet2DModel` for one-channel images; with `classes` > 0, class-conditional
    through `num_class_embeds` = classes + 1 (the last index: no label, used for public
    pretraining)."""
    from diffusers import UNet2DModel

    levels = len(config.channels)
    return UNet2DModel(
        sample_size=size,
        in_channels=1,
        out_channels=1,
        layers_per_block=config.layers_per_block,
        block_out_channels=tuple(config.channels),
        down_block_types=("DownBlock2D",) * levels,
        up_block_types=("UpBlock2D",) * levels,
        mid_block_type=None,
        norm_num_groups=config.norm_groups,
        num_class_embeds=classes + 1 if classes else None,
    )


def noise_scheduler(config: TrainConfig) -> Any:
    """The training noise schedule (DDPM; generation may swap the sampler)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=config.timesteps,
        beta_schedule=config.beta_schedule,
        clip_sample=True,
        prediction_type=config.prediction,
    )


def public_images(config: PretrainConfig, size: int) -> tuple[np.ndarray, str]:
    """The public pretraining images, float32 (n, size, size) in [0, 1], and what they are."""
    if config.source == "digits":
        from sklearn.datasets import load_digits

        digits = torch.from_numpy(load_digits().images.astype(np.float32) / 16.0)
        images = torch.nn.functional.interpolate(
            digits[:, None], size=(size, size), mode="bilinear", align_corners=False
        )[:, 0]
        return images.clamp(0, 1).numpy(), PUBLIC_SETS["digits"].format(size=size)
    if config.source == "phantoms":
        from synthset.privacy.medical.phantoms import make_phantoms

        images, _ = make_phantoms(config.count, size=size, seed=config.seed)
        text = PUBLIC_SETS["phantoms"].format(count=config.count, seed=config.seed)
        return images.astype(np.float32), text
    raise ValueError(f"no public data for source {config.source!r}")


def fingerprint(images: np.ndarray, labels: np.ndarray | None, config: TrainConfig) -> str:
    """What a checkpoint was trained on and how: a resumed training must match it."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(images, dtype=np.float32).tobytes())
    if labels is not None:
        h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    settings = config.model_dump(mode="json", exclude={"threads", "checkpoint_every"})
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()[:16]


def _trains(finetune: str, name: str) -> bool:
    """Whether weight `name` is trained on the private images under `finetune`."""
    if finetune == "all":
        return True
    if finetune == "class":
        return name.startswith("class_embedding")
    return name.startswith(CONDITIONING) or _PROJ in name


@dataclass
class TrainedModel:
    """A trained (or resumed) checkpoint: where it is, what it spent and how it went."""

    folder: Path
    classes: list[Any]
    shares: list[float]
    ledger: PrivacyLedger | None
    history: dict[str, Any] = field(default_factory=dict)
    public: str | None = None

    def privacy(self) -> dict[str, Any] | None:
        """The ledger as a dict (`PrivacyLedger.to_dict`), None without DP."""
        return self.ledger.to_dict() if self.ledger else None


@dataclass
class _Progress:
    epoch: int = 0
    steps: int = 0
    pretrained: bool = False
    sigma: float | None = None
    sample_rate: float | None = None
    planned_steps: int | None = None
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    seconds_pretrain: float = 0.0


def _ledger_to_state(ledger: PrivacyLedger | None) -> dict[str, Any] | None:
    return ledger.to_dict() if ledger else None


def _ledger_from_state(state: dict[str, Any] | None) -> PrivacyLedger | None:
    if not state:
        return None
    return PrivacyLedger(
        PrivacyBudget(**state["budget"]),
        [Mechanism(**m) for m in state["mechanisms"]],
        list(state["notes"]),
        state["reserved_delta"],
    )


class Trainer:
    """Trains one checkpoint folder; `run()` resumes from what the folder holds."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray | None,
        classes: Sequence[Any],
        config: TrainConfig,
        folder: str | Path,
        log: Callable[[str], None] | None = None,
    ):
        if images.ndim != 3 or images.shape[1] != images.shape[2]:
            raise ValueError(f"images must be (n, size, size), got {images.shape}")
        self.images, self.labels, self.classes = images, labels, list(classes)
        self.config, self.folder = config, Path(folder)
        self.size = int(images.shape[1])
        self.log = log or (lambda _: None)
        self.key = fingerprint(images, labels, config)
        self.progress = _Progress()
        self.ledger: PrivacyLedger | None = None
        self.shares: list[float] = []
        self.public: str | None = None
        self.parameters = 0
        self.trainable = 0

    # --- state -------------------------------------------------------------------------

    def _load(self) -> tuple[Any, Any, dict | None] | None:
        """The saved UNet, EMA UNet and optimizer state, or None when nothing fits."""
        from diffusers import UNet2DModel
        from safetensors.torch import load_file

        state_file = self.folder / STATE / "state.json"
        if not state_file.is_file():
            return None
        state = json.loads(state_file.read_text())
        if state.get("format") != FORMAT or state.get("fingerprint") != self.key:
            raise SynthsetError(
                f"{self.folder}: holds a checkpoint of other images or settings; "
                "give a new folder or remove it to train from scratch"
            )
        self.progress = _Progress(**state["progress"])
        self.ledger = _ledger_from_state(state.get("ledger"))
        self.shares = state["shares"]
        self.public = state.get("public")
        ema = UNet2DModel.from_pretrained(self.folder / "unet")
        model = build_unet(self.config, self.size, len(self.classes) if self._conditional else 0)
        model.load_state_dict(load_file(str(self.folder / STATE / "raw.safetensors")))
        optimizer = None
        if (self.folder / STATE / "optimizer.pt").is_file():
            optimizer = torch.load(self.folder / STATE / "optimizer.pt", weights_only=True)
        if not self.config.private and (self.folder / STATE / "rng.pt").is_file():
            torch.set_rng_state(torch.load(self.folder / STATE / "rng.pt", weights_only=True))
        return model, ema, optimizer

    def _save(self, model: torch.nn.Module, ema: torch.nn.Module, optimizer: Any) -> None:
        from diffusers import DDPMPipeline
        from safetensors.torch import save_file

        with atomic_path(self.folder, folder=True) as tmp:
            DDPMPipeline(unet=ema, scheduler=noise_scheduler(self.config)).save_pretrained(tmp)
            (tmp / CLASSES).write_text(
                json.dumps(
                    {
                        "format": FORMAT,
                        "classes": self.classes if self._conditional else [],
                        "shares": self.shares,
                        "size": self.size,
                    },
                    indent=2,
                    default=str,
                )
                + "\n"
            )
            state = tmp / STATE
            state.mkdir()
            raw = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
            save_file(raw, str(state / "raw.safetensors"))
            if optimizer is not None:
                torch.save(optimizer.state_dict(), state / "optimizer.pt")
            torch.save(torch.get_rng_state(), state / "rng.pt")
            document = {
                "format": FORMAT,
                "fingerprint": self.key,
                "progress": self.progress.__dict__,
                "ledger": _ledger_to_state(self.ledger),
                "spent_so_far": _ledger_to_state(self._ledger_now()),
                "shares": self.shares,
                "public": self.public,
            }
            (state / "state.json").write_text(json.dumps(document, indent=2) + "\n")

    # --- the parts -----------------------------------------------------------------------

    @property
    def _conditional(self) -> bool:
        return self.labels is not None and len(self.classes) > 0

    @property
    def _steps_per_epoch(self) -> int:
        return math.ceil(len(self.images) / min(self.config.batch_size, len(self.images)))

    def _start_ledger(self) -> None:
        cfg = self.config
        if not cfg.private:
            if self._conditional:
                counts = np.bincount(self.labels, minlength=len(self.classes))
                self.shares = (counts / counts.sum()).tolist()
            return
        delta = cfg.delta if cfg.delta is not None else default_delta(len(self.images))
        self.ledger = PrivacyLedger(
            PrivacyBudget(cfg.epsilon, delta, preprocessing_share=cfg.label_share)
        )
        if self._conditional:
            z = self.ledger.share_noise(1, cfg.label_share)
            counts = np.bincount(self.labels, minlength=len(self.classes)).astype(np.float64)
            noisy = np.clip(counts + np.random.default_rng().normal(0, z, counts.shape), 0, None)
            total = noisy.sum()
            shares = noisy / total if total > 0 else np.full(len(counts), 1 / len(counts))
            self.shares = shares.tolist()
            self.ledger.add(
                Mechanism(
                    "class shares",
                    f"the count of training images per class ({len(counts)} classes; one image "
                    "changes one count by 1)",
                    z,
                )
            )
        rate = min(cfg.batch_size, len(self.images)) / len(self.images)
        steps = cfg.epochs * self._steps_per_epoch
        self.progress.sigma = self.ledger.sgd_noise(rate, steps)
        self.progress.sample_rate, self.progress.planned_steps = rate, steps

    def _ledger_now(self) -> PrivacyLedger | None:
        """The ledger with DP-SGD's steps so far (a checkpoint's spent budget)."""
        if self.ledger is None:
            return None
        ledger = _ledger_from_state(self.ledger.to_dict())
        if self.progress.steps:
            ledger.add(
                Mechanism(
                    "dp-sgd",
                    f"the UNet's weights ({self._which()}): every training image (Poisson "
                    "sampling, per-image gradients clipped to L2 norm "
                    f"{self.config.max_grad_norm})",
                    self.progress.sigma,
                    self.progress.sample_rate,
                    self.progress.steps,
                )
            )
        return ledger

    def _which(self) -> str:
        return {
            "all": "all of them",
            "conditioning": "the conditioning layers trained, the rest frozen after public "
            "pretraining",
            "class": "the class embedding trained, the rest frozen after public pretraining",
        }[self.config.finetune]

    def _loss(
        self, model: torch.nn.Module, scheduler: Any, x: torch.Tensor, y: Any, drop: bool = True
    ) -> Any:
        """The MSE of the UNet's prediction (noise, velocity or image, as `prediction` says)
        at random timesteps; with labels, each is replaced by the null
        class with probability `label_dropout` (so the model also learns the unconditional
        score that classifier-free guidance needs)."""
        noise = torch.randn_like(x)
        t = torch.randint(0, self.config.timesteps, (x.shape[0],))
        if y is not None and drop and self.config.label_dropout > 0:
            null = torch.rand(y.shape[0]) < self.config.label_dropout
            y = torch.where(null, torch.full_like(y, len(self.classes)), y)
        out = model(scheduler.add_noise(x, noise, t), t, class_labels=y).sample
        if self.config.prediction == "v_prediction":
            target = scheduler.get_velocity(x, noise, t)
        else:
            target = noise if self.config.prediction == "epsilon" else x
        error = ((out - target) ** 2).mean(dim=(1, 2, 3))
        if self.config.min_snr is not None:
            error = error * self._snr_weight(scheduler, t)
        return error.mean()

    def _snr_weight(self, scheduler: Any, t: torch.Tensor) -> torch.Tensor:
        """Min-SNR-γ loss weights (Hang et al. 2023): min(SNR, γ) over what the prediction's
        loss already weighs by (SNR for noise, SNR + 1 for velocity, 1 for the image), so no
        timestep dominates and training converges in fewer steps."""
        alpha = scheduler.alphas_cumprod[t]
        snr = alpha / (1 - alpha)
        clipped = snr.clamp(max=self.config.min_snr)
        if self.config.prediction == "epsilon":
            return clipped / snr
        if self.config.prediction == "v_prediction":
            return clipped / (snr + 1)
        return clipped

    def _tensors(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = torch.from_numpy(np.ascontiguousarray(self.images, dtype=np.float32))[:, None] * 2 - 1
        y = torch.from_numpy(self.labels.astype(np.int64)) if self._conditional else None
        return x, y

    def _pretrain(self, model: torch.nn.Module, ema: EMA) -> None:
        """Plain AdamW on the public images (no label: the null class), before any private
        image is read; then every class starts from the null class's embedding, so that
        fine-tuning begins at the pretrained model and learns how each class differs."""
        cfg = self.config.pretrain
        t0 = time.perf_counter()
        images, self.public = public_images(cfg, self.size)
        x = torch.from_numpy(images)[:, None] * 2 - 1
        null = torch.full((len(x),), len(self.classes), dtype=torch.long)
        y = null if self._conditional else None
        scheduler = noise_scheduler(self.config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=self.config.lr, weight_decay=0)
        batch = min(self.config.batch_size, len(x))
        model.train()
        for epoch in range(cfg.epochs):
            order = torch.randperm(len(x))
            for start in range(0, len(x) - batch + 1, batch):
                index = order[start : start + batch]
                labels = y[index] if y is not None else None
                loss = self._loss(model, scheduler, x[index], labels, drop=False)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                ema.update(model)
            self.log(f"pretraining on public data: epoch {epoch + 1}/{cfg.epochs}")
        if self._conditional:
            with torch.no_grad():
                table = model.class_embedding.weight
                table[: len(self.classes)] = table[len(self.classes)]
        ema.module.load_state_dict(model.state_dict())
        self.progress.pretrained = True
        self.progress.seconds_pretrain = time.perf_counter() - t0

    # --- training ------------------------------------------------------------------------

    def run(self) -> TrainedModel:
        """Train (or finish training) and return the final checkpoint."""
        cfg = self.config
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed if not cfg.private else secrets.randbits(63))
        loaded = self._load()
        if loaded is None:
            model = build_unet(cfg, self.size, len(self.classes) if self._conditional else 0)
            ema_module, optimizer_state = copy.deepcopy(model), None
            self._start_ledger()
        else:
            model, ema_module, optimizer_state = loaded
            self.log(f"resuming from epoch {self.progress.epoch} ({self.progress.steps} steps)")
        ema = EMA(ema_module, cfg.ema or 0.0)
        self.parameters = sum(p.numel() for p in model.parameters())
        if cfg.pretrain.source != "none" and not self.progress.pretrained:
            self._pretrain(model, ema)
            optimizer_state = None
            self._save(model, ema.module, None)
        if self.progress.epoch < cfg.epochs:
            if cfg.private:
                with quiet_opacus():
                    self._train_private(model, ema, optimizer_state)
            else:
                self._train_plain(model, ema, optimizer_state)
        return TrainedModel(
            self.folder,
            self.classes if self._conditional else [],
            self.shares,
            self._ledger_now(),
            self.history(),
            self.public,
        )

    def history(self) -> dict[str, Any]:
        p = self.progress
        return {
            "images": len(self.images),
            "epochs": p.epoch,
            "steps": p.steps,
            "losses": list(p.losses),
            "final_loss": float(np.mean(p.losses[-5:])) if p.losses else math.nan,
            "seconds_train": p.seconds,
            "seconds_pretrain": p.seconds_pretrain,
            "noise_multiplier": p.sigma,
            "sample_rate": p.sample_rate,
            "parameters": self.parameters,
            "trainable_parameters": self.trainable or self.parameters,
        }

    def _optimizer(self, model: torch.nn.Module, state: dict | None) -> torch.optim.Optimizer:
        """AdamW over the weights `finetune` trains (all; the conditioning layers: class and
        time embeddings and each block's projection of them; or the class embedding alone),
        the rest frozen."""
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(_trains(self.config.finetune, name))
        trainable = [p for p in model.parameters() if p.requires_grad]
        self.trainable = sum(p.numel() for p in trainable)
        optimizer = torch.optim.AdamW(trainable, lr=self.config.lr, weight_decay=0)
        if state is not None:
            optimizer.load_state_dict(state)
        return optimizer

    def _epoch_done(self, model: torch.nn.Module, ema: EMA, optimizer: Any, losses: list) -> None:
        p = self.progress
        p.epoch += 1
        p.losses.append(float(np.mean(losses)) if losses else math.nan)
        self.log(f"epoch {p.epoch}/{self.config.epochs}: loss {p.losses[-1]:.4f}")
        if p.epoch % self.config.checkpoint_every == 0 or p.epoch == self.config.epochs:
            self._save(model, ema.module, optimizer)

    def _train_plain(self, model: torch.nn.Module, ema: EMA, state: dict | None) -> None:
        cfg = self.config
        x, y = self._tensors()
        optimizer = self._optimizer(model, state)
        scheduler = noise_scheduler(cfg)
        batch = min(cfg.batch_size, len(x))
        generator = torch.Generator().manual_seed(cfg.seed)
        model.train()
        while self.progress.epoch < cfg.epochs:
            t0 = time.perf_counter()
            generator.manual_seed(cfg.seed * 100_003 + self.progress.epoch)
            order = torch.randperm(len(x), generator=generator)
            losses = []
            for start in range(0, len(x), batch):
                index = order[start : start + batch]
                loss = self._loss(model, scheduler, x[index], y[index] if y is not None else None)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                ema.update(model)
                losses.append(float(loss.detach()))
                self.progress.steps += 1
            self.progress.seconds += time.perf_counter() - t0
            self._epoch_done(model, ema, optimizer, losses)

    def _train_private(self, model: torch.nn.Module, ema: EMA, state: dict | None) -> None:
        """Opacus DP-SGD: Poisson batches of expected size `batch_size`, per-image gradients
        clipped to `max_grad_norm`, Gaussian noise of the searched multiplier; with `draws`,
        each image's gradient averaged over that many (t, noise) draws before clipping."""
        try:
            from opacus import PrivacyEngine
            from opacus.validators import ModuleValidator
        except ImportError:
            raise missing_extra("opacus") from None
        from torch.utils.data import DataLoader, TensorDataset

        cfg, p = self.config, self.progress
        problems = ModuleValidator.validate(model, strict=False)
        if problems:
            raise ValueError(f"the UNet cannot be trained with DP-SGD: {problems[0]}")
        x, y = self._tensors()
        data = TensorDataset(x, y) if y is not None else TensorDataset(x)
        batch = max(1, round(p.sample_rate * len(x)))
        optimizer = self._optimizer(model, state)
        engine = PrivacyEngine(accountant="rdp")
        private, optimizer, loader = engine.make_private(
            module=model,
            optimizer=optimizer,
            data_loader=DataLoader(data, batch_size=batch),
            noise_multiplier=p.sigma,
            max_grad_norm=cfg.max_grad_norm,
            poisson_sampling=True,
            noise_generator=torch.Generator().manual_seed(secrets.randbits(63)),
        )
        scheduler = noise_scheduler(cfg)
        private.train()
        per_epoch = self._steps_per_epoch
        while p.epoch < cfg.epochs:
            t0 = time.perf_counter()
            losses: list[float] = []
            done = 0
            while done < per_epoch:
                for tensors in loader:
                    if done >= per_epoch:
                        break
                    optimizer.zero_grad(set_to_none=True)
                    done += 1
                    p.steps += 1
                    if tensors[0].shape[0] == 0:
                        optimizer.step()
                        continue
                    images, labels = tensors[0], tensors[1] if y is not None else None
                    k = cfg.draws
                    if k > 1:
                        images = images.repeat_interleave(k, dim=0)
                        labels = labels.repeat_interleave(k, dim=0) if labels is not None else None
                    loss = self._loss(private, scheduler, images, labels)
                    loss.backward()
                    if k > 1:
                        _average_draws(private._module, k)
                    optimizer.step()
                    ema.update(private._module)
                    losses.append(float(loss.detach()))
            p.seconds += time.perf_counter() - t0
            self._epoch_done(private._module, ema, optimizer.original_optimizer, losses)


def _average_draws(module: torch.nn.Module, draws: int) -> None:
    """Noise multiplicity (Dockhorn et al. 2022, DPDM): each image was in the batch `draws`
    times with its own (t, noise); average its per-sample gradients into one before Opacus
    clips, so an image still contributes one gradient of norm ≤ C (same sensitivity) whose
    diffusion-loss noise is `draws` times smaller in variance."""
    for parameter in module.parameters():
        grads = getattr(parameter, "grad_sample", None)
        if parameter.requires_grad and isinstance(grads, torch.Tensor):
            parameter.grad_sample = grads.view(-1, draws, *grads.shape[1:]).mean(dim=1)


def train(
    images: np.ndarray,
    labels: np.ndarray | None,
    classes: Sequence[Any],
    config: TrainConfig,
    folder: str | Path,
    log: Callable[[str], None] | None = None,
) -> TrainedModel:
    """Train a DDPM on `images` (float (n, size, size) in [0, 1]; `labels`: class indices into
    `classes`, or None) into the checkpoint `folder`, resuming from what it holds."""
    return Trainer(images, labels, classes, config, folder, log).run()


def load_classes(folder: str | Path) -> dict[str, Any]:
    """`classes.json` of a checkpoint: class values, shares and image size."""
    return json.loads((Path(folder) / CLASSES).read_text())
