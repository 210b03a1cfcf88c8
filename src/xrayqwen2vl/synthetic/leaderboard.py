"""The synthetic Open-i sample as the three collections the ReXrank leaderboard adds to IU X-ray
and MIMIC-CXR, with the file names, columns and oddities of the public copies:

- ``write_chexpert_plus``: ``df_chexpert_plus_240401.csv`` (one row per image, all 27 columns,
  demographics filled, report text over several lines), the PNG root ``PNG/`` and an original-JPG
  root ``CheXpert-v1.0/`` with the same relative paths; the CSV says ``.jpg``. Impression text
  inside ``section_findings``, empty section columns with the report text to parse, laterals
  without ``ap_pa`` (and some frontals), a ``valid`` split, a row with a broken path and an image
  missing on disk.
- ``write_rexgradient``: ``metadata/{train,valid,test}_metadata.json`` with bare ``NaN``
  literals, DICOM-style ages (``036Y``, ``007M``), ``ImagePath`` lists of
  ``../deid_png/…/instances/<SOP>.png``, ``ImageViewPosition`` variants (``PA``,
  ``POSTERO_ANTERIOR``, ``AP (KUB)``, ``LATERAL``…), one to four images per study, a study with
  neither section, a ``NaN`` in ``ImagePath``.
- ``write_rexrank``: ``ReXRank_MIMICCXR_test.json`` (image paths with a leading ``/``) and
  ``ReXRank_IUXray_test.json`` (R2Gen's ``CXR<n>_IM-<a>/0.png``) under one image root
  ``images/``, with ``NaN`` sections, "None." in ``report`` and a ``context`` that carries age and
  gender for some studies.

Each writes ``truth.json``: what every study must become (its split and sections, or the reason
it is skipped). Deterministic for a given sample and seed; no patient data.
"""

from __future__ import annotations

import csv
import io
import json
import random
import shutil
from pathlib import Path

from ..fileio import atomic_write_bytes, atomic_write_text
from .studies import sample_studies

TRUTH = "truth.json"
CHEXPERT_CSV = "df_chexpert_plus_240401.csv"
CHEXPERT_COLUMNS = [
    "path_to_image",
    "path_to_dcm",
    "frontal_lateral",
    "ap_pa",
    "deid_patient_id",
    "patient_report_date_order",
    "report",
    "section_narrative",
    "section_clinical_history",
    "section_history",
    "section_comparison",
    "section_technique",
    "section_procedure_comments",
    "section_findings",
    "section_impression",
    "section_end_of_impression",
    "section_summary",
    "section_accession_number",
    "age",
    "sex",
    "race",
    "ethnicity",
    "interpreter_needed",
    "insurance_type",
    "recent_bmi",
    "deceased",
    "split",
]
# Demographic values no target or prompt may contain (the tests look for them).
DEMOGRAPHIC_MARKERS = ("Native Hawaiian", "Medicaid", "Non-Hispanic")
CHEXPERT_VARIANTS = ["standard"] * 5 + ["impression_in_findings", "impression_only", "report_only"]
REXGRADIENT_FRONTAL = ["PA"] * 5 + ["AP"] * 3 + ["POSTERO_ANTERIOR", "ANTERO_POSTERIOR", "AP (KUB)"]
REXGRADIENT_LATERAL = ["LATERAL", "LATERAL", "LL", "LEFT LATERAL"]
NAN = float("nan")


def _sections(s: dict) -> tuple[str, str, str, str]:
    sec = s["sections"]
    return tuple(
        " ".join(sec.get(k, "").split()) for k in ("FINDINGS", "IMPRESSION", "INDICATION", "COMPARISON")
    )


def _images(s: dict, rng: random.Random) -> list[tuple[str, str]]:
    """The study's (image id, view), one in ten with a second frontal image added (up to four)."""
    images = list(s["images"])
    if len(images) < 4 and rng.random() < 0.1:
        images.append(next((x for x in images if x[1] == "frontal"), images[0]))
    return images


