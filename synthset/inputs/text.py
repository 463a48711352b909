"""Text files in a known encoding: UTF-8, or UTF-16/UTF-32 when a byte-order mark says so.

Anything else (latin-1, cp1252, UTF-16 without a mark) is refused with the byte offset of the
first byte that does not decode, rather than guessed: a guessed encoding silently changes
prompts and category names.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from synthset.errors import InputError

ALLOWED = "UTF-8, or UTF-16/UTF-32 with a byte-order mark"
_CHUNK = 1 << 20
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def bom_encoding(head: bytes) -> str:
    """The codec for a file starting with `head`: the one its byte-order mark names, else
    UTF-8. UTF-32 LE is tested before UTF-16 LE, whose mark is its prefix."""
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    return "utf-8"


def _undecodable(file: str, encoding: str, offset: int, byte: int, line: int | None) -> InputError:
    name = "UTF-8" if encoding.startswith("utf-8") else encoding.upper()
    where = f"byte {offset}" + (f" (line {line})" if line else "")
    return InputError(
        file, f"byte 0x{byte:02X} is not {name}; save the file as {ALLOWED}", where=where
    )


def _nul(file: str, offset: int, line: int) -> InputError:
    return InputError(
        file,
        f"a NUL byte: text files must be {ALLOWED} (is it UTF-16 without a mark, or binary?)",
        where=f"byte {offset} (line {line})",
    )


def decode(data: bytes, file: str) -> str:
    """The text of a whole file's bytes, or an `InputError` naming the first bad byte."""
    encoding = bom_encoding(data[:4])
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        if encoding == "utf-8" and b"\0" in data[: exc.start]:
            raise _nul_in(data, file) from None
        line = data[: exc.start].count(b"\n") + 1 if encoding.startswith("utf-8") else None
        raise _undecodable(file, encoding, exc.start, data[exc.start], line) from None
    if encoding == "utf-8" and b"\0" in data:
        raise _nul_in(data, file)
    return text


def _nul_in(data: bytes, file: str) -> InputError:
    offset = data.index(b"\0")
    return _nul(file, offset, data[:offset].count(b"\n") + 1)


def read_text(path: Path, file: str | None = None) -> str:
    """The decoded text of `path` (see `decode`)."""
    file = file or str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(file, f"cannot be read: {exc.strerror or exc}") from None
    return decode(data, file)


def text_encoding(path: Path, file: str | None = None) -> str:
    """The codec `path` decodes with, checked chunk by chunk (tables may be large).

    Returns a name `open()` and pandas accept; raises `InputError` at the first bad byte.
    """
    file = file or str(path)
    try:
        with path.open("rb") as stream:
            return _check_stream(stream, file)
    except OSError as exc:
        raise InputError(file, f"cannot be read: {exc.strerror or exc}") from None


def _check_stream(stream, file: str) -> str:
    head = stream.read(4)
    encoding = bom_encoding(head)
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    offset, lines, chunk = 0, 1, head + stream.read(_CHUNK - len(head))
    while chunk:
        pending = len(decoder.getstate()[0])
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            bad = offset - pending + exc.start
            data = exc.object
            line = lines + data[: exc.start].count(b"\n") if encoding == "utf-8" else None
            raise _undecodable(file, encoding, bad, data[exc.start], line) from None
        if encoding == "utf-8" and b"\0" in chunk:
            at = chunk.index(b"\0")
            raise _nul(file, offset + at, lines + chunk[:at].count(b"\n"))
        offset += len(chunk)
        lines += chunk.count(b"\n")
        chunk = stream.read(_CHUNK)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise InputError(file, f"ends inside a character; save the file as {ALLOWED}") from None
    return "utf-8-sig" if encoding == "utf-8" else encoding
