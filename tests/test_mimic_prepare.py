"""MIMIC-CXR through the real CLI, on the synthetic copy `sample --format mimic` writes: the
official split and the hash split by patient, the view order, the sections, every study kept or
in the manifest with its reason, R2Gen's MIMIC-CXR annotation grouped by study, the image check
modes, and the output loading in LLaMA-Factory's own loader."""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from conftest import run_cli, tool
from formats_helpers import load_samples
from test_formats_llamafactory import LOADER

from xrayqwen2vl.cli import main as cli_main
from xrayqwen2vl.data.text import build_target, clean_section
from xrayqwen2vl.synthetic.mimic import JPG_DIR, R2GEN_ANNOTATION, REPORTS_DIR, TRUTH

OFFICIAL = {"train": "train", "validate": "val", "test": "test"}


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    """`xrayqwen2vl sample --format mimic`: the copy under RAW/mimic/."""
    out = tmp_path_factory.mktemp("mimic_sample")
    assert cli_main(["sample", "--out", str(out), "--reports", "80", "--seed", "1", "--format", "mimic"]) == 0
    return out / "mimic"


@pytest.fixture(scope="module")
def truth(raw) -> dict[str, dict]:
    return {t["id"]: t for t in json.loads((raw / TRUTH).read_text())["studies"]}


def prepare(raw: Path, out: Path, *extra: str, name: str = "mimic") -> dict:
    args = ["prepare", "--format", "mimic", "--images-dir", str(raw / JPG_DIR)]
    args += ["--reports-dir", str(raw / REPORTS_DIR), "--out", str(out), "--name", name, "--quiet", *extra]
    assert cli_main(args) == 0
    return json.loads((out / "manifest.json").read_text())[name]


@pytest.fixture(scope="module")
def official(raw, tmp_path_factory) -> tuple[dict, dict]:
    out = tmp_path_factory.mktemp("mimic_out")
    return prepare(raw, out), load_samples(out, "mimic")


def _split_of(samples: dict[str, list[dict]], views: str = "both") -> dict[str, str]:
    return {
        x["id"] if views != "each" else x["id"].rsplit("/", 1)[0]: s for s, v in samples.items() for x in v
    }


def _by_hand(key: str, seed: int = 0) -> str:
    """The documented hash rule, written out: sha256 of '<seed>:<key>', first 8 bytes / 2**64."""
    u = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") / 2**64
    return "train" if u < 0.7 else "val" if u < 0.8 else "test"


def test_every_study_is_a_sample_or_skipped_with_its_reason(official, truth):
    manifest, samples = official
    where = _split_of(samples)
    skipped = {s["id"]: s["reason"] for s in manifest["skipped"]}
    assert manifest["counts"]["inputs"] == len(truth) == len(where) + len(skipped)
    assert not set(where) & set(skipped)
    for study_id, t in truth.items():
        if "reason" in t:
            assert skipped[study_id].startswith(t["reason"]), (study_id, skipped.get(study_id))
        else:
            assert study_id in where, (study_id, skipped.get(study_id))
    # every image of a kept study is in its sample or listed as not used, with the reason
    unused = {(u["report"], u["image"]): u["reason"] for u in manifest["images_not_used"]}
    for xs in samples.values():
        for x in xs:
            listed = {im["dicom_id"] for im in truth[x["id"]]["images"]}
            used = {Path(p).stem for p in x["images"]}
            assert used | {i for r, i in unused if r == x["id"]} == listed
    missing = [t for t in truth.values() for im in t["images"] if not im["on_disk"]]
    assert "image file not found" in unused.values() and len(missing) == 1
    assert manifest["split"]["study_key"].startswith("s<study_id>; split group: the patient, p<subject_id>")


def test_official_split_by_default(official, truth):
    manifest, samples = official
    assert manifest["options"]["split"] == "official"
    assert manifest["split"]["rule"] == "the official split of each study, as published"
    where = _split_of(samples)
    assert {study: OFFICIAL[truth[study]["split"]] for study in where} == where
    assert set(where.values()) == {"train", "val", "test"}


