"""The embedded default CLIP: a tiny open_clip model trained contrastively on captioned digits.

`synthset-tiny-clip` is an ordinary open_clip architecture config (a JSON file registered with
`open_clip.add_model_config`) and its weights are an ordinary safetensors state_dict, so it loads
through `open_clip.create_model_and_transforms(name, pretrained=path)` and
`open_clip.get_tokenizer(name)` exactly as ViT-B-32 does for a user with downloaded weights.

The vision tower is open_clip's ModifiedResNet: a ViT of the same cost stayed near chance for
twice as many steps, convolutions learn colour-invariant strokes much faster. Many training
images share a caption and a plain caption ("a handwritten seven") fits every seven, so the
contrastive targets are label-aware: an image's positives are all captions in the batch that
describe it, not only its own.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthset.models import digits

log = logging.getLogger(__name__)

TINY_CLIP_NAME = "synthset-tiny-clip"
_PACKAGE_DIR = Path(__file__).parent
CONFIG_PATH = _PACKAGE_DIR / "configs" / f"{TINY_CLIP_NAME}.json"
TINY_CLIP_CONFIG: dict[str, Any] = json.loads(CONFIG_PATH.read_text())


def register() -> None:
    """Make `synthset-tiny-clip` a known open_clip architecture (safe to call repeatedly)."""
    import open_clip

    if TINY_CLIP_NAME not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_PATH)


def default_checkpoint() -> Path:
    """The packaged float16 weights of `synthset-tiny-clip`."""
    return _PACKAGE_DIR / "weights" / "tiny-clip.safetensors"


def load_clip(
    name: str = TINY_CLIP_NAME, pretrained: str | Path | None = None, device: str = "cpu"
) -> tuple[Any, Any, Any]:
    """(model in eval mode, preprocess, tokenizer) from open_clip's own factory.

    For the tiny default, `pretrained` defaults to the packaged checkpoint; any other open_clip
    name (`ViT-B-32`, `hf-hub:...`) and `pretrained` tag or path are passed through unchanged.
    """
    import open_clip

    register()
    if name == TINY_CLIP_NAME and pretrained is None:
        pretrained = default_checkpoint()
    model, _, preprocess = open_clip.create_model_and_transforms(
        name, pretrained=None if pretrained is None else str(pretrained), device=device
    )
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(name)


def caption_catalogue() -> tuple[list[str], np.ndarray, np.ndarray]:
    """Every caption the digit templates produce, and two look-up tables over them.

    Returns (captions, ids, compatible): `ids[label, ink, bg, t]` is the catalogue index of
    template t (plain templates first, then colour ones) for that digit and colours (indices
    into `digits.COLOURS`), and `compatible[label, ink, bg, c]` says whether caption c
    describes such an image.
    """
    names = list(digits.COLOURS)
    templates = digits.TEMPLATES_PLAIN + digits.TEMPLATES_COLOUR
    shape = (len(digits.DIGIT_WORDS), len(names), len(names), len(templates))
    ids = np.zeros(shape, dtype=np.int64)
    index: dict[str, int] = {}
    for label, i, j, t in np.ndindex(*shape):
        text = templates[t].format(word=digits.DIGIT_WORDS[label], n=label, ink=names[i],
                                   bg=names[j])  # fmt: skip
        ids[label, i, j, t] = index.setdefault(text, len(index))
    compatible = np.zeros(shape[:3] + (len(index),), dtype=bool)
    for label, i, j in np.ndindex(*shape[:3]):
        compatible[label, i, j, ids[label, i, j]] = True
    return list(index), ids, compatible


class CaptionedDigits:
    """Endless batches of augmented, randomly coloured training digits with their captions.

    Captions follow `digits.caption` (colours named in `colour_share` of cases); every caption
    is tokenized once, up front. Augmentation: random rotation, scale and shift of the stroke
    mask and a per-image jitter of the ink and background colours.
    """

    def __init__(
        self,
        grey: np.ndarray,
        labels: np.ndarray,
        tokenizer: Any,
        seed: int = 0,
        colour_share: float = 0.6,
        shift: float = 3.0,
        rotate: float = 12.0,
        scale: tuple[float, float] = (0.85, 1.1),
        colour_jitter: float = 20.0,
    ):
        import torch

        self.alpha = torch.from_numpy(digits.upscale(grey))
        self.labels = np.asarray(labels, dtype=np.int64)
        self.rng = np.random.default_rng(seed)
        self.gen = torch.Generator().manual_seed(seed)
        self.colour_share, self.colour_jitter = colour_share, colour_jitter
        self.shift, self.rotate, self.scale = shift, rotate, scale
        self.colours = torch.tensor(list(digits.COLOURS.values()), dtype=torch.float32)
        self.captions, self.caption_ids, self.compatible = caption_catalogue()
        self.tokens = tokenizer(self.captions)

    def sample(self, batch_size: int) -> tuple[Any, Any, Any]:
        """(RGB images in [0, 1] (B, 3, H, W), tokens of the U distinct captions of the batch,
        compatibility (B, U): caption u describes image b)."""
        import torch

        rng, n_colours, n_plain = self.rng, len(self.colours), len(digits.TEMPLATES_PLAIN)
        idx = rng.integers(len(self.labels), size=batch_size)
        labels = self.labels[idx]
        ink = rng.integers(n_colours, size=batch_size)
        bg = (ink + rng.integers(1, n_colours, size=batch_size)) % n_colours
        template = np.where(
            rng.random(batch_size) < self.colour_share,
            n_plain + rng.integers(len(digits.TEMPLATES_COLOUR), size=batch_size),
            rng.integers(n_plain, size=batch_size),
        )
        captions = np.unique(self.caption_ids[labels, ink, bg, template])
        compatible = torch.from_numpy(self.compatible[labels, ink, bg][:, captions])

        alpha = self._augment(self.alpha[torch.from_numpy(idx)])[:, None]
        jitter = self.colour_jitter * (2 * torch.rand(batch_size, 2, 3, generator=self.gen) - 1)
        ink_rgb = (self.colours[ink] + jitter[:, 0]).clamp(0, 255)[:, :, None, None]
        bg_rgb = (self.colours[bg] + jitter[:, 1]).clamp(0, 255)[:, :, None, None]
        images = (bg_rgb * (1 - alpha) + ink_rgb * alpha) / 255.0
        return images, self.tokens[captions], compatible

    def _augment(self, alpha: Any) -> Any:
        """Random rotation, scale and shift of (B, H, W) stroke masks."""
        import torch
        import torch.nn.functional as F

        b, h, w = alpha.shape
        u = torch.rand(b, 4, generator=self.gen)
        angle = (2 * u[:, 0] - 1) * np.deg2rad(self.rotate)
        scale = self.scale[0] + (self.scale[1] - self.scale[0]) * u[:, 1]
        shift = (2 * u[:, 2:] - 1) * (2 * self.shift / h)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)],
            1,
        )
        grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)
        return F.grid_sample(alpha[:, None], grid, align_corners=False)[:, 0].clamp(0, 1)


def soft_clip_loss(
    image_features: Any, text_features: Any, logit_scale: Any, compatible: Any
) -> Any:
    """Symmetric contrastive loss where every compatible pair is a positive (uniform targets).

    Logits come from `open_clip.loss.ClipLoss`; with `compatible` the identity this is exactly
    ClipLoss, whose single positive per row would push apart an image and a caption that fits it.
    """
    from open_clip.loss import ClipLoss

    per_image, per_text = ClipLoss().get_logits(image_features, text_features, logit_scale)
    target = compatible.float()
    loss_image = -(target / target.sum(1, keepdim=True) * per_image.log_softmax(1)).sum(1)
    target = target.T
    loss_text = -(target / target.sum(1, keepdim=True) * per_text.log_softmax(1)).sum(1)
    return (loss_image.mean() + loss_text.mean()) / 2


def train_clip(
    seed: int = 0,
    steps: int = 1500,
    batch_size: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 0.1,
    warmup: int = 100,
    config: dict[str, Any] | None = None,
    images: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    log_every: int = 250,
    callback: Callable[[int, Any], None] | None = None,
) -> Any:
    """Train `synthset-tiny-clip` from scratch with AdamW and a warmup-cosine schedule.

    `config` overrides parts of the architecture (e.g. `{"text_cfg": {...}}`) for experiments;
    `images`/`labels` (grey 8×8 digits in [0, 1]) default to the training split;
    `callback(step, model)` runs every `log_every` steps with the model in eval mode.
    """
    import open_clip
    import torch

    register()
    torch.manual_seed(seed)
    model = open_clip.create_model(TINY_CLIP_NAME, **(config or {}))
    if images is None or labels is None:
        split = digits.load_split("train")
        images, labels = split.images, split.labels
    tokenizer = open_clip.get_tokenizer(TINY_CLIP_NAME, context_length=model.context_length)
    data = CaptionedDigits(images, labels, tokenizer, seed=seed)
    mean = torch.tensor(model.visual.preprocess_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(model.visual.preprocess_cfg["std"]).view(1, 3, 1, 1)

    def decays(name: str, p: Any) -> bool:
        return p.ndim >= 2 and "embedding" not in name

    params = list(model.named_parameters())
    groups = [
        {"params": [p for n, p in params if decays(n, p)], "weight_decay": weight_decay},
        {"params": [p for n, p in params if not decays(n, p)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=lr)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model.train()
    start, running = time.perf_counter(), 0.0
    for step in range(1, steps + 1):
        pixels, tokens, compatible = data.sample(batch_size)
        image_features, text_features, logit_scale = model((pixels - mean) / std, tokens)
        loss = soft_clip_loss(image_features, text_features, logit_scale, compatible)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, np.log(100))
        running += loss.item()
        if log_every and step % log_every == 0:
            log.info(
                "tiny CLIP step %d/%d: loss %.3f, logit scale %.1f, %.0f s",
                step, steps, running / log_every, model.logit_scale.exp().item(),
                time.perf_counter() - start,
            )  # fmt: skip
            running = 0.0
            if callback is not None:
                model.eval()
                callback(step, model)
                model.train()
    return model.eval()


def save_clip(model: Any, path: str | Path, dtype: str = "float16") -> Path:
    """Write the state_dict as safetensors (float16 by default) that `pretrained=path` loads."""
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cast = getattr(torch, dtype)
    state = {k: v.detach().to(cast).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))
    return path


def _encode_images(model: Any, preprocess: Any, images: Sequence[Any]) -> Any:
    import torch
    from PIL import Image

    pils = [im if isinstance(im, Image.Image) else Image.fromarray(np.asarray(im)) for im in images]
    with torch.no_grad():
        batch = torch.stack([preprocess(im) for im in pils])
        return torch.nn.functional.normalize(model.encode_image(batch), dim=-1)


def _encode_texts(model: Any, tokenizer: Any, texts: Sequence[str]) -> Any:
    import torch

    with torch.no_grad():
        return torch.nn.functional.normalize(model.encode_text(tokenizer(list(texts))), dim=-1)


def clip_score(
    model: Any, preprocess: Any, tokenizer: Any, images: Sequence[Any], prompts: Sequence[str]
) -> np.ndarray:
    """CLIPScore of each image (PIL or uint8 array) with its own prompt: 100 × max(cos, 0)."""
    if len(images) != len(prompts):
        raise ValueError(
            f"clip_score needs one prompt per image, got {len(images)} images and "
            f"{len(prompts)} prompts"
        )
    image_features = _encode_images(model, preprocess, images)
    text_features = _encode_texts(model, tokenizer, prompts)
    return (100 * (image_features * text_features).sum(-1).clamp(min=0)).numpy()


def zero_shot_accuracy(
    model: Any,
    preprocess: Any,
    tokenizer: Any,
    images_uint8: np.ndarray,
    labels: np.ndarray,
    templates: Sequence[str] = digits.TEMPLATES_PLAIN,
) -> float:
    """Share of images whose nearest digit prompt ensemble (mean text embedding) is the label."""
    import torch

    image_features = _encode_images(model, preprocess, images_uint8)
    classes = []
    for label, word in enumerate(digits.DIGIT_WORDS):
        texts = _encode_texts(model, tokenizer, [t.format(word=word, n=label) for t in templates])
        classes.append(torch.nn.functional.normalize(texts.mean(0), dim=-1))
    predicted = (image_features @ torch.stack(classes).T).argmax(1).numpy()
    return float((predicted == np.asarray(labels)).mean())


def matched_vs_mismatched_auc(
    model: Any,
    preprocess: Any,
    tokenizer: Any,
    images: Sequence[Any],
    matched: Sequence[str],
    mismatched: Sequence[str],
) -> float:
    """ROC AUC separating the CLIP scores of images with their prompt from those with a wrong one.

    Scores of all images are pooled, so 1.0 means one global threshold separates them.
    """
    from sklearn.metrics import roc_auc_score

    pos = clip_score(model, preprocess, tokenizer, images, matched)
    neg = clip_score(model, preprocess, tokenizer, images, mismatched)
    return float(roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg]))


def held_out_digits(
    copies: int = 2, seed: int = 1
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Randomly coloured held-out real digits: (uint8 N×32×32×3, labels, inks, backgrounds)."""
    split = digits.load_split("test")
    rng = np.random.default_rng(seed)
    alpha = digits.upscale(split.images)
    images, labels, inks, bgs = [], [], [], []
    for _ in range(copies):
        for a, label in zip(alpha, split.labels, strict=True):
            ink, bg = digits.random_colours(rng)
            images.append(digits.paint(a, ink, bg))
            labels.append(int(label))
            inks.append(ink)
            bgs.append(bg)
    return np.stack(images), np.array(labels), inks, bgs


