"""Private data → synthetic data that may be shared: differential privacy, an audit against
the real data, a release gate, a report, and a versioned release.

What every modality shares lives here: `dp` (the privacy ledger: Gaussian mechanisms composed
with Opacus' RDP accountant), `gate` (thresholds evaluated into pass or fail with one reason
per check), `report` (the self-contained HTML frame and the (ε, δ) statement), `publish` (a
release as a dataset version; a blocked one as a FAILED MLflow run), `release` (the outcome,
report folder and MLflow params of a release) and `errors`. Each modality builds on them in
its own package and is imported only from there: `tabular` (private tables, TabDDPM-style
diffusion) and `medical` (private images: DICOM de-identification, a memorization gate).
Imports run one way: a modality imports the shared modules, never the reverse.
"""
