"""The CLIP scorer: any open_clip model, loaded once per process, embedding images and prompts.

Scores are CLIPScore units as torchmetrics reports them: 100 × max(cos(image, prompt), 0).
Embeddings are L2-normalised float32 (stored as float16 with the dataset). Prompt embeddings
are cached by text, so a shard of one prompt encodes it once.

Texts are encoded in batches of one fixed shape (padded with empty texts): a matrix product's
last bits depend on the batch's shape, so a prompt encoded beside whichever prompts were new
at the time would score differently in a run and in its resumption, and change the digest.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from synthset.curation.config import ClipConfig
from synthset.devices import resolve_device
from synthset.errors import SynthsetError

log = logging.getLogger(__name__)

_TEXT_CACHE_LIMIT = 100_000
_TEXT_BATCH = 16


def _direct_input(preprocess: Any) -> tuple[int, Any, Any] | None:
    """(size, mean, std) when `preprocess` is open_clip's resize ▸ crop ▸ RGB ▸ tensor ▸
    normalise of one square size, so that RGB images of that size need only the last two
    steps, which run on a whole batch at once; None for any other pipeline."""
    import torch

    steps = [type(t).__name__ for t in getattr(preprocess, "transforms", [])]
    if steps != ["Resize", "CenterCrop", "MaybeConvertMode", "MaybeToTensor", "Normalize"]:
        return None
    resize, crop, _, _, normalize = preprocess.transforms
    size = resize.size if isinstance(resize.size, int) else tuple(resize.size)
    side = size if isinstance(size, int) else (size[0] if len(size) == 1 else None)
    if side is None or tuple(crop.size) != (side, side):
        return None
    mean = torch.tensor(normalize.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(normalize.std, dtype=torch.float32).view(1, 3, 1, 1)
    return side, mean, std


class ClipScorer:
    """One open_clip model with its preprocessing and tokenizer.

    `identity` says which weights these are: embeddings of scorers with different identities
    are not comparable (prior-version dedup checks it).
    """

    def __init__(
        self,
        model: Any,
        preprocess: Any,
        tokenizer: Any,
        identity: dict[str, Any],
        device: str = "cpu",
    ):
        self.model, self.preprocess, self.tokenizer = model, preprocess, tokenizer
        self.identity = identity
        self.device = device
        self._texts: dict[str, np.ndarray] = {}
        self._dim: int | None = None
        self._direct = _direct_input(preprocess)

    @property
    def dim(self) -> int:
        """Length of an embedding (measured once, on a text)."""
        if self._dim is None:
            self._dim = int(self.embed_texts(["a"]).shape[1])
        return self._dim

    @property
    def logit_scale(self) -> float:
        """The model's learned temperature (exp of `logit_scale`), at most 100 as in CLIP."""
        scale = getattr(self.model, "logit_scale", None)
        return 100.0 if scale is None else float(min(scale.exp().item(), 100.0))

    def preprocess_batch(self, images: Sequence[Image.Image]) -> Any:
        """The model's input tensor for a batch of images, exactly as `preprocess` makes it.

        RGB images already at the model's square input size skip the PIL steps that would
        leave them unchanged (resize, crop, convert) and are normalised as one tensor.
        """
        import torch

        direct = self._direct
        if direct is None or not all(
            im.mode == "RGB" and im.size == (direct[0], direct[0]) for im in images
        ):
            return torch.stack([self.preprocess(im) for im in images])
        pixels = torch.from_numpy(np.stack([np.asarray(im) for im in images]))
        batch = pixels.permute(0, 3, 1, 2).contiguous().float().div(255)
        return batch.sub_(direct[1]).div_(direct[2])

    def encode(self, batch: Any) -> np.ndarray:
        """Normalised embeddings of a batch of preprocessed image tensors (B, C, H, W)."""
        import torch

        with torch.inference_mode():
            features = self.model.encode_image(batch.to(self.device))
            features = torch.nn.functional.normalize(features.float(), dim=-1)
        return features.cpu().numpy()

    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 64) -> np.ndarray:
        """(N, D) float32 normalised embeddings of PIL images, `batch_size` at a time."""
        out = [np.zeros((0, self.dim), np.float32)]
        for start in range(0, len(images), batch_size):
            out.append(self.encode(self.preprocess_batch(images[start : start + batch_size])))
        return np.concatenate(out)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, D) float32 normalised embeddings of texts; each distinct text is encoded once,
        to the same bits whatever texts it is encoded with."""
        import torch

        missing = list(dict.fromkeys(t for t in texts if t not in self._texts))
        if len(self._texts) + len(missing) > _TEXT_CACHE_LIMIT:
            self._texts.clear()
            missing = list(dict.fromkeys(texts))
        for start in range(0, len(missing), _TEXT_BATCH):
            chunk = missing[start : start + _TEXT_BATCH]
            padded = chunk + [""] * (_TEXT_BATCH - len(chunk))
            with torch.inference_mode():
                tokens = self.tokenizer(padded).to(self.device)
                features = self.model.encode_text(tokens)[: len(chunk)]
                features = torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()
            self._texts.update(zip(chunk, features, strict=True))
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self._texts[t] for t in texts]).astype(np.float32, copy=False)

    def clip_scores(self, image_embeddings: np.ndarray, prompts: Sequence[str]) -> np.ndarray:
        """CLIPScore of each image embedding with its own prompt: 100 × max(cos, 0)."""
        if len(image_embeddings) != len(prompts):
            raise ValueError(
                f"one prompt per image: got {len(image_embeddings)} images, {len(prompts)} prompts"
            )
        cos = (image_embeddings * self.embed_texts(prompts)).sum(axis=1)
        return (100.0 * np.maximum(cos, 0.0)).astype(np.float32)


@functools.lru_cache(maxsize=2)
def load_scorer(model: str, pretrained: str | None, device: str = "auto") -> ClipScorer:
    """Load an open_clip model once per process for each (model, pretrained, device).

    `synthset-tiny-clip` without `pretrained` is the embedded default with its packaged
    weights; other names take an open_clip pretrained tag or a checkpoint file, `hf-hub:` and
    `local-dir:` names carry their own weights.
    """
    from synthset.models.clip import load_clip

    device = resolve_device(device, "curation.clip.device")
    try:
        net, preprocess, tokenizer = load_clip(model, pretrained=pretrained, device=device)
    except (OSError, RuntimeError, ValueError) as exc:
        raise SynthsetError(
            f"cannot load CLIP model {model!r} (pretrained {pretrained!r}): "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from exc
    identity = ClipConfig(model=model, pretrained=pretrained).identity()
    log.info("loaded CLIP %s (%s) on %s", model, pretrained or "default weights", device)
    return ClipScorer(net, preprocess, tokenizer, identity, device)


def scorer_for(config: ClipConfig) -> ClipScorer:
    """The process's scorer for a manifest's `curation.clip`."""
    return load_scorer(config.model, config.pretrained, config.device)
