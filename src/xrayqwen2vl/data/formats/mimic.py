"""Reader for MIMIC-CXR: the MIMIC-CXR-JPG root and the unpacked ``mimic-cxr-reports.zip``.

- JPG root: ``files/p<NN>/p<subject_id>/s<study_id>/<dicom_id>.jpg`` and, beside ``files/``,
  ``mimic-cxr-2.0.0-metadata.csv.gz`` (one row per image: dicom_id, subject_id, study_id,
  ViewPosition, …) and ``mimic-cxr-2.0.0-split.csv.gz`` (dicom_id, study_id, subject_id, split ∈
  train/validate/test, by patient); ``.csv`` instead of ``.csv.gz`` is read too.
- Reports root: ``files/p<NN>/p<subject_id>/s<study_id>.txt``, free text split into sections by
  ``mimic_sections``.

One record per study (the union of the studies the metadata lists and the report files found),
in (subject, study) order, so every study is accounted for: a ``Report`` with its findings and
impression, its images frontal first (PA, AP, other frontal projections), then lateral (LATERAL,
LL, …), then images whose view is unknown, and its official split (``validate`` → ``val``); or a
``Skipped`` with the reason (no report file, no images, no findings or impression section,
undecodable text). The report id is ``p<subject_id>/s<study_id>``; the study key is
``s<study_id>`` and the split group the patient, ``p<subject_id>``, so a hash split keeps all the
studies of one patient in one split, as the official split does.

``prepare --format mimic`` (``FORM``): the collection is indexed once (the CSVs streamed, a few
short strings per image), then the reports are read one at a time as prepare asks for them; its
``len()`` is the number of records, for the progress bar.
"""

from __future__ import annotations

import csv
import gzip
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ...fileio import check_regular_file
from ..records import ImageRef, InputFileError, Report, Skipped
from .common import undecodable
from .mimic_sections import parse_report
from .registry import InputForm

METADATA = "mimic-cxr-2.0.0-metadata"
SPLIT = "mimic-cxr-2.0.0-split"
METADATA_COLUMNS = ("dicom_id", "subject_id", "study_id", "ViewPosition")
SPLIT_COLUMNS = ("dicom_id", "study_id", "subject_id", "split")
OFFICIAL_SPLITS = {"train": "train", "validate": "val", "test": "test"}

# ViewPosition -> (view, rank within the view): the standard projections first.
VIEW_POSITIONS = {
    "PA": ("frontal", 0),
    "AP": ("frontal", 1),
    "AP AXIAL": ("frontal", 2),
    "PA LLD": ("frontal", 3),
    "PA RLD": ("frontal", 3),
    "AP LLD": ("frontal", 3),
    "AP RLD": ("frontal", 3),
    "LATERAL": ("lateral", 0),
    "LL": ("lateral", 1),
    "RL": ("lateral", 1),
    "XTABLE LATERAL": ("lateral", 2),
}
# ViewCodeSequence_CodeMeaning, used when ViewPosition is empty.
VIEW_CODE_MEANINGS = {
    "postero-anterior": "PA",
    "antero-posterior": "AP",
    "lateral": "LATERAL",
    "left lateral": "LL",
    "right lateral": "RL",
}
_UNKNOWN = (None, 9)
_DIGITS = re.compile(r"[0-9]{1,12}$")


def view_of(view_position: str, code_meaning: str = "") -> tuple[str | None, int]:
    """(frontal/lateral/None, rank) for an image's ViewPosition (or, when empty, its
    ViewCodeSequence_CodeMeaning); oblique, swimmer's and unknown projections give None."""
    vp = " ".join(view_position.upper().split())
    if not vp:
        vp = VIEW_CODE_MEANINGS.get(" ".join(code_meaning.lower().split()), "")
    return VIEW_POSITIONS.get(vp, _UNKNOWN)


def find_csv(root: Path, stem: str) -> Path:
    """``root/STEM.csv.gz`` or ``root/STEM.csv``; a one-line error when neither is there."""
    for name in (f"{stem}.csv.gz", f"{stem}.csv"):
        if (root / name).is_file():
            return root / name
    raise InputFileError(f"{root}: {stem}.csv.gz (or .csv) not found (expected in the MIMIC-CXR-JPG root)")


