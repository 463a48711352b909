"""The `report` section of a manifest: what each version's quality report measures against.

Only the schema lives here (the manifest embeds it); the report itself is
`synthset.quality.report`. Without a `reference` the report has no fidelity figures (Fréchet
distance, KID, precision/recall/density/coverage), only diversity, scores, rejections and tags.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from synthset.curation.config import ClipConfig

BUILTIN_DIGITS = "synthset/digits"
"""The built-in reference: scikit-learn's held-out digits rendered like the default model's
training data (`synthset.models.digits`)."""


class ReportConfig(BaseModel):
    """`reference`: real images to compare with: `synthset/digits`, a folder of images (an
    imagefolder dataset too) relative to the manifest, or a version `NAME@VERSION`. `clip`:
    the feature space (default: the curation CLIP, whose embeddings the version already
    holds). `nearest_k`: the k of precision/recall/density/coverage."""

    model_config = ConfigDict(extra="forbid")

    reference: str | None = Field(None, min_length=1)
    clip: ClipConfig | None = None
    nearest_k: int = Field(5, ge=1, le=100)
