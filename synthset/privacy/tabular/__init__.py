"""Private tables → synthetic tables: schema, encoder and TabDDPM-style synthesizer (with DP
statistics and DP-SGD), the leakage and utility audit, the tabular gate thresholds and
report, and the release steps and `synthset tabular` commands.

The pieces, each usable on its own: `schema` (loading and checking a table), `synthesizer`
(the model, `TabularSynthesizer`), `dp_stats` (DP statistics for the encoder), `audit`,
`gate`, `report`, `baselines`, and `release` (the whole path from a config to a published,
versioned synthetic table). The shared pieces are in `synthset.privacy`.
"""
