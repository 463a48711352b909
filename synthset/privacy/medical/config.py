"""The config of a synthetic-image release (YAML or JSON), validated with one-line errors.

```yaml
dataset: phantoms-synth        # name of the synthetic dataset (versions, MLflow experiment)
data: scans/                   # folder of DICOM, PNG or NPY images (relative to this file)
labels: labels.csv             # optional: a label per file (class-conditional model)
size: 32                       # images are resized to size × size, one channel
holdout: 0.25                  # real images kept out of training, for TSTR vs TRTR
train:
  epochs: 40
  channels: [16, 32, 64]       # UNet2DModel block_out_channels (GroupNorm, no BatchNorm)
  epsilon: 10                  # DP-SGD (Opacus) to (epsilon, delta); leave out for no DP
  delta: 1.0e-5
  pretrain: {source: phantoms, epochs: 8}  # public data first (Ghalebikesabi et al. 2023)
  finetune: class              # then DP-SGD trains the class embedding only
  draws: 4                     # noise multiplicity (DPDM)
generate: {count: 200, scheduler: ddim, steps: 50, guidance: 2}
gate: {ratio_threshold: 0.5, ssim_threshold: 0.95, max_rejected_share: 0.05}
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from synthset.errors import InputError, describe_validation, fields_at, format_loc
from synthset.inputs.paths import is_file
from synthset.inputs.structured import read_structured
from synthset.privacy.medical.memorization import MemorizationConfig

_NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"
PUBLIC_SOURCES = ("none", "digits", "phantoms")


class PretrainConfig(BaseModel):
    """Public data the model learns from before it sees the private images (no privacy cost):
    scikit-learn's digits, or phantoms generated with a seed of their own."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["none", "digits", "phantoms"] = "none"
    epochs: int = Field(default=10, ge=1, le=10_000)
    count: int = Field(default=1000, ge=1, le=1_000_000, description="phantoms to make")
    seed: int = Field(default=1_000_003, description="seed of the public phantoms")


class TrainConfig(BaseModel):
    """The DDPM (a diffusers `UNet2DModel`), its training and its privacy budget."""

    model_config = ConfigDict(extra="forbid")

    channels: list[int] = Field(default=[16, 32, 64], min_length=1, max_length=6)
    layers_per_block: int = Field(default=1, ge=1, le=4)
    norm_groups: int = Field(default=8, ge=1)
    timesteps: int = Field(default=1000, ge=10, le=4000)
    prediction: Literal["epsilon", "v_prediction", "sample"] = "v_prediction"
    min_snr: float | None = Field(
        default=5.0, gt=0, description="Min-SNR-γ loss weighting (None: plain MSE)"
    )
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "squaredcos_cap_v2"
    epochs: int = Field(default=40, ge=1, le=100_000)
    batch_size: int = Field(default=32, ge=1, le=65_536)
    lr: float = Field(default=2e-3, gt=0, le=1)
    ema: float | None = Field(default=0.995, ge=0, lt=1)
    label_dropout: float = Field(
        default=0.1,
        ge=0,
        lt=1,
        description="share of training images seen without their label (the null class), "
        "for classifier-free guidance",
    )
    draws: int = Field(
        default=1,
        ge=1,
        le=64,
        description="under DP: (t, noise) draws per image and step whose gradients are "
        "averaged before clipping (DPDM's noise multiplicity); costs that many times the compute",
    )
    finetune: Literal["all", "conditioning", "class"] = Field(
        default="all",
        description="weights trained on the private images: all; the conditioning layers "
        "(class and time embeddings, each block's projection of them); or the class "
        "embedding alone. The rest stays as public pretraining left it: far fewer weights "
        "for DP-SGD's noise",
    )
    epsilon: float | None = Field(default=None, gt=0)
    delta: float | None = Field(default=None, gt=0, lt=1)
    max_grad_norm: float = Field(default=1.0, gt=0)
    label_share: float = Field(
        default=0.05, gt=0, lt=1, description="share of the DP budget for the class shares"
    )
    seed: int = 0
    threads: int | None = Field(default=None, ge=1)
    checkpoint_every: int = Field(default=10, ge=1, description="epochs between checkpoints")
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)

    @model_validator(mode="after")
    def _budget(self) -> TrainConfig:
        if self.delta is not None and self.epsilon is None:
            raise ValueError("delta is given without epsilon")
        if self.finetune != "all" and self.pretrain.source == "none":
            raise ValueError(f"finetune: {self.finetune} needs public pretraining (pretrain)")
        groups = self.norm_groups
        if any(c % groups for c in self.channels):
            raise ValueError(f"every channel count must be a multiple of norm_groups ({groups})")
        return self

    @property
    def private(self) -> bool:
        return self.epsilon is not None


