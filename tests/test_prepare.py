"""prepare on the synthetic sample: accounting, splits by report, views, determinism, CLI."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from conftest import prepare_sample, run_cli, tool
from formats_helpers import assert_summary

from xrayqwen2vl.data.splits import SPLITS, hash_split, parse_ratios


def _prepare(raw: Path, out: Path, **opts) -> dict:
    return prepare_sample(raw, out, "t", **opts)


def _truth(raw: Path) -> dict[str, str]:
    views = {}
    for row in csv.DictReader(open(raw / "labels.csv")):
        for pair in row["images"].split(";"):
            image_id, view = pair.split(":")
            views[image_id] = view
    return views


def _image_ids(report_xml: Path) -> list[str]:
    from xrayqwen2vl.data.formats.openi import parse_report_xml

    return [i.id for i in parse_report_xml(report_xml).images]


@pytest.fixture
def damaged(sample_dir, tmp_path) -> tuple[Path, dict[str, str]]:
    """A copy of the sample with one report of every kind of problem; returns (dir, id -> problem)."""
    raw = tmp_path / "raw"
    shutil.copytree(sample_dir, raw)
    xml = raw / "ecgen-radiology"
    png = raw / "NLMCXR_png"
    two_view = [f for f in sorted(xml.glob("*.xml"), key=lambda p: int(p.stem)) if len(_image_ids(f)) == 2]
    problems = {}
    # 1. no findings and no impression
    f = two_view[0]
    text = f.read_text()
    for label in ("FINDINGS", "IMPRESSION"):
        start = text.find(f'Label="{label}">')
        if start >= 0:
            end = text.index("</AbstractText>", start)
            text = text[: start + len(f'Label="{label}">')] + text[end:]
    f.write_text(text)
    problems[f"CXR{f.stem}"] = "no findings and no impression"
    # 2. every image missing
    f = two_view[1]
    for i in _image_ids(f):
        (png / f"{i}.png").unlink()
    problems[f"CXR{f.stem}"] = "no readable image"
    # 3. every image unreadable (one corrupt, one empty)
    f = two_view[2]
    a, b = _image_ids(f)
    (png / f"{a}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    (png / f"{b}.png").write_bytes(b"")
    problems[f"CXR{f.stem}"] = "no readable image"
    # 4. a literal <image> in the findings
    f = two_view[3]
    f.write_text(f.read_text().replace('Label="FINDINGS">', 'Label="FINDINGS">See &lt;image&gt; below. ', 1))
    problems[f"CXR{f.stem}"] = "literal <image>"
    # 5. a duplicate report id (a second file with the same uId)
    shutil.copy(two_view[4], xml / "99999.xml")
    problems["CXR" + two_view[4].stem + "#dup"] = "duplicate report id"
    # 6. an image id escaping the images folder
    f = two_view[5]
    first = _image_ids(f)[0]
    f.write_text(f.read_text().replace(f'id="{first}"', 'id="../../outside"'))
    problems[f"CXR{f.stem}#escape"] = "escapes the images folder"
    # 7. malformed XML
    (xml / "99998.xml").write_text("<eCitation><uId id='CXR99998'/>")
    problems["99998"] = "malformed XML"
    # 8. one of two images missing: the report is kept with one image
    f = two_view[6]
    (png / f"{_image_ids(f)[1]}.png").unlink()
    problems[f"CXR{f.stem}#partial"] = "image file not found"
    return raw, problems


def test_every_record_is_kept_or_skipped_with_reason(damaged, tmp_path):
    raw, problems = damaged
    m = _prepare(raw, tmp_path / "out")
    c = m["counts"]
    n_xml = len(list((raw / "ecgen-radiology").glob("*.xml")))
    assert c["inputs"] == n_xml
    assert c["kept"] + c["skipped"] == c["inputs"]
    assert sum(c["reports"].values()) == c["kept"]
    reasons = {s["id"]: s["reason"] for s in m["skipped"]}
    for rid, problem in problems.items():
        if rid.endswith(("#partial", "#escape")):
            continue
        key = rid.split("#")[0]
        assert key in reasons, f"{rid} not in skipped"
        assert problem.split()[-1] in reasons[key] or problem in reasons[key], (rid, reasons[key])
    assert "image file not found" in reasons[next(k for k, v in problems.items() if v == "no readable image")]
    unreadable = [r for r in reasons.values() if "unreadable" in r]
    assert unreadable and any("empty (0 bytes)" in r for r in reasons.values())
    partial = next(k for k in problems if k.endswith("#partial")).split("#")[0]
    escape = next(k for k in problems if k.endswith("#escape")).split("#")[0]
    not_used = {(x["report"], x["reason"]) for x in m["images_not_used"]}
    assert (partial, "image file not found") in not_used
    assert any(r == escape and "escapes the images folder" in why for r, why in not_used)
    # every sample lists only files that exist, relative to the output folder
    for split in SPLITS:
        for s in json.loads((tmp_path / "out" / f"t_{split}.json").read_text()):
            assert s["messages"][0]["content"].count("<image>") == len(s["images"]) >= 1
            for p in s["images"]:
                assert not Path(p).is_absolute()
                assert (tmp_path / "out" / p).is_file()


def test_rerun_is_byte_identical(sample_dir, tmp_path):
    _prepare(sample_dir, tmp_path / "a")
    _prepare(sample_dir, tmp_path / "b")
    _prepare(sample_dir, tmp_path / "b")  # again into the same folder
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert "manifest.json" in names and "dataset_info.json" in names
    for n in names:
        assert (tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes(), n
    assert not list((tmp_path / "a").glob(".*tmp"))


@pytest.mark.parametrize("views", ["both", "frontal", "each"])
def test_no_report_in_two_splits_and_views_ordered(sample_dir, tmp_path, views):
    _prepare(sample_dir, tmp_path, views=views)
    truth = _truth(sample_dir)
    where: dict[str, set[str]] = {}
    for split in SPLITS:
        for s in json.loads((tmp_path / f"t_{split}.json").read_text()):
            report = s["id"].split("/")[0]
            where.setdefault(report, set()).add(split)
            ids = [Path(p).stem for p in s["images"]]
            assert all(i.startswith(report + "_") for i in ids)  # images of this report only
            if views == "both" and len(ids) == 2:
                assert [truth[i] for i in ids] == ["frontal", "lateral"]
            if views == "frontal":
                assert len(ids) == 1 and truth[ids[0]] == "frontal"
            if views == "each":
                assert len(ids) == 1
    assert all(len(v) == 1 for v in where.values())


def test_hash_split_is_stable_when_reports_are_added():
    ids = [f"CXR{n}" for n in range(1, 2001)]
    before = {i: hash_split(i, 0) for i in ids[:1000]}
    after = {i: hash_split(i, 0) for i in ids}
    assert all(after[i] == s for i, s in before.items())
    shares = [sum(1 for s in after.values() if s == name) / len(ids) for name in SPLITS]
    assert shares[0] == pytest.approx(0.7, abs=0.04) and shares[2] == pytest.approx(0.2, abs=0.03)
    assert {hash_split("CXR1", seed) for seed in range(20)} == set(SPLITS)  # the seed salts the hash


def test_parse_ratios():
    assert parse_ratios("0.8,0.1,0.1") == (0.8, 0.1, 0.1)
    for bad in ("0.7,0.2", "a,b,c", "0.7,0.2,0.2", "-0.1,0.6,0.5"):
        with pytest.raises(ValueError, match="--ratios"):
            parse_ratios(bad)


def test_cli_prepare_summary_and_errors(sample_dir, tmp_path):
    exe = tool("xrayqwen2vl")
    out = tmp_path / "data"
    args = [exe, "prepare", "--format", "openi", "--reports-dir", str(sample_dir / "ecgen-radiology")]
    proc = run_cli([*args, "--images-dir", str(sample_dir / "NLMCXR_png"), "--out", str(out), "--quiet"])
    assert_summary(proc.stdout, out, "openi", 80)
    assert (out / "openi_train.json").is_file() and (out / "manifest.json").is_file()
    bad = run_cli([*args, "--images-dir", str(tmp_path / "missing"), "--out", str(out)], check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "images folder not found" in bad.stderr


def test_sample_is_deterministic_and_consistent(tmp_path):
    from xrayqwen2vl.synthetic.sample import generate_sample

    generate_sample(tmp_path / "a", reports=12, seed=5, progress=False)
    generate_sample(tmp_path / "b", reports=12, seed=5, progress=False)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    rows = list(csv.DictReader(open(tmp_path / "a" / "labels.csv")))
    assert len(rows) == 12
    for row in rows:  # every image labels.csv names exists and the XML lists it
        ids = [p.split(":")[0] for p in row["images"].split(";")]
        n = row["id"].removeprefix("CXR")
        assert ids == _image_ids(tmp_path / "a" / "ecgen-radiology" / f"{n}.xml")
        assert all((tmp_path / "a" / "NLMCXR_png" / f"{i}.png").is_file() for i in ids)