def csv_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row restricted to the needed columns), streamed from a ``.csv`` or
    ``.csv.gz``; a one-line error naming the file and line for a malformed or cut-off file."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="surrogateescape", newline="") as f:
            reader = csv.reader(f, strict=True)
            header = next(reader, None)
            if header is None:
                raise InputFileError(f"{path}: empty file (no header line)")
            header = [h.strip().lstrip("\ufeff") for h in header]
            missing = [c for c in required if c not in header]
            if missing:
                raise InputFileError(
                    f"{path}: line 1: missing column(s) {', '.join(missing)} (header: {','.join(header)})"
                )
            index = {c: header.index(c) for c in header}
            for row in reader:
                line = reader.line_num
                if not row:
                    continue
                if len(row) != len(header):
                    cut = " (file cut off?)" if len(row) < len(header) else ""
                    raise InputFileError(
                        f"{path}: line {line}: {len(row)} fields, header has {len(header)}{cut}"
                    )
                yield line, {c: row[i] for c, i in index.items()}
    except csv.Error as e:
        raise InputFileError(f"{path}: line {reader.line_num}: malformed CSV ({e})") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise InputFileError(f"{path}: not a complete gzip file ({e})") from None


def _int_field(path: Path, line: int, row: dict, name: str) -> int:
    value = row[name].strip()
    if not _DIGITS.match(value):
        raise InputFileError(f"{path}: line {line}: {name} {value!r} is not a number")
    return int(value)


@dataclass(slots=True)
class _Study:
    subject: int
    images: list[tuple[str, str, str]] = field(default_factory=list)  # dicom, ViewPosition, code meaning
    split: str | None = None


def _files_root(root: Path, what: str) -> Path:
    if not root.is_dir():
        raise InputFileError(f"{root}: {what} folder not found")
    if (root / "files").is_dir():
        return root / "files"
    raise InputFileError(f"{root}: no files/ folder (expected the unpacked {what}: files/p10/p1…/s5…)")


def rel_dir(subject: int) -> str:
    """``files/p<NN>/p<subject_id>``: NN is the first two digits of the subject id."""
    s = str(subject)
    return f"files/p{s[:2]}/p{s}"


