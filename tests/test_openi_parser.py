"""The Open-i report XML reader on hand-written fixtures, good and bad."""

from pathlib import Path

import pytest

from xrayqwen2vl.data.formats.openi import parse_report_xml, read_openi
from xrayqwen2vl.data.records import InputFileError, Report, Skipped

FIX = Path(__file__).parent / "fixtures" / "openi"


def test_good_report_sections_and_images():
    r = parse_report_xml(FIX / "good.xml")
    assert r.id == "CXR901"
    assert "The heart is" in r.findings and "No pleural effusion." in r.findings
    assert r.impression == "Cardiomegaly."
    assert [i.id for i in r.images] == ["CXR901_1_IM-0901-1001", "CXR901_1_IM-0901-2001"]
    assert [i.relpath for i in r.images] == ["CXR901_1_IM-0901-1001.png", "CXR901_1_IM-0901-2001.png"]
    assert all(i.view is None for i in r.images)  # the XML does not say which view is which


def test_empty_and_missing_sections_are_empty_strings():
    r = parse_report_xml(FIX / "impression_only.xml")
    assert r.findings == "" and r.impression.startswith("No acute")
    r = parse_report_xml(FIX / "empty.xml")
    assert r.findings == "" and r.impression == ""


@pytest.mark.parametrize(
    "name, expected",
    [
        ("malformed.xml", r"malformed\.xml: line 6, column \d+: malformed XML"),
        ("no_uid.xml", r"no_uid\.xml: element <uId id=…> missing"),
        ("wrong_root.xml", r"wrong_root\.xml: root element is <article>"),
        ("bad_encoding.xml", r"bad_encoding\.xml: .*(malformed XML|undecodable)"),
    ],
)
def test_bad_files_raise_one_line_errors_naming_file_and_place(name, expected):
    with pytest.raises(InputFileError, match=expected) as err:
        parse_report_xml(FIX / name)
    assert "\n" not in str(err.value)


def test_read_openi_keeps_going_and_reports_every_file(tmp_path):
    for f in FIX.glob("*.xml"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    out = list(read_openi(tmp_path))
    assert len(out) == len(list(FIX.glob("*.xml")))
    reports = {r.id for r in out if isinstance(r, Report)}
    skipped = {s.id: s.reason for s in out if isinstance(s, Skipped)}
    assert reports == {"CXR901", "CXR902", "CXR903"}
    assert set(skipped) == {"malformed", "no_uid", "wrong_root", "bad_encoding"}
    assert all(reason for reason in skipped.values())


def test_read_openi_numeric_order(tmp_path):
    good = (FIX / "good.xml").read_text()
    for n in (10, 2, 1):
        (tmp_path / f"{n}.xml").write_text(good.replace("CXR901", f"CXR{n}"))
    assert [r.id for r in read_openi(tmp_path)] == ["CXR1", "CXR2", "CXR10"]


def test_read_openi_missing_folder(tmp_path):
    with pytest.raises(InputFileError, match="reports folder not found"):
        list(read_openi(tmp_path / "nope"))
    with pytest.raises(InputFileError, match="no .xml report files"):
        list(read_openi(tmp_path))
