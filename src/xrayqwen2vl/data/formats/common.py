"""Helpers shared by the input readers: lenient decoding that still reports bad bytes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ...fileio import check_regular_file, loads_json
from ..records import InputFileError

_SURROGATE = re.compile("[\udc80-\udcff]")


def read_text(path: str | Path, what: str) -> str:
    """A UTF-8 text file decoded with ``surrogateescape`` so that one record with bad bytes can
    be skipped with a reason instead of failing the whole file (see ``undecodable``)."""
    path = Path(path)
    check_regular_file(path, what)
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.decode("utf-8", errors="surrogateescape")


def undecodable(**fields: str) -> str | None:
    """The reason a record must be skipped when one of its text fields held invalid UTF-8."""
    for name, value in fields.items():
        if isinstance(value, str) and _SURROGATE.search(value):
            return f"undecodable text in {name} (bytes that are not UTF-8)"
    return None


def load_json(path: str | Path, what: str):
    text = read_text(path, what)
    try:
        return loads_json(text, str(path))
    except json.JSONDecodeError as e:
        raise InputFileError(f"{path}: line {e.lineno}, column {e.colno}: not valid JSON ({e.msg})") from None


# The Indiana University collection (Open-i, and its Kaggle, R2Gen and XrayGLM copies): one
# study is one report, numbered n; Open-i names it CXR<n>. Every form keys its studies by that
# number written "CXR<n>", so a study lands in the same split whatever form it was read from.
INDIANA = "indiana"
_REPORT_NUMBER = re.compile(r"(?:CXR)?(\d+)")


def indiana_study(report_id: str) -> str:
    """ "CXR<n>" for a report id that is the Indiana report number (``CXR12``, ``12``, ``CXR012``),
    else "" (the id itself is then the key)."""
    m = _REPORT_NUMBER.fullmatch(report_id.strip())
    return f"CXR{int(m.group(1))}" if m else ""


# Chunk read at a time by ``iter_json_object``; a value longer than this just takes more reads.
_JSON_CHUNK = 1 << 20
_JSON_WS = re.compile(r"[ \t\n\r]*")


def iter_json_object(path: str | Path, what: str):
    """(key, value) for each member of the top-level JSON object in ``path``, read a chunk at a
    time, so memory holds one member, not the file (the ReXGradient metadata is 140k studies).
    Bare ``NaN``/``Infinity`` literals are accepted (as ``json`` does); a file that is not one
    object, or a member cut off, is an InputFileError naming the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: {what} not found")
    decoder = json.JSONDecoder()
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        buf, pos, line, eof = "", 0, 1, False

        def fill() -> bool:
            nonlocal buf, pos, line, eof
            if eof:
                return False
            chunk = f.read(_JSON_CHUNK)
            line += buf.count("\n", 0, pos)
            buf, pos = buf[pos:] + chunk, 0
            eof = not chunk
            return bool(chunk)

        def fail(msg: str):
            at = line + buf.count("\n", 0, pos)
            raise InputFileError(f"{path}: line {at}: {msg}")

        def skip_ws() -> str:
            nonlocal pos
            while True:
                pos = _JSON_WS.match(buf, pos).end()
                if pos < len(buf):
                    return buf[pos]
                if not fill():
                    return ""

        def value():
            nonlocal pos
            while True:
                try:
                    obj, end = decoder.raw_decode(buf, pos)
                except json.JSONDecodeError as e:
                    # a value at the end of the buffer may be cut by the chunk: read on and retry
                    if fill():
                        continue
                    fail(f"not valid JSON ({e.msg})")
                if end == len(buf) and not eof and fill():  # a number may go on in the next chunk
                    continue
                pos = end
                return obj

        fill()
        if buf.startswith("\ufeff"):
            pos = 1
        if skip_ws() != "{":
            fail(f"expected a JSON object ({what})")
        pos += 1
        if skip_ws() == "}":
            return
        while True:
            if skip_ws() != '"':
                fail("expected a member name in double quotes")
            key = value()
            if skip_ws() != ":":
                fail(f"expected ':' after member {key!r}")
            pos += 1
            skip_ws()
            yield key, value()
            c = skip_ws()
            pos += 1
            if c == "}":
                if skip_ws():
                    fail("text after the end of the JSON object")
                return
            if c != ",":
                fail(f"expected ',' or '}}' after member {key!r}" + (" (file cut off?)" if not c else ""))


def text_field(value) -> str:
    """A text field of a JSON or CSV record: "" for null, NaN and other non-strings (the
    collections write a bare NaN where a section is missing)."""
    return value.strip() if isinstance(value, str) else ""