class MimicCollection:
    """The index of a MIMIC-CXR copy: every study the metadata or the reports list. Built once
    (the CSVs are streamed; the index holds a few short strings per image), then ``records()``
    reads the reports one at a time."""

    def __init__(self, images_dir: str | Path, reports_dir: str | Path):
        self.images_dir = Path(images_dir)
        self.reports_dir = Path(reports_dir)
        _files_root(self.images_dir, "MIMIC-CXR-JPG")
        self.reports_files = _files_root(self.reports_dir, "MIMIC-CXR reports")
        self.metadata_csv = find_csv(self.images_dir, METADATA)
        self.split_csv = find_csv(self.images_dir, SPLIT)
        self.studies: dict[int, _Study] = {}
        self._read_metadata()
        self._read_split()
        self.report_files = self._list_reports()
        self.keys = sorted(
            {(s.subject, k) for k, s in self.studies.items()}
            | {(subj, k) for k, subj in self.report_files.items() if k not in self.studies}
        )

    @property
    def total(self) -> int:
        return len(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[Report | Skipped]:
        return self.records()

    @property
    def inputs(self) -> dict:
        return {
            "images_dir": str(self.images_dir),
            "reports_dir": str(self.reports_dir),
            "metadata": self.metadata_csv.name,
            "split": self.split_csv.name,
        }

    def _read_metadata(self) -> None:
        path = self.metadata_csv
        seen: set[str] = set()
        views: dict[str, str] = {}  # one string object per distinct value
        for line, row in csv_rows(path, METADATA_COLUMNS):
            dicom = row["dicom_id"].strip()
            if not dicom or "/" in dicom or "\\" in dicom or dicom.startswith("."):
                raise InputFileError(f"{path}: line {line}: dicom_id {dicom!r} is not a file name")
            if dicom in seen:
                raise InputFileError(f"{path}: line {line}: dicom_id {dicom} listed twice")
            seen.add(dicom)
            subject = _int_field(path, line, row, "subject_id")
            study = _int_field(path, line, row, "study_id")
            entry = self.studies.get(study)
            if entry is None:
                entry = self.studies[study] = _Study(subject)
            elif entry.subject != subject:
                raise InputFileError(
                    f"{path}: line {line}: study {study} listed under subjects {entry.subject} and {subject}"
                )
            vp = row["ViewPosition"]
            meaning = row.get("ViewCodeSequence_CodeMeaning", "")
            entry.images.append((dicom, views.setdefault(vp, vp), views.setdefault(meaning, meaning)))

    def _read_split(self) -> None:
        path = self.split_csv
        for line, row in csv_rows(path, SPLIT_COLUMNS):
            value = row["split"].strip()
            if value not in OFFICIAL_SPLITS:
                raise InputFileError(
                    f"{path}: line {line}: split {value!r} (expected {', '.join(OFFICIAL_SPLITS)})"
                )
            study = _int_field(path, line, row, "study_id")
            entry = self.studies.get(study)
            if entry is None:  # a study without images: its split does not matter
                continue
            split = OFFICIAL_SPLITS[value]
            if entry.split is not None and entry.split != split:
                raise InputFileError(
                    f"{path}: line {line}: study {study} has images in both {entry.split} and {split}"
                )
            entry.split = split

    def _list_reports(self) -> dict[int, int]:
        """study id -> subject id of every ``files/p??/p<subject>/s<study>.txt``."""
        found: dict[int, int] = {}
        with os.scandir(self.reports_files) as groups:
            group_dirs = sorted(e.path for e in groups if e.is_dir() and e.name.startswith("p"))
        for group in group_dirs:
            with os.scandir(group) as subjects:
                subject_dirs = [(e.name, e.path) for e in subjects if e.is_dir() and e.name.startswith("p")]
            for name, path in subject_dirs:
                if not _DIGITS.match(name[1:]):
                    continue
                subject = int(name[1:])
                with os.scandir(path) as files:
                    for e in files:
                        stem, ext = os.path.splitext(e.name)
                        if ext == ".txt" and stem.startswith("s") and _DIGITS.match(stem[1:]):
                            found[int(stem[1:])] = subject
        return found

    def records(self) -> Iterator[Report | Skipped]:
        for subject, study in self.keys:
            yield self._record(subject, study)

    def _record(self, subject: int, study: int) -> Report | Skipped:
        report_id = f"p{subject}/s{study}"
        report_rel = f"{rel_dir(subject)}/s{study}.txt"
        entry = self.studies.get(study)
        if entry is None:
            return Skipped(
                report_id, report_rel, f"no images (study {study} is not in {self.metadata_csv.name})"
            )
        if self.report_files.get(study) != subject:
            elsewhere = self.report_files.get(study)
            where = f"; one is under p{elsewhere}" if elsewhere is not None else ""
            return Skipped(report_id, report_rel, f"no report file ({report_rel} not found{where})")
        try:
            path = self.reports_files.parent / report_rel
            check_regular_file(path, "report file", shown=report_rel)
            data = path.read_bytes()
        except InputFileError as e:
            return Skipped(
                report_id, report_rel, f"report unreadable ({str(e).removeprefix(report_rel + ': ')})"
            )
        except OSError as e:
            return Skipped(report_id, report_rel, f"report unreadable ({e.strerror})")
        text = data.decode("utf-8", errors="surrogateescape")
        bad = undecodable(report=text)
        if bad:
            return Skipped(report_id, report_rel, bad)
        parsed = parse_report(text)
        if not parsed.findings and not parsed.impression:
            headers = ", ".join(h.upper() for h in parsed.headers) or "none"
            return Skipped(report_id, report_rel, f"no FINDINGS or IMPRESSION section (headers: {headers})")
        return Report(
            id=report_id,
            source=report_rel,
            findings=parsed.findings,
            impression=parsed.impression,
            images=ordered_images(subject, study, entry.images),
            split=entry.split,
            study=f"s{study}",
            group=f"p{subject}",
        )


def ordered_images(subject: int, study: int, images: list[tuple[str, str, str]]) -> list[ImageRef]:
    """Frontal (PA, AP, other frontal), then lateral (LATERAL, LL, …), then unknown views; in
    metadata order within one kind."""
    base = f"{rel_dir(subject)}/s{study}"
    ranked = []
    for i, (dicom, vp, meaning) in enumerate(images):
        view, rank = view_of(vp, meaning)
        group = {"frontal": 0, "lateral": 1}.get(view, 2)
        ranked.append(((group, rank, i), ImageRef(id=dicom, relpath=f"{base}/{dicom}.jpg", view=view)))
    return [ref for _, ref in sorted(ranked, key=lambda x: x[0])]


def read_mimic(images_dir: str | Path, reports_dir: str | Path) -> MimicCollection:
    """The records of a MIMIC-CXR copy (iterable, and sized: ``len()`` is the number of records)."""
    return MimicCollection(images_dir, reports_dir)


KEY_RULE = "s<study_id>; split group: the patient, p<subject_id> (all studies of a patient in one split)"

FORM = InputForm(
    name="mimic",
    collection="mimic-cxr",
    help="MIMIC-CXR: the MIMIC-CXR-JPG root (files/p<NN>/p<subject>/s<study>/<dicom>.jpg and the "
    "mimic-cxr-2.0.0-*.csv.gz) as --images-dir, the unpacked reports (files/p<NN>/p<subject>/s<study>.txt) "
    "as --reports-dir",
    inputs={
        "images_dir": "MIMIC-CXR-JPG root (files/ and the metadata and split CSVs)",
        "reports_dir": "MIMIC-CXR reports root (files/p<NN>/p<subject>/s<study>.txt)",
    },
    read=lambda given: read_mimic(given["images_dir"], given["reports_dir"]),
    count=lambda given: None,  # the collection read() returns knows its size: len()
    key_rule=KEY_RULE,
    published_split="official",
    default_split="official",
)

__all__ = [
    "FORM",
    "MimicCollection",
    "csv_rows",
    "ordered_images",
    "read_mimic",
    "view_of",
]
