"""Generate a synthetic dataset in the raw Open-i layout.

``DIR/ecgen-radiology/<n>.xml`` report files in the Open-i XML schema,
``DIR/NLMCXR_png/<parentImage id>.png`` images, and ``DIR/labels.csv`` with the true findings
and the true view of every image. The real collection is CC BY-NC-ND and never ships with this
repository; this sample lets the demo and the tests run the same code on data of the same shape.
"""

from __future__ import annotations

import csv
import io
import random
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..fileio import atomic_write_bytes, atomic_write_text
from .images import draw_frontal, draw_lateral
from .text import FINDINGS, INDICATIONS, choose_findings, write_report

# Share of reports with one image, and with three (a second frontal), as in the real collection.
ONE_IMAGE_SHARE = 0.08
THREE_IMAGE_SHARE = 0.04
# Open-i image ids are mostly CXR<n>_IM-<a>-<b> (series a, image b); a handful carry an extra
# number, CXR<n>_<k>_IM-<a>-<b> (report 1 among them: CXR1_1_IM-0001-3001). Some studies with
# three images have the third in a second series.
RARE_FORM_SHARE = 0.03
SECOND_SERIES_SHARE = 0.5
# Share of reports whose FINDINGS section is empty (the real collection has several hundred),
# and of reports with neither FINDINGS nor IMPRESSION (prepare must skip them with a reason).
NO_FINDINGS_SHARE = 0.08
EMPTY_REPORT_SHARE = 0.02


@dataclass
class SyntheticStudy:
    number: int
    present: dict[str, str]
    text: dict[str, dict[str, str]]
    indication: str
    images: list[tuple[str, str]] = field(default_factory=list)  # (image id, "frontal"/"lateral")

    @property
    def uid(self) -> str:
        return f"CXR{self.number}"


def _study(number: int, rng: random.Random) -> SyntheticStudy:
    present = choose_findings(rng)
    text = write_report(present, rng)
    r = rng.random()
    if number == 1:  # report 1 has its sections, as in the real collection (R2Gen's CXR1_1_IM-0001)
        r = 1.0
    if r < EMPTY_REPORT_SHARE:
        for lang in text.values():
            lang["findings"] = lang["impression"] = ""
    elif r < EMPTY_REPORT_SHARE + NO_FINDINGS_SHARE:
        for lang in text.values():
            lang["findings"] = ""
    r = rng.random()
    views = ["frontal"] if r < ONE_IMAGE_SHARE else ["frontal", "lateral"]
    if ONE_IMAGE_SHARE <= r < ONE_IMAGE_SHARE + THREE_IMAGE_SHARE:
        views.append("frontal")
    rng.shuffle(views)  # the real XML lists views in no fixed order, and ids do not tell them apart
    images = list(zip(image_ids(number, len(views)), views, strict=True))
    return SyntheticStudy(number, present, text, rng.choice(INDICATIONS), images)


def image_ids(number: int, count: int) -> list[str]:
    """The Open-i ids of report ``number``'s ``count`` images, in the real naming mix. Drawn from
    their own generator, so the names never change the reports or pictures of a seed."""
    r = random.Random(f"openi-image-ids:{number}")
    rare = number == 1 or r.random() < RARE_FORM_SHARE
    head = f"CXR{number}_1" if rare else f"CXR{number}"
    series = 1 if number == 1 else (number * 6389) % 9973  # a series number unrelated to n
    first = 3 if number == 1 else r.choice((1, 1, 1, 1, 2, 3))  # b = 1001, 2001, 3001, ...
    second_series = count >= 3 and r.random() < SECOND_SERIES_SHARE
    ids = []
    for k in range(count):
        if second_series and k == count - 1:
            ids.append(f"{head}_IM-{(series + 1) % 10000:04d}-1001")
        else:
            ids.append(f"{head}_IM-{series:04d}-{1000 * (first + k) + 1}")
    return ids


