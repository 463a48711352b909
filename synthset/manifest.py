"""The manifest: what a dataset should contain, validated at the edge and expanded into requests.

A manifest names the dataset, configures the generator and lists items (a prompt, how many
images, a seed, tags, free metadata, optional condition images), inline, from CSV, JSONL or
Parquet files (`items_from`) or as templates with vocabularies (`templates`, expanded into
items by `synthset.templates`). `expand` turns it into one `GenerationRequest` per image, each
with a deterministic `sample_id`: the same manifest always yields the same ids and seeds.

Files are read through `synthset.inputs` (encodings, YAML/JSON limits, well-formed rows), and
items files and condition images must lie in the manifest's folder or in `inputs_root`: a
scheduled worker reads manifests it did not write.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from synthset.curation.config import (
    ClipConfig,
    CurationConfig,
    DedupConfig,
    TaggingConfig,
    is_path_like,
)
from synthset.errors import InputError, ManifestError, describe_validation, format_loc
from synthset.inputs import rows
from synthset.inputs.paths import confined, resolve
from synthset.inputs.structured import load_json, read_structured
from synthset.labels import check_keys
from synthset.layout import model_defaults
from synthset.quality.config import BUILTIN_DIGITS, ReportConfig
from synthset.templates import Expansion, Template
from synthset.templates import check_raw as check_raw_templates

DEFAULT_MODEL = "synthset/tiny-digits"
ITEM_FILE_SUFFIXES = rows.SUFFIXES
MAX_IMAGES = 1_000_000
_SEED_SPACE = 2**31


SCHEDULERS: dict[str, str] = {
    "ddpm": "DDPMScheduler",
    "ddim": "DDIMScheduler",
    "pndm": "PNDMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpmpp": "DPMSolverMultistepScheduler",
}
"""Scheduler names a manifest may use, and the diffusers classes they stand for."""


class LoraSpec(BaseModel):
    """A LoRA adapter: a `.safetensors` file (or a folder holding
    `pytorch_lora_weights.safetensors`) and the scale it is applied at."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1)
    scale: float = Field(1.0, ge=-10.0, le=10.0)


class SpeedConfig(BaseModel):
    """GPU speed options (`synthset.generators.speed`); all off by default."""

    model_config = ConfigDict(extra="forbid")

    attention: str | None = None
    compile: bool = False
    channels_last: bool = False
    fuse_qkv: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False
    offload: Literal["none", "model", "sequential"] = "none"


def _unset(value: Any) -> bool:
    return value is None


class CadsConfig(BaseModel):
    """Condition-annealed sampling (CADS, Sadat et al. 2024): Gaussian noise on the prompt's
    embedding, full (`noise_scale`) above diffusion time `tau2`, none below `tau1`, linear in
    between; `rescale` brings the noised embedding back to the clean one's mean and standard
    deviation, mixed in at `psi`."""

    model_config = ConfigDict(extra="forbid")

    tau1: float = Field(0.6, ge=0.0, le=1.0)
    tau2: float = Field(0.9, ge=0.0, le=1.0)
    noise_scale: float = Field(0.25, gt=0.0, le=10.0)
    psi: float = Field(1.0, ge=0.0, le=1.0)
    rescale: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> CadsConfig:
        if self.tau1 >= self.tau2:
            raise ValueError(f"tau1 ({self.tau1}) must be below tau2 ({self.tau2})")
        return self


