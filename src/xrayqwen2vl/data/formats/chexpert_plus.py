"""Reader for CheXpert Plus (Stanford AIMI): ``df_chexpert_plus_240401.csv`` and the PNG images.

- The CSV has one row per **image** (about 223k), with the columns ``path_to_image,
  path_to_dcm, frontal_lateral, ap_pa, deid_patient_id, patient_report_date_order, report,
  section_narrative, section_clinical_history, section_history, section_comparison,
  section_technique, section_procedure_comments, section_findings, section_impression,
  section_end_of_impression, section_summary, section_accession_number, age, sex, race,
  ethnicity, interpreter_needed, insurance_type, recent_bmi, deceased, split``; empty sections
  are empty cells.
- ``path_to_image`` is ``<split dir>/patient<N>/study<M>/view<K>_<frontal|lateral>.jpg``. The
  delivered images are PNG: the path's ``.jpg`` is read as ``.png`` under the PNG root given as
  ``--images-dir``; the same relative path with ``.jpg`` is used where only the original CheXpert
  JPG is there (``--images-dir`` the CheXpert-v1.0 root).
- A study is ``patient<N>/study<M>``: there is no study id column. ``frontal_lateral`` is
  Frontal/Lateral; ``ap_pa`` is AP/PA, or empty (laterals, and some frontals).
- ``split`` is ``train`` or ``valid``. ``valid`` is the 200-study set the ReXrank leaderboard
  scores, so the official split makes it **test**; val is taken from the train patients, the
  share ``VAL_SHARE`` of them by a hash of the patient (the split rule's sha256, salt ``val``).

One ``Report`` per study, in the order of the study's first row, images frontal first (PA, AP,
frontal without ap_pa, then lateral); findings and impression from ``section_findings`` and
``section_impression``, where an ``IMPRESSION:`` header inside ``section_findings`` (a report the
section parser did not split) is split off as the impression and noted; when both sections are
empty, the ``report`` text is parsed by the MIMIC section rules (``mimic_sections``). The
demographic columns (age, sex, race, ethnicity, insurance, BMI, deceased) are never read.

Memory stays flat: a first pass indexes the images of each study (a few short strings per row),
the second streams the rows and gives each study when its first row comes by.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..records import ImageRef, InputFileError, Report, Skipped
from ..splits import hash_unit
from .common import text_field, undecodable
from .mimic import csv_rows
from .mimic_sections import parse_report
from .registry import InputForm

CSV_NAME = "df_chexpert_plus_240401.csv"
COLUMNS = (
    "path_to_image",
    "frontal_lateral",
    "ap_pa",
    "deid_patient_id",
    "report",
    "section_findings",
    "section_impression",
    "split",
)
OFFICIAL_SPLITS = {"train": "train", "valid": "test"}
VAL_SHARE = 0.02
_PATH = re.compile(
    r"([A-Za-z0-9_.-]+)/(patient[0-9]+)/(study[0-9]+)/([A-Za-z0-9_.-]+)\.(?:jpg|jpeg|png)", re.I
)
_IMPRESSION_IN_FINDINGS = re.compile(r"(?:^|\s)IMPRESSIONS?\s*:\s*", re.I)
# (frontal_lateral, ap_pa) -> (view, rank)
_RANK = {"PA": 0, "AP": 1}


def official_split(value: str, patient: str) -> str | None:
    """The split of a study: ``valid`` -> test, ``train`` -> train, or val for VAL_SHARE of the
    train patients (a hash of the patient: all its studies go together)."""
    split = OFFICIAL_SPLITS.get(value.strip().lower())
    if split == "train" and hash_unit(f"val:{patient}", 0) < VAL_SHARE:
        return "val"
    return split


def split_impression(findings: str, impression: str) -> tuple[str, str, bool]:
    """(findings, impression, moved): an ``IMPRESSION:`` header inside the findings text opens the
    impression (kept from its own column when that has text)."""
    m = _IMPRESSION_IN_FINDINGS.search(findings)
    if not m:
        return findings, impression, False
    before, after = findings[: m.start()].strip(), findings[m.end() :].strip()
    return before, impression or after, True


@dataclass(slots=True)
class _Study:
    first_line: int
    images: list[tuple[str, str, int]] = field(default_factory=list)  # relpath, view, rank
    split: str | None = None
    split_value: str = ""
    emitted: bool = False


class ChexpertPlus:
    """The index of a CheXpert Plus copy: the studies of the CSV and their images."""

    def __init__(self, csv_path: str | Path, images_dir: str | Path):
        self.csv = Path(csv_path)
        self.images_dir = Path(images_dir)
        if not self.csv.is_file():
            raise InputFileError(f"{self.csv}: CheXpert Plus CSV ({CSV_NAME}) not found")
        self.studies: dict[str, _Study] = {}
        self.bad_rows: dict[int, tuple[str, str]] = {}  # line -> (id, reason)
        self._index()

    def __len__(self) -> int:
        return len(self.studies) + len(self.bad_rows)

    def __iter__(self) -> Iterator[Report | Skipped]:
        return self.records()

    def _image_path(self, path: str) -> str:
        """The PNG where there is one, else the original JPG; the PNG when neither is there."""
        stem = path.rsplit(".", 1)[0]
        png = f"{stem}.png"
        if (self.images_dir / png).exists():
            return png
        jpg = f"{stem}.jpg"
        return jpg if (self.images_dir / jpg).exists() else png

    def _index(self) -> None:
        views: dict[str, str] = {}
        for line, row in csv_rows(self.csv, COLUMNS):
            raw = row["path_to_image"].strip()
            m = _PATH.fullmatch(raw)
            if not m:
                self.bad_rows[line] = (
                    raw or f"line {line}",
                    f"path_to_image {raw!r} is not <split>/patient<N>/study<M>/<view>.jpg",
                )
                continue
            key = f"{m.group(2)}/{m.group(3)}"
            study = self.studies.get(key)
            if study is None:
                study = self.studies[key] = _Study(line)
                study.split_value = row["split"]
                study.split = official_split(row["split"], m.group(2))
            fl = row["frontal_lateral"].strip().lower()
            ap_pa = row["ap_pa"].strip().upper()
            if fl == "frontal":
                view, rank = "frontal", _RANK.get(ap_pa, 2)
            elif fl == "lateral":
                view, rank = "lateral", 0
            else:
                view, rank = "", 0
            rel = self._image_path(raw)
            study.images.append((rel, views.setdefault(view, view), rank))

    def records(self) -> Iterator[Report | Skipped]:
        for line, row in csv_rows(self.csv, COLUMNS):
            if line in self.bad_rows:
                rid, reason = self.bad_rows[line]
                yield Skipped(rid, f"{self.csv.name}:{line}", reason)
                continue
            m = _PATH.fullmatch(row["path_to_image"].strip())
            key = f"{m.group(2)}/{m.group(3)}"
            study = self.studies[key]
            if study.emitted:
                continue
            study.emitted = True
            yield self._record(key, study, row, line)

    def _record(self, key: str, study: _Study, row: dict, line: int) -> Report | Skipped:
        source = f"{self.csv.name}:{line}"
        if study.split is None:
            return Skipped(key, source, f"split {study.split_value!r} (expected train or valid)")
        findings = text_field(row["section_findings"])
        impression = text_field(row["section_impression"])
        report = text_field(row["report"])
        bad = undecodable(section_findings=findings, section_impression=impression, report=report)
        if bad:
            return Skipped(key, source, bad)
        notes = []
        findings, impression, moved = split_impression(findings, impression)
        if moved:
            notes.append("impression header inside section_findings (split off as the impression)")
        if not findings and not impression and report:
            parsed = parse_report(report)
            findings, impression = parsed.findings, parsed.impression
            if findings or impression:
                notes.append("sections parsed from the report column (section columns empty)")
        if not findings and not impression:
            return Skipped(key, source, "no findings or impression (section columns and report text)")
        return Report(
            id=key,
            source=source,
            findings=findings,
            impression=impression,
            images=ordered_images(study.images),
            split=study.split,
            study=key,
            group=key.split("/", 1)[0],
            notes=notes,
        )


def ordered_images(images: list[tuple[str, str, int]]) -> list[ImageRef]:
    """Frontal (PA, AP, no ap_pa), lateral, then unknown views; in CSV order within one kind."""
    ranked = []
    for i, (rel, view, rank) in enumerate(images):
        group = {"frontal": 0, "lateral": 1}.get(view, 2)
        ranked.append(((group, rank, i), ImageRef(id=rel.rsplit("/", 1)[-1], relpath=rel, view=view or None)))
    return [ref for _, ref in sorted(ranked, key=lambda x: x[0])]


KEY_RULE = "patient<N>/study<M> from path_to_image; split group: the patient, patient<N>"

FORM = InputForm(
    name="chexpert-plus",
    collection="chexpert-plus",
    help=f"CheXpert Plus: {CSV_NAME} as --reports, the PNG root (its .jpg paths read as .png; the "
    "CheXpert-v1.0 JPG root works too) as --images-dir",
    inputs={
        "reports": CSV_NAME,
        "images_dir": "the PNG root (train/patient<N>/study<M>/view<K>_<frontal|lateral>.png)",
    },
    read=lambda given: ChexpertPlus(given["reports"], given["images_dir"]),
    count=lambda given: None,
    key_rule=KEY_RULE,
    published_split="official",
    default_split="official",
)