def test_targets_are_the_sections(official, truth):
    _, samples = official
    for x in (x for v in samples.values() for x in v):
        t = truth[x["id"]]
        want = build_target(clean_section(t["findings"]), clean_section(t["impression"]))
        assert x["messages"][1]["content"] == want, t["variant"]
        assert x["messages"][0]["content"].startswith("<image>" * len(x["images"]))
    variants = Counter(truth[x["id"]]["variant"] for v in samples.values() for x in v)
    assert {"impression_only", "combined", "views_header", "wet_read", "numbered_notification"} <= set(
        variants
    )
    impression_only = [x for v in samples.values() for x in v if not truth[x["id"]]["findings"]]
    assert impression_only and all(
        x["messages"][1]["content"].startswith("Impression: ") for x in impression_only
    )


RANK = {"PA": 0, "AP": 1, "AP AXIAL": 2, "PA LLD": 3, "LATERAL": 0, "LL": 1}
CODE_MEANING = {
    "postero-anterior": "PA",
    "antero-posterior": "AP",
    "lateral": "LATERAL",
    "left lateral": "LL",
}


def _stated(im: dict) -> str | None:
    """The projection the metadata states (ViewPosition, else ViewCodeSequence_CodeMeaning)."""
    return im["view_position"] or CODE_MEANING.get(im["code_meaning"])


def test_views_frontal_then_lateral(official, truth):
    """The first image of a sample is the study's first stated frontal (PA, then AP, then the
    other frontal projections), the second its first stated lateral (LATERAL before LL); an image
    with no stated view fills a missing place (and only such images are decoded by default)."""
    manifest, samples = official
    seen = Counter()
    for x in (x for v in samples.values() for x in v):
        images = {im["dicom_id"]: im for im in truth[x["id"]]["images"] if im["on_disk"]}
        used = [images[Path(p).stem]["dicom_id"] for p in x["images"]]
        stated = [im for im in images.values() if _stated(im)]
        frontal = sorted(
            (im for im in stated if _stated(im) in ("PA", "AP", "AP AXIAL", "PA LLD")),
            key=lambda im: RANK[_stated(im)],
        )
        lateral = sorted(
            (im for im in stated if _stated(im) in ("LATERAL", "LL")), key=lambda im: RANK[_stated(im)]
        )
        unstated = [im["dicom_id"] for im in images.values() if not _stated(im)]
        if frontal:
            assert used[0] == frontal[0]["dicom_id"], x["id"]
            seen["frontal"] += 1
        if lateral:
            assert used[-1] == lateral[0]["dicom_id"] and len(used) == 1 + bool(frontal or unstated), x["id"]
            seen["lateral"] += 1
        if frontal and not lateral:
            assert len(used) == 1 + bool(unstated) and set(used[1:]) <= set(unstated), x["id"]
            seen["guessed lateral"] += bool(unstated)
        if lateral and not frontal and unstated:
            assert used[0] in unstated
            seen["guessed frontal"] += 1
    assert (
        seen["frontal"] > 50 and seen["lateral"] > 30 and seen["guessed lateral"] and seen["guessed frontal"]
    )
    checked = [im for t in truth.values() if "reason" not in t for im in t["images"]]
    decoded = manifest["counts"]["images_decoded"]
    assert manifest["counts"]["images_checked"] == len(checked)
    assert decoded == sum(not _stated(im) for im in checked) and 0 < decoded < len(checked) / 5


def test_hash_split_keeps_each_patient_in_one_split(raw, truth, tmp_path):
    """--split hash hashes the patient (p<subject_id>) by the documented rule; a patient with
    several studies never straddles splits (hashing the study would split some), and --seed
    moves patients."""
    manifest = prepare(raw, tmp_path / "h", "--split", "hash")
    where = _split_of(load_samples(tmp_path / "h", "mimic"))
    assert manifest["split"]["group_key"] == "set by the form"
    patients = defaultdict(list)
    for study in where:
        patients[truth[study]["subject_id"]].append(study)
    assert max(len(v) for v in patients.values()) >= 3
    for subject, studies in patients.items():
        assert {where[s] for s in studies} == {_by_hand(f"p{subject}")}
    by_study = [{_by_hand(f"s{truth[s]['study_id']}") for s in v} for v in patients.values()]
    assert any(len(s) > 1 for s in by_study), "the copy must have patients a study hash would split"
    prepare(raw, tmp_path / "s1", "--split", "hash", "--seed", "1")
    seeded = _split_of(load_samples(tmp_path / "s1", "mimic"))
    assert seeded.keys() == where.keys() and seeded != where
    assert all(seeded[s] == _by_hand(f"p{truth[s]['subject_id']}", seed=1) for s in seeded)


