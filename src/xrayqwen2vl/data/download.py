"""Fetch and unpack the public Open-i archives over HTTP, resuming interrupted downloads.

Each archive is downloaded to ``OUT/<name>.part`` and renamed to ``OUT/<name>`` once its size
(the server's Content-Length / Content-Range total) and, when known, its SHA-256 match. A rerun
after a dropped connection asks the server for the rest with an HTTP ``Range`` request; a server
that ignores ranges makes it start over. Archives are unpacked through a temporary folder that
is renamed into place, so a half-extracted tree is never mistaken for a finished one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .records import InputFileError

DEFAULT_BASE_URL = "https://openi.nlm.nih.gov/imgs/collections/"
CHUNK = 1 << 16


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
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"{url}: cannot connect ({reason})") from None
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


def extract(archive: Path, out: Path, extract_to: str, result: str) -> int:
    """Unpack ``archive`` so that ``out/result`` appears whole; return the number of files."""
    target = out / result
    if target.exists():
        return sum(1 for p in target.rglob("*") if p.is_file())
    tmp = Path(tempfile.mkdtemp(prefix=f".extract-{result}-", dir=out))
    try:
        dest = tmp / extract_to if extract_to else tmp
        dest.mkdir(parents=True, exist_ok=True)
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(dest, filter="data")  # refuses absolute paths, .., links out
        except (tarfile.TarError, OSError, EOFError) as e:
            raise InputFileError(f"{archive}: cannot unpack ({e})") from None
        produced = tmp / result
        if not produced.is_dir():
            found = ", ".join(sorted(p.name for p in tmp.iterdir())[:5])
            raise InputFileError(
                f"{archive}: expected a folder {result}/ inside, found: {found or 'nothing'}"
            )
        os.replace(produced, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sum(1 for p in target.rglob("*") if p.is_file())


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
    out.mkdir(parents=True, exist_ok=True)
    record_path = out / "download.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
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
        if known and (known["size"], known["sha256"]) != (size, digest):
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
