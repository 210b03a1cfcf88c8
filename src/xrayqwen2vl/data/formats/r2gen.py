"""Reader for R2Gen's IU X-ray ``annotation.json``: ``{"train": [...], "val": [...], "test": [...]}``.

Each entry is one study ``{"id", "report", "image_path": ["<id>/0.png", "<id>/1.png"], "split"}``;
the report is the FINDINGS text. The split is the key the entry sits under, so ``--split r2gen``
reproduces the split most published IU X-ray numbers use.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..records import ImageRef, InputFileError, Report, Skipped
from .common import load_json, undecodable

R2GEN_SPLITS = ("train", "val", "test")


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
        )
