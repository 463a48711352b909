"""`TabularSynthesizer`: fit a TabDDPM-style diffusion model on a private table, with or
without DP-SGD, sample synthetic rows by seed, and save/load as safetensors + JSON.

Without a privacy budget, the encoder's statistics are exact and training is plain AdamW.
With `epsilon` (and `delta`), undeclared statistics are estimated with DP from
`preprocessing_share` of ε (see `synthset.privacy.tabular.dp_stats`), the correlation of the
numeric scores from `prior_share` (a Gaussian copula that the denoiser corrects, see
`synthset.privacy.tabular.prior`), and the denoiser is trained with Opacus DP-SGD (per-row
clipping to `max_grad_norm`, Poisson sampling, Gaussian noise), with the noise multiplier
chosen so that everything composed stays within (ε, δ). DP noise and batch sampling draw
from OS entropy, so DP fits are not reproducible from `seed` by design; sampling from a
fitted model is (`sample(n, seed)`).
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from synthset.privacy.dp import (
    Mechanism,
    PrivacyBudget,
    PrivacyLedger,
    default_delta,
    quiet_opacus,
)
from synthset.privacy.ema import EMA
from synthset.privacy.errors import missing_extra
from synthset.privacy.tabular.calibrate import (
    cells,
    class_margins,
    class_shares,
    margins,
    rake,
    weighted_subset,
)
from synthset.privacy.tabular.diffusion import SCHEDULERS, Denoiser, MixedDiffusion
from synthset.privacy.tabular.encoder import TableEncoder, category_index, exact_stats, to_normal
from synthset.privacy.tabular.pairs import PAIR_BINS, PairColumns, PairMargin, release_pairs
from synthset.privacy.tabular.prior import (
    GaussianPrior,
    category_log_prior,
    clip_norm,
    dp_correlation,
    exact_correlation,
)
from synthset.privacy.tabular.schema import TableSchema

WEIGHTS = "model.safetensors"
CONFIG = "synthesizer.json"
FORMAT = "synthset-tabddpm/1"
SAMPLE_CHUNK = 8192
PRIOR = "prior.correlation"
CLASS_SHARES = "calibration.class_shares."
PAIRS = "calibration.pairs."


DEFAULTS: dict[str, dict[str, Any]] = {
    "plain": {
        "hidden": [128, 128],
        "dropout": 0.2,
        "d_embed": 64,
        "steps": 1500,
        "max_epochs": 600,
        "batch_size": 256,
        "lr": 2e-3,
        "ema": 0.995,
        "prior": "gaussian",
        "oversample": 3.0,
    },
    "dp": {
        "hidden": [64, 64],
        "d_embed": 32,
        "steps": 200,
        "batch_size": 4096,
        "lr": 1e-2,
        "ema": 0.9,
        "prior": "gaussian",
        "dropout": 0.0,
        "oversample": 6.0,
    },
}
"""Settings left unset take these. Both modes learn a correction to a Gaussian copula
(`prior`, exact without DP) rather than the whole distribution: without DP a 2×128 MLP for
1,500 steps is enough for that and memorises less than a 3×256 one trained 4,000 steps
(bench/tabular_quality.py, 3 fits: QualityReport 0.80 → 0.96 on breast_cancer, DCR share
0.58 → 0.54, at a third of the CPU time), and it stops after 600 passes over the rows if
that comes first: memorisation grows with the passes over each row, and on diabetes' 309
rows 1,500 steps are 1,240 of them (10 fits: DCR share 0.561 → 0.545). Under DP the model
is small and trained for few large (full) batches: DP-SGD's noise grows with the number of
weights and with the steps, so a large model trained long drowns in noise on a table of
hundreds or thousands of rows; it learns a correction to a DP Gaussian copula (`prior`)
instead of the whole distribution, and needs no dropout (DP-SGD's noise regularises it).
Calibration draws 6 candidate rows per row kept under DP, 3 without: the DP model leaves
more to the weights (two-way margins it never learned), and with 3 the weights hit their cap
(ACTG 320 at ε = 10, 2 fits: strat2's share 2.0 and 4.6 points off its target with 3, at
most 0.7 with 6, 3 fits)."""


class SynthesizerConfig(BaseModel):
    """Hyper-parameters of the model, its training and its privacy budget."""

    model_config = ConfigDict(extra="forbid")
    _defaulted: set[str] = PrivateAttr(default_factory=set)

    hidden: list[int] | None = Field(default=None, description="MLP widths (see DEFAULTS)")
    d_embed: int | None = None
    dropout: float | None = Field(
        default=None, ge=0, lt=1, description="regularises small tables against memorisation"
    )
    timesteps: int = 1000
    schedule: Literal["cosine", "linear"] = "cosine"
    scheduler: str = Field(
        default="dpmpp", description="sampling solver (DPM-Solver++: few steps, same quality)"
    )
    sample_steps: int | None = Field(
        default=50, ge=1, description="denoising steps when sampling; None: every timestep"
    )
    steps: int | None = Field(default=None, ge=1, description="optimizer steps")
    max_epochs: float | None = Field(
        default=None,
        gt=0,
        description="without DP, training stops at `steps` or after this many passes over the "
        "rows, whichever comes first (memorisation grows with the passes over each row; set it "
        "high to train exactly `steps`)",
    )
    batch_size: int | None = Field(default=None, ge=1)
    lr: float | None = None
    optimizer: Literal["adamw", "sgd"] = "adamw"
    weight_decay: float = 1e-4
    ema: float | None = Field(default=None, ge=0, lt=1)
    conditional: bool | None = Field(
        default=None,
        description="condition on the schema's target; default: for a categorical or boolean "
        "target yes, for a numeric one no (it is modelled as a column: a continuous condition "
        "lets the model tie each value to one training row)",
    )
    seed: int = 0
    threads: int | None = None
    epsilon: float | None = Field(default=None, gt=0)
    delta: float | None = Field(default=None, gt=0, lt=1)
    max_grad_norm: float = Field(default=1.0, gt=0)
    preprocessing_share: float = Field(
        default=0.5,
        gt=0,
        lt=1,
        description="share of the DP budget for the encoder's statistics: the marginals the "
        "priors and the calibration rest on (at ε = 3 on 560 rows, 0.5 keeps every missing "
        "rate within 3 points in 88% of releases, 0.4 in 80%)",
    )
    dp_bins: int = Field(default=10, ge=2)
    dp_partition: Literal["models", "maps", "none"] = Field(
        default="maps",
        description="under DP with a class target: one model per class on its own rows "
        "('models'), or one model with per-class quantile maps only ('maps')",
    )
    prior: Literal["none", "independent", "gaussian"] | None = Field(
        default=None,
        description="what the denoiser's numeric output corrects (synthset.privacy.tabular.prior): "
        "nothing, independent normal scores, or a Gaussian copula fitted to the rows (under "
        "DP with prior_share of the budget)",
    )
    category_prior: bool = Field(
        default=True,
        description="the categorical logits correct each column's (DP) category shares, so "
        "category and missing shares are right before any training "
        "(synthset.privacy.tabular.prior)",
    )
    calibrate: bool = Field(
        default=True,
        description="draw oversample × n rows and keep n whose marginals match the encoder's, "
        "or without DP those within each target class (synthset.privacy.tabular.calibrate)",
    )
    oversample: float | None = Field(
        default=None, ge=1.0, description="candidate rows drawn per row kept (see DEFAULTS)"
    )
    prior_share: float = Field(
        default=0.3, gt=0, lt=1, description="share of the DP budget for the copula"
    )
    dp_draws: int = Field(
        default=8, ge=1, description="(t, noise) draws averaged per row under DP-SGD"
    )
    pairs: int = Field(
        default=5,
        ge=0,
        description="under DP, at most this many two-way margins of the pairs of columns the "
        "priors get most wrong are released, and calibration matches them "
        "(synthset.privacy.tabular.pairs); 0, or calibrate off: none",
    )
    pair_share: float = Field(
        default=0.1,
        gt=0,
        lt=1,
        description="share of the DP budget for selecting and measuring them",
    )

    def model_post_init(self, _: Any) -> None:
        for name, value in DEFAULTS["dp" if self.private else "plain"].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
                self._defaulted.add(name)
        if self.scheduler not in SCHEDULERS:
            raise ValueError(
                f"unknown scheduler {self.scheduler!r}; allowed: {', '.join(SCHEDULERS)}"
            )
        if self.delta is not None and self.epsilon is None:
            raise ValueError("delta is given without epsilon")
        if self.private and sum(self.shares().values()) >= 1:
            raise ValueError(
                " + ".join(self.shares()) + " must leave part of the budget for DP-SGD"
            )

    @property
    def private(self) -> bool:
        return self.epsilon is not None

    @property
    def releases_pairs(self) -> bool:
        """Whether a DP fit releases two-way margins: only calibration uses them."""
        return self.private and self.pairs > 0 and self.calibrate

    def shares(self) -> dict[str, float]:
        """The shares of the DP budget set aside before DP-SGD, by setting."""
        out = {"preprocessing_share": self.preprocessing_share}
        if self.prior == "gaussian":
            out["prior_share"] = self.prior_share
        if self.releases_pairs:
            out["pair_share"] = self.pair_share
        return out

    def given(self) -> dict[str, Any]:
        """The settings not filled in from DEFAULTS (to merge with overrides)."""
        return self.model_dump(mode="json", exclude=self._defaulted)


class ClassPartitioned(torch.nn.Module):
    """One unconditional denoiser per target class, each trained only on its class's rows.

    Under DP the classes are disjoint sets of rows, so the per-class DP-SGD runs compose in
    parallel (one row touches one model) and the label-feature association is kept exactly,
    instead of being learned through a noisy class embedding.
    """

    def __init__(self, parts: list[Denoiser]):
        super().__init__()
        self.parts = torch.nn.ModuleList(parts)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        out = torch.zeros(x.shape[0], self.parts[0].mlp[-1].out_features)
        for c, part in enumerate(self.parts):
            rows = y == c
            if bool(rows.any()):
                out[rows] = part(x[rows], t[rows])
        return out


class TabularSynthesizer:
    """TabDDPM-style synthesizer for mixed-type tables, optionally differentially private."""

    def __init__(self, config: SynthesizerConfig | None = None, **overrides: Any):
        base = config.given() if config is not None else {}
        self.config = SynthesizerConfig(**(base | overrides))
        self.encoder: TableEncoder | None = None
        self.diffusion: MixedDiffusion | None = None
        self.model: Denoiser | None = None
        self.ledger: PrivacyLedger | None = None
        self.history: dict[str, Any] = {}
        self.class_shares: list[np.ndarray] | None = None
        self.pair_margins: list[PairMargin] = []

    def _build(self) -> None:
        enc = self.encoder
        self.diffusion = MixedDiffusion(
            len(enc.numeric), enc.category_sizes, self.config.timesteps, self.config.schedule
        )
        d = self.diffusion.d_model
        cfg = self.config
        if cfg.private and cfg.dp_partition == "models" and enc.target_kind == "classes":
            self.model = ClassPartitioned(
                [
                    Denoiser(d, d, cfg.hidden, cfg.d_embed, dropout=cfg.dropout)
                    for _ in range(enc.n_classes)
                ]
            )
            return
        self.model = Denoiser(
            d,
            d,
            hidden=cfg.hidden,
            d_embed=cfg.d_embed,
            n_classes=enc.n_classes,
            numeric_condition=enc.target_kind == "numeric",
            dropout=cfg.dropout,
        )

    def _set_prior(self, correlation: np.ndarray) -> None:
        """Make the numeric output a correction to N(0, `correlation`) (see `prior`)."""
        self.diffusion.prior = GaussianPrior(correlation, self.diffusion.alphas_cumprod)

    def _set_category_prior(self) -> None:
        """Make the categorical logits a correction to the encoder's category shares."""
        if self.encoder.category_sizes:
            self.diffusion.category_prior = category_log_prior(
                self.encoder.category_priors(), self.diffusion.mask.shape[1]
            )

    def _fit_prior(self, scores: np.ndarray) -> None:
        """Set the priors the denoiser corrects: the category shares and the numeric scores'
        copula (its correlation estimated with DP under a budget). The corrections start at
        zero, so that the untrained model samples the priors."""
        cfg, width = self.config, scores.shape[1]
        parts = self.model.parts if isinstance(self.model, ClassPartitioned) else [self.model]
        if cfg.category_prior and self.encoder.category_sizes:
            self._set_category_prior()
            with torch.no_grad():
                for part in parts:
                    part.mlp[-1].weight[width:].zero_()
                    part.mlp[-1].bias[width:].zero_()
        if cfg.prior == "none" or width == 0:
            return
        if cfg.prior == "independent":
            correlation = np.eye(width)
        elif cfg.private:
            z = self.ledger.share_noise(1, cfg.prior_share)
            correlation = dp_correlation(scores, z, np.random.default_rng())
            self.ledger.add(
                Mechanism(
                    "prior correlation",
                    f"correlation of the {width} numeric columns' normal scores (rows clipped "
                    f"to L2 norm {clip_norm(width):.3g}; noise on the {width * (width + 1) // 2} "
                    "entries on and above the diagonal)",
                    z,
                )
            )
        else:
            correlation = exact_correlation(scores.astype(np.float64))
        self._set_prior(correlation)
        with torch.no_grad():
            for part in parts:
                part.mlp[-1].weight[:width].zero_()
                part.mlp[-1].bias[:width].zero_()

    def fit(self, frame: pd.DataFrame, schema: TableSchema) -> TabularSynthesizer:
        """Learn the table's distribution from `frame` (the private training rows)."""
        cfg = self.config
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        conditional = cfg.conditional
        if conditional is None and schema.target is not None:
            conditional = schema.column(schema.target).kind in ("categorical", "boolean")
        if not conditional and schema.target is not None:
            schema = TableSchema.from_dict(schema.to_dict() | {"target": None})
        t0 = time.perf_counter()
        if cfg.private:
            from synthset.privacy.tabular.dp_stats import dp_stats

            delta = cfg.delta if cfg.delta is not None else default_delta(len(frame))
            self.ledger = PrivacyLedger(
                PrivacyBudget(cfg.epsilon, delta, preprocessing_share=cfg.preprocessing_share)
            )
            stats = dp_stats(
                frame, schema, self.ledger, bins=cfg.dp_bins, per_class=cfg.dp_partition != "none"
            )
        else:
            stats = exact_stats(frame, schema)
        self.encoder = TableEncoder(schema, stats)
        data = self.encoder.encode(frame)
        torch.manual_seed(cfg.seed)
        self._build()
        self._fit_prior(np.asarray(data["x_num"]))
        self._fit_calibration(data)
        tensors = [torch.from_numpy(np.array(data[k])) for k in ("x_num", "x_cat")]
        if "y" in data:
            tensors.append(torch.from_numpy(np.array(data["y"])))
        seconds_prep = time.perf_counter() - t0
        if cfg.private:
            with quiet_opacus():
                losses = self._train_private(tensors)
        else:
            losses = self._train(tensors)
        self.history = {
            "rows": len(frame),
            "steps": len(losses),
            "final_loss": float(np.mean(losses[-50:])) if losses else math.nan,
            "seconds_preprocess": seconds_prep,
            "seconds_train": time.perf_counter() - t0 - seconds_prep,
        }
        return self

    def _fit_calibration(self, data: dict[str, np.ndarray]) -> None:
        """What calibration matches beyond the encoder's margins: under DP the released
        two-way margins, without DP the margins within each target class."""
        cfg, x_num, x_cat = self.config, data["x_num"], data["x_cat"]
        if cfg.releases_pairs:
            columns = self._pair_columns(x_num, x_cat, data.get("y"))
            self.pair_margins = release_pairs(
                columns, self.ledger, cfg.pair_share, cfg.pairs, np.random.default_rng()
            )
        if not cfg.private and self.encoder.target_kind == "classes":
            self.class_shares = class_shares(
                x_num,
                x_cat,
                data["y"],
                self.encoder.n_classes,
                self.encoder.category_sizes,
                self._indicators(),
            )

    def _optimizer(self, model: torch.nn.Module, steps: int) -> tuple[Any, Any]:
        cfg = self.config
        if cfg.optimizer == "sgd":
            optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9)
        else:
            optimizer = torch.optim.AdamW(
                model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
            )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: max(0.0, 1 - step / steps)
        )
        return optimizer, schedule

    def _batch_loss(
        self, model: torch.nn.Module, batch: Sequence[torch.Tensor], draws: int = 1
    ) -> torch.Tensor:
        y = batch[2] if len(batch) > 2 else None
        return self.diffusion.loss(model, batch[0], batch[1], y, draws=draws).mean()

    def _train(self, tensors: list[torch.Tensor]) -> list[float]:
        cfg = self.config
        n = tensors[0].shape[0]
        batch = min(cfg.batch_size, n)
        steps = cfg.steps
        if cfg.max_epochs:
            steps = min(steps, math.ceil(cfg.max_epochs * n / batch))
        optimizer, schedule = self._optimizer(self.model, steps)
        ema = EMA(self.model, cfg.ema) if cfg.ema else None
        generator = torch.Generator().manual_seed(cfg.seed)
        losses: list[float] = []
        self.model.train()
        order = torch.randperm(n, generator=generator)
        cursor = 0
        for _ in range(steps):
            if cursor + batch > n:
                order, cursor = torch.randperm(n, generator=generator), 0
            index = order[cursor : cursor + batch]
            cursor += batch
            loss = self._batch_loss(self.model, [t[index] for t in tensors])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if ema:
                ema.update(self.model)
            losses.append(float(loss.detach()))
        if ema:
            self.model = ema.module
        self.model.eval()
        return losses

    def _train_private(self, tensors: list[torch.Tensor]) -> list[float]:
        cfg = self.config
        n = tensors[0].shape[0]
        sample_rate = min(cfg.batch_size, n) / n
        sigma = self.ledger.sgd_noise(sample_rate, cfg.steps)
        torch.manual_seed(secrets.randbits(63))
        clip = f"per-row clipped gradients, clip norm {cfg.max_grad_norm}"
        if isinstance(self.model, ClassPartitioned):
            losses, rates = [], [sample_rate]
            for c, part in enumerate(self.model.parts):
                rows = tensors[2] == c
                if not bool(rows.any()):
                    continue
                trained, part_losses, rate = self._dp_sgd(
                    part, [t[rows] for t in tensors[:2]], sigma, sample_rate
                )
                self.model.parts[c] = trained
                losses += part_losses
                rates.append(rate)
            covers = (
                "the denoisers' weights: one model per target class, each trained only on "
                f"that class's rows (disjoint rows: parallel composition; {clip})"
            )
            sample_rate = max(rates)
        else:
            self.model, losses, sample_rate = self._dp_sgd(self.model, tensors, sigma, sample_rate)
            covers = f"the denoiser's weights (every training row; {clip})"
        self.ledger.add(Mechanism("dp-sgd", covers, sigma, sample_rate, cfg.steps))
        return losses

    def _dp_sgd(
        self, module: torch.nn.Module, tensors: list[torch.Tensor], sigma: float, rate: float
    ) -> tuple[torch.nn.Module, list[float], float]:
        """Train `module` with Opacus DP-SGD for `steps` Poisson-sampled batches; returns the
        (EMA) module, the losses and the sampling rate Opacus used."""
        try:
            from opacus import PrivacyEngine
        except ImportError:
            raise missing_extra("opacus") from None
        from torch.utils.data import DataLoader, TensorDataset

        cfg = self.config
        n = tensors[0].shape[0]
        batch = max(1, min(n, round(rate * n)))
        noise = torch.Generator().manual_seed(secrets.randbits(63))
        optimizer, _ = self._optimizer(module, cfg.steps)
        loader = DataLoader(TensorDataset(*tensors), batch_size=batch)
        engine = PrivacyEngine(accountant="rdp")
        model, optimizer, loader = engine.make_private(
            module=module,
            optimizer=optimizer,
            data_loader=loader,
            noise_multiplier=sigma,
            max_grad_norm=cfg.max_grad_norm,
            poisson_sampling=True,
            noise_generator=noise,
        )
        used_rate = 1 / len(loader)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer.original_optimizer, lambda step: max(0.0, 1 - step / cfg.steps)
        )
        ema = EMA(model._module, cfg.ema) if cfg.ema else None
        losses: list[float] = []
        model.train()
        while len(losses) < cfg.steps:
            for batch_tensors in loader:
                if len(losses) >= cfg.steps:
                    break
                optimizer.zero_grad(set_to_none=True)
                if batch_tensors[0].shape[0] == 0:
                    optimizer.step()
                    losses.append(math.nan)
                    continue
                loss = self._batch_loss(model, batch_tensors, cfg.dp_draws)
                loss.backward()
                optimizer.step()
                schedule.step()
                if ema:
                    ema.update(model._module)
                losses.append(float(loss.detach()))
        base = ema.module if ema else model._module
        return base.eval(), [x for x in losses if not math.isnan(x)], used_rate

    def _condition(self, n: int, target: Any, generator: torch.Generator) -> torch.Tensor | None:
        enc = self.encoder
        if enc.target_kind is None:
            if target is not None:
                raise ValueError("this synthesizer has no conditioning target")
            return None
        name = enc.schema.target
        stats = enc.stats[name]
        if target is not None:
            values = pd.Series(
                list(target)
                if isinstance(target, Sequence) and not isinstance(target, str)
                else [target] * n
            )
            if len(values) != n:
                raise ValueError(f"target has {len(values)} values for {n} rows")
            if enc.target_kind == "classes":
                unknown = [
                    v for v in values.unique() if not any(_same(v, c) for c in stats.categories)
                ]
                if unknown:
                    raise ValueError(
                        f"target value {unknown[0]!r} is not a class of {name!r}; "
                        f"classes: {stats.categories}"
                    )
                return torch.from_numpy(category_index(values, stats.categories))
            spec = enc.schema.column(name)
            from synthset.privacy.tabular.encoder import as_float

            return torch.from_numpy(to_normal(as_float(values, spec), stats).astype(np.float32))
        if enc.target_kind == "classes":
            shares = stats.shares
            if shares is None:
                shares = np.full(len(stats.categories), 1 / len(stats.categories))
            return torch.multinomial(
                torch.from_numpy(np.asarray(shares, dtype=np.float64)), n, True, generator=generator
            )
        return torch.randn(n, generator=generator)

    def sample(self, n: int, seed: int = 0, target: Any = None) -> pd.DataFrame:
        """`n` synthetic rows; the same seed gives the same rows.

        With a conditioning target, `target` fixes its value for every row (a scalar) or per
        row (a sequence of `n`); by default it is drawn from the target's (DP) distribution.
        With `calibrate`, `oversample`·n rows are drawn and n kept by weights that match the
        encoder's marginals, or without DP each class's (`synthset.privacy.tabular.calibrate`);
        not when `target` is given.
        """
        if self.model is None:
            raise RuntimeError("fit or load the synthesizer before sampling")
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        generator = torch.Generator().manual_seed(seed)
        calibrate = self.config.calibrate and target is None
        drawn = math.ceil(n * self.config.oversample) if calibrate else n
        y_all = self._condition(drawn, target, generator)
        x_num, x_cat = self._draw(drawn, y_all, generator)
        y_np = y_all.numpy() if y_all is not None else None
        if calibrate:
            keep = self._calibrated(x_num, x_cat, y_np, n, seed)
            x_num, x_cat = x_num[keep], x_cat[keep]
            y_np = y_np[keep] if y_np is not None else None
        return self.encoder.decode(x_num, x_cat, y_np)

    def _draw(
        self, n: int, y_all: torch.Tensor | None, generator: torch.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        nums, cats = [], []
        for start in range(0, n, SAMPLE_CHUNK):
            stop = min(n, start + SAMPLE_CHUNK)
            y = y_all[start:stop] if y_all is not None else None
            x_num, x_cat = self.diffusion.sample(
                self.model,
                stop - start,
                y,
                generator,
                self.config.scheduler,
                self.config.sample_steps,
            )
            nums.append(x_num.numpy())
            cats.append(x_cat.numpy())
        return np.concatenate(nums), np.concatenate(cats)

    def _indicators(self) -> list[int]:
        """For each numeric column, the column of `x_cat` that says it is missing, or -1."""
        enc = self.encoder
        n_cat = len(enc.categorical)
        return [
            n_cat + enc.indicators.index(name) if name in enc.indicators else -1
            for name in enc.numeric
        ]

    def _calibrated(
        self, x_num: np.ndarray, x_cat: np.ndarray, y: np.ndarray | None, n: int, seed: int
    ) -> np.ndarray:
        """Indices of `n` rows drawn by raking weights to `_targets`
        (`synthset.privacy.tabular.calibrate`)."""
        targets = self._targets(x_num, x_cat, y)
        weights = rake(targets, len(x_num), cap=len(x_num) / n)
        rng = np.random.default_rng([seed, len(x_num)])
        return weighted_subset(weights, n, rng, self._strata(x_cat, y))

    def _targets(
        self, x_num: np.ndarray, x_cat: np.ndarray, y: np.ndarray | None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """What calibration matches: the margins within each target class where the fit
        kept them; else the encoder's margins, the target's class shares and, under DP, the
        released two-way margins."""
        enc, indicators = self.encoder, self._indicators()
        if y is not None and self.class_shares is not None:
            return class_margins(x_num, x_cat, y.astype(int), self.class_shares, indicators)
        targets = margins(x_num, x_cat, enc.category_priors(), indicators)
        shares = enc.stats[enc.schema.target].shares if enc.target_kind == "classes" else None
        if y is not None and shares is not None:
            targets.append((y.astype(int), np.asarray(shares, dtype=np.float64)))
        if self.pair_margins:
            columns = self._pair_columns(x_num, x_cat, y)
            targets += [(columns.joint(p.first, p.second), p.shares) for p in self.pair_margins]
        return targets

    def _pair_columns(
        self, x_num: np.ndarray, x_cat: np.ndarray, y: np.ndarray | None
    ) -> PairColumns:
        """The categorical features, the numeric ones in `PAIR_BINS` CDF-level bins (plus
        missing where they have it), and a class target, with their shares under the priors
        (`synthset.privacy.tabular.pairs`)."""
        enc = self.encoder
        n_cat, priors = len(enc.categorical), enc.category_priors()
        binned = cells(x_num, x_cat, self._indicators(), PAIR_BINS)[x_cat.shape[1] :]
        numeric = []
        for j in self._indicators():
            present = np.full(PAIR_BINS, 1 / PAIR_BINS)
            numeric.append(present if j < 0 else np.append(present * priors[j][0], priors[j][1]))
        columns = [x_cat[:, j] for j in range(n_cat)] + binned
        shares, names = priors[:n_cat] + numeric, enc.categorical + enc.numeric
        flags = [False] * n_cat + [True] * len(numeric)
        if y is not None and enc.target_kind == "classes":
            columns.append(y.astype(int))
            shares.append(np.asarray(enc.stats[enc.schema.target].shares, dtype=np.float64))
            names.append(enc.schema.target)
            flags.append(False)
        return PairColumns(columns, shares, names, flags)

    def _strata(self, x_cat: np.ndarray, y: np.ndarray | None) -> list[np.ndarray]:
        """Sort keys of the calibrated subset (`weighted_subset`): whether each column is
        missing first (rare cells, whose rates a release is judged by), then the target class,
        then each categorical column. Not the numeric bins: holding a sample to the training
        rows' exact quantile bins brought it closer to them (diabetes, 5 paired fits: DCR
        share 0.558 → 0.568) for no gain in the shares."""
        enc = self.encoder
        keys = [
            x_cat[:, j] == enc.stats[name].categories.index(None)
            for j, name in enumerate(enc.categorical)
            if None in enc.stats[name].categories
        ]
        keys += [x_cat[:, len(enc.categorical) + k] == 1 for k in range(len(enc.indicators))]
        if y is not None and enc.target_kind == "classes":
            keys.append(y)
        return keys + list(x_cat.T)

    def privacy(self) -> dict[str, Any] | None:
        """The privacy accounting of the fit, None without DP."""
        return self.ledger.to_dict() if self.ledger else None

    def save(self, folder: str | Path) -> Path:
        """Write `model.safetensors` (weights and encoder arrays) and `synthesizer.json`."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays, encoder_meta = self.encoder.state()
        tensors = {
            f"model.{k}": v.detach().contiguous() for k, v in self.model.state_dict().items()
        }
        tensors |= {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
        if self.diffusion.prior is not None:
            tensors[PRIOR] = torch.from_numpy(self.diffusion.prior.correlation)
        for j, shares in enumerate(self.class_shares or []):
            tensors[f"{CLASS_SHARES}{j}"] = torch.from_numpy(np.ascontiguousarray(shares))
        for j, pair in enumerate(self.pair_margins):
            tensors[f"{PAIRS}{j}"] = torch.from_numpy(np.ascontiguousarray(pair.shares))
        save_file(tensors, str(folder / WEIGHTS), metadata={"format": FORMAT})
        meta = {
            "format": FORMAT,
            "config": self.config.model_dump(),
            "encoder": encoder_meta,
            "privacy": self.privacy(),
            "history": self.history,
            "scheduler": dict(self.diffusion.scheduler.config),
            "category_prior": self.diffusion.category_prior is not None,
            "pairs": [[p.first, p.second] for p in self.pair_margins],
        }
        (folder / CONFIG).write_text(json.dumps(meta, indent=2, default=_json) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> TabularSynthesizer:
        """Rebuild a saved synthesizer (no pickle: safetensors and JSON only). A model
        saved before two-way margins existed was fitted without them and loads with `pairs`
        0 (its budget split may leave no room for the new default `pair_share`)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        meta = json.loads((folder / CONFIG).read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(
                f"{folder}: not a synthset tabular model (format {meta.get('format')!r})"
            )
        tensors = load_file(str(folder / WEIGHTS))
        self = cls(SynthesizerConfig(**({"pairs": 0} | meta["config"])))
        arrays = {k: v.numpy() for k, v in tensors.items() if k.startswith("encoder.")}
        self.encoder = TableEncoder.from_state(arrays, meta["encoder"])
        self._build()
        state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(state)
        if PRIOR in tensors:
            self._set_prior(tensors[PRIOR].numpy())
        if meta.get("category_prior"):
            self._set_category_prior()
        shares = sorted((k for k in tensors if k.startswith(CLASS_SHARES)), key=_suffix)
        self.class_shares = [tensors[k].numpy() for k in shares] or None
        self.pair_margins = [
            PairMargin(a, b, tensors[f"{PAIRS}{j}"].numpy())
            for j, (a, b) in enumerate(meta.get("pairs", []))
        ]
        self.model.eval()
        self.history = meta.get("history", {})
        if meta.get("privacy"):
            p = meta["privacy"]
            self.ledger = PrivacyLedger(
                PrivacyBudget(**p["budget"]),
                [Mechanism(**m) for m in p["mechanisms"]],
                list(p["notes"]),
                p["reserved_delta"],
            )
        return self


def _suffix(key: str) -> int:
    return int(key.rsplit(".", 1)[1])


def _same(a: Any, b: Any) -> bool:
    if b is None:
        return a is None or (isinstance(a, float) and math.isnan(a))
    try:
        return a == b or float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def _json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return str(value)
