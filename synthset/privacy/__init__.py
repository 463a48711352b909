"""Private tabular data: synthetic tables from private ones, with optional differential
privacy, a leakage and utility audit, a release gate and a report.

The pieces, each usable on its own: `schema` (loading and checking a table), `synthesizer`
(the TabDDPM-style model, `TabularSynthesizer`), `dp` and `dp_stats` (privacy accounting and
DP statistics), `audit`, `gate`, `report`, `baselines`, and `release` (the whole path from a
config to a published, versioned synthetic table).
"""
