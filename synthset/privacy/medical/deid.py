"""De-identification of DICOM headers: the DICOM PS3.15 Basic Application Level Confidentiality
Profile (Annex E, Table E.1-1), private attributes removed at every depth, burned-in
annotations refused unless the user overrides.

Which attributes, and what to do with each, come from the standard's table as
dicom-anonymizer (KitwareMedical, BSD) extracts it from the published standard
(`PROFILE_RELEASE`: 655 rows, three of them repeating groups). We use its table, not its
engine: the engine applies the rows to top-level attributes only (a date inside a
functional-group sequence of an enhanced multi-frame image would stay), keeps a process-wide
map of original to random UIDs, and prints tag numbers. The other maintained libraries are
not the profile: dicognito 0.19 replaces a fixed list of about fifty attributes and every
name, UID and date with plausible fakes and keeps private tags; deid 0.4.13's default recipe
is one site's list of name patterns (`endswith:ID`, `contains:UID`). pydicom carries no
profile table.

The table's actions, and what each does here:

- X: removed. Z: emptied (zero length). D: a dummy value of the element's VR.
- U: a new UID, a keyed hash of the original (`Deidentifier.key`): the same original gets
  the same new UID across the files of one ingest, so studies and series stay together, and
  nothing links them to the originals or to another ingest (the key is random by default).
- The compound actions take the choice that keeps any IOD conformant without knowing which
  IOD it is: Z/D → D, X/Z → Z, X/D → D, X/Z/D → D. X/Z/U* (sequences of references to other
  instances) keep their items, cleaned by the table, so the UIDs inside are replaced.
- A sequence the table does not name keeps its items, cleaned by the same table at every
  depth; in a sequence whose action is D every value inside is replaced by a dummy.
- Private attributes are removed wherever they are (the profile's row for them is X; its
  Retain Safe Private option is not offered). An element whose VR is unknown (UN) and whose
  action is D or U is removed: no dummy fits a value nobody can parse.

Afterwards PatientIdentityRemoved = YES, and DeidentificationMethod with its code sequence
(DCM 113100) say what was done. A dataset flagged BurnedInAnnotation = YES is refused before
anything else: the Basic profile does not clean pixel data.

`contains_phi` and `scan_for_phi` find known identifying values in text, bytes and files, so
tests can assert that none of what they planted reaches Parquet, MLflow, Prefect or logs.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import re
import secrets
import uuid
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synthset.errors import InputError
from synthset.privacy.medical import missing_extra

try:
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
except ImportError as exc:  # pragma: no cover - the extra is installed in development
    raise missing_extra("pydicom") from exc

PROFILE_RELEASE = "2026c"
"""The edition of the standard whose Table E.1-1 is applied (dicom-anonymizer's module name)."""

_CATEGORIES = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}
EFFECTIVE = {
    "X": "X",
    "Z": "Z",
    "D": "D",
    "U": "U",
    "Z/D": "D",
    "X/Z": "Z",
    "X/D": "D",
    "X/Z/D": "D",
    "X/Z/U*": "clean",
}
"""What each of the table's actions does here (see the module's docstring)."""

METHOD = f"DICOM PS3.15 Basic Profile ({PROFILE_RELEASE}), private removed"
BASIC_PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")

_TEXT_VRS = {"AE", "CS", "LO", "LT", "SH", "ST", "UC", "UT"}
_BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW"}
_NUMBER_VRS = {"FD", "FL", "SL", "SS", "SV", "UL", "US", "UV", "AT"}
_DUMMY = {
    "PN": "ANONYMOUS",
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000Y",
    "IS": "0",
    "DS": "0",
    "UR": "http://anonymized.invalid",
}


@dataclass(frozen=True)
class Rule:
    """One row of Table E.1-1: the attribute (a repeating group when a mask is not 0xFFFF) and
    the action as the standard writes it (`X`, `Z`, `D`, `U`, `Z/D`, `X/Z`, `X/D`, `X/Z/D`,
    `X/Z/U*`)."""

    tag: int
    action: str
    group_mask: int = 0xFFFF
    element_mask: int = 0xFFFF

    @property
    def effective(self) -> str:
        return EFFECTIVE[self.action]

    @property
    def repeating(self) -> bool:
        return (self.group_mask, self.element_mask) != (0xFFFF, 0xFFFF)

    def matches(self, tag: int) -> bool:
        group, element = tag >> 16, tag & 0xFFFF
        return (group & self.group_mask) == ((self.tag >> 16) & self.group_mask) and (
            element & self.element_mask
        ) == ((self.tag & 0xFFFF) & self.element_mask)

    @property
    def name(self) -> str:
        """The keyword, or the tag as the standard prints it (`(60xx,4000)`)."""
        if not self.repeating:
            keyword = pydicom.datadict.keyword_for_tag(self.tag)
            return keyword or f"({self.tag >> 16:04X},{self.tag & 0xFFFF:04X})"
        group = f"{self.tag >> 16:04X}"[:2] + "xx"
        element = f"{self.tag & 0xFFFF:04X}" if self.element_mask else "xxxx"
        return f"({group},{element})"


