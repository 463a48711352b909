"""Combinatorial prompts: a template with named vocabularies expands into ordinary items.

```yaml
templates:
  - template: "a {colour} {digit} on a {background} background"
    vocabularies: {colour: [red, green], digit: {three: 3, seven: 7}, background: [white]}
    expand: product        # product | sample (`combinations` of the product, seeded) | zip
    count: 4               # images per combination; or count_total, spread evenly
```

Each combination is one item: its prompt is the template with the slots filled, its metadata
the slot values (a list value is its own label; in a mapping vocabulary `{text: label}` the
text goes into the prompt and the label into the column, and `{text: {key: value}}` adds the
columns `slot.key`) next to the template's own `metadata`. So planning, sample ids, top-ups
and curation see nothing new, and the same template always gives the same items: a
combination's seed depends on the template's `seed` and its own values only, not on its
position, so adding a value to a vocabulary keeps the images of the others.

Sizes are counted from the vocabularies before anything is expanded (`size`), so a product of
many large vocabularies is refused by `max_images` without being built; a sample is drawn by
Floyd's algorithm over combination numbers with a sha256-based draw, the same on every
Python.
"""

from __future__ import annotations

import hashlib
import math
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from synthset.errors import ManifestError, describe_validation, format_loc
from synthset.labels import BUILTIN_COLUMNS, check_keys

Scalar = str | int | float | bool
SEED_SPACE = 2**31


class Template(BaseModel):
    """One template of a manifest's `templates` list."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(min_length=1)
    vocabularies: dict[str, Any]
    expand: Literal["product", "sample", "zip"] = "product"
    combinations: int | None = Field(None, ge=1)
    count: int | None = Field(None, ge=1, le=1_000_000)
    count_total: int | None = Field(None, ge=1)
    seed: int | None = Field(None, ge=0, lt=SEED_SPACE)
    negative_prompt: str = ""
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    conditions: dict[str, Any] | None = None

    @field_validator("vocabularies")
    @classmethod
    def _vocabularies(cls, value: dict[str, Any]) -> dict[str, Any]:
        """A list of values (text, numbers, booleans), or a mapping from the text put into the
        prompt to its label (a value) or to its own columns (a mapping)."""
        for name, vocabulary in value.items():
            if isinstance(vocabulary, dict):
                pairs = vocabulary.items()
                allowed = "a value (its label) or a mapping (its columns)"
            elif isinstance(vocabulary, list):
                pairs = enumerate(vocabulary)
                allowed = "text, a number or a boolean"
            else:
                raise ValueError(
                    f"vocabulary {name!r} must be a list of values or a mapping "
                    f"{{text: label}}, not {type(vocabulary).__name__}"
                )
            for key, item in pairs:
                if not isinstance(key, Scalar):
                    raise ValueError(f"vocabulary {name!r}: the key {key!r} is not text")
                mapping = isinstance(vocabulary, dict) and isinstance(item, dict)
                if not isinstance(item, Scalar) and not mapping:
                    at = f"entry {key}" if isinstance(vocabulary, list) else repr(key)
                    raise ValueError(
                        f"vocabulary {name!r}, {at}: {type(item).__name__} is not {allowed}"
                    )
        return value

    @field_validator("tags", mode="before")
    @classmethod
    def _split_tags(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [t.strip() for t in value.split(";") if t.strip()]
        return value


@dataclass(frozen=True)
class Combination:
    """One expanded combination: the item's prompt, seed (None: derived from its content) and
    metadata (its slots' labels and columns, then the template's own)."""

    prompt: str
    seed: int | None
    metadata: dict[str, Any]


def where(index: int, raw: Any) -> str:
    """`templates[2] ('a {colour} {digit} on a …')`: a template named by index and text."""
    text = raw.get("template") if isinstance(raw, dict) else getattr(raw, "template", None)
    if not isinstance(text, str):
        return f"templates[{index}]"
    return f"templates[{index}] ({text[:48] + '…' if len(text) > 48 else text!r})"


def check_raw(raw: Any, file: str) -> None:
    """Validate each entry of a manifest's raw `templates` list on its own, so that an error
    names the template's text as well as its index."""
    if not isinstance(raw, list):
        return
    for i, entry in enumerate(raw):
        try:
            Template.model_validate(entry)
        except ValidationError as exc:
            loc, message = describe_validation(
                exc, lambda loc: list(Template.model_fields) if not loc else []
            )
            field = str(loc.pop()) if loc and not isinstance(loc[-1], int) else None
            parts = [where(i, entry), format_loc(loc)]
            raise ManifestError(
                file, message, where=", ".join(p for p in parts if p), field=field
            ) from None