def test_r2gen_mimic_annotation_gives_one_sample_per_study(raw, truth, official, tmp_path):
    """R2Gen's MIMIC-CXR annotation lists one entry per image; --format r2gen groups them by
    study_id: one sample per study with its images, in the study's own split (the same as
    --format mimic gives it), never one sample per image."""
    annotation = json.loads((raw / R2GEN_ANNOTATION).read_text())
    entries = [e for v in annotation.values() for e in v]
    studies = {e["study_id"] for e in entries}
    assert len(entries) > len(studies) + 20  # several images per study
    args = ["prepare", "--format", "r2gen", "--annotation", str(raw / R2GEN_ANNOTATION)]
    args += ["--images-dir", str(raw / JPG_DIR / "files"), "--out", str(tmp_path), "--quiet"]
    assert cli_main(args) == 0
    m = json.loads((tmp_path / "manifest.json").read_text())["r2gen"]
    samples = load_samples(tmp_path, "r2gen")
    where = _split_of(samples)
    assert m["counts"]["inputs"] == m["counts"]["kept"] == len(studies) == len(where)
    assert {f"s{s}" for s in studies} == {k.split("/")[1] for k in where}
    mimic_where = _split_of(official[1])
    assert all(mimic_where[k] == s for k, s in where.items() if k in mimic_where)
    listed = {(f"p{e['subject_id']}/s{e['study_id']}", Path(e["image_path"][0]).stem) for e in entries}
    used = {(x["id"], Path(p).stem) for v in samples.values() for x in v for p in x["images"]}
    unused = {(u["report"], u["image"]) for u in m["images_not_used"]}  # named by dicom_id
    assert used | unused == listed and not used & unused
    assert max(len(x["images"]) for v in samples.values() for x in v) == 2

    assert cli_main([*args[:-1], "--out", str(tmp_path / "each"), "--views", "each", "--quiet"]) == 0
    each = load_samples(tmp_path / "each", "r2gen")
    per_image = _split_of(each, views="each")
    assert sum(len(v) for v in each.values()) == len(listed) - 1  # all but the missing image
    assert per_image == where  # every image of a study in the study's split


def test_r2gen_mimic_entries_that_disagree(raw, tmp_path):
    """A study whose entries sit under two splits is skipped with that reason; entries with two
    different reports keep the first, noted in the manifest."""
    data = json.loads((raw / R2GEN_ANNOTATION).read_text())
    by_study = defaultdict(list)
    for e in data["train"]:
        by_study[e["study_id"]].append(e)
    multi = [v for v in by_study.values() if len(v) > 1]
    moved, reworded = multi[0], multi[1]
    data["train"].remove(moved[-1])
    data["test"].append({**moved[-1], "split": "test"})
    reworded[-1]["report"] = reworded[-1]["report"] + " Unchanged."
    path = tmp_path / "annotation.json"
    path.write_text(json.dumps(data))
    args = ["prepare", "--format", "r2gen", "--annotation", str(path), "--quiet"]
    assert cli_main([*args, "--images-dir", str(raw / JPG_DIR / "files"), "--out", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "manifest.json").read_text())["r2gen"]
    first = moved[0]
    skipped = {s["id"]: s["reason"] for s in m["skipped"]}
    key = f"p{first['subject_id']}/s{first['study_id']}"
    assert skipped == {key: f"entries of study {first['study_id']} sit under train and test"}
    note = [n for n in m["notes"] if n["id"] == f"p{reworded[0]['subject_id']}/s{reworded[0]['study_id']}"]
    assert len(note) == 1 and note[0]["note"].startswith(
        "entries of one study carry different reports (2 variants"
    )
    assert m["counts"]["notes"] == {"entries of one study carry different reports": 1}


