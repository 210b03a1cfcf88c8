"""MIMIC-CXR: the synthetic copy of the public layout and the reader, checked against the truth
file the copy writes (what every study must become)."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import defaultdict
from pathlib import Path

import pytest

from xrayqwen2vl.data.formats.mimic import (
    METADATA,
    MimicCollection,
    csv_rows,
    ordered_images,
    view_of,
)
from xrayqwen2vl.data.records import InputFileError, Report, Skipped
from xrayqwen2vl.data.splits import hash_split
from xrayqwen2vl.synthetic.mimic import JPG_DIR, REPORTS_DIR, TRUTH, VARIANT_CYCLE, write_mimic


@pytest.fixture(scope="module")
def mimic_dir(sample_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mimic")
    write_mimic(sample_dir, out)
    return out


@pytest.fixture(scope="module")
def truth(mimic_dir) -> dict[str, dict]:
    return {t["id"]: t for t in json.loads((mimic_dir / TRUTH).read_text())["studies"]}


@pytest.fixture(scope="module")
def records(mimic_dir) -> list:
    return list(MimicCollection(mimic_dir / JPG_DIR, mimic_dir / REPORTS_DIR).records())


def _csv(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_layout_is_the_public_one(mimic_dir, truth):
    jpg = mimic_dir / JPG_DIR
    meta = _csv(jpg / "mimic-cxr-2.0.0-metadata.csv.gz")
    assert list(meta[0]) == [
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
    assert list(_csv(jpg / "mimic-cxr-2.0.0-split.csv.gz")[0]) == [
        "dicom_id",
        "study_id",
        "subject_id",
        "split",
    ]
    for name in ("chexpert", "negbio"):
        labels = _csv(jpg / f"mimic-cxr-2.0.0-{name}.csv.gz")
        assert list(labels[0])[:2] == ["subject_id", "study_id"] and len(labels[0]) == 16
        assert {v for row in labels for k, v in row.items() if k not in ("subject_id", "study_id")} >= {
            "1.0",
            "0.0",
            "",
        }
    for row in meta[:20]:
        s = row["subject_id"]
        image = jpg / f"files/p{s[:2]}/p{s}/s{row['study_id']}/{row['dicom_id']}.jpg"
        on_disk = {im["dicom_id"]: im["on_disk"] for t in truth.values() for im in t["images"]}
        assert image.is_file() == on_disk[row["dicom_id"]]
        assert image.read_bytes()[:2] == b"\xff\xd8" if image.is_file() else True
    reports = sorted((mimic_dir / REPORTS_DIR / "files").glob("p1?/p*/s*.txt"))
    assert len(reports) == sum(1 for t in truth.values() if t.get("reason") != "no report file")
    text = reports[0].read_text()
    assert "FINAL REPORT" in text and all(line.startswith(" ") for line in text.splitlines()[1:] if line)


def test_the_copy_has_the_real_variety(mimic_dir, truth):
    meta = _csv(mimic_dir / JPG_DIR / "mimic-cxr-2.0.0-metadata.csv.gz")
    positions = {row["ViewPosition"] for row in meta}
    assert positions >= {"PA", "AP", "LATERAL", "LL", ""}
    assert positions & {"AP AXIAL", "PA LLD"}
    assert any(not row["ViewPosition"] and not row["ViewCodeSequence_CodeMeaning"] for row in meta)
    assert any(len(row["StudyTime"].split(".")[0]) < 6 for row in meta), "no time that lost its leading zero"
    assert {t["variant"] for t in truth.values()} == set(VARIANT_CYCLE)
    per_patient = defaultdict(list)
    for t in truth.values():
        per_patient[t["subject_id"]].append(t)
    assert max(len(v) for v in per_patient.values()) >= 3
    assert {t["split"] for t in truth.values()} == {"train", "validate", "test"}
    assert all(len({t["split"] for t in v}) == 1 for v in per_patient.values()), "split must be by patient"
    reasons = [t.get("reason") for t in truth.values()]
    assert {"no report file", "no images", "no FINDINGS or IMPRESSION section"} <= set(reasons)
    assert any(not im["on_disk"] for t in truth.values() for im in t["images"])
    assert any(sum(im["view"] == "frontal" for im in t["images"]) > 1 for t in truth.values())
    texts = [p.read_text() for p in (mimic_dir / REPORTS_DIR / "files").glob("p1?/p*/s*.txt")]
    assert any("___" in t for t in texts) and any("WET READ:" in t for t in texts)
    assert any("FINDINGS AND IMPRESSION:" in t for t in texts) and any("CONCLUSION:" in t for t in texts)


def test_every_study_accounted_for_with_its_sections_or_reason(records, truth):
    assert sorted(r.id for r in records) == sorted(truth)
    for r in records:
        t = truth[r.id]
        if isinstance(r, Skipped):
            assert "reason" in t, f"{r.id} ({t['variant']}) skipped: {r.reason}"
            assert r.reason.startswith(t["reason"]), (r.reason, t["reason"])
        else:
            assert "reason" not in t, f"{r.id} should be skipped: {t['reason']}"
            assert (r.findings, r.impression) == (t["findings"], t["impression"]), t["variant"]
    kinds = {type(r) for r in records}
    assert kinds == {Report, Skipped}
    impression_only = [r for r in records if isinstance(r, Report) and not r.findings]
    assert impression_only, "impression-only studies must be kept as records"


def test_reasons_name_the_file_and_the_headers(records):
    skipped = {r.reason.split(" (")[0]: r for r in records if isinstance(r, Skipped)}
    assert set(skipped) == {"no report file", "no images", "no FINDINGS or IMPRESSION section"}
    missing = skipped["no report file"]
    assert missing.reason == f"no report file ({missing.source} not found)"
    assert missing.source.startswith("files/p1") and missing.source.endswith(".txt")
    no_sections = skipped["no FINDINGS or IMPRESSION section"]
    assert "headers: EXAMINATION, INDICATION, TECHNIQUE, COMPARISON" in no_sections.reason
    assert skipped["no images"].reason.endswith("is not in mimic-cxr-2.0.0-metadata.csv.gz)")


def test_views_frontal_first_then_lateral_then_unknown(records, truth, mimic_dir):
    rank = {"PA": 0, "AP": 1, "AP AXIAL": 2, "PA LLD": 3, "LATERAL": 4, "LL": 5}
    seen_unknown = False
    for r in records:
        if not isinstance(r, Report):
            continue
        by_id = {im["dicom_id"]: im for im in truth[r.id]["images"]}
        assert [ref.id for ref in r.images] and {ref.id for ref in r.images} == set(by_id)
        order = []
        for ref in r.images:
            im = by_id[ref.id]
            stated = im["view_position"] or {"postero-anterior": "PA", "lateral": "LATERAL"}.get(
                im["code_meaning"]
            )
            if stated:
                assert ref.view == im["view"], (r.id, im)  # a stated view is the true one
                order.append(rank[stated])
            else:
                assert ref.view is None
                seen_unknown = True
                order.append(9)
            assert ref.relpath == f"files/p{r.id[1:3]}/{r.id}/{ref.id}.jpg"
            assert (mimic_dir / JPG_DIR / ref.relpath).is_file() == im["on_disk"]
        assert order == sorted(order), (r.id, [(ref.id, ref.view) for ref in r.images])
    assert seen_unknown


def test_view_rules():
    assert view_of("PA") == ("frontal", 0) and view_of(" ap ") == ("frontal", 1)
    assert view_of("AP AXIAL")[0] == "frontal" and view_of("PA LLD")[0] == "frontal"
    assert view_of("LATERAL") == ("lateral", 0) and view_of("LL") == ("lateral", 1)
    assert view_of("", "postero-anterior") == ("frontal", 0) and view_of("", "left lateral")[0] == "lateral"
    assert view_of("LAO")[0] is None and view_of("SWIMMERS")[0] is None and view_of("", "")[0] is None
    refs = ordered_images(
        10000032, 50414267, [("c", "LL", ""), ("u", "", ""), ("b", "AP", ""), ("a", "PA", "")]
    )
    assert [r.id for r in refs] == ["a", "b", "c", "u"]
    assert refs[0].relpath == "files/p10/p10000032/s50414267/a.jpg"


def test_official_split_validate_becomes_val(records, truth):
    mapping = {"train": "train", "validate": "val", "test": "test"}
    kept = [r for r in records if isinstance(r, Report)]
    assert all(r.split == mapping[truth[r.id]["split"]] for r in kept)
    assert {r.split for r in kept} == {"train", "val", "test"}


def test_study_key_and_patient_group(records, truth):
    """The study key is s<study_id> and the split group the patient p<subject_id>: a hash of the
    group keeps a patient's studies together, which a hash of the study would not."""
    kept = [r for r in records if isinstance(r, Report)]
    by_patient, by_study = defaultdict(set), defaultdict(set)
    for r in kept:
        t = truth[r.id]
        assert (r.study, r.group) == (f"s{t['study_id']}", f"p{t['subject_id']}")
        by_patient[r.group].add(hash_split(r.group_key))
        by_study[r.group].add(hash_split(r.study_key))
    assert all(len(s) == 1 for s in by_patient.values())
    assert any(len(s) > 1 for s in by_study.values())


