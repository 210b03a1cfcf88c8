"""Reader for R2Gen's ``annotation.json``: ``{"train": [...], "val": [...], "test": [...]}``.

IU X-ray: each entry is one study ``{"id", "report", "image_path": ["<id>/0.png", "<id>/1.png"],
"split"}``; the report is the FINDINGS text. MIMIC-CXR: each entry is one *image* ``{"id":
dicom_id, "study_id", "subject_id", "report", "image_path": ["p1x/p…/s…/….jpg"], "split"}``; the
entries of one ``study_id`` become one record with all their images (a study's images are seen
together and its report trained once), keyed like ``--format mimic``: id ``p<subject>/s<study>``,
study key ``s<study_id>``, split group ``p<subject_id>``. The split is the key the entry sits under, so ``--split r2gen``
reproduces the split most published IU X-ray numbers use; the other forms of the collection take
it from here too (``SPLIT_TABLE``), matched by the Indiana report number.

R2Gen's ids name a study by one of its Open-i images: ``CXR<n>_IM-<a>`` (most: the image series),
``CXR<n>_IM-<a>-<b>`` (studies with more than two images: one image), and ``CXR1_1_IM-0001`` (the
rare Open-i form ``CXR<n>_<k>_IM-<a>-<b>``). The report number ``n`` is the study key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..records import ImageRef, InputFileError, Report, Skipped
from ..splits import PublishedSplit
from .common import INDIANA, load_json, undecodable
from .registry import InputForm, SplitTable

R2GEN_SPLITS = ("train", "val", "test")
_R2GEN_ID = re.compile(r"CXR(\d+)_(?:\d+_)?IM-\d+(?:-\d+)?")
_DIGITS = re.compile(r"[0-9]{1,12}")


def r2gen_study(r2gen_id: str) -> str:
    """The study key "CXR<n>" of an R2Gen id in any of its three forms, else ""."""
    m = _R2GEN_ID.fullmatch(r2gen_id.strip())
    return f"CXR{int(m.group(1))}" if m else ""


def _entries(annotation: Path):
    data = load_json(annotation, "annotation file")
    if not isinstance(data, dict):
        raise InputFileError(f"{annotation}: expected a JSON object with train/val/test lists")
    unknown = [k for k in data if k not in R2GEN_SPLITS]
    if unknown:
        raise InputFileError(
            f"{annotation}: unexpected key(s) {', '.join(map(repr, unknown))} (expected train, val, test)"
        )
    for split in R2GEN_SPLITS:
        entries = data.get(split, [])
        if not isinstance(entries, list):
            raise InputFileError(f"{annotation}: element {split!r} is not a list")
        for i, entry in enumerate(entries):
            yield split, i, entry


@dataclass(slots=True)
class _Entry:
    id: str
    source: str
    report: str
    paths: list[str]
    split: str
    study_id: int | None  # MIMIC-CXR entries: one per image, grouped by study
    subject_id: int | None


def _number(value) -> int | None | str:
    """An id field as a number (int, or a string of digits); None when absent; "" when invalid."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        return int(value.strip())
    return ""


def _parse(annotation: Path, split: str, i: int, entry) -> _Entry | Skipped:
    source = f"{annotation.name}: {split}[{i}]"
    if not isinstance(entry, dict):
        return Skipped(id=f"{split}[{i}]", source=source, reason="entry is not a JSON object")
    sid = entry.get("id")
    if not isinstance(sid, str) or not sid.strip():
        return Skipped(id=f"{split}[{i}]", source=source, reason="entry without a string id")
    sid = sid.strip()
    report = entry.get("report", "")
    paths = entry.get("image_path", [])
    if not isinstance(report, str):
        return Skipped(id=sid, source=source, reason="report is not a string")
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        return Skipped(id=sid, source=source, reason="image_path is not a list of strings")
    bad = undecodable(report=report, id=sid)
    if bad:
        return Skipped(id=sid, source=source, reason=bad)
    stated = entry.get("split")
    if stated is not None and stated != split:
        return Skipped(id=sid, source=source, reason=f'entry says split "{stated}" but sits under "{split}"')
    study, subject = _number(entry.get("study_id")), _number(entry.get("subject_id"))
    for name, value in (("study_id", study), ("subject_id", subject)):
        if value == "":
            return Skipped(id=sid, source=source, reason=f"{name} {entry.get(name)!r} is not a number")
    if subject is not None and study is None:
        return Skipped(id=sid, source=source, reason="subject_id without a study_id")
    return _Entry(sid, source, report, paths, split, study, subject)