def test_deid_mask_masks_mimic_underscores(raw, tmp_path):
    prepare(raw, tmp_path, "--deid", "mask")
    targets = [x["messages"][1]["content"] for v in load_samples(tmp_path, "mimic").values() for x in v]
    kept = json.loads((tmp_path / "manifest.json").read_text())["mimic"]["counts"]["kept"]
    assert len(targets) == kept and not any("___" in t for t in targets)
    assert any("[REDACTED]" in t for t in targets)
    assert (
        clean_section("Dr. ___ by Dr. ___ at ___ ___.", "mask")
        == "Dr. [REDACTED] by Dr. [REDACTED] at [REDACTED]."
    )
    assert clean_section("XXXX-XXXX and ____ remain", "mask") == "[REDACTED] and [REDACTED] remain"
    assert clean_section("a_b __ c", "mask") == "a_b __ c"


def test_default_check_catches_a_cut_jpeg_and_full_decodes_every_image(raw, official, tmp_path):
    """A JPEG cut in half is caught by the default check without a decode (its study keeps its
    other image); --verify-images full decodes every image and keeps the same samples."""
    import shutil

    copy = tmp_path / "raw"
    shutil.copytree(raw, copy)
    two = next(x for v in official[1].values() for x in v if len(x["images"]) == 2)
    victim = copy / JPG_DIR / two["images"][0].split(f"/{JPG_DIR}/")[1]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    m = prepare(copy, tmp_path / "fast")
    reasons = {u["image"]: u["reason"] for u in m["images_not_used"]}
    assert (
        reasons[victim.stem]
        == "image unreadable (JPEG truncated (no end-of-image marker at the end of the file))"
    )
    kept = {x["id"]: x for v in load_samples(tmp_path / "fast", "mimic").values() for x in v}
    names = [Path(p).name for p in kept[two["id"]]["images"]]
    assert names and victim.name not in names
    full = prepare(copy, tmp_path / "full", "--verify-images", "full")
    assert (
        full["counts"]["images_decoded"] == full["counts"]["images_checked"] == m["counts"]["images_checked"]
    )
    assert full["options"]["verify_images"] == "full" and m["options"]["verify_images"] == "fast"
    for split in ("train", "val", "test"):  # the same samples either way
        name = f"mimic_{split}.json"
        assert (tmp_path / "fast" / name).read_text() == (tmp_path / "full" / name).read_text()


def test_what_the_user_sees(raw, tmp_path):
    """The console script: the summary on stdout; the progress bar with the time left and the
    speed line (images/s, peak memory) on stderr."""
    args = [tool("xrayqwen2vl"), "prepare", "--format", "mimic", "--images-dir", str(raw / JPG_DIR)]
    proc = run_cli([*args, "--reports-dir", str(raw / REPORTS_DIR), "--out", str(tmp_path)])
    lines = proc.stdout.splitlines()
    assert lines[0] == "reports read 80: kept 71, skipped 9"
    assert "  skipped     7  no FINDINGS or IMPRESSION section" in lines
    assert (
        lines[-1]
        == f"wrote {tmp_path}/mimic_{{train,val,test}}.json, dataset_info.json, manifest.json (mimic)"
    )
    assert "reports: 100%" in proc.stderr and "80/80 [" in proc.stderr and "<00:00" in proc.stderr
    speed = proc.stderr.strip().splitlines()[-1]
    assert speed.startswith("checked 138 images (8 decoded) of 80 records in ") and "peak memory" in speed


