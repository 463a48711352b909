"""The quality report of an image dataset version: fidelity against real images, diversity,
duplicates, CLIP scores, rejections, tags, and what changed since the previous version.

`synthset.quality.report.quality_report` builds it; the manifest's `report` section
(`synthset.quality.config`) names the reference. Nothing is imported here, so that the
manifest can embed the section's schema without loading the report's libraries.
"""
