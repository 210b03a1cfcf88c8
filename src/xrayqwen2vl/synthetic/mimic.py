"""A synthetic copy of MIMIC-CXR's public layout (MIMIC-CXR-JPG 2.x and the report files).

``OUT/mimic-cxr-jpg/``: ``files/p<NN>/p<subject_id>/s<study_id>/<dicom_id>.jpg`` and
``mimic-cxr-2.0.0-{metadata,split,chexpert,negbio}.csv.gz`` with the public columns;
``OUT/mimic-cxr-reports/files/p<NN>/p<subject_id>/s<study_id>.txt``: free-text reports with a
``FINAL REPORT`` line, upper-case section headers, text wrapped at 78 columns with a leading space
and ``___`` de-identification; ``OUT/mimic-truth.json``: what every study must become; and
``OUT/r2gen/annotation.json``, R2Gen's MIMIC-CXR annotation of the same copy: one entry per image
(``id`` = dicom_id, ``study_id``, ``subject_id``, ``report`` = the findings, ``image_path`` =
``["p1x/p…/s…/<dicom_id>.jpg"]`` under ``OUT/mimic-cxr-jpg/files``, ``split``) for the studies
with a findings section.

The variety the real collection has, each kind present in every block of 20 studies:
- sections: FINDINGS + IMPRESSION (header alone on its line or text on the same line),
  FINDINGS AND IMPRESSION, CONCLUSION instead of IMPRESSION, impression only, a WET READ
  preamble, the findings under ``PA AND LATERAL VIEWS OF THE CHEST:``, a numbered impression
  followed by NOTIFICATION, and a report with no FINDINGS or IMPRESSION at all;
- ViewPosition PA, AP, AP AXIAL, PA LLD, LATERAL, LL and empty (with and without
  ViewCodeSequence_CodeMeaning), studies with a second frontal view;
- patients with one to four studies; the official split by patient (train/validate/test);
- a study whose report file is missing, a report whose study is not in the metadata, an image the
  metadata lists that is not on disk; odd StudyDate/StudyTime values (shifted years, times that
  lost their leading zero) and blank or -1.0 CheXpert labels.

Built from the synthetic Open-i sample (``write_mimic``: its reports and drawings, PNG → JPEG), or
from any studies and image writer (``write_collection``; the benchmark writes full-size films).
Deterministic for a given input and seed; no patient data.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..fileio import atomic_write_bytes, atomic_write_text
from .studies import sample_studies
from .text import CHEXPERT_OF

JPG_DIR = "mimic-cxr-jpg"
REPORTS_DIR = "mimic-cxr-reports"
TRUTH = "mimic-truth.json"
R2GEN_ANNOTATION = "r2gen/annotation.json"  # R2Gen's mimic_cxr annotation; its images/ = JPG_DIR/files

METADATA_FIELDS = [
    "dicom_id",
    "subject_id",
    "study_id",
    "PerformedProcedureStepDescription",
    "ViewPosition",
    "Rows",
    "Columns",
    "StudyDate",
    "StudyTime",
    "ProcedureCodeSequence_CodeMeaning",
    "ViewCodeSequence_CodeMeaning",
    "PatientOrientationCodeSequence_CodeMeaning",
]
SPLIT_FIELDS = ["dicom_id", "study_id", "subject_id", "split"]
CHEXPERT = [
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Fracture",
    "Lung Lesion",
    "Lung Opacity",
    "No Finding",
    "Pleural Effusion",
    "Pleural Other",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
]

# Section variants; every block of 20 studies carries each at least once.
VARIANT_CYCLE = (
    ["standard"] * 8
    + ["standard_inline"] * 3
    + ["combined", "conclusion", "impression_only", "impression_only"]
    + ["wet_read", "views_header", "numbered_notification", "no_sections", "combined"]
)
# ViewPosition (and ViewCodeSequence_CodeMeaning) by true view; the empty ones are real too.
FRONTAL_POSITIONS = (
    [("PA", "postero-anterior")] * 6
    + [("AP", "antero-posterior")] * 3
    + [
        ("AP AXIAL", "antero-posterior"),
        ("PA LLD", "postero-anterior"),
        ("", "postero-anterior"),
        ("", ""),
    ]
)
LATERAL_POSITIONS = [("LATERAL", "lateral")] * 6 + [("LL", "left lateral")] * 2 + [("", "lateral"), ("", "")]
SPLIT_SHARES = (("train", 0.8), ("validate", 0.1), ("test", 0.1))


@dataclass
class SourceStudy:
    """What a study says and shows, before it is dressed in MIMIC's layout."""

    findings: str
    impression: str
    indication: str
    views: list[str]  # true view of each image, "frontal"/"lateral"
    present: list[str] = field(default_factory=list)  # synthetic findings (for the CheXpert CSV)
    images: list = field(default_factory=list)  # per view: whatever the image writer needs


