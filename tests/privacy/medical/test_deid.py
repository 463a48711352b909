"""De-identification by the DICOM PS3.15 Basic profile: every row of Table E.1-1 on a dataset
that carries a fake value in each, private tags at every depth, burned-in annotations, the
files pydicom ships, and the PHI finder the end-to-end tests rely on."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import UID

from synthset.errors import InputError
from synthset.privacy.medical import deid, phantoms

DATA = Path(pydicom.data.__file__).parent / "test_files"
BUNDLED = [
    "CT_small.dcm",
    "MR_small.dcm",
    "rtplan.dcm",
    "rtstruct.dcm",
    "reportsi.dcm",
    "test-SR.dcm",
    "nested_priv_SQ.dcm",
    "priv_SQ.dcm",
    "image_dfl.dcm",
]
"""pydicom's own test files (shipped in the wheel, read from its folder: never downloaded)."""


def _bytes(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


def _is_empty(elem) -> bool:
    return elem.value in (None, "", b"") or (elem.VR == "SQ" and len(elem.value) == 0)


def _planted_dataset() -> Dataset:
    """`fake_header` plus what a file cannot hold (the command group) and its file meta."""
    ds = phantoms.phantom_dataset(phantoms.make_phantoms(1, 16)[0][0], 0)
    ds.add_new(0x00001000, "UI", "1.2.3.4.5.6.7.8.1000")
    ds.add_new(0x00001001, "UI", "1.2.3.4.5.6.7.8.1001")
    return ds


def _planted_tag(rule: deid.Rule) -> int:
    return 0x50002500 if rule.tag >> 16 == 0x5000 and rule.repeating else rule.tag


def test_the_table_is_the_standards():
    rules = deid.profile_rules()
    assert len(rules) == 655
    assert {r.action for r in rules} == set(deid.EFFECTIVE)
    by_name = {r.name: r.action for r in rules}
    expected = {
        "PatientName": "Z",
        "PatientID": "Z/D",
        "PatientBirthDate": "Z",
        "PatientSex": "Z",
        "PatientAge": "X",
        "PatientAddress": "X",
        "OtherPatientIDsSequence": "X",
        "ReferringPhysicianName": "Z",
        "AccessionNumber": "Z",
        "StudyDate": "Z",
        "StudyInstanceUID": "U",
        "SeriesInstanceUID": "U",
        "SOPInstanceUID": "U",
        "MediaStorageSOPInstanceUID": "U",
        "FrameOfReferenceUID": "U",
        "InstitutionName": "X/Z/D",
        "InstitutionAddress": "X",
        "DeviceSerialNumber": "X/Z/D",
        "StationName": "X/Z/D",
        "ReferencedImageSequence": "X/Z/U*",
        "SourceImageSequence": "X/Z/U*",
        "ContentSequence": "D",
        "(60xx,4000)": "X",
        "(60xx,3000)": "X",
        "(50xx,xxxx)": "X",
    }
    assert {k: by_name.get(k) for k in expected} == expected
    kept = ["Modality", "Rows", "PixelData", "BurnedInAnnotation", "WindowCenter", "SOPClassUID"]
    assert all(deid.rule_for(pydicom.datadict.tag_for_keyword(k)) is None for k in kept)


def test_every_row_of_the_table_is_applied():
    """Each of the 655 rows, planted with a distinct fake value, ends as its action says."""
    ds = _planted_dataset()
    before = {elem.tag: copy.deepcopy(elem.value) for elem in ds}
    before.update({elem.tag: elem.value for elem in ds.file_meta})
    deid.Deidentifier(key=b"test")(ds, "planted.dcm")
    checked, failures = 0, []
    for rule in deid.profile_rules():
        tag = _planted_tag(rule)
        holder = ds.file_meta if tag >> 16 == 0x0002 else ds
        assert tag in before, f"{rule.name} was not planted"
        elem = holder.get(tag)
        action = rule.effective
        checked += 1
        if action == "X":
            ok = elem is None
        elif elem is None:
            ok = action in ("D", "U") and pydicom.datadict.dictionary_VR(tag) == "UN"
        elif action == "Z":
            ok = _is_empty(elem)
        elif action == "U":
            ok = str(elem.value).startswith("2.25.") and UID(str(elem.value)).is_valid
            ok = ok and str(elem.value) != str(before[tag])
        elif action == "D":
            ok = not _is_empty(elem) and not deid.contains_phi(str(elem.value), _texts(before[tag]))
        else:
            item = elem.value[0]
            ok = str(item.ReferencedSOPInstanceUID).startswith("2.25.")
            ok = ok and item.ReferencedSOPClassUID == pydicom.uid.CTImageStorage
        if not ok:
            failures.append(f"{rule.name} ({rule.action}): {elem!r}")
    assert checked == 655
    assert not failures, failures


def _texts(value) -> list[str]:
    if isinstance(value, bytes):
        return [value.rstrip(b"\0").decode("latin-1")]
    if isinstance(value, pydicom.Sequence):
        return [str(e.value) for item in value for e in item.iterall() if e.VR != "SQ"]
    return [str(value)]


def test_no_planted_value_survives_in_the_written_file(tmp_path):
    images, labels = phantoms.make_phantoms(3, 16, seed=4)
    paths = phantoms.write_dicoms(tmp_path, images, labels, seed=4)
    planted = phantoms.phi_values(3, seed=4)
    first = phantoms.phi_values(1, seed=4)
    assert deid.contains_phi(paths[0].read_bytes(), first) == first
    deidentify = deid.Deidentifier()
    for path in paths:
        ds = pydicom.dcmread(path)
        deidentify(ds, path.name)
        assert deid.contains_phi(_bytes(ds), planted) == []
        assert not any(elem.tag.is_private for elem in ds.iterall())


def test_cleaning_reaches_into_sequences_the_profile_keeps():
    ds = _planted_dataset()
    deid.Deidentifier()(ds)
    item = getattr(ds, phantoms.NESTED)[0]
    assert item.PatientName == "" and item.StudyDate == ""
    assert item.CodeMeaning == "kept"
    assert not any(elem.tag.is_private for elem in item)


def test_a_dummy_sequence_keeps_no_value():
    ds = Dataset()
    inner = Dataset()
    inner.CodeMeaning = "Jane Roe lives at 1 Main St"
    inner.ReferencedSOPInstanceUID = "1.2.3.4.5"
    inner.add_new(0x00111001, "LO", "private")
    ds.ContentSequence = [inner]
    deid.Deidentifier()(ds)
    item = ds.ContentSequence[0]
    assert item.CodeMeaning == "ANONYMIZED"
    assert item.ReferencedSOPInstanceUID.startswith("2.25.")
    assert 0x00111001 not in item


def test_the_dataset_says_it_was_deidentified():
    ds = _planted_dataset()
    deid.Deidentifier()(ds)
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.DeidentificationMethod == deid.METHOD and len(deid.METHOD) <= 64
    code = ds.DeidentificationMethodCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("113100", "DCM")
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_uids_agree_within_an_ingest_and_differ_across():
    one, other = deid.Deidentifier(), deid.Deidentifier()
    uid = "1.2.840.113619.2.1.2411.1031152382.365.1.736169244"
    assert one.new_uid(uid) == one.new_uid(uid) != other.new_uid(uid)
    assert one.new_uid(uid) != one.new_uid(uid + "1")
    new = UID(one.new_uid(uid))
    assert new.is_valid and len(new) <= 64
    keyed = deid.Deidentifier(key=b"k")
    assert keyed.new_uid(uid) == deid.Deidentifier(key=b"k").new_uid(uid)


def test_series_stay_together_across_files(tmp_path):
    ds_a, ds_b = _planted_dataset(), _planted_dataset()
    ds_b.SOPInstanceUID = "1.2.3.99"
    deidentify = deid.Deidentifier()
    deidentify(ds_a)
    deidentify(ds_b)
    assert ds_a.StudyInstanceUID == ds_b.StudyInstanceUID
    assert ds_a.SOPInstanceUID != ds_b.SOPInstanceUID


def test_burned_in_annotations_are_refused_unless_allowed():
    ds = _planted_dataset()
    ds.BurnedInAnnotation = "YES"
    with pytest.raises(InputError) as caught:
        deid.Deidentifier()(ds, "scan.dcm")
    message = str(caught.value)
    assert message.startswith("scan.dcm: BurnedInAnnotation is YES") and "\n" not in message
    assert ds.PatientName != ""
    report = deid.Deidentifier(allow_burned_in=True)(ds, "scan.dcm")
    assert report.removed > 400 and ds.PatientName == ""
    assert deid.burned_in(ds) == "YES"
    ds.BurnedInAnnotation = "NO"
    assert deid.burned_in(ds) == "NO"
    del ds.BurnedInAnnotation
    assert deid.burned_in(ds) == "absent"


@pytest.mark.parametrize("name", BUNDLED)
def test_pydicom_test_files(name):
    """Real files: no value of an attribute the table names is left (unless a kept attribute
    holds it too, as the manufacturer "TOSHIBA_MEC" holds the institution "TOSHIBA"), no
    private tag stays, and the result is still a dataset pydicom writes and reads."""
    path = DATA / name
    assert path.is_file(), f"pydicom no longer ships {name}"
    with deid.quiet_reading():
        ds = pydicom.dcmread(path, force=True)
        original = [
            text
            for elem in ds.iterall()
            if deid.rule_for(elem.tag) is not None and elem.VR not in ("SQ", "US", "SS", "UL")
            for text in _texts(elem.value)
            if len(text.strip(" \0")) >= 6
        ]
        meta = list(getattr(ds, "file_meta", None) or ())
        kept = [e for e in [*ds.iterall(), *meta] if deid.rule_for(e.tag) is None]
        kept_text = "\n".join(str(e.value) for e in kept)
        deid.Deidentifier()(ds, name)
        data = _bytes(ds)
        again = pydicom.dcmread(io.BytesIO(data), force=True)
    identifying = [t for t in original if not deid.contains_phi(kept_text, [t])]
    assert identifying or "priv_SQ" in name, "nothing identifying to check"
    assert deid.contains_phi(data, identifying) == []
    assert not any(elem.tag.is_private for elem in again.iterall())
    assert again.get("PatientName", "") == "" and again.PatientIdentityRemoved == "YES"


def test_bundled_files_do_carry_identifiers():
    """The check above is not vacuous: CT_small names a patient, dates and UIDs."""
    ds = pydicom.dcmread(DATA / "CT_small.dcm")
    assert str(ds.PatientName) and ds.StudyDate and ds.StudyInstanceUID
    assert any(elem.tag.is_private for elem in ds.iterall())


# --- the PHI finder ----------------------------------------------------------------------------


def test_contains_phi_finds_values_as_they_are_written_elsewhere():
    values = ["DOE^JOHNATHAN", "19730412", "1.2.3.4.5.6789", "PHI-123"]
    assert deid.contains_phi("patient johnathan doe", values) == ["DOE^JOHNATHAN"]
    assert deid.contains_phi("born 1973-04-12", values) == ["19730412"]
    assert deid.contains_phi("born 12/04/1973", values) == ["19730412"]
    assert deid.contains_phi(b"\x00uid=1.2.3.4.5.6789\xff", values) == ["1.2.3.4.5.6789"]
    assert deid.contains_phi("phi-123".encode("utf-16-le"), values) == ["PHI-123"]
    assert deid.contains_phi("nothing to see", values) == []
    assert deid.contains_phi("", values) == []
    assert deid.contains_phi("doe", ["DOE^JOHNATHAN"]) == []


def test_contains_phi_in_large_binary_data():
    import numpy as np

    noise = np.random.default_rng(0).integers(0, 256, 3_000_000, dtype=np.uint8).tobytes()
    values = phantoms.phi_values(2)
    assert deid.contains_phi(noise, values) == []
    at = len(noise) // 2 + 7
    planted = noise[:at] + values[-1].encode() + noise[at:]
    assert deid.contains_phi(planted, values) == [values[-1]]
    edge = noise[: (1 << 20) - 3] + values[0].encode()
    assert deid.contains_phi(edge, values) == [values[0]]


def test_scan_for_phi_reads_compressed_parquet(tmp_path):
    values = ["FAMZZTOPQ^GIVEN", "PHIABCDEF"]
    frame = pd.DataFrame({"note": ["ok", "PHIABCDEF"] * 500, "n": range(1000)})
    frame.to_parquet(tmp_path / "table.parquet", compression="zstd")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "run.log").write_text("patient famzztopq seen\n")
    (tmp_path / "clean.txt").write_text("nothing\n")
    found = deid.scan_for_phi(tmp_path, values)
    assert found == {"logs/run.log": ["FAMZZTOPQ^GIVEN"], "table.parquet": ["PHIABCDEF"]}