# --- malformed inputs: one line naming the file and the line -----------------------------------


def _copy(mimic_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    import shutil

    jpg = tmp_path / "jpg"
    jpg.mkdir()
    (jpg / "files").symlink_to(mimic_dir / JPG_DIR / "files")
    for p in (mimic_dir / JPG_DIR).glob("*.csv.gz"):
        shutil.copy(p, jpg / p.name)
    return jpg, mimic_dir / REPORTS_DIR


def test_truncated_gzip_is_an_error(mimic_dir, tmp_path):
    jpg, reports = _copy(mimic_dir, tmp_path)
    meta = jpg / f"{METADATA}.csv.gz"
    meta.write_bytes(meta.read_bytes()[: meta.stat().st_size // 2])
    with pytest.raises(InputFileError, match=r"mimic-cxr-2.0.0-metadata.csv.gz: not a complete gzip file"):
        MimicCollection(jpg, reports)


def test_cut_off_row_is_an_error_naming_the_line(mimic_dir, tmp_path):
    jpg, reports = _copy(mimic_dir, tmp_path)
    text = gzip.decompress((jpg / f"{METADATA}.csv.gz").read_bytes()).decode()
    (jpg / f"{METADATA}.csv.gz").unlink()
    lines = text.splitlines()
    cut = "\n".join(lines[:5]) + "\n" + lines[5][:30] + "\n"
    (jpg / f"{METADATA}.csv").write_text(cut)  # plain .csv is read too
    with pytest.raises(
        InputFileError, match=r"metadata.csv: line 6: \d+ fields, header has 12 \(file cut off\?\)"
    ):
        MimicCollection(jpg, reports)


def test_missing_column_bad_split_and_missing_file(mimic_dir, tmp_path):
    jpg, reports = _copy(mimic_dir, tmp_path)
    split = jpg / "mimic-cxr-2.0.0-split.csv.gz"
    rows = _csv(split)
    rows[3]["split"] = "valid"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    split.write_bytes(gzip.compress(buf.getvalue().encode()))
    with pytest.raises(
        InputFileError, match=r"split.csv.gz: line 5: split 'valid' \(expected train, validate, test\)"
    ):
        MimicCollection(jpg, reports)
    split.unlink()
    with pytest.raises(InputFileError, match=r"mimic-cxr-2.0.0-split.csv.gz \(or .csv\) not found"):
        MimicCollection(jpg, reports)
    with pytest.raises(InputFileError, match="no files/ folder"):
        MimicCollection(jpg, tmp_path)


def test_csv_rows_streams_only_needed_columns(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b,c\n1,2,3\n\n4,5,6\n")
    assert list(csv_rows(p, ("a", "c"))) == [
        (2, {"a": "1", "b": "2", "c": "3"}),
        (4, {"a": "4", "b": "5", "c": "6"}),
    ]