class R2GenAnnotation:
    """The records of an R2Gen ``annotation.json``, sized (``len()``) and iterated in file order.

    IU X-ray entries are one study each. MIMIC-CXR entries are one image each, sharing a
    ``study_id``: they are grouped into one record per study, at the place of its first entry,
    with every image of the study (one sample per study, not one per image)."""

    def __init__(self, annotation: str | Path):
        self.annotation = Path(annotation)
        # Each record: a Skipped, a lone entry, or the study id of a group (its first entry's place).
        self._plan: list[Skipped | _Entry | int] = []
        self._groups: dict[int, list[_Entry]] = {}
        for split, i, raw in _entries(self.annotation):
            e = _parse(self.annotation, split, i, raw)
            if isinstance(e, _Entry) and e.study_id is not None:
                group = self._groups.get(e.study_id)
                if group is None:
                    self._groups[e.study_id] = [e]
                    self._plan.append(e.study_id)
                else:
                    group.append(e)
            else:
                self._plan.append(e)

    def __len__(self) -> int:
        return len(self._plan)

    def __iter__(self) -> Iterator[Report | Skipped]:
        for item in self._plan:
            if isinstance(item, Skipped):
                yield item
            elif isinstance(item, _Entry):
                yield _report(item)
            else:
                yield _study_report(item, self._groups[item])


def _report(e: _Entry) -> Report:
    return Report(
        id=e.id,
        source=e.source,
        findings=e.report,
        images=[ImageRef(id=p, relpath=p) for p in e.paths],
        split=e.split,
        study=r2gen_study(e.id),
    )


STUDY_REPORT_VARIANTS = "entries of one study carry different reports"


def _study_report(study: int, entries: list[_Entry]) -> Report | Skipped:
    """One record for the entries (images) of one MIMIC-CXR study."""
    first = entries[0]
    subjects = sorted({e.subject_id for e in entries if e.subject_id is not None})
    report_id = f"p{subjects[0]}/s{study}" if len(subjects) == 1 else f"s{study}"
    more = f" and {len(entries) - 1} more entr{'y' if len(entries) == 2 else 'ies'} of study {study}"
    source = first.source + (more if len(entries) > 1 else "")
    splits = sorted({e.split for e in entries}, key=R2GEN_SPLITS.index)
    if len(splits) > 1:
        return Skipped(report_id, source, f"entries of study {study} sit under {' and '.join(splits)}")
    if len(subjects) > 1:
        names = " and ".join(map(str, subjects))
        return Skipped(report_id, source, f"entries of study {study} name subjects {names}")
    variants = len({" ".join(e.report.split()) for e in entries})
    notes = [f"{STUDY_REPORT_VARIANTS} ({variants} variants; kept the first entry's)"] if variants > 1 else []
    return Report(
        id=report_id,
        source=source,
        findings=first.report,
        # an entry names one image: its id (the dicom_id) names the image in the manifest
        images=[ImageRef(id=e.id if len(e.paths) == 1 else p, relpath=p) for e in entries for p in e.paths],
        split=first.split,
        study=f"s{study}",
        group=f"p{subjects[0]}" if subjects else "",
        notes=notes,
    )


def count_entries(annotation: str | Path) -> int:
    return len(R2GenAnnotation(annotation))


def read_r2gen(annotation: str | Path) -> R2GenAnnotation:
    return R2GenAnnotation(annotation)


def load_split_table(annotation: str | Path) -> PublishedSplit:
    """R2Gen's split of every readable entry, by study key (entries whose id is not an R2Gen id
    are left out: they cannot be matched)."""
    table = PublishedSplit("r2gen", str(annotation))
    for rec in read_r2gen(annotation):
        if isinstance(rec, Report) and rec.study:
            table.add(rec.study, rec.split, rec.id)
    return table


KEY_RULE = (
    "CXR<n> from the R2Gen id (CXR<n>_IM-<a>, CXR<n>_IM-<a>-<b> or CXR<n>_<k>_IM-<a>); MIMIC-CXR "
    "entries: s<study_id>, split group the patient p<subject_id>"
)

FORM = InputForm(
    name="r2gen",
    collection=INDIANA,
    help="R2Gen's iu_xray (annotation.json + images/<id>/{0,1}.png) or mimic_cxr (one entry per "
    "image, grouped into one sample per study_id; images/ = MIMIC-CXR-JPG's files/)",
    inputs={
        "annotation": "annotation.json with train/val/test lists",
        "images_dir": "images",
    },
    read=lambda given: read_r2gen(given["annotation"]),
    count=lambda given: None,  # read() returns a sized collection: len()
    key_rule=KEY_RULE,
    published_split="r2gen",
    default_split="r2gen",
)

SPLIT_TABLE = SplitTable(
    name="r2gen",
    collection=INDIANA,
    input="annotation",
    help="R2Gen's annotation.json, whose split the other forms take by report number",
    load=load_split_table,
)
