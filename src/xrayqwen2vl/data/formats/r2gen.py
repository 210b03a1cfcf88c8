"""Reader for R2Gen's IU X-ray ``annotation.json``: ``{"train": [...], "val": [...], "test": [...]}``.

Each entry is one study ``{"id", "report", "image_path": ["<id>/0.png", "<id>/1.png"], "split"}``;
the report is the FINDINGS text. The split is the key the entry sits under, so ``--split r2gen``
reproduces the split most published IU X-ray numbers use; the other forms of the collection take
it from here too (``SPLIT_TABLE``), matched by the Indiana report number.

R2Gen's ids name a study by one of its Open-i images: ``CXR<n>_IM-<a>`` (most: the image series),
``CXR<n>_IM-<a>-<b>`` (studies with more than two images: one image), and ``CXR1_1_IM-0001`` (the
rare Open-i form ``CXR<n>_<k>_IM-<a>-<b>``). The report number ``n`` is the study key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ..records import ImageRef, InputFileError, Report, Skipped
from ..splits import PublishedSplit
from .common import INDIANA, load_json, undecodable
from .registry import InputForm, SplitTable

R2GEN_SPLITS = ("train", "val", "test")
_R2GEN_ID = re.compile(r"CXR(\d+)_(?:\d+_)?IM-\d+(?:-\d+)?")


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


def count_entries(annotation: str | Path) -> int:
    return sum(1 for _ in _entries(Path(annotation)))


def read_r2gen(annotation: str | Path) -> Iterator[Report | Skipped]:
    annotation = Path(annotation)
    for split, i, entry in _entries(annotation):
        source = f"{annotation.name}: {split}[{i}]"
        if not isinstance(entry, dict):
            yield Skipped(id=f"{split}[{i}]", source=source, reason="entry is not a JSON object")
            continue
        sid = entry.get("id")
        if not isinstance(sid, str) or not sid.strip():
            yield Skipped(id=f"{split}[{i}]", source=source, reason="entry without a string id")
            continue
        sid = sid.strip()
        report = entry.get("report", "")
        paths = entry.get("image_path", [])
        if not isinstance(report, str):
            yield Skipped(id=sid, source=source, reason="report is not a string")
            continue
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            yield Skipped(id=sid, source=source, reason="image_path is not a list of strings")
            continue
        bad = undecodable(report=report, id=sid)
        if bad:
            yield Skipped(id=sid, source=source, reason=bad)
            continue
        stated = entry.get("split")
        if stated is not None and stated != split:
            yield Skipped(
                id=sid, source=source, reason=f'entry says split "{stated}" but sits under "{split}"'
            )
            continue
        yield Report(
            id=sid,
            source=source,
            findings=report,
            images=[ImageRef(id=p, relpath=p) for p in paths],
            split=split,
            study=r2gen_study(sid),
        )


def load_split_table(annotation: str | Path) -> PublishedSplit:
    """R2Gen's split of every readable entry, by study key (entries whose id is not an R2Gen id
    are left out: they cannot be matched)."""
    table = PublishedSplit("r2gen", str(annotation))
    for rec in read_r2gen(annotation):
        if isinstance(rec, Report) and rec.study:
            table.add(rec.study, rec.split, rec.id)
    return table


KEY_RULE = "CXR<n> from the R2Gen id (CXR<n>_IM-<a>, CXR<n>_IM-<a>-<b> or CXR<n>_<k>_IM-<a>)"

FORM = InputForm(
    name="r2gen",
    collection=INDIANA,
    help="R2Gen's iu_xray: annotation.json + images/<id>/{0,1}.png",
    inputs={
        "annotation": "annotation.json with train/val/test lists",
        "images_dir": "images",
    },
    read=lambda given: read_r2gen(given["annotation"]),
    count=lambda given: count_entries(given["annotation"]),
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
