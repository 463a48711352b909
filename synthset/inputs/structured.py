"""YAML and JSON within limits: what a config file may hold, refused at the first excess.

Limits exist because each one, left open, lets a few bytes cost minutes or gigabytes: deep
nesting exhausts the interpreter's stack, an integer of thousands of digits cannot be turned
back into text, and YAML aliases multiply (nine aliases nine levels deep are 387 million
values). A mapping that repeats a key is refused too: YAML and JSON would keep the last one
silently, so a second `count:` would quietly win.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

from synthset.errors import InputError
from synthset.inputs.text import read_text

MAX_DEPTH = 64
"""Levels of nested mappings and lists."""
MAX_INT_DIGITS = 64
MAX_ALIAS_VALUES = 10_000
"""Values that aliases may add to a document beyond those written out."""


class _Excess(ValueError):
    """A limit was passed while decoding JSON (the decoder does not give positions)."""

    def __init__(self, message: str, needle: str | None = None):
        super().__init__(message)
        self.needle = needle


_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser when PyYAML was built with it: the pure-Python scanner spends seconds on
a hundred kilobytes of flow collections."""


def _first_alias(text: str) -> yaml.Mark | None:
    """Walk the document's events (no values are built): refuse nesting deeper than
    `MAX_DEPTH`, and return where the first alias is, if any."""
    depth, first = 0, None
    for event in yaml.parse(text, Loader=_FAST_LOADER):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep", event.start_mark
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent) and first is None:
            first = event.start_mark
    return first


class _LimitedLoader(_FAST_LOADER):  # type: ignore[misc, valid-type]
    """YAML's safe loader with the limits of this module; `alias` is where the document's
    first alias is (from `_first_alias`), None when it has none."""

    alias: yaml.Mark | None = None

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        if self.alias is not None:
            _check_expansion(node, self.alias)
        return self.construct_document(node)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as exc:
            problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConstructorError(None, None, problem, node.start_mark) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
            except TypeError:
                raise ConstructorError(
                    None,
                    None,
                    "a key must be a plain value, not a list or mapping",
                    key_node.start_mark,
                ) from None
            if repeated:
                raise ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_bounded_int(self, node: yaml.ScalarNode) -> int:
        digits = len(re.sub(r"[^0-9a-fA-F]", "", str(node.value)))
        if digits > MAX_INT_DIGITS:
            raise ConstructorError(None, None, _too_many_digits(digits), node.start_mark)
        return super().construct_yaml_int(node)


_LimitedLoader.add_constructor("tag:yaml.org,2002:int", _LimitedLoader.construct_bounded_int)


def _too_many_digits(digits: int) -> str:
    return f"an integer of {digits} digits; at most {MAX_INT_DIGITS} are allowed"


def _check_expansion(root: yaml.Node, mark: yaml.Mark) -> None:
    """Refuse a document whose aliases stand for too many values or for themselves."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise ComposerError(None, None, "an alias refers to a value that contains it", mark)
        open_nodes.add(key)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        total = 1 + sum(size(child) for child in children)
        open_nodes.discard(key)
        sizes[key] = total
        return total

    if size(root) > len(sizes) + MAX_ALIAS_VALUES:
        raise ComposerError(
            None,
            None,
            f"aliases expand to more than {MAX_ALIAS_VALUES:,} further values (an alias "
            "bomb?); write the values out or alias less",
            mark,
        )


def _line_of(text: str, needle: str | None) -> str | None:
    at = text.find(needle) if needle else -1
    return f"line {text.count(chr(10), 0, at) + 1}" if at >= 0 else None


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Excess(f"duplicate key {key!r}", json.dumps(key))
        out[key] = value
    return out


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Excess(_too_many_digits(len(text.lstrip("-"))), text[:80])
    return int(text)


def depth_exceeded(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether lists and mappings in `value` nest more than `limit` levels deep."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def _too_deep(file: str, kind: str, where: str | None) -> InputError:
    return InputError(file, f"invalid {kind}: nested more than {MAX_DEPTH} levels deep", where)


def load_json(text: str, file: str, where: str | None = None) -> Any:
    """Parse JSON within the limits; `where` names the place of `text` in its file (a line of
    a JSONL file), else the error names the line in `text`."""
    try:
        value = json.loads(text, object_pairs_hook=_unique_pairs, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        where = where or f"line {exc.lineno}"
        raise InputError(file, f"invalid JSON: {exc.msg}", where=where) from None
    except _Excess as exc:
        where = where or _line_of(text, exc.needle)
        raise InputError(file, f"invalid JSON: {exc}", where=where) from None
    except RecursionError:
        raise _too_deep(file, "JSON", where) from None
    if depth_exceeded(value):
        raise _too_deep(file, "JSON", where)
    return value


def load_yaml(text: str, file: str) -> Any:
    """Parse one YAML document within the limits (safe tags only)."""
    try:
        loader = _LimitedLoader(text)
        try:
            loader.alias = _first_alias(text)
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(file, f"invalid YAML: {problem}", where=where) from None
    except RecursionError:
        raise _too_deep(file, "YAML", None) from None


def read_structured(path: Path, file: str | None = None) -> Any:
    """A YAML or JSON file (by suffix: `.json` is JSON, anything else YAML) as Python values."""
    file = file or str(path)
    text = read_text(path, file)
    return load_json(text, file) if path.suffix.lower() == ".json" else load_yaml(text, file)
