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
from .common import INDIANA, indiana_study, read_text, undecodable
from .registry import InputForm

REPORT_COLUMNS = ("uid", "findings", "impression")
PROJECTION_COLUMNS = ("uid", "filename", "projection")
VIEWS = {"frontal": "frontal", "lateral": "lateral"}


CUT_OFF = "row cut off: the file ends inside it, with no line break after it (a truncated file?)"


def _rows(path: Path, required: tuple[str, ...], what: str) -> Iterator[tuple[int, dict, bool]]:
    """(line number, row, cut) for each CSV row; ``cut`` marks a last row the file ends inside
    (no line break after it), whose last field may be cut short. A one-line error naming the file
    and line when the file is not the expected CSV: a row with more or fewer fields than the
    header (other than a cut last row), or a quoted field left open at the end."""
    text = read_text(path, what)
    unterminated = bool(text) and not text.endswith(("\n", "\r"))
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
    held: tuple[int, dict] | None = None  # one row of look-ahead: only the last one can be cut
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            hint = ": the file ends inside a quoted field (cut off?)" if "end of data" in str(e) else ""
            raise InputFileError(f"{path}: line {line}: malformed CSV ({e}){hint}") from None
        if held is not None:
            yield _whole(path, *held, len(header))
        held = (line, row)
    if held is not None:
        yield (*held, True) if unterminated else _whole(path, *held, len(header))


def _whole(path: Path, line: int, row: dict, n_header: int) -> tuple[int, dict, bool]:
    """A row that must have exactly the header's fields."""
    if None in row:  # more fields than the header
        raise InputFileError(
            f"{path}: line {line}: {n_header + len(row[None])} fields, header has {n_header}"
        )
    if None in row.values():  # fewer
        n = sum(v is not None for v in row.values())
        raise InputFileError(f"{path}: line {line}: {n} fields, header has {n_header}")
    return line, row, False


def count_reports(reports_csv: str | Path) -> int:
    return sum(1 for _ in _rows(Path(reports_csv), REPORT_COLUMNS, "reports CSV"))


def read_kaggle(
    reports_csv: str | Path, projections_csv: str | Path
) -> Iterator[Report | Skipped | UnusedImage]:
    reports_csv, projections_csv = Path(reports_csv), Path(projections_csv)
    images: dict[str, list[ImageRef]] = {}
    cut_images: list[UnusedImage] = []
    for line, row, cut in _rows(projections_csv, PROJECTION_COLUMNS, "projections CSV"):
        uid = (row["uid"] or "").strip()
        filename = (row["filename"] or "").strip()
        if cut:
            cut_images.append(UnusedImage(uid, filename, f"{projections_csv.name}:{line}: {CUT_OFF}"))
            continue
        if not uid or not filename:
            raise InputFileError(f"{projections_csv}: line {line}: empty uid or filename")
        view = VIEWS.get((row["projection"] or "").strip().lower())
        images.setdefault(uid, []).append(ImageRef(id=filename, relpath=filename, view=view))
    seen: set[str] = set()
    for line, row, cut in _rows(reports_csv, REPORT_COLUMNS, "reports CSV"):
        source = f"{reports_csv.name}:{line}"
        uid = (row["uid"] or "").strip()
        if cut or not uid:
            seen.add(uid)
            yield Skipped(id=uid or f"line {line}", source=source, reason=CUT_OFF if cut else "empty uid")
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
            study=indiana_study(uid),
        )
    for uid in sorted(set(images) - seen, key=lambda u: (len(u), u)):
        for ref in images[uid]:
            yield UnusedImage(report=uid, image=ref.id, reason=f"uid {uid} has no row in {reports_csv.name}")
    yield from cut_images


FORM = InputForm(
    name="kaggle",
    collection=INDIANA,
    help="Kaggle copy: indiana_reports.csv + indiana_projections.csv + images_normalized/",
    inputs={
        "reports_csv": "indiana_reports.csv",
        "projections_csv": "indiana_projections.csv (Frontal/Lateral per image)",
        "images_dir": "images_normalized",
    },
    read=lambda given: read_kaggle(given["reports_csv"], given["projections_csv"]),
    count=lambda given: count_reports(given["reports_csv"]),
    key_rule="CXR<n> from the uid column (<n>)",
)