def mismatched_prompts(
    labels: Sequence[int],
    inks: Sequence[str],
    bgs: Sequence[str],
    kind: str,
    seed: int = 0,
    template: str = digits.TEMPLATES_COLOUR[0],
) -> tuple[list[str], list[str]]:
    """(matched, mismatched) colour prompts; the wrong one changes the `digit`, the `colour`
    pair (at least one of ink and background) or `swap`s ink and background."""
    rng = np.random.default_rng(seed)
    matched, wrong = [], []
    for label, ink, bg in zip(labels, inks, bgs, strict=True):
        fields = dict(word=digits.DIGIT_WORDS[label], n=label, ink=ink, bg=bg)
        matched.append(template.format(**fields))
        if kind == "digit":
            other = int((label + rng.integers(1, 10)) % 10)
            fields.update(word=digits.DIGIT_WORDS[other], n=other)
        elif kind == "colour":
            new = (ink, bg)
            while new == (ink, bg):
                new = digits.random_colours(rng)
            fields.update(ink=new[0], bg=new[1])
        elif kind == "swap":
            fields.update(ink=bg, bg=ink)
        else:
            raise ValueError(f"kind must be 'digit', 'colour' or 'swap', not {kind!r}")
        wrong.append(template.format(**fields))
    return matched, wrong