def _patients(n: int, rng: random.Random, most: int = 3) -> list[int]:
    """The patient of each of n studies: runs of one to ``most`` studies."""
    out, patient = [], 0
    while len(out) < n:
        out += [patient] * rng.randint(1, most)
        patient += 1
    return out[:n]


def _truth(findings: str, impression: str, split: str, images: int) -> dict:
    if not findings and not impression:
        return {"reason": "no findings", "split": split}
    return {"findings": findings, "impression": impression, "split": split, "images": images}


def _write_truth(out: Path, truth: dict) -> None:
    atomic_write_text(out / TRUTH, json.dumps({"studies": truth}, indent=1, ensure_ascii=False) + "\n")


def _jpeg(src: Path, dest: Path) -> None:
    from PIL import Image

    with Image.open(src) as img:
        buf = io.BytesIO()
        img.convert("L").save(buf, format="JPEG", quality=90)
    atomic_write_bytes(dest, buf.getvalue())


# ---------------------------------------------------------------- CheXpert Plus


def _chexpert_report(findings: str, impression: str, indication: str, variant: str) -> dict:
    """The report column and the section columns of one study, by variant."""
    report = f"NARRATIVE:\nCHEST 2 VIEWS\n\nCLINICAL HISTORY: {indication}\n\n"
    if findings:
        report += f"FINDINGS:\n{findings}\n\n"
    if impression:
        report += f"IMPRESSION:\n{impression}\n\nEND OF IMPRESSION:\nSummary: Normal.\n"
    cols = {"report": report, "section_clinical_history": indication}
    if variant == "impression_in_findings" and findings and impression:
        cols["section_findings"] = f"{findings}\nIMPRESSION: {impression}"
    elif variant == "report_only":
        pass  # the section columns empty: the report text is parsed
    elif variant == "impression_only" and impression:
        cols["report"] = f"NARRATIVE:\nIMPRESSION:\n{impression}\n"
        cols["section_impression"] = impression
        return cols
    else:
        cols["section_findings"] = findings
        cols["section_impression"] = impression
    return cols


def write_chexpert_plus(sample_dir: str | Path, out: str | Path, seed: int = 0) -> dict:
    sample_dir, out = Path(sample_dir), Path(out)
    rng = random.Random(f"chexpert-plus:{seed}")
    studies = sample_studies(sample_dir)
    patients = _patients(len(studies), rng)
    valid = {p for p in set(patients) if rng.random() < 0.15}
    rows, truth, counter = [], {}, {}
    n_images = 0
    for s, p in zip(studies, patients, strict=True):
        findings, impression, indication, _ = _sections(s)
        variant = rng.choice(CHEXPERT_VARIANTS)
        if variant == "impression_only":
            findings = ""
        patient = f"patient{64541 + p}"
        counter[patient] = counter.get(patient, 0) + 1
        split = "valid" if p in valid else "train"
        key = f"{patient}/study{counter[patient]}"
        report = _chexpert_report(findings, impression, indication or "Cough.", variant)
        images = _images(s, rng)
        for k, (image_id, view) in enumerate(images, start=1):
            rel = f"{split}/{key}/view{k}_{view}"
            for root, ext in (("PNG", "png"), ("CheXpert-v1.0", "jpg")):
                dest = out / root / f"{rel}.{ext}"
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = sample_dir / "NLMCXR_png" / f"{image_id}.png"
                shutil.copyfile(src, dest) if ext == "png" else _jpeg(src, dest)
            n_images += 1
            ap_pa = "" if view == "lateral" else rng.choice(["PA", "PA", "AP", ""])
            row = dict.fromkeys(CHEXPERT_COLUMNS, "")
            row.update(report)
            row.update(
                {
                    "path_to_image": f"{rel}.jpg",
                    "path_to_dcm": f"{rel}.dcm",
                    "frontal_lateral": view.capitalize(),
                    "ap_pa": ap_pa,
                    "deid_patient_id": patient,
                    "patient_report_date_order": counter[patient],
                    "section_narrative": "CHEST 2 VIEWS",
                    "age": rng.randint(18, 90),
                    "sex": rng.choice(["Male", "Female"]),
                    "race": rng.choice(["White", "Asian", DEMOGRAPHIC_MARKERS[0]]),
                    "ethnicity": DEMOGRAPHIC_MARKERS[2],
                    "interpreter_needed": "No",
                    "insurance_type": DEMOGRAPHIC_MARKERS[1],
                    "recent_bmi": f"{rng.uniform(17, 40):.1f}",
                    "deceased": "No",
                    "split": split,
                }
            )
            rows.append(row)
        truth[key] = _truth(findings, impression, split, len(images))
        truth[key]["variant"] = variant
    _chexpert_odd_cases(out, rows, truth)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CHEXPERT_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / CHEXPERT_CSV, buf.getvalue())
    _write_truth(out, truth)
    return {"studies": len(truth), "rows": len(rows), "images": n_images}


