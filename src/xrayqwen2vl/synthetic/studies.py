"""The studies of the synthetic Open-i sample, read back from its files: what every writer of
another public form (``formats.py``, ``mimic.py``, ``leaderboard.py``) starts from."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path


def sample_studies(sample_dir: Path) -> list[dict]:
    """Each study of the sample: number, sections (en, zh) and its images with true views."""
    labels = {}
    with open(sample_dir / "labels.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            labels[row["id"]] = row
    studies = []
    xml_dir = sample_dir / "ecgen-radiology"
    for path in sorted(xml_dir.glob("*.xml"), key=lambda p: int(p.stem)):
        root = ET.parse(path).getroot()
        uid = root.find("uId").get("id")
        sections = {
            (el.get("Label") or "").upper(): "".join(el.itertext())
            for el in root.iterfind("MedlineCitation/Article/Abstract/AbstractText")
        }
        row = labels[uid]
        views = dict(item.split(":") for item in row["images"].split(";") if item)
        images = [(el.get("id"), views[el.get("id")]) for el in root.iterfind("parentImage")]
        studies.append(
            {
                "number": int(path.stem),
                "uid": uid,
                "sections": sections,
                "zh": {"findings": row["findings_zh"], "impression": row["impression_zh"]},
                "images": images,
                "mesh": ";".join(el.text or "" for el in root.iterfind("MeSH/major")),
            }
        )
    return studies
