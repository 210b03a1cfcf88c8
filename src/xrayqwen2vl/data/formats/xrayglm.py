"""Reader for XrayGLM-style caption files (``openi-en.json`` / ``openi-zh.json``).

``{"annotations": [{"image_id": "<report>_<k>", "caption": "..."}]}``, one entry per image; the
image is ``<image_id>.png`` and its report is the id before the last ``_``. The caption is one
undivided report text, so it becomes the target as it is (``--target both`` only).

The images of one report often carry slightly different captions (two machine translations of
one report in ``openi-zh.json``). The report is kept with the caption of its first entry in the
file, and the variants are noted in the manifest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..records import ImageRef, InputFileError, Report, Skipped
from .common import INDIANA, indiana_study, load_json, undecodable
from .registry import InputForm

CAPTION_VARIANTS = "images carry different captions"


def _annotations(captions: Path) -> list:
    data = load_json(captions, "captions file")
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise InputFileError(f'{captions}: expected a JSON object with an "annotations" list')
    return data["annotations"]


def read_xrayglm(captions: str | Path) -> Iterator[Report | Skipped]:
    """One Report per report id, in order of first appearance; every entry is accounted for:
    a malformed entry is Skipped on its own; a report whose images disagree on the caption keeps
    its first entry's caption, with a note."""
    captions = Path(captions)
    groups: dict[str, list[tuple[int, str, str]]] = {}
    bad_entries: list[Skipped] = []
    for i, entry in enumerate(_annotations(captions)):
        source = f"{captions.name}: annotations[{i}]"
        if not isinstance(entry, dict):
            bad_entries.append(Skipped(f"annotations[{i}]", source, "entry is not a JSON object"))
            continue
        image_id, caption = entry.get("image_id"), entry.get("caption")
        if not isinstance(image_id, str) or "_" not in image_id.strip("_"):
            bad_entries.append(Skipped(f"annotations[{i}]", source, 'image_id missing or without "_<k>"'))
            continue
        if not isinstance(caption, str):
            bad_entries.append(Skipped(image_id, source, "caption missing or not a string"))
            continue
        bad = undecodable(caption=caption, image_id=image_id)
        if bad:
            bad_entries.append(Skipped(image_id, source, bad))
            continue
        groups.setdefault(image_id.rsplit("_", 1)[0], []).append((i, image_id, caption))
    yield from bad_entries
    for report_id, items in groups.items():
        first = items[0][0]
        source = f"{captions.name}: annotations[{first}]"
        ids = [image_id for _, image_id, _ in items]
        if len(set(ids)) != len(ids):
            yield Skipped(report_id, source, "an image_id appears twice")
            continue
        texts = {" ".join(c.split()) for _, _, c in items}
        notes = []
        if len(texts) > 1:
            notes.append(
                f"{CAPTION_VARIANTS} ({len(texts)} variants among {len(items)} images; "
                f"kept the first entry's, annotations[{first}])"
            )
        yield Report(
            id=report_id,
            source=source,
            text=items[0][2],
            images=[ImageRef(id=image_id, relpath=f"{image_id}.png") for image_id in ids],
            study=indiana_study(report_id),
            notes=notes,
        )


def count_reports(captions: str | Path) -> int:
    return sum(1 for _ in read_xrayglm(captions))


FORM = InputForm(
    name="xrayglm",
    collection=INDIANA,
    help="XrayGLM captions: openi-en.json or openi-zh.json + the <image_id>.png files",
    inputs={
        "captions": "openi-en.json or openi-zh.json",
        "images_dir": "the folder of <image_id>.png",
    },
    read=lambda given: read_xrayglm(given["captions"]),
    count=lambda given: count_reports(given["captions"]),
    key_rule="CXR<n> from the report id, the image_id before its last _ (CXR<n> or <n>)",
    sections_lang=None,
)