class GenerateConfig(BaseModel):
    """How many synthetic images to make, and the sampler."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(default=200, ge=1, le=1_000_000)
    scheduler: Literal["ddpm", "ddim", "dpmpp"] = "ddim"
    steps: int = Field(default=50, ge=1, le=4000)
    guidance: float = Field(
        default=2.0,
        ge=0,
        le=20,
        description="classifier-free guidance scale (1: none; needs label_dropout in training)",
    )
    batch_size: int = Field(default=64, ge=1, le=4096)
    seed: int = 0


class MedicalGateConfig(MemorizationConfig):
    """The memorization gate (`synthset.privacy.medical.memorization`: thresholds of the
    pixel ratio, embedding ratio and SSIM checks, and `max_rejected_share`) and the release
    checks on what is left.

    Each synthetic image is compared with its nearest training images and a near-copy is
    removed with its reason. A model that makes more near-copies than `max_rejected_share`
    of what it generates memorizes: removing the copies found does not make the rest safe,
    so the release is blocked. `min_released` blocks a release with fewer images left;
    `min_tstr_ratio` (TSTR ÷ TRTR accuracy) one too useless to share: by default a set that
    keeps less than 80% of what real images teach the classifier (DP-SGD at ε = 10 on 500
    phantoms gave 0.52, a coin toss, and would otherwise have been released as passed);
    None turns it off, and without labels there is nothing to measure.
    """

    min_released: int | None = Field(default=1, ge=0)
    min_tstr_ratio: float | None = Field(default=0.8, ge=0)


class UtilityConfig(BaseModel):
    """The TSTR vs TRTR classifier (a small GroupNorm CNN)."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(default=30, ge=1, le=10_000)
    batch_size: int = Field(default=64, ge=1)
    lr: float = Field(default=3e-3, gt=0)
    seed: int = 0


class MedicalConfig(BaseModel):
    """Everything a release needs: input, model, budget, generation, gate and utility."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(pattern=_NAME)
    data: str = Field(min_length=1)
    labels: str | None = Field(default=None, min_length=1)
    description: str | None = None
    size: int = Field(default=32, ge=8, le=512, multiple_of=8)
    holdout: float = Field(default=0.25, ge=0, lt=1)
    allow_burned_in: bool = False
    seed: int = 0
    train: TrainConfig = Field(default_factory=TrainConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    gate: MedicalGateConfig = Field(default_factory=MedicalGateConfig)
    utility: UtilityConfig = Field(default_factory=UtilityConfig)

    def public(self) -> dict[str, Any]:
        """The config as it may be recorded (MLflow params, the report): input paths by their
        last part, since folder and file names can carry a patient's name."""
        data = self.model_dump(mode="json")
        data["data"] = Path(self.data).name
        if self.labels:
            data["labels"] = Path(self.labels).name
        return data


def parse_config(
    data: dict[str, Any], source: str = "<config>", base: Path | None = None
) -> MedicalConfig:
    """Validate a config mapping; `data` and `labels` are resolved against `base`."""
    try:
        config = MedicalConfig(**data)
    except ValidationError as exc:
        loc, message = describe_validation(exc, fields_at(MedicalConfig))
        raise InputError(source, message, field=format_loc(loc)) from None
    except (TypeError, ValueError) as exc:
        raise InputError(source, str(exc)) from None
    if base is not None:
        if not Path(config.data).is_absolute():
            config.data = str((base / config.data).resolve())
        if config.labels and not Path(config.labels).is_absolute():
            config.labels = str((base / config.labels).resolve())
    return config


def load_config(path: str | Path) -> MedicalConfig:
    """Read and validate a YAML or JSON release config, with the manifest's limits (encoding,
    nesting, integers, aliases, repeated keys)."""
    path = Path(path)
    if not is_file(path):
        raise InputError(str(path), "no such file")
    data = read_structured(path)
    if not isinstance(data, dict):
        raise InputError(str(path), "expected a mapping with at least 'dataset' and 'data'")
    return parse_config(data, str(path), path.parent)