class Expansion:
    """A checked template: its slots in order, each slot's (text, labels) values, and how many
    combinations and images it makes."""

    def __init__(self, template: Template, index: int, file: str):
        self.t, self.file, self.where = template, file, where(index, template)
        self.parts = self._parse()
        self.slots = list(dict.fromkeys(slot for _, slot in self.parts if slot is not None))
        self.values = {slot: self._values(slot) for slot in self.slots}
        self.size = self._size()
        self.count = self._count()

    def fail(self, message: str, field: str | None = None) -> ManifestError:
        return ManifestError(self.file, message, where=self.where, field=field)

    def _parse(self) -> list[tuple[str, str | None]]:
        try:
            parsed = list(string.Formatter().parse(self.t.template))
        except ValueError as exc:
            raise self.fail(
                f"{exc}; a slot is {{name}}, a literal brace is written {{{{ or }}}}", "template"
            ) from None
        parts = []
        for literal, slot, spec, conversion in parsed:
            if slot is not None and (not slot.isidentifier() or spec or conversion):
                shown = "{" + slot + (f"!{conversion}" if conversion else "")
                shown += (f":{spec}" if spec else "") + "}"
                raise self.fail(
                    f"slot {shown} must be a plain name like {{colour}} (no index, "
                    "attribute, format or conversion)",
                    "template",
                )
            parts.append((literal, slot))
        if not any(slot for _, slot in parts):
            raise self.fail("the template has no {slot}; write one, or use an item", "template")
        unused = [name for name in self.t.vocabularies if name not in set(s for _, s in parts)]
        if unused:
            raise self.fail(
                f"vocabulary {unused[0]!r} is not a slot of the template; slots: "
                + ", ".join(dict.fromkeys(s for _, s in parts if s)),
                f"vocabularies.{unused[0]}",
            )
        return parts

    def _values(self, slot: str) -> list[tuple[str, dict[str, Any]]]:
        """(text for the prompt, metadata columns) of each value of `slot`'s vocabulary."""
        if slot not in self.t.vocabularies:
            given = ", ".join(self.t.vocabularies) or "none"
            raise self.fail(
                f"slot {{{slot}}} has no vocabulary; vocabularies given: {given}",
                f"vocabularies.{slot}",
            )
        vocabulary = self.t.vocabularies[slot]
        field = f"vocabularies.{slot}"
        if not vocabulary:
            raise self.fail(f"the vocabulary of slot {{{slot}}} is empty", field)
        values: list[tuple[str, dict[str, Any]]] = []
        if isinstance(vocabulary, dict):
            for key, label in vocabulary.items():
                text = _text(key)
                if isinstance(label, dict):
                    if any(not str(k).strip() for k in label):
                        raise self.fail(f"a key under {text!r} is blank", field)
                    columns = {f"{slot}.{k}": v for k, v in label.items()}
                    values.append((text, {slot: text, **columns}))
                else:
                    values.append((text, {slot: label}))
        else:
            values = [(_text(value), {slot: value}) for value in vocabulary]
        if self.t.expand != "zip":
            texts = [text for text, _ in values]
            repeated = next((t for i, t in enumerate(texts) if t in texts[:i]), None)
            if repeated is not None:
                raise self.fail(
                    f"the value {repeated!r} appears twice in the vocabulary of slot {{{slot}}}",
                    field,
                )
        return values

    def _size(self) -> int:
        lengths = {slot: len(values) for slot, values in self.values.items()}
        if self.t.expand == "zip":
            if len(set(lengths.values())) > 1:
                shown = ", ".join(f"{slot} {n}" for slot, n in lengths.items())
                raise self.fail(
                    f"expand: zip needs vocabularies of one length; lengths: {shown}",
                    "vocabularies",
                )
            size = next(iter(lengths.values()))
            seen: set[tuple[str, ...]] = set()
            columns = ([t for t, _ in v] for v in self.values.values())
            for n, row in enumerate(zip(*columns, strict=True)):
                if row in seen:
                    raise self.fail(
                        f"combination {n + 1} ({', '.join(row)}) repeats an earlier one",
                        "vocabularies",
                    )
                seen.add(row)
            return size
        product = math.prod(lengths.values())
        if self.t.expand == "product":
            if self.t.combinations is not None:
                raise self.fail("combinations is for expand: sample", "combinations")
            return product
        if self.t.combinations is None:
            raise self.fail("expand: sample needs combinations (how many to draw)", "combinations")
        if self.t.combinations > product:
            raise self.fail(
                f"combinations ({self.t.combinations:,}) is larger than the product of the "
                f"vocabularies ({product:,}); use expand: product or sample fewer",
                "combinations",
            )
        return self.t.combinations

    def _count(self) -> int:
        t = self.t
        if t.count is not None and t.count_total is not None:
            raise self.fail("give count (per combination) or count_total, not both", "count_total")
        if t.count_total is None:
            return t.count or 1
        if t.count_total < self.size:
            raise self.fail(
                f"count_total ({t.count_total:,}) is less than the number of combinations "
                f"({self.size:,}); every combination needs an image",
                "count_total",
            )
        if t.count_total % self.size:
            lower = t.count_total // self.size * self.size
            hint = f"{lower:,} or {lower + self.size:,}" if lower else f"{self.size:,}"
            raise self.fail(
                f"count_total ({t.count_total:,}) does not divide evenly over {self.size:,} "
                f"combinations; use a multiple of {self.size:,} ({hint}) or count",
                "count_total",
            )
        if t.count_total // self.size > 1_000_000:
            raise self.fail("more than 1,000,000 images per combination", "count_total")
        return t.count_total // self.size

    @property
    def images(self) -> int:
        return self.size * self.count

    def numbers(self) -> Iterator[int]:
        """The combination numbers to make (mixed radix over the slots, last slot fastest)."""
        if self.t.expand == "sample":
            product = math.prod(len(v) for v in self.values.values())
            yield from _sample(product, self.size, self.t.seed or 0)
        else:
            yield from range(self.size)

    def combination(self, number: int) -> Combination:
        """The item of combination `number`: its prompt, seed and metadata."""
        picks: dict[str, tuple[str, dict[str, Any]]] = {}
        if self.t.expand == "zip":
            picks = {slot: values[number] for slot, values in self.values.items()}
        else:
            for slot in reversed(self.slots):
                number, digit = divmod(number, len(self.values[slot]))
                picks[slot] = self.values[slot][digit]
        texts = {slot: picks[slot][0] for slot in self.slots}
        prompt = "".join(literal + (texts[s] if s else "") for literal, s in self.parts)
        if not prompt:
            shown = ", ".join(f"{slot}={text!r}" for slot, text in texts.items())
            raise self.fail(f"the combination {shown} gives an empty prompt", "template")
        metadata: dict[str, Any] = {}
        for slot in self.slots:
            metadata.update(picks[slot][1])
        metadata.update(self.t.metadata)
        seed = None if self.t.seed is None else _seed(self.t.seed, texts)
        return Combination(prompt, seed, metadata)

    def check_labels(self, reserved: tuple[str, ...] = ()) -> None:
        """The columns the combinations will have can be written: no slot named like a
        built-in column (or one of `reserved`), no template metadata key taking a slot's
        column, no blank or built-in key in a mapping vocabulary."""
        taken = BUILTIN_COLUMNS.union(reserved)
        for slot in self.slots:
            if slot in taken:
                raise self.fail(
                    f"slot {{{slot}}} would be a label column named like the built-in column "
                    f"{slot!r}; rename the slot",
                    "template",
                )
        for key in self.t.metadata:
            head = str(key).partition(".")[0]
            if head in self.values:
                raise self.fail(
                    f"metadata key {key!r} would overwrite the column of slot {{{head}}}; "
                    "rename one of them",
                    f"metadata.{key}",
                )
        check_keys(self.t.metadata, self.file, self.where, reserved)
        for slot, values in self.values.items():
            for _, columns in values:
                check_keys(columns, self.file, f"{self.where}, vocabularies.{slot}", reserved)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _seed(seed: int, texts: dict[str, str]) -> int:
    """A combination's first seed: a hash of the template's seed and the combination's values
    (not its position, so other combinations coming or going leave it alone)."""
    key = "\x1f".join([str(seed), *(f"{slot}={texts[slot]}" for slot in sorted(texts))])
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % SEED_SPACE


def _below(n: int, seed: int, counter: int) -> int:
    digest = hashlib.sha512(f"synthset-sample:{seed}:{counter}".encode()).digest()
    return int.from_bytes(digest, "big") % n


def _sample(population: int, k: int, seed: int) -> list[int]:
    """`k` distinct numbers below `population`, uniformly, in increasing order (Floyd)."""
    chosen: set[int] = set()
    for j in range(population - k, population):
        t = _below(j + 1, seed, j)
        chosen.add(j if t in chosen else t)
    return sorted(chosen)