@dataclass
class MimicImage:
    dicom_id: str
    view: str  # the truth
    view_position: str
    code_meaning: str
    source: object = None
    on_disk: bool = True
    rows: int = 0
    columns: int = 0


@dataclass
class MimicStudy:
    subject_id: int
    study_id: int
    split: str  # official: train / validate / test
    variant: str
    source: SourceStudy
    images: list[MimicImage]
    has_report: bool = True
    in_metadata: bool = True

    @property
    def id(self) -> str:
        return f"p{self.subject_id}/s{self.study_id}"

    @property
    def procedure(self) -> str:
        """PerformedProcedureStepDescription: one per study (blank for some, as in the CSV)."""
        if self.study_id % 20 == 7:
            return ""
        if any(im.view == "lateral" for im in self.images):
            return "CHEST (PA AND LAT)"
        return "CHEST (PORTABLE AP)"

    @property
    def folder(self) -> str:
        s = str(self.subject_id)
        return f"files/p{s[:2]}/p{s}"


def _deid(text: str) -> str:
    """The Open-i sample's XXXX tokens in MIMIC's form."""
    return text.replace("XXXX", "___")


def _wrap(text: str, first: str = "") -> list[str]:
    """Wrapped at 78 columns, every line indented by one space, as in the report files."""
    lines = textwrap.wrap(first + text, width=77, break_on_hyphens=False) or [first.rstrip()]
    return [" " + line for line in lines]


def _section(header: str, text: str, inline: bool) -> list[str]:
    if inline:
        return _wrap(text, f"{header}:  ") + [" "]
    return [f" {header}: ", " "] + _wrap(text) + [" "]


def report_and_truth(study: MimicStudy, rng: random.Random) -> tuple[str, dict]:
    """The report text of a study and the findings/impression (or skip reason) it must give."""
    src = study.source
    findings, impression = _deid(src.findings), _deid(src.impression)
    indication = _deid(src.indication)
    variant = study.variant
    exam = study.procedure or "CHEST"
    head = [f"{'FINAL REPORT':>45}"]
    if variant == "wet_read":
        head = [
            " WET READ: ___ ___ ___ 10:41 PM",
            "  No acute cardiopulmonary process; final read to follow.",
            " " + "_" * 78,
            "",
        ] + head
    lines = list(head)
    lines += _section("EXAMINATION", exam, True)
    lines += _section("INDICATION", f"{indication}  // eval for acute process", True)
    lines += _section("TECHNIQUE", "Chest PA and lateral", True)
    lines += _section("COMPARISON", rng.choice(["None.", "___", "Chest radiograph from ___."]), True)
    want = {"findings": findings, "impression": impression}
    if variant == "no_sections" or not (findings or impression):
        body = " ".join(x for x in (findings, impression) if x) or "Study reviewed."
        lines += _wrap(f"Frontal and lateral views of the chest. {body}") + [" "]
        want = {"reason": "no FINDINGS or IMPRESSION section"}
    elif variant == "combined" and findings:
        lines += _section("FINDINGS AND IMPRESSION", f"{findings} {impression}".strip(), False)
        want = {"findings": "", "impression": f"{findings} {impression}".strip()}
    elif variant == "impression_only" or not findings:
        lines += _section("IMPRESSION", impression, False)
        want = {"findings": "", "impression": impression}
    elif variant == "views_header":
        lines += _section("PA AND LATERAL VIEWS OF THE CHEST", findings, True)
        if impression:
            lines += _section("IMPRESSION", impression, True)
    elif variant == "numbered_notification" and impression:
        sentences = [s.strip() for s in impression.split(".") if s.strip()]
        numbered = " ".join(f"{k}. {s}." for k, s in enumerate(sentences, start=1))
        lines += _section("FINDINGS", findings, False)
        lines += [" IMPRESSION: ", " "] + [" " + ln for ln in textwrap.wrap(numbered, 76)] + [" "]
        lines += _section(
            "NOTIFICATION",
            "The findings were discussed with Dr. ___ by Dr. ___ on the telephone at 10:20 AM.",
            True,
        )
        want = {"findings": findings, "impression": numbered}
    else:
        closing = "CONCLUSION" if variant == "conclusion" else "IMPRESSION"
        inline = variant == "standard_inline"
        lines += _section("FINDINGS", findings, inline)
        if impression:
            lines += _section(closing, impression, inline)
    return "\n".join(lines) + "\n", want


