"""Reader for ReXGradient-160K (Hugging Face hub, gated): the metadata JSONs and ``deid_png/``.

- ``metadata/{train,valid,test}_metadata.json``: one JSON object per split, keyed by a composite
  study id; each study has ``PatientID``, ``AccessionNumber``, ``StudyInstanceUid``,
  ``PatientSex``, ``PatientAge`` (DICOM style, ``036Y``), ``StudyDate``, ``Indication``,
  ``Comparison``, ``Findings``, ``Impression``, ``ImagePath`` (a list of
  ``../deid_png/<PatientID>/<Accession>/studies/<StudyUID>/series/<SeriesUID>/instances/<SOPUID>.png``,
  relative to ``metadata/``) and ``ImageViewPosition`` (a list aligned with ``ImagePath``: ``PA``,
  ``AP``, ``POSTERO_ANTERIOR``, ``LATERAL``, ``AP (KUB)``…). The files hold bare ``NaN`` literals
  where a value is missing.
- ``--images-dir`` is the unpacked root (holding ``deid_png/``) or ``deid_png/`` itself; the
  ``../`` of the paths is read against it.
- Official splits: train 140,000, valid 10,000, test 10,000 studies (valid -> val).

One ``Report`` per study, split file by split file, images frontal first; findings and impression
from ``Findings`` and ``Impression``. The study key is the metadata's key; the split group the
patient, so a hash split keeps a patient's studies together. Demographics (sex, age) are never
read. Each metadata file is streamed one study at a time (``iter_json_object``): memory stays flat.
A first streaming pass counts the studies for the progress bar's total (``count``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ..records import ImageRef, InputFileError, Report, Skipped, UnusedImage
from .common import iter_json_object, text_field, undecodable
from .mimic import VIEW_POSITIONS
from .registry import InputForm

SPLIT_FILES = (("train", "train"), ("valid", "val"), ("test", "test"))
IMAGES_FOLDER = "deid_png"
# ImageViewPosition spellings -> MIMIC's ViewPosition names (whose order ranks the views).
VIEW_ALIASES = {
    "POSTERO ANTERIOR": "PA",
    "POSTEROANTERIOR": "PA",
    "ANTERO POSTERIOR": "AP",
    "ANTEROPOSTERIOR": "AP",
    "AP SUPINE": "AP",
    "AP ERECT": "AP",
    "AP UPRIGHT": "AP",
    "PA ERECT": "PA",
    "LAT": "LATERAL",
    "LEFT LATERAL": "LL",
    "RIGHT LATERAL": "RL",
}
_SEP = re.compile(r"[\s_-]+")


def view_of(position) -> tuple[str | None, int]:
    """(frontal/lateral/None, rank) of an ImageViewPosition; abdominal (``AP (KUB)``), oblique
    and unknown positions give None (the image's view is then told by its symmetry)."""
    if not isinstance(position, str):
        return None, 9
    vp = _SEP.sub(" ", position.upper()).strip()
    vp = VIEW_ALIASES.get(vp, vp)
    return VIEW_POSITIONS.get(vp, (None, 9))


def image_relpath(path: str, images_folder_given: bool) -> str:
    """``../deid_png/…`` relative to the images dir: the unpacked root, or deid_png itself."""
    rel = path.strip().replace("\\", "/")
    while rel.startswith("../"):
        rel = rel[3:]
    if images_folder_given and rel.startswith(f"{IMAGES_FOLDER}/"):
        rel = rel[len(IMAGES_FOLDER) + 1 :]
    return rel


class ReXGradient:
    def __init__(self, metadata_dir: str | Path, images_dir: str | Path):
        self.metadata_dir = Path(metadata_dir)
        self.images_dir = Path(images_dir)
        if not self.metadata_dir.is_dir():
            raise InputFileError(f"{self.metadata_dir}: ReXGradient metadata folder not found")
        self.files = [
            (self.metadata_dir / f"{stem}_metadata.json", split)
            for stem, split in SPLIT_FILES
            if (self.metadata_dir / f"{stem}_metadata.json").is_file()
        ]
        if not self.files:
            names = ", ".join(f"{s}_metadata.json" for s, _ in SPLIT_FILES)
            raise InputFileError(f"{self.metadata_dir}: none of {names} found")
        self.inside_images = self.images_dir.name == IMAGES_FOLDER

    def count(self) -> int:
        """The studies in the metadata files, for the progress bar's total: one streaming pass (about
        1 s per 140k studies here), the members counted and dropped."""
        return sum(1 for path, _ in self.files for _ in iter_json_object(path, "ReXGradient metadata"))

    def __iter__(self) -> Iterator[Report | Skipped | UnusedImage]:
        for path, split in self.files:
            for key, study in iter_json_object(path, "ReXGradient metadata"):
                yield from self._records(path, key, study, split)

    def _records(self, path: Path, key: str, study, split: str) -> Iterator[Report | Skipped | UnusedImage]:
        source = f"{path.name}[{key}]"
        if not isinstance(study, dict):
            yield Skipped(key, source, f"expected a JSON object, got {type(study).__name__}")
            return
        findings, impression = text_field(study.get("Findings")), text_field(study.get("Impression"))
        bad = undecodable(Findings=findings, Impression=impression)
        if bad:
            yield Skipped(key, source, bad)
            return
        paths, positions = study.get("ImagePath"), study.get("ImageViewPosition")
        if isinstance(paths, str):
            paths = [paths]
        if not isinstance(paths, list) or not paths:
            yield Skipped(key, source, "no images (ImagePath missing or empty)")
            return
        if not isinstance(positions, list):
            positions = []
        positions = positions + [None] * (len(paths) - len(positions))
        ranked = []
        for i, (p, vp) in enumerate(zip(paths, positions, strict=False)):
            if not isinstance(p, str) or not p.strip():
                yield UnusedImage(key, f"ImagePath[{i}]", f"not a path ({p!r})")
                continue
            view, rank = view_of(vp)
            rel = image_relpath(p, self.inside_images)
            group = {"frontal": 0, "lateral": 1}.get(view, 2)
            ranked.append(((group, rank, i), ImageRef(id=rel.rsplit("/", 1)[-1], relpath=rel, view=view)))
        if not ranked:
            yield Skipped(key, source, "no images (ImagePath lists no path)")
            return
        patient = text_field(study.get("PatientID")) if isinstance(study.get("PatientID"), str) else ""
        yield Report(
            id=key,
            source=source,
            findings=findings,
            impression=impression,
            images=[ref for _, ref in sorted(ranked, key=lambda x: x[0])],
            split=split,
            study=key,
            group=f"patient:{patient}" if patient else "",
        )


KEY_RULE = "the metadata's study key; split group: the patient, PatientID"

FORM = InputForm(
    name="rexgradient",
    collection="rexgradient",
    help="ReXGradient-160K: the metadata folder ({train,valid,test}_metadata.json) as --metadata-dir, "
    "the unpacked root holding deid_png/ (or deid_png itself) as --images-dir",
    inputs={
        "metadata_dir": "metadata/ with {train,valid,test}_metadata.json",
        "images_dir": "the root holding deid_png/ (or deid_png/ itself)",
    },
    read=lambda given: ReXGradient(given["metadata_dir"], given["images_dir"]),
    count=lambda given: ReXGradient(given["metadata_dir"], given["images_dir"]).count(),
    key_rule=KEY_RULE,
    published_split="official",
    default_split="official",
)
