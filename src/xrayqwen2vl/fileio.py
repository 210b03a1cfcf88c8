"""Atomic file writes: a temporary file in the target folder, then a rename.

The file gets the mode any new file gets (``0o666`` less the process umask), as ``open(path, "w")``
would give it: ``tempfile.mkstemp`` creates its file ``0o600``, which the rename would keep.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path


def _umask() -> int:
    """The process umask. Reading it means setting it: set a restrictive one meanwhile, so a file
    another thread creates in that instant is private rather than world-writable."""
    old = os.umask(0o077)
    os.umask(old)
    return old


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def dump_json(obj) -> str:
    """Stable JSON text: sorted keys where dicts are, UTF-8 kept, 2-space indent, final newline."""
    return json.dumps(obj, ensure_ascii=False, indent=2) + "\n"


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, dump_json(obj))


# A spreadsheet opening a CSV runs a cell that starts with one of these as a formula (fullwidth
# forms too, in some locales); tab and carriage return start the same attacks.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def spreadsheet_safe(cell: str) -> str:
    """A text cell for a CSV that people open in a spreadsheet: one that would start a formula
    is prefixed with an apostrophe (shown as text, not run); plain numbers stay as they are."""
    if cell.startswith(_FORMULA_STARTS) and not _NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


class AtomicJsonList:
    """A JSON array written one element at a time to a temporary file beside ``path``, so a list
    of any length never sits in memory; ``commit`` renames it into place (the text is exactly what
    ``dump_json`` gives for the whole list), ``discard`` removes it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self.file = os.fdopen(fd, "w", encoding="utf-8")
        os.fchmod(fd, 0o666 & ~_umask())
        self.count = 0

    def append(self, obj) -> None:
        text = json.dumps(obj, ensure_ascii=False, indent=2).replace("\n", "\n  ")
        self.file.write(("[\n  " if self.count == 0 else ",\n  ") + text)
        self.count += 1

    def commit(self) -> None:
        self.file.write("\n]\n" if self.count else "[]\n")
        self.file.close()
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        self.file.close()
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)
