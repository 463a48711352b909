"""Zero-shot tags: the words of a manifest vocabulary that CLIP finds most likely per image.

Each word is put in the template ("a photo of {}") and encoded once; an image's tag scores
are the softmax over the vocabulary of its cosine similarities times the model's logit scale,
as in CLIP's zero-shot classification. The `top_k` words are kept with their scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from synthset.curation.clip import ClipScorer


class ZeroShotTagger:
    """Top-k vocabulary words per image embedding."""

    def __init__(
        self, scorer: ClipScorer, vocabulary: Sequence[str], template: str = "{}", top_k: int = 3
    ):
        self.words = list(vocabulary)
        self.top_k = min(top_k, len(self.words))
        self.scale = scorer.logit_scale
        texts = [template.replace("{}", w) for w in self.words]
        self.text_embeddings = scorer.embed_texts(texts) if self.words else None

    def tag(self, image_embeddings: np.ndarray) -> tuple[list[list[str]], list[list[float]]]:
        """(tags, scores) per image, best first; empty lists when there is no vocabulary."""
        n = len(image_embeddings)
        if self.text_embeddings is None or n == 0:
            return [[] for _ in range(n)], [[] for _ in range(n)]
        logits = self.scale * (image_embeddings @ self.text_embeddings.T)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        order = np.argsort(-probs, axis=1, kind="stable")[:, : self.top_k]
        tags = [[self.words[j] for j in row] for row in order]
        scores = [[round(float(p), 4) for p in row] for row in np.take_along_axis(probs, order, 1)]
        return tags, scores