@functools.cache
def profile_rules() -> tuple[Rule, ...]:
    """Every row of the profile's table, in the order the table module lists them."""
    try:
        from dicomanonymizer.dicom_anonymization_databases import dicomfields_2026c as table
    except ImportError as exc:
        raise missing_extra("dicom-anonymizer") from exc
    rules = []
    for category, action in _CATEGORIES.items():
        for entry in getattr(table, category):
            group, element, *masks = entry
            rules.append(Rule((group << 16) | element, action, *masks))
    return tuple(rules)


@functools.cache
def _lookup() -> tuple[dict[int, Rule], tuple[Rule, ...]]:
    rules = profile_rules()
    return {r.tag: r for r in rules if not r.repeating}, tuple(r for r in rules if r.repeating)


def rule_for(tag: int) -> Rule | None:
    """The profile's row for `tag`, None when the profile keeps the attribute."""
    exact, repeating = _lookup()
    rule = exact.get(int(tag))
    if rule is None:
        rule = next((r for r in repeating if r.matches(int(tag))), None)
    return rule


@dataclass
class DeidReport:
    """What de-identification did to one dataset: counts only, never a value."""

    removed: int = 0
    emptied: int = 0
    replaced: int = 0
    uids: int = 0
    private: int = 0
    actions: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict[str, int]:
        return {
            "removed": self.removed,
            "emptied": self.emptied,
            "replaced": self.replaced,
            "uids": self.uids,
            "private": self.private,
        }


def burned_in(ds: Dataset) -> str:
    """`YES`, `NO` or `absent`: what the dataset says of text burned into its pixels."""
    value = ds.get("BurnedInAnnotation")
    if value is None or not str(value).strip():
        return "absent"
    return "YES" if str(value).strip().upper() == "YES" else "NO"


def check_burned_in(ds: Dataset, file: str, allow: bool = False) -> str:
    """Refuse a dataset flagged BurnedInAnnotation = YES unless `allow`; returns the flag."""
    flag = burned_in(ds)
    if flag == "YES" and not allow:
        raise InputError(
            file,
            "BurnedInAnnotation is YES: identifying text may be burned into the pixels, which "
            "the Basic profile does not clean; refused (allow_burned_in / --allow-burned-in "
            "only once the pixels are known to be clean)",
        )
    return flag


