"""User metadata as typed columns of `metadata.parquet`: labels a training loop reads without
parsing JSON.

Each item's `metadata` (inline, `metadata.*` columns of items files, template slots) becomes
one column per key. Nested mappings are flattened with dots (`{"a": {"b": 1}}` → `a.b`).
A column's type is decided over every row of a version (kept and rejected together), so it
does not depend on what curation kept:

- booleans, integers (int64), floats and strings stay what they are; a list whose elements
  are of one such type is a list column;
- integers and floats in one column (or list) widen to float;
- any other mix (a string and a number, a bool and an int, a list and a scalar), an integer
  beyond int64, a list of lists or mappings, or another value, makes the column text: strings
  as they are, other values as their JSON text (`3`, `true`, `[1, 2]`);
- a row without the key (or with null) holds a missing value; int and bool columns with a
  missing value are pandas' nullable `Int64` and `boolean`, floats hold NaN.

A key may not be the name of a built-in column (`prompt`, `seed`, `clip_score`, ...); that is
refused when the manifest is loaded (`check_keys`), naming the item and the key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from synthset.errors import ManifestError, SynthsetError

BUILTIN_COLUMNS = frozenset(
    {
        # a request's row (synthset.shards.request_row), the shard writer and the generator
        "sample_id", "file_name", "file_sha256", "prompt", "negative_prompt", "seed", "tags",
        "metadata", "condition_image", "condition_mask", "condition_control", "item_index",
        "index", "created_at", "status", "error", "generator", "model", "pipeline",
        "scheduler", "steps", "guidance", "width", "height", "diversity",
        # scores (synthset.curation.config.SCORE_COLUMNS) and decisions
        "clip_score", "pixel_hash", "phash", "brightness", "contrast", "sharpness", "entropy",
        "blank", "clip_tags", "clip_tag_scores", "decode_error", "reject_reason", "detail",
        "dup_of", "dup_tier", "dup_version",
        # what pull adds: pandas' image paths, torch's tensors and condition masks
        "image_path", "image", "has_condition_image", "has_condition_mask",
        "has_condition_control",
    }
)  # fmt: skip
"""Columns synthset writes or adds itself; a metadata key may not take one of these names."""

_INT64 = (-(2**63), 2**63 - 1)
_SCALARS = ("bool", "int", "float", "str")


def _walk(metadata: Mapping[Any, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in metadata.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _walk(value, name + ".")
        elif not isinstance(value, Mapping):
            yield name, value


def flatten(metadata: Mapping[Any, Any]) -> dict[str, Any]:
    """`{"a": {"b": 1}, "c": 2}` → `{"a.b": 1, "c": 2}`; an empty mapping has no column."""
    return dict(_walk(metadata))


def check_keys(
    metadata: Mapping[Any, Any],
    file: str,
    where: str | None,
    reserved: Iterable[str] = (),
) -> None:
    """Refuse metadata whose columns cannot be written: a blank key, a key that names a built-in
    column (or one of `reserved`: the manifest's scorer columns), or two keys flattening to one
    column name (`a.b` next to `a: {b: ...}`)."""
    taken = BUILTIN_COLUMNS.union(reserved)
    if _has_blank_key(metadata):
        raise ManifestError(file, "a metadata key is blank", where=where, field="metadata")
    seen: set[str] = set()
    for name, _ in _walk(metadata):
        field = f"metadata.{name}"
        if name in taken:
            raise ManifestError(
                file,
                f"metadata key {name!r} is the name of a built-in column of metadata.parquet; "
                "rename it",
                where=where,
                field=field,
            )
        if name in seen:
            raise ManifestError(
                file,
                f"metadata keys give the column {name!r} twice (a dotted key and a nested "
                "one); keep one",
                where=where,
                field=field,
            )
        seen.add(name)


def _has_blank_key(metadata: Mapping[Any, Any]) -> bool:
    return any(
        not str(key).strip() or (isinstance(value, Mapping) and _has_blank_key(value))
        for key, value in metadata.items()
    )


def _kind(value: Any) -> str | None:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, int | np.integer):
        return "int" if _INT64[0] <= value <= _INT64[1] else "text"
    if isinstance(value, float | np.floating):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list | tuple):
        inner = _unify(_kind(v) for v in value)
        return f"list:{inner or ''}" if inner in (*_SCALARS, None) else "text"
    return "text"


def _unify(kinds: Iterable[str | None]) -> str | None:
    found = {k for k in kinds if k is not None}
    if len(found) <= 1:
        return next(iter(found), None)
    if found == {"int", "float"}:
        return "float"
    if all(k.startswith("list:") for k in found):
        inner = _unify(k.removeprefix("list:") or None for k in found)
        return f"list:{inner or ''}" if inner in (*_SCALARS, None) else "text"
    return "text"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _column(values: Sequence[Any], kind: str | None, nullable: bool) -> Any:
    """The values of one label column as a pandas array of its type."""
    if kind == "bool":
        return pd.array(values, dtype="boolean") if nullable else np.array(values, dtype=bool)
    if kind == "int":
        return pd.array(values, dtype="Int64") if nullable else np.array(values, dtype=np.int64)
    if kind == "float":
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        if v is None:
            out[i] = None
        elif kind == "list:float":
            out[i] = [None if x is None else float(x) for x in v]
        elif kind is not None and kind.startswith("list:"):
            out[i] = list(v)
        else:
            out[i] = _text(v)
    return out


def _parsed(text: Any) -> dict[str, Any]:
    if isinstance(text, Mapping):
        return flatten(text)
    if not isinstance(text, str) or not text:
        return {}
    value = json.loads(text)
    return flatten(value) if isinstance(value, Mapping) else {}


def label_columns(
    frames: Sequence[pd.DataFrame], source: str = "metadata"
) -> tuple[list[pd.DataFrame], dict[str, str]]:
    """`frames` with their `source` column (each row's metadata as JSON text, as shards store
    it) replaced by one typed column per key, typed over all frames together; also returns
    `{column: type}` (`bool`, `int`, `float`, `string`, `list<...>`) in column order.

    Raises `SynthsetError` when a key names a column the rows already have (a generator's own
    setting column, say): a manifest is checked for the built-in ones when it is loaded.
    """
    cache: dict[Any, dict[str, Any]] = {}
    rows: list[list[dict[str, Any]]] = []
    for frame in frames:
        texts = frame[source].tolist() if source in frame else [None] * len(frame)
        rows.append([cache[t] if t in cache else cache.setdefault(t, _parsed(t)) for t in texts])
    names: dict[str, None] = {}
    for parsed in cache.values():
        names.update(dict.fromkeys(parsed))
    kinds = {n: _unify(_kind(p.get(n)) for p in cache.values()) for n in names}
    nullable = {n: any(p.get(n) is None for p in cache.values()) for n in names}
    out = []
    for frame, frame_rows in zip(frames, rows, strict=True):
        clash = next((n for n in names if n in frame.columns and n != source), None)
        if clash is not None:
            raise SynthsetError(
                f"metadata key {clash!r} names a column the generated rows already have; "
                "rename it in the manifest"
            )
        columns = {n: _column([p.get(n) for p in frame_rows], kinds[n], nullable[n]) for n in names}
        labelled = frame.drop(columns=[source]) if source in frame else frame
        out.append(pd.concat([labelled, pd.DataFrame(columns, index=frame.index)], axis=1))
    return out, {n: _type_name(kinds[n]) for n in names}


def _type_name(kind: str | None) -> str:
    if kind is None or kind in ("str", "text"):
        return "string"
    if kind.startswith("list:"):
        return f"list<{_type_name(kind.removeprefix('list:') or None)}>"
    return kind
