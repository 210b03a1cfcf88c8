"""Reader for the Kaggle copy of IU X-ray: ``indiana_reports.csv`` + ``indiana_projections.csv``.

Reports are keyed by ``uid``; the projections file gives each image file and whether it is
``Frontal`` or ``Lateral``, so views are taken from it rather than guessed. Image files sit
directly in the images folder (``images_normalized`` in the Kaggle download).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from ..records import ImageRef, InputFileError, Report, Skipped, UnusedImage
from .common import read_text, undecodable

REPORT_COLUMNS = ("uid", "findings", "impression")
PROJECTION_COLUMNS = ("uid", "filename", "projection")
VIEWS = {"frontal": "frontal", "lateral": "lateral"}


def _rows(path: Path, required: tuple[str, ...], what: str) -> Iterator[tuple[int, dict]]:
    """(line number, row) for each CSV row; a one-line error naming the file and line when the
    file is not the expected CSV."""
    text = read_text(path, what)
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames or []
    except csv.Error as e:
        raise InputFileError(f"{path}: line 1: malformed CSV header ({e})") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise InputFileError(
            f"{path}: line 1: missing column(s) {', '.join(missing)} (header: {','.join(header)})"
        )
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise InputFileError(f"{path}: line {reader.line_num}: malformed CSV ({e})") from None
        if None in row:  # more fields than the header
            raise InputFileError(
                f"{path}: line {line}: {len(header) + len(row[None])} fields, header has {len(header)}"
            )
        yield line, row


def count_reports(reports_csv: str | Path) -> int:
    return sum(1 for _ in _rows(Path(reports_csv), REPORT_COLUMNS, "reports CSV"))


def read_kaggle(
    reports_csv: str | Path, projections_csv: str | Path
) -> Iterator[Report | Skipped | UnusedImage]:
    reports_csv, projections_csv = Path(reports_csv), Path(projections_csv)
    images: dict[str, list[ImageRef]] = {}
    for line, row in _rows(projections_csv, PROJECTION_COLUMNS, "projections CSV"):
        uid = (row["uid"] or "").strip()
        filename = (row["filename"] or "").strip()
        if not uid or not filename:
            raise InputFileError(f"{projections_csv}: line {line}: empty uid or filename")
        view = VIEWS.get((row["projection"] or "").strip().lower())
        images.setdefault(uid, []).append(ImageRef(id=filename, relpath=filename, view=view))
    seen: set[str] = set()
    for line, row in _rows(reports_csv, REPORT_COLUMNS, "reports CSV"):
        source = f"{reports_csv.name}:{line}"
        uid = (row["uid"] or "").strip()
        if not uid:
            yield Skipped(id=f"line {line}", source=source, reason="empty uid")
            continue
        bad = undecodable(findings=row["findings"], impression=row["impression"], uid=uid)
        if bad:
            yield Skipped(id=uid, source=source, reason=bad)
            continue
        seen.add(uid)
        refs = images.get(uid, [])
        # A projection other than Frontal/Lateral leaves every view of the report to be guessed.
        if any(r.view is None for r in refs):
            refs = [ImageRef(r.id, r.relpath, None) for r in refs]
        yield Report(
            id=uid,
            source=source,
            findings=row["findings"] or "",
            impression=row["impression"] or "",
            images=refs,
        )
    for uid in sorted(set(images) - seen, key=lambda u: (len(u), u)):
        for ref in images[uid]:
            yield UnusedImage(report=uid, image=ref.id, reason=f"uid {uid} has no row in {reports_csv.name}")