def _chexpert_odd_cases(out: Path, rows: list[dict], truth: dict) -> None:
    """An image listed but not on disk (in a study with more), and a row with a broken path."""
    for row in rows:
        key = "/".join(row["path_to_image"].split("/")[1:3])
        if truth[key].get("images", 0) > 1 and "reason" not in truth[key]:
            rel = row["path_to_image"][:-4]
            (out / "PNG" / f"{rel}.png").unlink()
            (out / "CheXpert-v1.0" / f"{rel}.jpg").unlink()
            truth[key]["missing_image"] = row["path_to_image"]
            break
    broken = dict(rows[0], path_to_image="train/patient_/view1_frontal.jpg")
    rows.append(broken)
    truth["train/patient_/view1_frontal.jpg"] = {"reason": "path_to_image"}


# ---------------------------------------------------------------- ReXGradient-160K


def _dicom_age(rng: random.Random) -> str:
    return rng.choice(
        [f"{rng.randint(18, 95):03d}Y", f"{rng.randint(1, 11):03d}M", f"{rng.randint(1, 17):03d}Y"]
    )


def _uid(rng: random.Random) -> str:
    return "1.2.826.0.1." + ".".join(str(rng.randint(1, 99999)) for _ in range(4))


def write_rexgradient(sample_dir: str | Path, out: str | Path, seed: int = 0) -> dict:
    sample_dir, out = Path(sample_dir), Path(out)
    rng = random.Random(f"rexgradient:{seed}")
    studies = sample_studies(sample_dir)
    patients = _patients(len(studies), rng)
    split_of = {p: rng.choices(["train", "valid", "test"], weights=[8, 1, 1])[0] for p in set(patients)}
    files: dict[str, dict] = {"train": {}, "valid": {}, "test": {}}
    truth: dict[str, dict] = {}
    n_images = 0
    for i, (s, p) in enumerate(zip(studies, patients, strict=True)):
        findings, impression, indication, comparison = _sections(s)
        pid, acc, uid = f"pGRDN{p:06d}X", f"aGRDN{i:07d}", _uid(rng)
        key = f"{pid}_{acc}_{uid}"
        paths, positions = [], []
        for image_id, view in _images(s, rng):
            series, sop = _uid(rng), _uid(rng)
            rel = f"deid_png/{pid}/{acc}/studies/{uid}/series/{series}/instances/{sop}.png"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(sample_dir / "NLMCXR_png" / f"{image_id}.png", out / rel)
            n_images += 1
            paths.append(f"../{rel}")
            positions.append(rng.choice(REXGRADIENT_FRONTAL if view == "frontal" else REXGRADIENT_LATERAL))
        if i == 3:  # a NaN where a path should be
            paths.append(NAN)
            positions.append(NAN)
        split = split_of[p]
        files[split][key] = {
            "PatientID": pid,
            "AccessionNumber": acc,
            "StudyInstanceUid": uid,
            "PatientSex": rng.choice(["M", "F"]),
            "PatientAge": _dicom_age(rng),
            "StudyDate": f"20{rng.randint(10, 23)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
            "Indication": indication or NAN,
            "Comparison": comparison or NAN,
            "Findings": findings or NAN,
            "Impression": impression or NAN,
            "ImagePath": paths,
            "ImageViewPosition": positions,
        }
        truth[key] = _truth(findings, impression, {"valid": "val"}.get(split, split), len(positions))
    (out / "metadata").mkdir(parents=True, exist_ok=True)
    for split, data in files.items():  # json writes float NaN as a bare NaN literal, as the real files have
        atomic_write_text(out / "metadata" / f"{split}_metadata.json", json.dumps(data, indent=2) + "\n")
    _write_truth(out, truth)
    return {"studies": len(truth), "images": n_images, **{k: len(v) for k, v in files.items()}}


