"""Fetch and unpack the public Open-i archives over HTTP, resuming interrupted downloads.

Each archive is downloaded to ``OUT/<name>.part`` and renamed to ``OUT/<name>`` once its size
(the server's Content-Length / Content-Range total) and, when known, its SHA-256 match. A rerun
after a dropped connection asks the server for the rest with an HTTP ``Range`` request; a server
that ignores ranges, or answers from another offset than asked (its Content-Range says where),
makes it start over. Archives are unpacked through a temporary folder that is renamed into place,
so a half-extracted tree is never mistaken for a finished one.

Unpacking trusts nothing in the archive (doc/security.md): it does not rely on ``tarfile``'s
extraction filters, which some Python versions do not enforce (CVE-2025-4517 and relatives on
3.11 before 3.11.13). Every member is checked and written by this module: symbolic and hard
links, devices and FIFOs are refused (the Open-i archives hold files and folders only), a name
that is absolute or whose normalised path leaves the folder is refused, and the declared sizes
and the number of members are capped (an archive bomb is refused before it fills the disk).
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..fileio import check_regular_file, loads_json, quoted
from .records import InputFileError

DEFAULT_BASE_URL = "https://openi.nlm.nih.gov/imgs/collections/"
CHUNK = 1 << 16
# Caps on what one archive may unpack to. Open-i's report archive (about 1 MB) unpacks to a few
# tens of MB, its PNG archive (about 1.4 GB) to about as much again, in fewer than 8,000 files.
MAX_RATIO = 100  # unpacked bytes per archive byte (gzip can reach about 1,000)
MIN_CAP = 64 << 20  # small archives may always unpack to this much
MAX_UNPACKED = 8 << 30  # and no archive to more than this
MAX_MEMBERS = 100_000
# Extended headers (GNU long name / long link, PAX records) are read whole into memory by
# tarfile before the member they describe is seen: their size is capped before it reads them.
# A real one holds a path of a few hundred bytes; tests lower the cap.
MAX_HEADER = 64 << 10


@dataclass(frozen=True)
class Archive:
    name: str  # file name on the server
    extract_to: str  # folder under OUT the members go to ("" = OUT itself)
    result: str  # folder the extraction must produce
    sha256: str | None = None  # published checksum, when there is one
    size: int | None = None  # published size in bytes, when there is one


# Open-i publishes no checksums for these archives; sizes and checksums are checked against the
# server's headers and recorded in OUT/download.json so later runs can verify the files.
ARCHIVES = {
    "reports": Archive("NLMCXR_reports.tgz", "", "ecgen-radiology"),
    "images": Archive("NLMCXR_png.tgz", "NLMCXR_png", "NLMCXR_png"),
}


class DownloadError(RuntimeError):
    pass


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _total_from(resp, offset: int) -> int | None:
    cr = resp.headers.get("Content-Range")
    if cr and "/" in cr:
        total = cr.rsplit("/", 1)[1]
        return int(total) if total.isdigit() else None
    cl = resp.headers.get("Content-Length")
    return int(cl) + offset if cl and cl.isdigit() else None


def _range_start(resp) -> int | None:
    """Where the body of a 206 reply starts (its Content-Range), None when it does not say."""
    m = re.fullmatch(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", (resp.headers.get("Content-Range") or "").strip())
    return int(m[1]) if m else None


def fetch(
    url: str, dest: Path, expected_size: int | None = None, timeout: float = 60, progress: bool = True
) -> int:
    """Download ``url`` to ``dest`` via ``dest.part``, resuming what a previous run left.
    Returns the size. Raises DownloadError on a dropped connection (the part file stays)."""
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "xrayqwen2vl-download"})
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to send: the part file is complete
            total = _total_from(e, 0)
            if total is None or total == offset:
                os.replace(part, dest)
                return offset
            part.unlink()  # not the size the server reports: not a prefix of its file
            return fetch(url, dest, expected_size, timeout, progress)
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"{url}: cannot connect ({reason})") from None
    if resp.status == 206 and _range_start(resp) != offset:
        # A part from elsewhere than asked (or not saying where): appending it would corrupt the
        # file and grow it past its size. Start again from byte 0, without a Range.
        resp.close()
        if not offset:
            raise DownloadError(
                f"{url}: HTTP 206 for a whole-file request (Content-Range {resp.headers.get('Content-Range')!r})"
            )
        part.unlink()
        return fetch(url, dest, expected_size, timeout, progress)
    with resp:
        if offset and resp.status != 206:
            offset = 0  # the server ignored the range: start again
        total = _total_from(resp, offset)
        if expected_size is not None and total is not None and total != expected_size:
            raise DownloadError(f"{url}: server reports {total} bytes, expected {expected_size}")
        mode = "ab" if offset else "wb"
        got = offset
        bar = tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, desc=dest.name, disable=not progress
        )
        try:
            with open(part, mode) as f:
                while True:
                    try:
                        block = resp.read(CHUNK)
                    except (OSError, ValueError) as e:
                        raise DownloadError(
                            f"{url}: connection dropped after {got} of {total or '?'} bytes ({e}); rerun to resume"
                        ) from None
                    if not block:
                        break
                    f.write(block)
                    got += len(block)
                    bar.update(len(block))
        finally:
            bar.close()
    if total is not None and got != total:
        raise DownloadError(f"{url}: connection dropped after {got} of {total} bytes; rerun to resume")
    if expected_size is not None and got != expected_size:
        raise DownloadError(f"{url}: got {got} bytes, expected {expected_size}")
    os.replace(part, dest)
    return got


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


def unpack_cap(archive_size: int) -> int:
    """The most bytes an archive of ``archive_size`` bytes may unpack to."""
    return min(MAX_UNPACKED, max(MIN_CAP, MAX_RATIO * archive_size))


class _HeaderTooLarge(Exception):
    def __init__(self, kind: str, size: int, offset: int):
        super().__init__(kind, size, offset)
        self.kind, self.size, self.offset = kind, size, offset


_EXTENDED = {
    tarfile.GNUTYPE_LONGNAME: "GNU long-name",
    tarfile.GNUTYPE_LONGLINK: "GNU long-link",
    tarfile.XHDTYPE: "PAX",
    tarfile.XGLTYPE: "PAX global",
    tarfile.SOLARIS_XHDTYPE: "PAX (Solaris)",
}


class _CappedTarInfo(tarfile.TarInfo):
    """A TarInfo whose extended headers are refused when they declare more than ``MAX_HEADER``
    bytes, before tarfile reads them (it reads them whole, so the size must be checked first)."""

    def _proc_member(self, tarfile):
        kind = _EXTENDED.get(self.type)
        if kind is not None and self.size > MAX_HEADER:
            raise _HeaderTooLarge(kind, self.size, self.offset)
        return super()._proc_member(tarfile)


def _member_path(archive: Path, member: tarfile.TarInfo) -> str:
    """The member's normalised relative path, or InputFileError when it must not be unpacked."""
    name = member.name
    where = f"{archive}: member {quoted(name)}"
    if member.issym() or member.islnk():
        kind = "symbolic" if member.issym() else "hard"
        raise InputFileError(
            f"{where} is a {kind} link (to {quoted(member.linkname)}); links are refused, "
            "the Open-i archives hold files and folders only"
        )
    if not (member.isreg() or member.isdir()):
        raise InputFileError(f"{where} is a device, FIFO or other special file; refused")
    norm = posixpath.normpath(name)
    if posixpath.isabs(norm) or norm == ".." or norm.startswith("../"):
        raise InputFileError(f"{where} would be written outside the folder it is unpacked to; refused")
    if norm == "." and not member.isdir():
        raise InputFileError(f"{where}: a file without a name; refused")
    return norm