def plan_studies(sources: Iterable[SourceStudy], seed: int = 0) -> list[MimicStudy]:
    """Group the studies into patients (one to four studies each), give them MIMIC's ids, the
    official split by patient, section variants and ViewPositions, and the odd cases."""
    rng = random.Random(seed)
    sources = list(sources)
    subjects = rng.sample(range(10_000_000, 20_000_000), len(sources))
    study_ids = rng.sample(range(50_000_000, 60_000_000), len(sources))
    block: list[str] = []
    studies: list[MimicStudy] = []
    i = 0
    patient = 0
    while i < len(sources):
        subject = subjects[patient]
        patient += 1
        r, split = rng.random(), "train"
        for name, share in SPLIT_SHARES:
            if r < share:
                split = name
                break
            r -= share
        n = rng.choices([1, 2, 3, 4], weights=[50, 25, 15, 10])[0]
        for src in sources[i : i + n]:
            if not block:
                block = list(VARIANT_CYCLE)
                rng.shuffle(block)
            images = []
            for k, view in enumerate(src.views):
                vp, meaning = rng.choice(FRONTAL_POSITIONS if view == "frontal" else LATERAL_POSITIONS)
                dicom = "-".join(f"{rng.getrandbits(32):08x}" for _ in range(5))
                images.append(MimicImage(dicom, view, vp, meaning, src.images[k] if src.images else None))
            studies.append(MimicStudy(subject, study_ids[i], split, block.pop(), src, images))
            i += 1
    _odd_cases(studies)
    return studies


def _odd_cases(studies: list[MimicStudy]) -> None:
    """A report file missing, a report whose study the metadata does not list, an image listed
    but not on disk (in a study that keeps another image): one each, when there are studies."""
    kept = [s for s in studies if s.variant.startswith("standard") and s.source.findings]
    if len(kept) >= 3:
        kept[0].has_report = False
        kept[1].in_metadata = False
    multi = [s for s in kept[2:] if len(s.images) > 1]
    if multi:
        multi[0].images[-1].on_disk = False


