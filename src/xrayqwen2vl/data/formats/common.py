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