def _unpack(archive: Path, dest: Path, cap: int, max_members: int) -> None:
    """Write the files and folders of ``archive`` under ``dest`` (an empty folder), one member
    at a time, checking each before anything of it is written."""
    try:
        _unpack_members(archive, dest, cap, max_members)
    except _HeaderTooLarge as e:
        raise InputFileError(
            f"{archive}: a {e.kind} extended header at byte {e.offset} declares {e.size:,} bytes, more "
            f"than {MAX_HEADER:,}; refused (a real one holds a path or a few attributes)"
        ) from None


def _unpack_members(archive: Path, dest: Path, cap: int, max_members: int) -> None:
    total = count = 0
    with tarfile.open(archive, tarinfo=_CappedTarInfo) as tar:
        for member in tar:
            count += 1
            if count > max_members:
                raise InputFileError(f"{archive}: more than {max_members} members; refused")
            rel = _member_path(archive, member)
            total += member.size
            if total > cap:
                raise InputFileError(
                    f"{archive}: unpacks to more than {_mib(cap)} (member {quoted(member.name)} declares "
                    f"{_mib(member.size)}); refused as a possible archive bomb (cap: {MAX_RATIO} times "
                    f"the archive's size, at least {_mib(MIN_CAP)}, at most {_mib(MAX_UNPACKED)})"
                )
            target = dest.joinpath(*rel.split("/")) if rel != "." else dest
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            # O_EXCL: a second member of the same name is refused, never written over the first.
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as out, tar.extractfile(member) as src:
                shutil.copyfileobj(src, out, CHUNK)


