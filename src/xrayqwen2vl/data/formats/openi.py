"""Reader for the raw Open-i download: ``ecgen-radiology/<n>.xml`` and ``NLMCXR_png/``."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from ...fileio import check_regular_file
from ..records import ImageRef, InputFileError, Report, Skipped
from .common import INDIANA, indiana_study
from .registry import InputForm


def _text(el: ET.Element | None) -> str:
    return "".join(el.itertext()) if el is not None else ""


def parse_report_xml(path: str | Path, display: str | None = None) -> Report:
    """Parse one Open-i report file.

    Raises ``InputFileError`` naming the file and the line (malformed XML) or the element
    (missing ``uId``) when the file cannot be read as a report.
    """
    path = Path(path)
    name = display or str(path)
    check_regular_file(path, "report file", shown=name)  # before the parser opens it
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        line, col = e.position
        msg = str(e).split(":")[0]
        raise InputFileError(f"{name}: line {line}, column {col}: malformed XML ({msg})") from None
    except UnicodeDecodeError as e:
        raise InputFileError(f"{name}: undecodable text ({e.reason} at byte {e.start})") from None
    except OSError as e:  # a symlink loop, a folder named *.xml, an unreadable file
        raise InputFileError(f"{name}: cannot be read ({e.strerror or e})") from None
    if root.tag != "eCitation":
        raise InputFileError(f"{name}: root element is <{root.tag}>, expected <eCitation>")
    uid_el = root.find("uId")
    uid = (uid_el.get("id") or "").strip() if uid_el is not None else ""
    if not uid:
        raise InputFileError(f"{name}: element <uId id=…> missing or empty")
    sections: dict[str, str] = {}
    for el in root.iterfind("MedlineCitation/Article/Abstract/AbstractText"):
        label = (el.get("Label") or "").strip().upper()
        if label:
            sections[label] = _text(el)
    images = []
    for el in root.iterfind("parentImage"):
        image_id = (el.get("id") or "").strip()
        if not image_id:
            raise InputFileError(f"{name}: <parentImage> without an id attribute")
        images.append(ImageRef(id=image_id, relpath=f"{image_id}.png"))
    return Report(
        id=uid,
        source=name,
        findings=sections.get("FINDINGS", ""),
        impression=sections.get("IMPRESSION", ""),
        images=images,
        study=indiana_study(uid),
    )


def _number_key(p: Path):
    m = re.match(r"(\d+)$", p.stem)
    return (0, int(m.group(1)), p.name) if m else (1, 0, p.name)


def read_openi(reports_dir: str | Path) -> Iterator[Report | Skipped]:
    """Every ``*.xml`` in ``reports_dir`` in numeric order: a Report, or Skipped when unreadable."""
    reports_dir = Path(reports_dir)
    if not reports_dir.is_dir():
        raise InputFileError(f"{reports_dir}: reports folder not found")
    files = sorted(reports_dir.glob("*.xml"), key=_number_key)
    if not files:
        raise InputFileError(f"{reports_dir}: no .xml report files")
    for f in files:
        display = f"{reports_dir.name}/{f.name}"
        try:
            yield parse_report_xml(f, display)
        except InputFileError as e:
            yield Skipped(id=f.stem, source=display, reason=str(e).removeprefix(display + ": "))


def count_reports(reports_dir: str | Path) -> int | None:
    reports_dir = Path(reports_dir)
    return len(list(reports_dir.glob("*.xml"))) if reports_dir.is_dir() else None


FORM = InputForm(
    name="openi",
    collection=INDIANA,
    help="raw Open-i download: ecgen-radiology/<n>.xml and NLMCXR_png/",
    inputs={
        "reports_dir": "folder of report XML files (ecgen-radiology)",
        "images_dir": "NLMCXR_png",
    },
    read=lambda given: read_openi(given["reports_dir"]),
    count=lambda given: count_reports(given["reports_dir"]),
    key_rule="CXR<n> from the report's uId (CXR<n>)",
)