class Deidentifier:
    """Applies the profile to datasets in place; one instance per ingest, so that UIDs and
    patient keys agree across its files.

    `key` keys the hashes behind new UIDs and patient keys; random unless given (give one
    only to reproduce an ingest: with it, a UID or patient ID can be tested against them).
    """

    def __init__(self, key: bytes | None = None, allow_burned_in: bool = False):
        self.key = key if key is not None else secrets.token_bytes(32)
        self.allow_burned_in = allow_burned_in

    def _digest(self, kind: str, value: str) -> bytes:
        return hmac.new(self.key, f"{kind}\0{value}".encode(), hashlib.sha256).digest()

    def new_uid(self, uid: str) -> str:
        """A UID derived from `uid` and the key: `2.25.` and a UUID (version 8, from the hash)."""
        digest = bytearray(self._digest("uid", str(uid).strip("\0 "))[:16])
        digest[6] = (digest[6] & 0x0F) | 0x80
        digest[8] = (digest[8] & 0x3F) | 0x80
        return f"2.25.{uuid.UUID(bytes=bytes(digest)).int}"

    def patient_key(self, ds: Dataset) -> str | None:
        """A pseudonym of the patient (from PatientID, else PatientName) to keep one patient's
        images on one side of a split; read it before de-identifying."""
        for keyword in ("PatientID", "PatientName"):
            value = ds.get(keyword)
            if value is not None and str(value).strip():
                return "P" + self._digest("patient", str(value).strip()).hex()[:12]
        return None

    def __call__(self, ds: Dataset, file: str = "") -> DeidReport:
        """De-identify `ds` (and its file meta) in place; refuses burned-in annotations."""
        check_burned_in(ds, file, self.allow_burned_in)
        report = DeidReport()
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            self._clean(meta, report)
        self._clean(ds, report)
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = METHOD
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = BASIC_PROFILE_CODE
        ds.DeidentificationMethodCodeSequence = Sequence([code])
        ds.LongitudinalTemporalInformationModified = "REMOVED"
        return report

    def _clean(self, ds: Dataset, report: DeidReport) -> None:
        for tag in list(ds.keys()):
            if tag.is_private:
                del ds[tag]
                report.private += 1
                continue
            rule = rule_for(tag)
            try:
                elem = ds[tag]
            except Exception:  # an element pydicom cannot parse is never kept
                del ds[tag]
                report.removed += 1
                continue
            if rule is None:
                if elem.VR == "SQ":
                    for item in elem.value or ():
                        self._clean(item, report)
                continue
            report.actions[rule.action] += 1
            self._apply(ds, elem, rule.effective, report)

    def _apply(self, ds: Dataset, elem, action: str, report: DeidReport) -> None:
        if action == "X" or (elem.VR == "UN" and action in ("D", "U")):
            del ds[elem.tag]
            report.removed += 1
        elif action == "Z":
            elem.value = _empty(elem.VR)
            report.emptied += 1
        elif action == "clean" and elem.VR == "SQ":
            for item in elem.value or ():
                self._clean(item, report)
        else:
            self._replace(elem, report)

    def _replace(self, elem, report: DeidReport) -> None:
        if elem.VR == "UI":
            values = list(elem.value) if elem.VM > 1 else [elem.value]
            new = [self.new_uid(v) for v in values if v] or [self.new_uid("")]
            elem.value = new if len(new) > 1 else new[0]
            report.uids += 1
        elif elem.VR == "SQ":
            for item in elem.value or ():
                self._dummy_item(item, report)
        else:
            elem.value = _dummy(elem.VR)
            report.replaced += 1

    def _dummy_item(self, ds: Dataset, report: DeidReport) -> None:
        for tag in list(ds.keys()):
            elem = ds[tag]
            if tag.is_private:
                del ds[tag]
                report.private += 1
            elif elem.VR == "UN":
                del ds[tag]
                report.removed += 1
            else:
                self._replace(elem, report)


def _empty(vr: str):
    if vr == "SQ":
        return Sequence([])
    if vr in _BINARY_VRS or vr == "UN":
        return b""
    if vr in _NUMBER_VRS:
        return None
    return ""


def _dummy(vr: str):
    if vr in _DUMMY:
        return _DUMMY[vr]
    if vr in _TEXT_VRS:
        return "ANONYMIZED"
    if vr in _BINARY_VRS:
        return b"\0" * 8
    if vr in _NUMBER_VRS:
        return 0
    raise ValueError(f"no dummy value for VR {vr}")  # pragma: no cover - every VR is listed


@contextlib.contextmanager
def quiet_reading() -> Iterator[None]:
    """pydicom with value validation off and its warnings silenced: both quote the value
    they object to, which may be a name or a date, into logs."""
    settings = pydicom.config.settings
    mode = settings.reading_validation_mode
    settings.reading_validation_mode = pydicom.config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        settings.reading_validation_mode = mode


# --- finding PHI in outputs ----------------------------------------------------------------

_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})")
_MIN_PART = 4


def _variants(value: str) -> set[str]:
    """`value` and the other ways it may be written: a person name's components (of four
    characters or more) on their own, a date as ISO or with slashes."""
    value = value.strip().strip("\0")
    out = {value} if value else set()
    if "^" in value or "=" in value:
        out |= {p.strip() for p in re.split(r"[\^=]", value) if len(p.strip()) >= _MIN_PART}
    match = _DATE.match(value)
    if match and 1 <= int(match[2]) <= 12 and 1 <= int(match[3]) <= 31:
        y, m, d = match.groups()
        out |= {f"{y}-{m}-{d}", f"{y}/{m}/{d}", f"{d}/{m}/{y}", f"{m}/{d}/{y}"}
    return out