# ---------------------------------------------------------------- ReXrank test JSONs

REXRANK_FILES = {"mimic": "ReXRank_MIMICCXR_test.json", "iu": "ReXRank_IUXray_test.json"}


def _context(indication: str, comparison: str, rng: random.Random) -> str:
    text = f"Indication: {indication or 'None.'} Comparison: {comparison or 'None.'}"
    if rng.random() < 0.5:
        text = f"Age: {rng.randint(20, 90)}. Gender: {rng.choice(['F', 'M'])}. " + text
    return text


def write_rexrank(sample_dir: str | Path, out: str | Path, seed: int = 0) -> dict:
    """Studies with text, a third as IU X-ray (R2Gen paths), the rest as MIMIC-CXR (paths with a
    leading slash), every study in its file's test set."""
    sample_dir, out = Path(sample_dir), Path(out)
    rng = random.Random(f"rexrank:{seed}")
    sets: dict[str, dict] = {"mimic": {}, "iu": {}}
    truth: dict[str, dict] = {}
    for s in sample_studies(sample_dir):
        findings, impression, indication, comparison = _sections(s)
        if not findings and not impression:
            continue  # the leaderboard's sets have a reference for every study
        kind = "iu" if s["number"] % 3 == 0 else "mimic"
        if len(sets[kind]) == 1 and findings and impression:
            findings = ""  # an impression-only study in every set: section_findings NaN
        images = _images(s, rng)
        paths = []
        if kind == "iu":
            key = s["uid"] + "_IM-" + images[0][0].split("_IM-", 1)[1].rsplit("-", 1)[0]
            rels = [f"{key}/{k}.png" for k in range(len(images))]
            paths = rels
        else:
            subject, study = 10_000_000 + s["number"], 50_000_000 + s["number"]
            key = f"s{study}"
            rels = [f"p{str(subject)[:2]}/p{subject}/s{study}/{rng.getrandbits(64):016x}.jpg" for _ in images]
            paths = ["/" + r for r in rels]
        for (image_id, _), rel in zip(images, rels, strict=True):
            src, dest = sample_dir / "NLMCXR_png" / f"{image_id}.png", out / "images" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest) if rel.endswith(".png") else _jpeg(src, dest)
        sets[kind][key] = {
            "image_path": paths,
            "key_image_path": paths[0],
            "section_findings": findings or NAN,
            "section_impression": impression or NAN,
            "report": f"Findings: {findings or 'None.'} Impression: {impression or 'None.'}",
            "frontal_lateral": [view.capitalize() for _, view in images],
            "context": _context(indication, comparison, rng) if sets[kind] and rng.random() < 0.9 else NAN,
            "split": "test",
        }
        truth[key] = {
            **_truth(findings, impression, "test", len(images)),
            "file": REXRANK_FILES[kind],
            "indication": indication,
            "comparison": comparison,
        }
    for kind, data in sets.items():
        atomic_write_text(out / REXRANK_FILES[kind], json.dumps(data, indent=2) + "\n")
    _write_truth(out, truth)
    return {k: len(v) for k, v in sets.items()}