class DiversityConfig(BaseModel):
    """Diversity-preserving sampling (`synthset.generators.diversity`): classifier-free
    guidance only while the noise level σ lies in `guidance_interval` (lo, hi], and CADS.
    Options left out are not in the settings, so they do not change sample ids."""

    model_config = ConfigDict(extra="forbid")

    guidance_interval: tuple[float, float] | None = Field(None, exclude_if=_unset)
    cads: CadsConfig | None = Field(None, exclude_if=_unset)

    @field_validator("guidance_interval")
    @classmethod
    def _interval(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0.0 <= value[0] < value[1]:
            raise ValueError(
                f"[lo, hi] needs 0 ≤ lo < hi (noise levels σ; hi may be .inf), got {list(value)}"
            )
        return value

    @property
    def active(self) -> bool:
        return self.guidance_interval is not None or self.cads is not None


class GeneratorConfig(BaseModel):
    """How images are made: the generator `kind` (default `diffusers`: any diffusers pipeline)
    and its model, scheduler and sampling settings."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field("diffusers", min_length=1)
    model: str = Field(DEFAULT_MODEL, min_length=1)
    pipeline: Literal["text2img", "img2img", "inpaint"] = "text2img"
    scheduler: str | None = None
    scheduler_options: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    loras: list[LoraSpec] = Field(default_factory=list)
    revision: str | None = Field(None, min_length=1)
    allow_pickle: bool = False
    true_cfg_scale: float | None = Field(None, ge=1.0, le=100.0)
    speed: SpeedConfig = Field(default_factory=SpeedConfig)
    controlnet: str | None = Field(None, min_length=1)
    controlnet_scale: float = Field(1.0, ge=0.0, le=5.0)
    steps: int | None = Field(None, ge=1, le=1000)
    guidance_scale: float | None = Field(None, ge=0.0, le=100.0)
    strength: float = Field(0.8, gt=0.0, le=1.0)
    height: int | None = Field(None, ge=8, le=4096, multiple_of=8)
    width: int | None = Field(None, ge=8, le=4096, multiple_of=8)
    batch_size: int = Field(8, ge=1, le=1024)
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$")
    diversity: DiversityConfig | None = Field(None, exclude_if=_unset)

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, name: str | None) -> str | None:
        if name is not None and name not in SCHEDULERS:
            raise ValueError(f"{name!r} is not a scheduler; allowed: {', '.join(SCHEDULERS)}")
        return name

    @model_validator(mode="after")
    def _model_recommendations(self) -> GeneratorConfig:
        """Settings the manifest leaves out come from the model folder's recommendations
        (`synthset_defaults.json`), else 20 steps at guidance 7.5."""
        recommended = model_defaults(self.model) if self.kind == "diffusers" else {}
        filled = {
            "steps": int(recommended.get("steps", 20)) if self.steps is None else self.steps,
            "guidance_scale": float(recommended.get("guidance_scale", 7.5))
            if self.guidance_scale is None
            else self.guidance_scale,
            "scheduler": recommended.get("scheduler")
            if self.scheduler is None and recommended.get("scheduler") in SCHEDULERS
            else self.scheduler,
        }
        for name, value in filled.items():
            object.__setattr__(self, name, value)
        return self

    @model_validator(mode="after")
    def _diversity_has_guidance(self) -> GeneratorConfig:
        """An empty `diversity` is none at all (same sample ids); an interval needs guidance."""
        if self.diversity is not None and not self.diversity.active:
            object.__setattr__(self, "diversity", None)
        interval = self.diversity and self.diversity.guidance_interval
        if interval and self.guidance_scale <= 1.0:
            raise ValueError(
                f"diversity.guidance_interval limits classifier-free guidance, which "
                f"guidance_scale {self.guidance_scale} (≤ 1) does not use; raise guidance_scale "
                "or remove the interval"
            )
        return self

    @model_validator(mode="after")
    def _controlnet_is_text2img(self) -> GeneratorConfig:
        if self.controlnet and self.pipeline != "text2img":
            raise ValueError("controlnet works with pipeline text2img (a control per item)")
        return self

    @model_validator(mode="after")
    def _steps_survive_strength(self) -> GeneratorConfig:
        if self.pipeline != "text2img" and int(self.steps * self.strength) < 1:
            raise ValueError(
                f"{self.pipeline} runs int(steps × strength) denoising steps, here "
                f"int({self.steps} × {self.strength}) = 0; raise steps or strength"
            )
        return self

    def identity(self) -> dict[str, Any]:
        """The settings that change what an image looks like (not batch size or device).

        A local model folder stands for its configs and weight file sizes, not its path, so
        moving a checkout keeps sample ids.
        """
        settings = self.model_dump(exclude={"batch_size", "device", "speed"})
        if self.kind == "diffusers":
            del settings["kind"]
        if not self.scheduler_options:
            del settings["scheduler_options"]
        if not self.allow_pickle:
            del settings["allow_pickle"]
        if self.controlnet is None:
            del settings["controlnet_scale"]
        elif Path(self.controlnet).is_dir():
            settings["controlnet"] = folder_identity(Path(self.controlnet))
        for optional in ("revision", "true_cfg_scale", "controlnet"):
            if settings[optional] is None:
                del settings[optional]
        if self.loras:
            settings["loras"] = [
                {"weights": _file_digest(lora_file(spec.path)), "scale": spec.scale}
                for spec in self.loras
            ]
        else:
            del settings["loras"]
        if Path(self.model).is_dir():
            settings["model"] = folder_identity(Path(self.model))
        return settings


def model_label(model: str) -> str:
    """How a model is named where results are published: a local folder by its name, never
    by its absolute path on the machine that ran it; a Hub id or built-in name as given."""
    return Path(model).name if Path(model).is_absolute() else model


def public_path_text(text: str, paths: Iterable[str | None]) -> str:
    """`text` (an error message) with each of `paths` replaced by its file name."""
    for path in paths:
        if path:
            text = text.replace(path, Path(path).name)
    return text


def folder_identity(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        h.update(rel.encode() + b"\0")
        h.update(path.read_bytes() if path.suffix == ".json" else str(path.stat().st_size).encode())
    return "folder:" + h.hexdigest()[:16]


class Conditions(BaseModel):
    """Condition images of an item: `image` for img2img and inpainting, `mask` for inpainting,
    `control` for a ControlNet."""

    model_config = ConfigDict(extra="forbid")

    image: str | None = None
    mask: str | None = None
    control: str | None = None


class Item(BaseModel):
    """One prompt and how many images of it the dataset should hold."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1)
    negative_prompt: str = ""
    count: int = Field(1, ge=1, le=1_000_000)
    seed: int | None = Field(None, ge=0, lt=_SEED_SPACE)
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    conditions: Conditions | None = None

    @field_validator("tags", mode="before")
    @classmethod
    def _split_tags(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [t.strip() for t in value.split(";") if t.strip()]
        return value


class Manifest(BaseModel):
    """A whole manifest. After `load_manifest`, `items` holds the rows of `items_from` and the
    combinations of `templates` too (both are then empty).

    `inputs_root` is a folder (relative to the manifest) that items files and condition images
    may also come from; `max_images` bounds the images of all items together, so a typo in a
    count cannot plan a billion requests. Neither changes the plan's digest.
    """

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    description: str = ""
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    shard_size: int = Field(64, ge=1, le=100_000)
    items: list[Item] = Field(default_factory=list)
    items_from: list[str] = Field(default_factory=list)
    templates: list[Template] = Field(default_factory=list)
    inputs_root: str | None = Field(None, min_length=1)
    max_images: int = Field(MAX_IMAGES, ge=1)
    curation: CurationConfig = Field(default_factory=CurationConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)

    @field_validator("items_from", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @property
    def images(self) -> int:
        """How many images the items ask for, counted without expanding them."""
        return sum(item.count for item in self.items)


class GenerationRequest(BaseModel):
    """One image to make: everything the generator needs plus what the metadata row records."""

    model_config = ConfigDict(frozen=True)

    sample_id: str
    item_index: int
    index: int
    seed: int
    prompt: str
    negative_prompt: str = ""
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = Field(default_factory=dict)
    image: str | None = None
    mask: str | None = None
    control: str | None = None


_MODELS_AT: dict[tuple[str, ...], type[BaseModel]] = {
    (): Manifest,
    ("generator",): GeneratorConfig,
    ("generator", "diversity"): DiversityConfig,
    ("generator", "diversity", "cads"): CadsConfig,
    ("items", "*"): Item,
    ("items", "*", "conditions"): Conditions,
    ("templates", "*"): Template,
    ("curation",): CurationConfig,
    ("curation", "clip"): ClipConfig,
    ("curation", "dedup"): DedupConfig,
    ("curation", "tags"): TaggingConfig,
    ("report",): ReportConfig,
    ("report", "clip"): ClipConfig,
}


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    key = tuple("*" if isinstance(part, int) else part for part in loc)
    return _MODELS_AT.get(key)


def _raise_validation(
    file: str, exc: ValidationError, where: str | None = None, at: tuple[str, ...] = ()
) -> None:
    """Raise the first error of `exc`; `at` is where the validated model sits in a manifest."""

    def allowed(loc: tuple[Any, ...]) -> list[str]:
        owner = _model_at((*at, *loc))
        return list(owner.model_fields) if owner else []

    loc, message = describe_validation(exc, allowed)
    field = str(loc.pop()) if loc and not isinstance(loc[-1], int) else None
    parts = [p for p in (where, format_loc(loc)) if p]
    raise ManifestError(file, message, where=", ".join(parts) or None, field=field) from None


def _check_keys(keys: Iterable[Any], file: str, where: str) -> None:
    """Refuse a dotted column next to the column it would fill (`prompt` and `prompt.x`)."""
    names = {str(key) for key in keys}
    for name in sorted(names):
        head, dot, _ = name.partition(".")
        if dot and head in names:
            raise ManifestError(
                file,
                f"column {name!r} conflicts with column {head!r}: a dotted column fills a "
                f"field of {head!r}; keep one of them",
                where=where,
                field=name,
            )


def _unflatten(row: dict[str, Any], file: str, where: str) -> dict[str, Any]:
    """`{"metadata.source": "x"}` → `{"metadata": {"source": "x"}}`; empty cells are absent."""
    _check_keys(row, file, where)
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or value == "" or (isinstance(value, float) and value != value):
            continue
        if isinstance(value, str) and key in ("metadata", "tags") and value[:1] in "[{":
            try:
                value = load_json(value, file, where)
            except InputError as exc:
                raise ManifestError(file, exc.problem, where=where, field=key) from None
        head, _, rest = str(key).partition(".")
        if rest:
            out.setdefault(head, {})[rest] = value
        else:
            out[head] = value
    return out


def _resolve_conditions(item: Item, base: Path, inputs: _Inputs, file: str, where: str) -> Item:
    """Condition paths become absolute; they must be files inside the allowed folders."""
    if item.conditions is None:
        return item
    resolved = {}
    for name in ("image", "mask", "control"):
        value = getattr(item.conditions, name)
        if value is not None:
            path = confined(value, base, inputs.roots, file, f"{where}.conditions", name)
            resolved[name] = str(path)
    return item.model_copy(update={"conditions": Conditions(**resolved)})


class _Inputs:
    """Where a manifest's input files may come from, and how many images it may still ask
    for (items files are read row by row and stop at the limit, not after)."""

    def __init__(self, manifest: Manifest, base: Path, file: str):
        self.file = file
        self.roots = [resolve(".", base, file, None, "inputs_root")]
        if manifest.inputs_root is not None:
            root = resolve(manifest.inputs_root, base, file, None, "inputs_root")
            if not root.is_dir():
                raise ManifestError(
                    file, f"no such folder: {manifest.inputs_root}", None, "inputs_root"
                )
            self.roots.append(root)
        self.limit = manifest.max_images
        self.images = 0
        self.reserved = tuple(manifest.curation.score_columns())

    def reserve(self, images: int, file: str, where: str, field: str = "count") -> None:
        self.images += images
        if self.images > self.limit:
            raise ManifestError(
                file,
                f"the items ask for more than max_images ({self.limit:,}) images; split the "
                "dataset or raise max_images",
                where=where,
                field=field,
            )

    def take(self, item: Item, file: str, where: str) -> Item:
        self.reserve(item.count, file, where)
        check_keys(item.metadata, file, where, self.reserved)
        return item


def _load_items_file(spec: str, base: Path, inputs: _Inputs) -> list[Item]:
    where = "items_from"
    if Path(spec).suffix.lower() not in ITEM_FILE_SUFFIXES:
        allowed = ", ".join(ITEM_FILE_SUFFIXES)
        raise ManifestError(
            inputs.file, f"{spec!r} has an unknown suffix; allowed: {allowed}", field=where
        )
    path = confined(spec, base, inputs.roots, inputs.file, None, where)
    file = str(path)
    items = []
    for label, row in rows.rows(path, file):
        try:
            item = Item.model_validate(_unflatten(row, file, label))
        except ValidationError as exc:
            _raise_validation(file, exc, where=label, at=("items", "*"))
        item = _resolve_conditions(item, path.parent, inputs, file, label)
        items.append(inputs.take(item, file, label))
    if not items:
        raise ManifestError(file, "the file has no rows", field=None)
    return items


def _template_items(template: Template, index: int, base: Path, inputs: _Inputs) -> list[Item]:
    """A template's combinations as items, counted against `max_images` before any is made."""
    file = inputs.file
    expansion = Expansion(template, index, file)
    expansion.check_labels(inputs.reserved)
    given = [f for f in ("count_total", "combinations") if getattr(template, f) is not None]
    inputs.reserve(expansion.images, file, expansion.where, (*given, "count")[0])
    shared = {"prompt": template.template, "negative_prompt": template.negative_prompt}
    shared |= {"tags": template.tags, "conditions": template.conditions}
    try:
        item = Item.model_validate(shared)
    except ValidationError as exc:
        _raise_validation(file, exc, where=expansion.where, at=("items", "*"))
    item = _resolve_conditions(item, base, inputs, file, expansion.where)
    items = []
    for number in expansion.numbers():
        combination = expansion.combination(number)
        update = {"prompt": combination.prompt, "seed": combination.seed}
        update |= {"count": expansion.count, "metadata": combination.metadata}
        items.append(item.model_copy(update=update))
    return items


def _check_conditions(manifest: Manifest, file: str) -> None:
    kind = manifest.generator.pipeline
    needed = {"text2img": (), "img2img": ("image",), "inpaint": ("image", "mask")}[kind]
    if manifest.generator.controlnet:
        needed = (*needed, "control")
    for i, item in enumerate(manifest.items):
        given = {k for k, v in (item.conditions or Conditions()).model_dump().items() if v}
        for name in needed:
            if name not in given:
                raise ManifestError(
                    file,
                    f"pipeline '{kind}' needs a condition '{name}' on every item",
                    where=f"items[{i}].conditions",
                    field=name,
                )
        extra = given - set(needed)
        if extra:
            raise ManifestError(
                file,
                f"pipeline '{kind}' takes no condition '{sorted(extra)[0]}'; use pipeline "
                "img2img or inpaint, or generator.controlnet for 'control'",
                where=f"items[{i}].conditions",
                field=sorted(extra)[0],
            )


def load_manifest(path: str | Path) -> Manifest:
    """Load, validate and resolve a manifest file (YAML or JSON).

    Rows of `items_from` files are appended to `items`, condition paths become absolute, and a
    path-like `generator.model` must exist. Raises `ManifestError` with a one-line message
    naming file, row and field on the first problem found.
    """
    path = Path(path)
    file = str(path)
    try:
        if not path.is_file():
            raise ManifestError(file, "no such file")
        raw = read_structured(path, file)
    except ManifestError:
        raise
    except InputError as exc:
        raise ManifestError(exc.file, exc.problem, exc.where, exc.field) from None
    except (OSError, ValueError) as exc:
        raise ManifestError(file, f"cannot be read: {exc}") from None
    return parse_manifest(raw, path.parent, file)


def parse_manifest(raw: Any, base: Path, file: str) -> Manifest:
    """`load_manifest` for a manifest given as data (a flow parameter): relative paths in it
    resolve against `base`, inputs must lie under it (or `inputs_root`), and errors name
    `file`."""
    try:
        return _parse(raw, base, file)
    except ManifestError:
        raise
    except InputError as exc:
        raise ManifestError(exc.file, exc.problem, exc.where, exc.field) from None


def _parse(raw: Any, base: Path, file: str) -> Manifest:
    if not isinstance(raw, dict):
        raise ManifestError(
            file, "a manifest must be a mapping with at least 'dataset' and 'items'"
        )
    check_raw_templates(raw.get("templates"), file)
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        _raise_validation(file, exc)
    inputs = _Inputs(manifest, base, file)
    items = []
    for i, item in enumerate(manifest.items):
        where = f"items[{i}]"
        item = _resolve_conditions(item, base, inputs, file, where)
        items.append(inputs.take(item, file, where))
    for spec in manifest.items_from:
        items.extend(_load_items_file(spec, base, inputs))
    for i, template in enumerate(manifest.templates):
        items.extend(_template_items(template, i, base, inputs))
    if not items:
        raise ManifestError(
            file,
            "the manifest has no items; give 'items' or 'items_from', or 'templates'",
            field="items",
        )
    manifest.generator = _resolve_generator_files(manifest.generator, base, file)
    _resolve_clip_weights(manifest.curation.clip, base, file)
    _resolve_report(manifest.report, base, file)
    manifest = manifest.model_copy(update={"items": items, "items_from": [], "templates": []})
    _check_conditions(manifest, file)
    _check_repeated_images(manifest, file)
    _check_topup_seeds(manifest, file)
    return manifest


def lora_file(path: str) -> str:
    """The weights file of a LoRA given as a file or as a folder saved by diffusers."""
    folder_file = Path(path) / "pytorch_lora_weights.safetensors"
    return str(folder_file) if Path(path).is_dir() else path


def _resolve_generator_files(gen: GeneratorConfig, base: Path, file: str) -> GeneratorConfig:
    """Model folder and LoRA paths become absolute (relative to the manifest) and must exist;
    the model's recommended settings are read from the resolved folder."""
    data = {name: getattr(gen, name) for name in gen.model_fields_set}
    if gen.model.startswith((".", "/", "~")):
        model_path = (base / gen.model).expanduser().resolve()
        if not model_path.exists():
            raise ManifestError(
                file, f"no such model folder: {gen.model}", where="generator", field="model"
            )
        data["model"] = str(model_path)
    if gen.controlnet and gen.controlnet.startswith((".", "/", "~")):
        folder = (base / gen.controlnet).expanduser().resolve()
        if not (folder / "config.json").is_file():
            raise ManifestError(
                file,
                f"no ControlNet folder (config.json) at {gen.controlnet}",
                where="generator",
                field="controlnet",
            )
        data["controlnet"] = str(folder)
    loras = []
    for i, spec in enumerate(gen.loras):
        path = Path(lora_file(str((base / spec.path).expanduser().resolve())))
        where = f"generator, loras[{i}]"
        if not path.is_file():
            raise ManifestError(file, f"no such LoRA file: {spec.path}", where=where, field="path")
        if path.suffix != ".safetensors":
            raise ManifestError(
                file,
                "LoRA weights must be .safetensors (pickled weights are refused)",
                where=where,
                field="path",
            )
        loras.append(spec.model_copy(update={"path": str(path)}))
    data["loras"] = loras
    return GeneratorConfig.model_validate(data)


def _resolve_clip_weights(clip: ClipConfig, base: Path, file: str) -> None:
    """Make a checkpoint file or `local-dir:` folder absolute; it must exist."""
    where = "curation.clip"
    if clip.model.startswith("local-dir:"):
        folder = (base / clip.model.removeprefix("local-dir:")).expanduser().resolve()
        if not folder.is_dir():
            raise ManifestError(file, f"no such folder: {clip.model}", where=where, field="model")
        clip.model = f"local-dir:{folder}"
    if clip.pretrained is not None and is_path_like(clip.pretrained):
        path = (base / clip.pretrained).expanduser().resolve()
        if not path.is_file():
            raise ManifestError(
                file, f"no such checkpoint file: {clip.pretrained}", where=where, field="pretrained"
            )
        clip.pretrained = str(path)


def _resolve_report(report: ReportConfig, base: Path, file: str) -> None:
    """A reference folder becomes absolute (relative to the manifest) and must exist; its
    report CLIP's weights as `curation.clip`'s."""
    ref = report.reference
    if ref is not None and ref != BUILTIN_DIGITS and ("@" not in ref or ref[0] in "./~"):
        folder = (base / ref).expanduser().resolve()
        if not folder.is_dir():
            raise ManifestError(
                file,
                f"no such folder: {ref} ({BUILTIN_DIGITS}, a folder or NAME@VERSION)",
                where="report",
                field="reference",
            )
        report.reference = str(folder)
    if report.clip is not None:
        _resolve_clip_weights(report.clip, base, file)


def _image_identity(item: Item) -> dict[str, Any]:
    cond = item.conditions or Conditions()
    return {
        "prompt": item.prompt,
        "negative_prompt": item.negative_prompt,
        "image": _file_digest(cond.image),
        "mask": _file_digest(cond.mask),
        **({"control": _file_digest(cond.control)} if cond.control else {}),
    }


def _base_seed(item: Item, image: dict[str, Any]) -> int:
    if item.seed is not None:
        return item.seed
    return int(_digest({**image, "tags": item.tags, "metadata": item.metadata})[:8], 16)


def _first_overlap(manifest: Manifest, span: Callable[[Item], int]) -> tuple[int, int, int] | None:
    """`(a, b, seed)`: two items that make the same image for the same seed (same prompt,
    negative prompt and condition files) whose seed ranges `[seed, seed + span(item))`
    (modulo the seed space) meet at `seed`; found from the ranges, without expanding them."""
    groups: dict[str, list[tuple[int, int, int]]] = {}
    for i, item in enumerate(manifest.items):
        image = _image_identity(item)
        start, size = _base_seed(item, image), span(item)
        for lo, hi in ((start, min(start + size, _SEED_SPACE)), (0, start + size - _SEED_SPACE)):
            if hi > lo:
                groups.setdefault(_digest(image), []).append((lo, hi, i))
    for ranges in groups.values():
        ranges.sort()
        reach, owner = -1, -1
        for lo, hi, i in ranges:
            if lo < reach and i != owner:
                a, b = sorted((owner, i))
                return a, b, lo
            if hi > reach:
                reach, owner = hi, i
    return None


def _check_repeated_images(manifest: Manifest, file: str) -> None:
    """Two requests with the same sample id would be the same image: refuse the manifest."""
    overlap = _first_overlap(manifest, lambda item: item.count)
    if overlap:
        a, b, seed = overlap
        raise ManifestError(
            file,
            f"repeats an image of items[{a}] (same prompt, seed {seed} and settings); give "
            "the items seeds that do not overlap, or merge them",
            where=f"items[{b}]",
        )


def _check_topup_seeds(manifest: Manifest, file: str) -> None:
    """Top-ups take an item's next seeds; they must not reach seeds of a same-prompt item:
    the seed ranges `[seed, seed + max attempts)` of items making the same image are apart."""
    curation = manifest.curation
    if not curation.enabled or curation.attempt_budget == 1:
        return
    overlap = _first_overlap(manifest, lambda item: curation.max_attempts(item.count))
    if overlap:
        a, b, _ = overlap
        raise ManifestError(
            file,
            f"top-ups would repeat images of items[{a}] (same prompt; each item may "
            f"use {curation.attempt_budget:g} × count seeds from its own); space the "
            "seeds further apart, merge the items or lower curation.attempt_budget",
            where=f"items[{b}]",
        )


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _file_digest(path: str | None) -> str | None:
    if not path:
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sample_ids(image: dict[str, Any], generator: dict[str, Any]) -> Callable[[int], str]:
    """`seed → sample id`, equal to `_digest({"image", "seed", "generator"})[:20]` but hashing
    the shared prefix once: a million requests cost a million small hashes, not dumps."""
    text = json.dumps(
        {"generator": generator, "image": image}, sort_keys=True, separators=(",", ":"), default=str
    )
    prefix = hashlib.sha256((text[:-1] + ',"seed":').encode())

    def sample_id(seed: int) -> str:
        h = prefix.copy()
        h.update(f"{seed}}}".encode())
        return h.hexdigest()[:20]

    return sample_id


def expand(
    manifest: Manifest, file: str = "manifest", extra: dict[int, int] | None = None
) -> list[GenerationRequest]:
    """One request per image, in manifest order.

    The sample id hashes what determines the image: prompt, negative prompt, the condition
    files' contents, the seed and the generator settings that shape it (not batch size or
    device). Image `index` of an item gets seed `seed + index`; an item without a seed gets
    one derived from its whole content, so ids and images are stable across runs. Two
    requests with the same id would be the same image, so the manifest is refused.
    `extra` asks for more images of an item (indices beyond its count, fresh seeds).
    Requests are built unvalidated: every field comes from validated items.
    """
    generator = manifest.generator.identity()
    requests: list[GenerationRequest] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(manifest.items):
        cond = item.conditions or Conditions()
        image = _image_identity(item)
        base_seed = _base_seed(item, image)
        sample_id_of = _sample_ids(image, generator)
        shared = {
            "item_index": i,
            "prompt": item.prompt,
            "negative_prompt": item.negative_prompt,
            "tags": tuple(item.tags),
            "metadata": item.metadata,
            "image": cond.image,
            "mask": cond.mask,
            "control": cond.control,
        }
        for index in range(item.count + (extra or {}).get(i, 0)):
            seed = (base_seed + index) % _SEED_SPACE
            sample_id = sample_id_of(seed)
            if sample_id in seen:
                raise ManifestError(
                    file,
                    f"repeats an image of items[{seen[sample_id]}] (same "
                    f"prompt, seed {seed} and settings); give the items seeds "
                    "that do not overlap, or merge them",
                    where=f"items[{i}]",
                )
            seen[sample_id] = i
            requests.append(
                GenerationRequest.model_construct(
                    sample_id=sample_id, index=index, seed=seed, **shared
                )
            )
    return requests


def plan_digest(manifest: Manifest) -> str:
    """Identifies a manifest's resolved content: equal digests mean the same requested images.

    The curation section is left out: it decides what is kept, not what an image looks like,
    so a run with other thresholds resumes from the same generated shards.
    """
    return _digest(manifest.model_dump(exclude=_NOT_IN_PLAN))[:16]


_NOT_IN_PLAN = {"description", "curation", "report", "templates", "inputs_root", "max_images"}
"""Fields that do not change a requested image: which inputs are allowed, how many images
may be asked for, how results are curated."""
