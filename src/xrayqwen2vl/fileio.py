"""Atomic file writes (a temporary file in the target folder, then a rename), and the checks every
command makes on the paths it is given (doc/security.md): the one output guard, the one
regular-file check, plain dataset names, the output folder, JSON that names its file.

A written file gets the mode any new file gets (``0o666`` less the process umask), as
``open(path, "w")`` would give it: ``tempfile.mkstemp`` creates its file ``0o600``, which the
rename would keep.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import sys
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


# ---------------------------------------------------------------- hostile inputs (doc/security.md)


class InputFileError(ValueError):
    """A malformed or refused input; the message names the file and the line or element.
    (Defined here, on the ground floor, so the shared checks below can raise it; data.records
    re-exports it, where the readers import it from.)"""


# Names taken from an input (an archive member, a dataset key, a record id) are quoted in messages
# cut to this many characters: a 300 MiB name must not become a 300 MiB error line.
MAX_QUOTED = 120


def quoted(name: str, limit: int = MAX_QUOTED) -> str:
    """``repr(name)``, cut to about ``limit`` characters (the length of the whole is said)."""
    name = str(name)
    if len(name) <= limit:
        return repr(name)
    return f"{name[:limit]!r}… ({len(name):,} characters)"


def check_regular_file(
    path: str | Path,
    what: str = "file",
    allow_empty: bool = True,
    missing: str | None = None,
    shown: str | None = None,
) -> None:
    """InputFileError unless ``path`` is a regular file (``allow_empty`` False: and not empty);
    decided from its metadata, so a FIFO, a device or a folder is never opened (opening a FIFO
    waits for a writer, for ever). Every reader of a user path checks it through here first.
    ``shown``: how messages name the file (default: the path)."""
    p = Path(path) if shown is None else shown
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputFileError(f"{p}: {missing or what + ' not found'}") from None
    except (OSError, ValueError) as e:  # a NUL byte, a name too long, a symlink loop
        raise InputFileError(
            f"{p}: cannot be read ({getattr(e, 'strerror', None) or type(e).__name__})"
        ) from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO, socket or device"
        raise InputFileError(f"{p}: not a regular file ({kind}); give {_article(what)}")
    if not allow_empty and st.st_size == 0:
        raise InputFileError(f"{p}: {what} is empty (0 bytes)")


def _article(what: str) -> str:
    return ("an " if what[:1] in "aeiou" else "a ") + what


def open_regular_file(path: str | Path) -> int:
    """A read-only descriptor of ``path`` when it is a regular file, for readers that open
    first and look after (one system call fewer per file, at collection scale): the open never
    waits (``O_NONBLOCK``: a FIFO would wait for a writer) and anything but a regular file is
    closed again and refused with the words of ``check_regular_file``. OSError as ``os.open``."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode):
        return fd
    os.close(fd)
    kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO, socket or device"
    raise InputFileError(f"{path}: not a regular file ({kind})")


def is_regular_file(path: str | Path) -> bool:
    """``check_regular_file`` as a test: True for a regular file (a FIFO is never opened)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return os.path.realpath(a) == os.path.realpath(b)


def refuse_output_over_inputs(
    outputs: dict[str, str | Path],
    inputs: dict[str, str | Path | None],
    folders: dict[str, str | Path] | None = None,
) -> None:
    """The one output guard: InputFileError when an output file would replace an input, or an
    output folder a command fills (``folders``) holds an input. ``outputs`` and ``folders`` map
    what the file is (its flag, or ``OUT/manifest.json``) to the path; ``inputs`` map the input's
    flag to its path (None: not given). Paths are compared resolved (links, ``..``), and as the
    same file (hard links) where both exist; called before anything is written. Values that are
    not paths (a form's flags, e.g. ``--with-context``) are no inputs and are passed over."""
    given = {k: Path(v) for k, v in inputs.items() if isinstance(v, str | os.PathLike) and str(v) != ""}
    for name, out in outputs.items():
        for flag, src in given.items():
            if _same_file(Path(out), src):
                raise InputFileError(
                    f"{out}: the output {name} is the input {flag} ({src}); choose another output"
                )
    for name, folder in (folders or {}).items():
        inside = os.path.realpath(folder) + os.sep
        for flag, src in given.items():
            if os.path.realpath(src).startswith(inside):
                raise InputFileError(
                    f"{src}: the input {flag} is inside {folder}, which this command writes ({name}); "
                    "choose another output"
                )


def loads_json(text: str | bytes, where: str):
    """``json.loads`` for input files. ``json.JSONDecodeError`` passes through (each reader words
    its line and column); what ``json`` raises besides (RecursionError for arrays nested
    thousands deep, ValueError for an integer over Python's 4,300-digit limit) becomes one
    InputFileError naming ``where`` (the file, and the line or record when known)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise InputFileError(f"{where}: JSON nested too deeply to read; refused") from None
    except ValueError as e:
        if "digits" in str(e):
            raise InputFileError(
                f"{where}: a JSON number with more than {sys.get_int_max_str_digits()} digits; refused"
            ) from None
        raise InputFileError(f"{where}: not valid JSON ({str(e)[:200]})") from None


# A dataset name becomes file names inside an output folder (NAME_train.json, NAME_swapped.json):
# no separators, no leading dot, and short enough that every file name made from it fits the
# 255 bytes a file system allows.
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_NAME = 100
NAME_MAX = 255  # bytes in one file name (Linux, macOS)


def check_plain_name(name: str, what: str) -> None:
    """InputFileError unless ``name`` is a plain dataset name (see ``PLAIN_NAME``); ``what``
    says where it came from (``--name``, ``--split (a key of data/dataset_info.json)``)."""
    if not isinstance(name, str) or not PLAIN_NAME.fullmatch(name):
        raise InputFileError(
            f"{what} {quoted(name)}: use letters, digits, '.', '_' and '-' (not first): "
            "it names files inside the output folder"
        )
    if len(name) > MAX_NAME:
        raise InputFileError(f"{what} {quoted(name, 40)}: longer than {MAX_NAME} characters")


def make_output_folder(out: str | Path) -> bool:
    """Create the output folder ``out`` if needed; True when this call created it. One line
    naming it when it is a file or cannot be made (a name too long, no permission)."""
    out = Path(out)
    try:
        try:
            created = not stat.S_ISDIR(os.stat(out).st_mode)
            if created:
                raise InputFileError(
                    f"{quoted(str(out))}: exists and is not a folder (--out must be a folder)"
                )
        except FileNotFoundError:
            created = True
            if any(len(os.fsencode(part)) > NAME_MAX for part in out.parts):  # before any parent is made
                raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG)) from None
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputFileError(
            f"{quoted(str(out))}: cannot create the output folder ({e.strerror or type(e).__name__})"
        ) from None
    return created