def extract(
    archive: Path,
    out: Path,
    extract_to: str,
    result: str,
    cap: int | None = None,
    max_members: int = MAX_MEMBERS,
) -> int:
    """Unpack ``archive`` so that ``out/result`` appears whole; return the number of files.

    Links, special files and members leaving the folder are refused, as are archives unpacking
    to more than ``cap`` bytes (default: ``unpack_cap`` of the archive's size) or holding more
    than ``max_members`` members; InputFileError names the archive and the member."""
    target = out / result
    if target.exists():
        return sum(1 for p in target.rglob("*") if p.is_file())
    if cap is None:
        cap = unpack_cap(archive.stat().st_size)
    tmp = Path(tempfile.mkdtemp(prefix=f".extract-{result}-", dir=out))
    try:
        dest = tmp / extract_to if extract_to else tmp
        dest.mkdir(parents=True, exist_ok=True)
        try:
            _unpack(archive, dest, cap, max_members)
        except (tarfile.TarError, OSError, EOFError) as e:
            raise InputFileError(f"{archive}: cannot unpack ({quoted(str(e))})") from None
        produced = tmp / result
        if not produced.is_dir():
            found = ", ".join(quoted(n, 60) for n in sorted(p.name for p in tmp.iterdir())[:5])
            raise InputFileError(
                f"{archive}: expected a folder {result}/ inside, found: {found or 'nothing'}"
            )
        os.replace(produced, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sum(1 for p in target.rglob("*") if p.is_file())


def _read_record(path: Path) -> dict:
    """``OUT/download.json`` of an earlier run: {archive name: {"size": int, "sha256": hex, …}}.
    An entry without a size or a SHA-256 cannot vouch for its file: the file is then refused
    below unless it matches, which it cannot, so say so here, naming the file and the entry."""
    if not path.exists():
        return {}
    check_regular_file(path, "download record")
    try:
        record = loads_json(path.read_bytes(), str(path))
    except json.JSONDecodeError as e:
        raise InputFileError(f"{path}: line {e.lineno}, column {e.colno}: not valid JSON ({e.msg})") from None
    if not isinstance(record, dict):
        raise InputFileError(f"{path}: expected a JSON object (archive name: size and SHA-256)")
    for name, entry in record.items():
        ok = isinstance(entry, dict) and isinstance(entry.get("size"), int)
        if not ok or not isinstance(entry.get("sha256"), str):
            raise InputFileError(
                f"{path}: entry {quoted(name)}: expected an object with an integer size and a sha256 "
                "text; delete the file (and the archives) to start again"
            )
    return record


def download(
    out: str | Path,
    base_url: str = DEFAULT_BASE_URL,
    which: tuple[str, ...] = ("reports", "images"),
    retries: int = 3,
    backoff: float = 2.0,
    do_extract: bool = True,
    progress: bool = True,
    timeout: float = 60,
) -> dict:
    """Fetch (with resume and retries), verify and unpack the chosen archives; return a record
    that is also written to ``OUT/download.json``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DownloadError(f"{out}: exists and is not a folder (--out must be a folder)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"{out}: cannot create the folder ({e.strerror or type(e).__name__})") from None
    record_path = out / "download.json"
    record = _read_record(record_path)
    for key in which:
        arc = ARCHIVES[key]
        url = base_url.rstrip("/") + "/" + arc.name
        dest = out / arc.name
        if not dest.exists():
            for attempt in range(retries + 1):
                try:
                    fetch(url, dest, arc.size, timeout=timeout, progress=progress)
                    break
                except DownloadError:
                    if attempt == retries:
                        raise
                    time.sleep(backoff * 2**attempt)
        size, digest = dest.stat().st_size, _sha256(dest)
        if arc.sha256 and digest != arc.sha256:
            raise DownloadError(f"{dest}: SHA-256 {digest} does not match the published {arc.sha256}")
        known = record.get(arc.name)
        if known and (known.get("size"), known.get("sha256")) != (size, digest):
            raise DownloadError(
                f"{dest}: differs from the file recorded in {record_path}; delete it to fetch again"
            )
        entry = {"url": url, "size": size, "sha256": digest}
        if do_extract:
            entry["files"] = extract(dest, out, arc.extract_to, arc.result)
            entry["folder"] = arc.result
        record[arc.name] = entry
        tmp = record_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, record_path)
    return record


# ---------------------------------------------------------------- split zstd archives
#
# ReXGradient-160K ships its images as ``deid_png.part00``, ``deid_png.part01``, …: one
# zstd-compressed tar cut into pieces (the dataset card's plain ``tar -xf`` does not read it).
# Python 3.11's tarfile has no zstd, so the pieces are joined and decompressed (the
# ``zstandard`` package) into one temporary tar beside the output, which ``extract`` then
# unpacks under the same rules as any archive; the temporary tar is removed afterwards.

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# The members of one split archive (ReXGradient: about 273k images and their folders).
MAX_SPLIT_MEMBERS = 2_000_000
_PART = re.compile(r"(?P<stem>.+)\.part(?P<n>\d+)$")


def split_parts(first: str | Path) -> list[Path]:
    """Every ``STEM.partNN`` beside ``first`` (one of them, or ``STEM.part*``'s stem), in number
    order; an InputFileError when none is there or a number is missing."""
    first = Path(first)
    m = _PART.fullmatch(first.name)
    stem = m.group("stem") if m else first.name.removesuffix(".part*")
    found = {}
    for p in first.parent.glob(f"{glob_escape(stem)}.part*"):
        pm = _PART.fullmatch(p.name)
        if pm and p.is_file():
            found[int(pm.group("n"))] = p
    if not found:
        raise InputFileError(f"{first.parent / stem}.part*: no parts found")
    numbers = sorted(found)
    gaps = [n for n in range(numbers[0], numbers[-1] + 1) if n not in found]
    if gaps:
        raise InputFileError(
            f"{first.parent / stem}.part*: part {gaps[0]} is missing ({len(found)} parts found)"
        )
    return [found[n] for n in numbers]


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def join_zstd_parts(parts: list[Path], dest: Path, progress: bool = False) -> int:
    """The parts, in order, decompressed into ``dest`` (a tar); returns its size. A part that is
    not zstd, corrupt data or a stream cut short is an InputFileError naming the part."""
    import zstandard

    with open(parts[0], "rb") as f:
        if f.read(4) != ZSTD_MAGIC:
            raise InputFileError(f"{parts[0]}: not zstd data (expected the zstd magic number 28 b5 2f fd)")
    total = sum(p.stat().st_size for p in parts)
    bar = tqdm(total=total, unit="B", unit_scale=True, desc="zstd", disable=not progress)
    tmp = dest.with_name(dest.name + ".part")
    written = 0
    dobj = zstandard.ZstdDecompressor().decompressobj()
    in_frame = False  # data fed to the current frame and its end not seen yet
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    for chunk in iter(lambda f=f: f.read(CHUNK * 16), b""):
                        bar.update(len(chunk))
                        while chunk:
                            try:
                                data = dobj.decompress(chunk)
                            except zstandard.ZstdError as e:
                                raise InputFileError(f"{part}: corrupt zstd data ({e})") from None
                            in_frame = True
                            out.write(data)
                            written += len(data)
                            chunk = b""
                            if dobj.eof:  # a new frame may follow (pzstd writes several)
                                chunk = dobj.unused_data
                                dobj = zstandard.ZstdDecompressor().decompressobj()
                                in_frame = False
        if in_frame:
            raise InputFileError(f"{parts[-1]}: the zstd stream is cut short (a part missing or incomplete?)")
        os.replace(tmp, dest)
    finally:
        bar.close()
        tmp.unlink(missing_ok=True)
    return written


def extract_zstd_parts(
    first: str | Path, out: str | Path, result: str = "deid_png", progress: bool = True
) -> dict:
    """Join, decompress and unpack a split zstd tar (``deid_png.part*``) so that ``out/result``
    appears whole, through ``extract`` (links, special files, members leaving the folder refused;
    the unpacked size capped at the tar's own size, the members at MAX_SPLIT_MEMBERS)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parts = split_parts(first)
    tar = out / f".{result}.tar"
    try:
        size = join_zstd_parts(parts, tar, progress)
        files = extract(tar, out, "", result, cap=size, max_members=MAX_SPLIT_MEMBERS)
    finally:
        tar.unlink(missing_ok=True)
    return {"parts": [p.name for p in parts], "tar_bytes": size, "files": files, "folder": result}