def evaluate_clip(model: Any, preprocess: Any, tokenizer: Any) -> dict[str, float]:
    """The quality bars on held-out real digits: zero-shot accuracy and matched-vs-wrong AUCs."""
    images, labels, inks, bgs = held_out_digits()
    metrics = {
        "zero_shot_accuracy": zero_shot_accuracy(model, preprocess, tokenizer, images, labels),
        "zero_shot_accuracy_handwritten": zero_shot_accuracy(
            model, preprocess, tokenizer, images, labels, templates=("a handwritten {word}",)
        ),
    }
    for kind in ("digit", "colour", "swap"):
        matched, wrong = mismatched_prompts(labels, inks, bgs, kind)
        metrics[f"auc_{kind}"] = matched_vs_mismatched_auc(
            model, preprocess, tokenizer, images, matched, wrong
        )
    return metrics


def build_clip(
    out_path: str | Path | None = None,
    seed: int = 0,
    threads: int | None = None,
    **train_kwargs: Any,
) -> dict[str, float]:
    """Train from scratch, save float16 safetensors, reload them through open_clip, measure.

    `out_path` defaults to the packaged checkpoint; `threads` sets torch's CPU thread count.
    """
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    model = train_clip(seed=seed, **train_kwargs)
    seconds = time.perf_counter() - start
    path = save_clip(model, default_checkpoint() if out_path is None else out_path)
    metrics = evaluate_clip(*load_clip(TINY_CLIP_NAME, pretrained=path))
    metrics.update(train_seconds=seconds, megabytes=path.stat().st_size / 1e6)
    log.info("tiny CLIP built in %.0f s: %s", seconds, metrics)
    return metrics
