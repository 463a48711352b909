"""Curation's extension points and the scorers and filters that come with synthset."""

from synthset.curation.plugins import colourfulness, score_range  # noqa: F401