class PhiMatcher:
    """Finds any of a set of identifying values in bytes, fast enough for image archives and
    reports: each value's variants (`_variants`), in UTF-8, Latin-1 and UTF-16 with ASCII case
    folded, are found by a rolling hash of their first `PREFIX` bytes (one numpy pass over the
    data, one more per length of shorter needles), every candidate confirmed byte for byte."""

    PREFIX = 8
    _CHUNK = 1 << 20

    def __init__(self, phi_values: Iterable[str | bytes]):
        texts = (v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in phi_values)
        self.values: list[str] = list(dict.fromkeys(texts))
        self.owners: dict[bytes, set[int]] = {}
        for i, text in enumerate(self.values):
            for variant in _variants(text):
                for encoding in ("utf-8", "latin-1", "utf-16-le"):
                    with contextlib.suppress(UnicodeEncodeError):
                        self.owners.setdefault(variant.encode(encoding).lower(), set()).add(i)
        starts: dict[int, dict[bytes, list[bytes]]] = {}
        for needle in self.owners:
            length = min(len(needle), self.PREFIX)
            starts.setdefault(length, {}).setdefault(needle[:length], []).append(needle)
        bits = int(np.clip(np.ceil(np.log2(max(len(self.owners), 1) * 64)), 10, 22))
        self.shift = np.uint64(64 - bits)
        self.starts = {n: (_filter(list(g), n, bits), g) for n, g in starts.items()}
        self.longest = max(map(len, self.owners), default=1)
        self._powers = self._inverse = np.ones(0, np.uint64)

    def find(self, text_or_bytes: str | bytes) -> list[str]:
        """The values found in `text_or_bytes`, in the order they were given."""
        if isinstance(text_or_bytes, str):
            data = text_or_bytes.encode("utf-8")
        else:
            data = bytes(text_or_bytes)
        data = data.lower()
        hits: set[int] = set()
        for start in range(0, max(len(data), 1), self._CHUNK):
            chunk = data[start : start + self._CHUNK + self.longest - 1]
            for needle in self._search(chunk):
                hits |= self.owners[needle]
        return [self.values[i] for i in sorted(hits)]

    def _search(self, data: bytes) -> set[bytes]:
        if not data:
            return set()
        arr = np.frombuffer(data, np.uint8).astype(np.uint64)
        if len(self._powers) < len(arr):
            self._powers, self._inverse = _powers(_BASE, len(arr)), _powers(_INVERSE, len(arr))
        prefix = np.concatenate([[np.uint64(0)], np.cumsum(arr * self._powers[: len(arr)])])
        found = set()
        for length, (table, groups) in self.starts.items():
            if length > len(arr):
                continue
            rolled = (prefix[length:] - prefix[:-length]) * self._inverse[: len(arr) - length + 1]
            for at in np.flatnonzero(table[rolled >> self.shift]):
                for needle in groups.get(data[at : at + length], ()):
                    if data.startswith(needle, at):
                        found.add(needle)
        return found


_BASE = 1_000_003
_INVERSE = pow(_BASE, -1, 1 << 64)


def _powers(base: int, n: int) -> np.ndarray:
    """base**0 … base**(n-1) modulo 2**64 (numpy's uint64 products wrap)."""
    factors = np.full(n, base, np.uint64)
    factors[:1] = 1
    return np.cumprod(factors, dtype=np.uint64)


def _filter(keys: list[bytes], length: int, bits: int) -> np.ndarray:
    """A bitmap of the top `bits` bits of the rolling hashes of equally long `keys`: a
    position whose hash misses it holds none of them; a hit is confirmed by its bytes."""
    rows = np.frombuffer(b"".join(keys), np.uint8).astype(np.uint64).reshape(-1, length)
    hashes = (rows * _powers(_BASE, length)).sum(axis=1, dtype=np.uint64)
    table = np.zeros(1 << bits, bool)
    table[hashes >> np.uint64(64 - bits)] = True
    return table


def contains_phi(text_or_bytes: str | bytes, phi_values: Iterable[str | bytes]) -> list[str]:
    """The values of `phi_values` found in `text_or_bytes`, in their order (ASCII case
    ignored; text as UTF-8, values also in Latin-1 and UTF-16; person names by component,
    dates also as ISO and with slashes). For many texts, build one `PhiMatcher`."""
    return PhiMatcher(phi_values).find(text_or_bytes)


def scan_for_phi(path: str | Path, phi_values: Iterable[str | bytes]) -> dict[str, list[str]]:
    """`contains_phi` over a file or every file under a folder, by relative path; only files
    with a finding are listed. Parquet files are also read as tables (their pages may be
    compressed), their schema metadata included."""
    path, matcher = Path(path), PhiMatcher(phi_values)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    out = {}
    for file in files:
        found = matcher.find(file.read_bytes())
        if file.suffix == ".parquet":
            found += [v for v in matcher.find(_parquet_text(file)) if v not in found]
        if found:
            out[file.relative_to(path).as_posix() if file != path else file.name] = found
    return out


def _parquet_text(file: Path) -> str:
    import pyarrow.parquet as pq

    table = pq.read_table(file)
    metadata = table.schema.metadata or {}
    meta = " ".join(f"{k!r}={v!r}" for k, v in metadata.items())
    return table.to_pandas().to_csv() + str(table.schema) + meta