def report_xml(study: SyntheticStudy) -> bytes:
    """One report in the Open-i ``eCitation`` schema (the elements prepare reads, and context)."""
    root = ET.Element("eCitation")
    ET.SubElement(root, "meta", type="rr")
    ET.SubElement(root, "uId", id=study.uid)
    ET.SubElement(root, "IUXRId", id=str(study.number))
    ET.SubElement(root, "licenseType").text = "synthetic"
    ET.SubElement(root, "publisher").text = "XrayQwen2VL synthetic sample (not patient data)"
    ET.SubElement(root, "subset").text = "CXR"
    cit = ET.SubElement(root, "MedlineCitation", Owner="synthetic", Status="generated")
    art = ET.SubElement(cit, "Article", PubModel="Electronic")
    ET.SubElement(art, "ArticleTitle").text = "Synthetic chest X-ray report"
    abstract = ET.SubElement(art, "Abstract")
    en = study.text["en"]
    sections = [("COMPARISON", "None."), ("INDICATION", study.indication)]
    sections += [("FINDINGS", en["findings"]), ("IMPRESSION", en["impression"])]
    for label, text in sections:
        el = ET.SubElement(abstract, "AbstractText", Label=label)
        el.text = text or None
    mesh = ET.SubElement(root, "MeSH")
    names = [n for n in FINDINGS if n in study.present]
    for name in names or ["normal"]:
        ET.SubElement(mesh, "major").text = name.replace("_", " ").title()
    for k, (image_id, _view) in enumerate(study.images, start=1):
        parent = ET.SubElement(root, "parentImage", id=image_id)
        ET.SubElement(parent, "figureId").text = f"F{k}"
        ET.SubElement(parent, "caption").text = "Xray Chest PA and Lateral"
        panel = ET.SubElement(parent, "panel", type="single")
        ET.SubElement(panel, "url").text = f"/synthetic/{image_id}.jpg"
    ET.indent(root)
    buf = io.BytesIO()
    ET.ElementTree(root).write(buf, encoding="utf-8", xml_declaration=True)
    return buf.getvalue() + b"\n"


def _png_bytes(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def generate_sample(
    out_dir: str | Path,
    reports: int = 200,
    seed: int = 0,
    image_size: tuple[int, int] = (256, 256),
    progress: bool = True,
) -> dict:
    """Write ``reports`` synthetic studies under ``out_dir``; return counts."""
    out = Path(out_dir)
    xml_dir, png_dir = out / "ecgen-radiology", out / "NLMCXR_png"
    xml_dir.mkdir(parents=True, exist_ok=True)
    png_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows = []
    n_images = 0
    for number in tqdm(range(1, reports + 1), desc="sample", unit="report", disable=not progress):
        study = _study(number, rng)
        atomic_write_bytes(xml_dir / f"{number}.xml", report_xml(study))
        img_rng = np.random.default_rng([seed, number])
        for image_id, view in study.images:
            draw = draw_frontal if view == "frontal" else draw_lateral
            atomic_write_bytes(
                png_dir / f"{image_id}.png", _png_bytes(draw(study.present, img_rng, image_size))
            )
            n_images += 1
        en = study.text["en"]
        row = {"id": study.uid}
        row.update({name: int(name in study.present) for name in FINDINGS})
        row["normal"] = int(not study.present)
        row["sides"] = ";".join(f"{n}:{study.present[n]}" for n in FINDINGS if n in study.present)
        row["images"] = ";".join(f"{i}:{v}" for i, v in study.images)
        row["empty_report"] = int(not en["findings"] and not en["impression"])
        row["findings_zh"] = study.text["zh"]["findings"]
        row["impression_zh"] = study.text["zh"]["impression"]
        rows.append(row)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()) if rows else ["id"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "labels.csv", buf.getvalue())
    return {"reports": reports, "images": n_images, "out": str(out)}