@pytest.mark.slow
def test_mimic_output_loads_in_llamafactory(raw, official, tiny_model_dir, tmp_path):
    """Both MIMIC forms' output through LLaMA-Factory's own get_dataset (qwen2_vl template, the
    tiny model's processor, the JPEGs): every sample survives with one vision block per image."""
    prepare(raw, tmp_path, name="mimic")
    args = ["prepare", "--format", "r2gen", "--annotation", str(raw / R2GEN_ANNOTATION), "--name", "r2m"]
    assert (
        cli_main([*args, "--images-dir", str(raw / JPG_DIR / "files"), "--out", str(tmp_path), "--quiet"])
        == 0
    )
    names, expected = [], []
    for name in ("mimic", "r2m"):
        for split, xs in load_samples(tmp_path, name).items():
            names.append(f"{name}_{split}")
            expected += [len(x["images"]) for x in xs]
    script = tmp_path / "load.py"
    script.write_text(LOADER)
    proc = run_cli(
        [
            sys.executable,
            str(script),
            str(tiny_model_dir),
            str(tmp_path),
            str(tmp_path / "lf"),
            ",".join(names),
        ]
    )
    got = json.loads(
        [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1].removeprefix("RESULT ")
    )
    assert got == expected and 1 in got and 2 in got


def test_doc_shows_what_the_commands_print(tmp_path, capsys, monkeypatch):
    """doc/mimic.md's walk-through on the synthetic copy: its commands, run as written (from a
    folder standing for the repository root), print what the page shows."""
    from conftest import REPO

    doc = (REPO / "doc" / "mimic.md").read_text(encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert cli_main(["sample", "--out", "data/raw/sample", "--format", "mimic", "--quiet"]) == 0
    assert "mimic form: data/raw/sample/mimic/ (patients 111, studies 200, images 394,\nreports 199)" in doc
    assert "(patients 111, studies 200, images 394, reports 199)" in capsys.readouterr().out
    shown = doc.split("then prints:\n\n```\n", 1)[1].split("```", 1)[0].splitlines()
    args = ["prepare", "--format", "mimic", "--images-dir", "data/raw/sample/mimic/mimic-cxr-jpg"]
    args += ["--reports-dir", "data/raw/sample/mimic/mimic-cxr-reports", "--out", "data", "--name", "mimic"]
    assert cli_main([*args, "--quiet"]) == 0
    assert capsys.readouterr().out.splitlines() == shown[:-1]  # the last line is stderr's
    assert shown[-1].startswith("checked 362 images (25 decoded) of 200 records in ")
    assert cli_main([*args[:-1], "mimic_hash", "--split", "hash", "--quiet"]) == 0
    assert "train         125      125" in capsys.readouterr().out and "split 125 / 8 / 50 by patient" in doc
    r2 = ["prepare", "--format", "r2gen", "--annotation", "data/raw/sample/mimic/r2gen/annotation.json"]
    r2 += [
        "--images-dir",
        "data/raw/sample/mimic/mimic-cxr-jpg/files",
        "--out",
        "data",
        "--name",
        "mimic_r2gen",
    ]
    assert cli_main([*r2, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "reports read 135: kept 135, skipped 0" in out and "`reports read 135: kept 135, skipped 0`" in doc
    entries = json.loads(Path("data/raw/sample/mimic/r2gen/annotation.json").read_text())
    assert sum(len(v) for v in entries.values()) == 267 and "267 entries" in doc


def test_a_slow_index_is_announced(raw, tmp_path, capsys, monkeypatch):
    """While the inputs are read for longer than READING_NOTICE_S (the index of the full
    collection), stderr says so before the progress bar; a quick read says nothing (so an input
    error stays one line)."""
    import dataclasses
    import time

    from xrayqwen2vl.commands import prepare_cmd
    from xrayqwen2vl.data.formats.registry import get_form

    form = get_form("mimic")

    def slow(given):
        time.sleep(0.5)
        return form.read(given)

    monkeypatch.setattr(prepare_cmd, "READING_NOTICE_S", 0.1)
    monkeypatch.setattr(prepare_cmd, "get_form", lambda name: dataclasses.replace(form, read=slow))
    args = ["prepare", "--format", "mimic", "--images-dir", str(raw / JPG_DIR)]
    args += ["--reports-dir", str(raw / REPORTS_DIR), "--out", str(tmp_path)]
    assert cli_main(args) == 0
    assert capsys.readouterr().err.startswith("reading the mimic inputs …\n")
    monkeypatch.setattr(prepare_cmd, "get_form", lambda name: form)
    monkeypatch.setattr(prepare_cmd, "READING_NOTICE_S", 5.0)  # this copy is read in milliseconds
    assert cli_main(args) == 0
    assert "reading the" not in capsys.readouterr().err