def _csv_gz(rows: list[dict], fields: list[str]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return gzip.compress(buf.getvalue().encode("utf-8"), mtime=0)


def _study_time(rng: random.Random) -> str:
    """HHMMSS.fff as a number: times before 10:00 lost their leading zero in the real CSV."""
    h, m, s = rng.randrange(24), rng.randrange(60), rng.randrange(60)
    value = f"{h * 10000 + m * 100 + s}"
    return value + (f".{rng.randrange(1000):03d}" if rng.random() < 0.7 else "")


def _labels(study: MimicStudy, rng: random.Random) -> dict:
    row = {"subject_id": study.subject_id, "study_id": study.study_id}
    present = {CHEXPERT_OF[n] for n in study.source.present if n in CHEXPERT_OF}
    for name in CHEXPERT:
        if name in present:
            row[name] = "1.0" if rng.random() < 0.85 else "-1.0"
        elif name == "No Finding":
            row[name] = "" if present else "1.0"
        else:
            row[name] = "0.0" if rng.random() < 0.15 else ""
    return row


def write_collection(
    out: str | Path,
    studies: list[MimicStudy],
    write_image: Callable[[MimicImage, Path], tuple[int, int]],
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Write the layout for ``studies``; ``write_image(image, path)`` writes one JPEG and returns
    its (rows, columns). Returns counts; writes the truth file beside the two roots."""
    out = Path(out)
    jpg, reports = out / JPG_DIR, out / REPORTS_DIR
    rng = random.Random(seed)
    metadata, split_rows, labels, truth = [], [], [], []
    n_images = 0
    for study in studies:
        text, want = report_and_truth(study, rng)
        if study.has_report:
            atomic_write_bytes(reports / f"{study.folder}/s{study.study_id}.txt", text.encode("utf-8"))
        date = f"21{rng.randrange(10, 99)}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}"
        time = _study_time(rng)
        for image in study.images:
            if image.on_disk:
                path = jpg / f"{study.folder}/s{study.study_id}/{image.dicom_id}.jpg"
                image.rows, image.columns = write_image(image, path)
                n_images += 1
            if not study.in_metadata:
                continue
            metadata.append(
                {
                    "dicom_id": image.dicom_id,
                    "subject_id": study.subject_id,
                    "study_id": study.study_id,
                    "PerformedProcedureStepDescription": study.procedure,
                    "ViewPosition": image.view_position,
                    "Rows": image.rows or 3056,
                    "Columns": image.columns or 2544,
                    "StudyDate": date,
                    "StudyTime": time,
                    "ProcedureCodeSequence_CodeMeaning": study.procedure,
                    "ViewCodeSequence_CodeMeaning": image.code_meaning,
                    "PatientOrientationCodeSequence_CodeMeaning": rng.choice(
                        ["Erect", "Erect", "Recumbent", ""]
                    ),
                }
            )
            split_rows.append(
                {
                    "dicom_id": image.dicom_id,
                    "study_id": study.study_id,
                    "subject_id": study.subject_id,
                    "split": study.split,
                }
            )
        if study.has_report and study.in_metadata:
            labels.append(_labels(study, rng))
        if not study.has_report:
            want = {"reason": "no report file"}
        elif not study.in_metadata:
            want = {"reason": "no images"}
        truth.append(
            {
                "id": study.id,
                "subject_id": study.subject_id,
                "study_id": study.study_id,
                "split": study.split,
                "variant": study.variant,
                **want,
                "images": [
                    {k: v for k, v in asdict(im).items() if k not in ("source", "rows", "columns")}
                    for im in study.images
                ],
            }
        )
        if progress:
            progress(1)
    atomic_write_bytes(jpg / "mimic-cxr-2.0.0-metadata.csv.gz", _csv_gz(metadata, METADATA_FIELDS))
    atomic_write_bytes(jpg / "mimic-cxr-2.0.0-split.csv.gz", _csv_gz(split_rows, SPLIT_FIELDS))
    fields = ["subject_id", "study_id", *CHEXPERT]
    atomic_write_bytes(jpg / "mimic-cxr-2.0.0-chexpert.csv.gz", _csv_gz(labels, fields))
    negbio = [{**row, "Pneumonia": ""} for row in labels]  # the two labelers disagree at times
    atomic_write_bytes(jpg / "mimic-cxr-2.0.0-negbio.csv.gz", _csv_gz(negbio, fields))
    atomic_write_text(out / TRUTH, json.dumps({"studies": truth}, ensure_ascii=False, indent=1) + "\n")
    annotation = r2gen_annotation(studies, truth)
    atomic_write_text(out / R2GEN_ANNOTATION, json.dumps(annotation, ensure_ascii=False) + "\n")
    return {
        "patients": len({s.subject_id for s in studies}),
        "studies": len(studies),
        "images": n_images,
        "reports": sum(s.has_report for s in studies),
    }


def r2gen_annotation(studies: list[MimicStudy], truth: list[dict]) -> dict:
    """R2Gen's MIMIC-CXR annotation: one entry per image of every study with a report, its images
    in the metadata and a findings section (R2Gen's targets are the findings), all entries of a
    study carrying its report, under the official split (``validate`` as ``val``)."""
    data: dict[str, list] = {"train": [], "val": [], "test": []}
    for study, want in zip(studies, truth, strict=True):
        if not want.get("findings") or not study.has_report or not study.in_metadata:
            continue
        split = {"validate": "val"}.get(study.split, study.split)
        folder = study.folder.removeprefix("files/")
        for image in study.images:
            data[split].append(
                {
                    "id": image.dicom_id,
                    "study_id": study.study_id,
                    "subject_id": study.subject_id,
                    "report": want["findings"],
                    "image_path": [f"{folder}/s{study.study_id}/{image.dicom_id}.jpg"],
                    "split": split,
                }
            )
    return data


def _png_to_jpeg(image: MimicImage, path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(image.source) as img:
        buf = io.BytesIO()
        img.convert("L").save(buf, format="JPEG", quality=90)
        atomic_write_bytes(path, buf.getvalue())
        return img.height, img.width


def write_mimic(sample_dir: str | Path, out: str | Path, seed: int = 0) -> dict:
    """The synthetic Open-i sample (``sample.py``) as a MIMIC-CXR copy under ``out``."""
    sample_dir = Path(sample_dir)
    sources = []
    for s in sample_studies(sample_dir):
        sec = s["sections"]
        labels = [name for name in CHEXPERT_OF if name.replace("_", " ").title() in s["mesh"].split(";")]
        sources.append(
            SourceStudy(
                findings=" ".join(sec.get("FINDINGS", "").split()),
                impression=" ".join(sec.get("IMPRESSION", "").split()),
                indication=" ".join(sec.get("INDICATION", "").split()) or "Cough.",
                views=[view for _, view in s["images"]],
                present=labels,
                images=[sample_dir / "NLMCXR_png" / f"{image_id}.png" for image_id, _ in s["images"]],
            )
        )
    return write_collection(out, plan_studies(sources, seed), _png_to_jpeg, seed)
