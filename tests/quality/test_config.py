"""The manifest's `report` section: a reference folder resolved against the manifest and
checked at load, errors that name the field, and no effect on the plan."""

from __future__ import annotations

import pytest

from synthset.errors import ManifestError
from synthset.manifest import load_manifest, plan_digest
from tests.conftest import write_manifest

BASE = """
dataset: report-config
items:
  - {prompt: a red seven, count: 2, seed: 1}
"""


def test_a_reference_folder_is_resolved_against_the_manifest(tmp_path):
    (tmp_path / "real").mkdir()
    manifest = load_manifest(write_manifest(tmp_path, BASE + "report: {reference: real}\n"))
    assert manifest.report.reference == str(tmp_path / "real")
    assert manifest.report.nearest_k == 5 and manifest.report.clip is None
    for kept in ("synthset/digits", "other-dataset@3", "other-dataset@production"):
        text = BASE + f"report: {{reference: '{kept}'}}\n"
        assert load_manifest(write_manifest(tmp_path, text)).report.reference == kept


def test_the_report_section_does_not_change_the_plan(tmp_path):
    plain = load_manifest(write_manifest(tmp_path, BASE))
    reported = load_manifest(
        write_manifest(tmp_path, BASE + "report: {reference: synthset/digits}\n")
    )
    assert plan_digest(plain) == plan_digest(reported)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("report: {reference: missing}", "report: field 'reference': no such folder: missing"),
        ("report: {referense: synthset/digits}", "referense"),
        ("report: {nearest_k: 0}", "nearest_k"),
    ],
)
def test_a_bad_report_section_is_one_line_naming_the_field(tmp_path, section, message):
    with pytest.raises(ManifestError, match=message) as caught:
        load_manifest(write_manifest(tmp_path, BASE + section + "\n"))
    assert "\n" not in str(caught.value)
