"""Issue 10: what a new user meets on the real Indiana metadata, on the synthetic sample in the
real naming. Every study kept, the published split on every input form, the same study in the
same split whatever the form. Expected splits are written out by hand from the documented rule
(data/README.md), never computed by the code under test."""

from __future__ import annotations

import collections
import csv
import io
import json
import os
import re
import shutil
import subprocess

import pytest
from conftest import OFFLINE_ENV, tool
from formats_helpers import FORMATS, Form, load_samples, make_form, run_prepare, study_key

from xrayqwen2vl.cli import main as cli_main

# sha256("<seed>:CXR<n>"), first 8 bytes / 2**64, computed once with `printf '0:CXR1' | sha256sum`
# and bc: CXR1 0.7119, CXR2 0.8821, CXR3 0.6464, CXR4 0.8150, CXR11 0.8853 (seed 0); CXR1 0.1769,
# CXR2 0.3758, CXR3 0.8140, CXR7 0.7702, CXR9 0.9943 (seed 7). With 0.7 / 0.1 / 0.2:
PINNED = {
    0: {"CXR1": "val", "CXR2": "test", "CXR3": "train", "CXR4": "test", "CXR11": "test"},
    7: {"CXR1": "train", "CXR2": "train", "CXR3": "test", "CXR7": "val", "CXR9": "test"},
}


@pytest.fixture(scope="module")
def forms(sample_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("real")
    return {fmt: make_form(fmt, sample_dir, base / fmt, bad=False) for fmt in FORMATS}


def _split_of_study(out, name, fmt) -> dict[str, str]:
    where = {}
    for split, samples in load_samples(out, name).items():
        for x in samples:
            where[study_key(fmt, x["id"].split("/")[0])] = split
    return where


def _annotation(forms) -> dict[str, str]:
    """R2Gen's split of the sample by study key, from annotation.json as written."""
    data = json.loads((forms["r2gen"].root / "annotation.json").read_text())
    return {study_key("r2gen", e["id"]): split for split, v in data.items() for e in v}


def _zh_args(form, out, *extra):
    args = form.args(out, *extra)
    args[args.index("--captions") + 1] = str(form.root / "openi-zh.json")
    return args


# ---------------------------------------------------------------- the sample in the real naming


def test_sample_uses_the_real_naming_mix(sample_dir, forms):
    names = [p.stem for p in (sample_dir / "NLMCXR_png").glob("*.png")]
    common = [n for n in names if re.fullmatch(r"CXR\d+_IM-\d{4}-\d{4}", n)]
    rare = [n for n in names if re.fullmatch(r"CXR\d+_\d+_IM-\d{4}-\d{4}", n)]
    assert len(common) + len(rare) == len(names)
    assert len(common) > 0.8 * len(names) and 2 <= len(rare) < 0.2 * len(names)
    assert {"CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"} <= set(rare)
    per_study = collections.Counter(n.split("_")[0] for n in names)
    assert max(per_study.values()) >= 3
    kaggle = [r["filename"] for r in csv.DictReader(open(forms["kaggle"].root / "indiana_projections.csv"))]
    assert "1_IM-0001-4001.dcm.png" in kaggle
    assert all(re.fullmatch(r"\d+_IM-\d{4}-\d{4}\.dcm\.png", f) for f in kaggle)
    ids = [
        e["id"] for v in json.loads((forms["r2gen"].root / "annotation.json").read_text()).values() for e in v
    ]
    kinds = collections.Counter(
        "series"
        if re.fullmatch(r"CXR\d+_IM-\d{4}", i)
        else "image"
        if re.fullmatch(r"CXR\d+_IM-\d{4}-\d{4}", i)
        else "rare"
        if re.fullmatch(r"CXR\d+_\d+_IM-\d{4}(-\d{4})?", i)
        else i
        for i in ids
    )
    assert set(kinds) == {"series", "image", "rare"} and kinds["series"] > kinds["image"]
    assert "CXR1_1_IM-0001" in ids


# ---------------------------------------------------------------- 1, 2: the published split on every form


@pytest.mark.parametrize("fmt", ["openi", "kaggle", "xrayglm"])
def test_r2gen_split_keeps_every_r2gen_study(fmt, forms, tmp_path):
    """1 (Open-i named CXR<n>_IM-<a>-<b> kept nothing) and 2 (Kaggle lost uid 1): every study of
    annotation.json is kept in its split, so the counts are R2Gen's (2069/296/590 on the real data)."""
    truth = _annotation(forms)
    r2 = forms["r2gen"].root / "annotation.json"
    m = run_prepare(forms[fmt], tmp_path, "--split", "r2gen", "--annotation", str(r2))[fmt]
    assert m["counts"]["reports"] == dict(collections.Counter(truth.values()))
    assert _split_of_study(tmp_path, fmt, fmt) == truth
    assert m["split"] == {
        "split": "r2gen",
        "study_key": m["split"]["study_key"],
        "reports_keyed_by_their_id": 0,
        "rule": "the r2gen split of each study, as published",
        "source": str(r2),
        "studies": len(truth),
        "matched": len(truth),
    }
    assert "CXR<n>" in m["split"]["study_key"]


def test_kaggle_uid_1_is_r2gens_cxr1_1(forms, tmp_path):
    r2 = forms["r2gen"].root / "annotation.json"
    data = json.loads(r2.read_text())
    split = next(s for s, v in data.items() for e in v if e["id"] == "CXR1_1_IM-0001")
    run_prepare(forms["kaggle"], tmp_path, "--split", "r2gen", "--annotation", str(r2))
    assert "1" in {x["id"] for x in load_samples(tmp_path, "kaggle")[split]}


def test_r2gen_split_matching_too_few_studies_is_an_error(forms, tmp_path, capsys):
    """Fewer than 95% of the annotation's studies found in the input: one line with the count and
    two unmatched names, never a silent 0."""
    few = tmp_path / "few"
    shutil.copytree(forms["openi"].root / "NLMCXR_png", few / "NLMCXR_png")
    (few / "ecgen-radiology").mkdir()
    for n in range(1, 11):
        shutil.copy(forms["openi"].root / "ecgen-radiology" / f"{n}.xml", few / "ecgen-radiology")
    r2 = forms["r2gen"].root / "annotation.json"
    args = ["prepare", "--format", "openi", "--reports-dir", str(few / "ecgen-radiology")]
    args += ["--images-dir", str(few / "NLMCXR_png"), "--annotation", str(r2), "--out", str(tmp_path / "o")]
    assert cli_main([*args, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    total = len(_annotation(forms))
    matched = sum(1 for k in _annotation(forms) if int(k[3:]) <= 10)
    assert len(err.splitlines()) == 1 and "annotation.json" in err
    assert f"only {matched} of its {total} studies" in err
    assert len(re.findall(r"CXR\d+_(?:\d+_)?IM-\d{4}", err)) == 2
    assert not (tmp_path / "o" / "openi_train.json").exists()


# ---------------------------------------------------------------- 3: --annotation never ignored


def test_annotation_alone_selects_the_r2gen_split(forms, tmp_path):
    r2 = str(forms["r2gen"].root / "annotation.json")
    m = run_prepare(forms["openi"], tmp_path, "--annotation", r2)["openi"]
    assert m["options"]["split"] == "r2gen" and m["inputs"]["annotation"] == r2
    assert _split_of_study(tmp_path, "openi", "openi") == _annotation(forms)


def test_annotation_with_the_hash_split_is_refused(forms, tmp_path, capsys):
    r2 = str(forms["r2gen"].root / "annotation.json")
    assert cli_main(forms["kaggle"].args(tmp_path, "--annotation", r2, "--split", "hash")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--annotation is read only by --split r2gen" in err


# ---------------------------------------------------------------- 4: a cut CSV


def _kaggle_copy(forms, tmp_path, findings: str, impression: str):
    """The Kaggle form with its last report row rewritten (unquoted fields) and images shared."""
    src = forms["kaggle"].root
    root = tmp_path / "kaggle"
    root.mkdir()
    os.symlink(src / "images_normalized", root / "images_normalized")
    shutil.copy(src / "indiana_projections.csv", root)
    text = (src / "indiana_reports.csv").read_text()
    head, last = text.rstrip("\n").rsplit("\n", 1)
    fields = next(csv.reader(io.StringIO(last)))
    uid = fields[0]
    last = ",".join([uid, "", "", "", "", "", findings, impression])
    (root / "indiana_reports.csv").write_text(head + "\n" + last + "\n")
    form = Form("kaggle", root)
    form.inputs = forms["kaggle"].inputs
    return form, root / "indiana_reports.csv", uid


@pytest.mark.parametrize("cut_in", ["impression", "findings"])
def test_csv_cut_inside_a_field_skips_that_row(cut_in, forms, tmp_path):
    """4: a file that ends inside an unquoted field: that row is skipped with its own reason,
    never kept with a shortened report (nor called "no findings and no impression")."""
    form, path, uid = _kaggle_copy(
        forms, tmp_path, "Heart size normal. The QUOKKA lungs are clear.", "No acute disease."
    )
    text = path.read_text()
    cut = text.index("QUOKKA lungs are") + len("QUOKKA lungs are") if cut_in == "findings" else len(text) - 10
    path.write_text(text[:cut])
    m = run_prepare(form, tmp_path / "out")["kaggle"]
    reasons = {s["id"]: s["reason"] for s in m["skipped"]}
    assert "cut off" in reasons[uid] and "truncated" in reasons[uid]
    assert m["counts"]["kept"] + m["counts"]["skipped"] == form.inputs
    targets = [
        x["messages"][1]["content"] for v in load_samples(tmp_path / "out", "kaggle").values() for x in v
    ]
    assert targets and not any("QUOKKA" in t for t in targets)


def test_csv_row_with_too_few_fields_is_an_error(forms, tmp_path, capsys):
    form, path, _ = _kaggle_copy(forms, tmp_path, "Heart size normal.", "No acute disease.")
    lines = path.read_text().splitlines(keepends=True)
    lines[3] = ",".join(next(csv.reader(io.StringIO(lines[3])))[:5]) + "\n"
    path.write_text("".join(lines))
    assert cli_main(form.args(tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "indiana_reports.csv: line 4: 5 fields, header has 8" in err


def test_csv_cut_inside_a_quoted_field_is_an_error(forms, tmp_path, capsys):
    form, path, _ = _kaggle_copy(forms, tmp_path, '"Heart size normal, lungs clear."', "No acute disease.")
    text = path.read_text()
    path.write_text(text[: text.index("lungs clear")])
    assert cli_main(form.args(tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip()
    n = text.count("\n")
    assert len(err.splitlines()) == 1 and f"indiana_reports.csv: line {n}:" in err and "cut off" in err


# ---------------------------------------------------------------- 5: Chinese caption variants


def test_chinese_caption_variants_keep_the_study(forms, tmp_path):
    """5: the images of a study carry two machine translations: the study is kept with its first
    entry's caption, and the variants are counted in the manifest."""
    form = forms["xrayglm"]
    anns = json.loads((form.root / "openi-zh.json").read_text())["annotations"]
    captions: dict[str, list[str]] = {}
    for a in anns:
        captions.setdefault(a["image_id"].rsplit("_", 1)[0], []).append(a["caption"])
    varied = {r for r, c in captions.items() if len(set(c)) > 1}
    assert varied  # the sample has them, as openi-zh.json does
    assert cli_main(_zh_args(form, tmp_path, "--lang", "zh", "--quiet")) == 0
    m = json.loads((tmp_path / "manifest.json").read_text())["xrayglm"]
    assert m["counts"]["skipped"] == 0 and m["counts"]["kept"] == len(captions)
    assert m["counts"]["notes"] == {"images carry different captions": len(varied)}
    assert {n["id"] for n in m["notes"]} == varied
    kept = {
        x["id"]: x["messages"][1]["content"] for v in load_samples(tmp_path, "xrayglm").values() for x in v
    }
    assert all(kept[r] == " ".join(captions[r][0].split()) for r in varied)


# ---------------------------------------------------------------- 6: one study key, one split


def test_a_study_lands_in_the_same_split_whatever_the_form(forms, tmp_path):
    """6: the hash is taken over the Indiana report number for every form; a few keys are pinned
    to the split the documented rule gives, by hand."""
    where, manifests = {}, {}
    for fmt in FORMATS:
        manifests[fmt] = run_prepare(forms[fmt], tmp_path, "--split", "hash", "--name", fmt)[fmt]
        where[fmt] = _split_of_study(tmp_path, fmt, fmt)
    for key, split in where["openi"].items():
        for fmt in ("kaggle", "r2gen", "xrayglm"):
            assert where[fmt].get(key, split) == split, (key, fmt)
    assert len(where["r2gen"]) > 40 and set(where["kaggle"]) == set(where["openi"])
    for fmt in FORMATS:
        pinned = {k: v for k, v in PINNED[0].items() if k in where[fmt]}
        assert len(pinned) >= 3 and all(where[fmt][k] == v for k, v in pinned.items()), fmt
        m = manifests[fmt]
        assert m["split"]["rule"].startswith("sha256 of '<seed>:<group key>'")
        assert "CXR<n>" in m["split"]["study_key"] and m["split"]["reports_keyed_by_their_id"] == 0


def test_seed_changes_the_split_and_the_same_seed_reproduces_it(forms, tmp_path):
    for name in ("a", "b"):
        run_prepare(forms["kaggle"], tmp_path / name, "--seed", "7")
    for f in ("kaggle_train.json", "kaggle_val.json", "kaggle_test.json", "manifest.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    seven = _split_of_study(tmp_path / "a", "kaggle", "kaggle")
    assert all(seven[k] == v for k, v in PINNED[7].items() if k in seven)
    assert sum(k in seven for k in PINNED[7]) >= 3
    run_prepare(forms["kaggle"], tmp_path / "c")
    zero = _split_of_study(tmp_path / "c", "kaggle", "kaggle")
    assert sum(seven[k] != zero[k] for k in zero) > len(zero) // 5


def test_two_processes_write_the_same_bytes(forms, tmp_path):
    """Separate interpreters (different hash salts) write byte-identical files."""
    outs = []
    for salt in ("1", "2"):
        out = tmp_path / f"run{salt}" / "data"
        args = [tool("xrayqwen2vl"), *forms["xrayglm"].args(out, "--workers", "2")]
        env = {**os.environ, **OFFLINE_ENV, "PYTHONHASHSEED": salt}
        subprocess.run(args, env=env, check=True, capture_output=True, timeout=300)
        outs.append(out)
    files = sorted(p.name for p in outs[0].iterdir())
    assert files == sorted(p.name for p in outs[1].iterdir()) and "manifest.json" in files
    for f in files:
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes(), f


# ---------------------------------------------------------------- 7: the language of the targets


def test_chinese_captions_with_lang_en_are_refused(forms, tmp_path, capsys):
    form = forms["xrayglm"]
    assert cli_main(_zh_args(form, tmp_path / "o")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--lang en:" in err and "Chinese (Han) script" in err and "openi-zh.json" in err
    assert "--mixed-language" in err and not (tmp_path / "o" / "xrayglm_train.json").exists()
    assert cli_main(form.args(tmp_path / "o", "--lang", "zh")) == 2
    err = capsys.readouterr().err
    assert "--lang zh:" in err and "Latin script" in err and "openi-en.json" in err
    assert cli_main(_zh_args(form, tmp_path / "o", "--mixed-language", "--quiet")) == 0


def test_a_stray_target_in_the_other_script_is_skipped(forms, tmp_path):
    form = forms["xrayglm"]
    root = tmp_path / "glm"
    root.mkdir()
    os.symlink(form.root / "images", root / "images")
    data = json.loads((form.root / "openi-en.json").read_text())
    stray = data["annotations"][0]["image_id"].rsplit("_", 1)[0]
    for a in data["annotations"]:
        if a["image_id"].startswith(stray + "_"):
            a["caption"] = "心脏大小正常。"
    (root / "openi-en.json").write_text(json.dumps(data))
    other = Form("xrayglm", root)
    m = run_prepare(other, tmp_path / "o")["xrayglm"]
    assert [s["reason"] for s in m["skipped"] if s["id"] == stray] == [
        "target written in Chinese (Han) script, not that of --lang en"
    ]


# ---------------------------------------------------------------- 8: one image, one study


def test_an_image_listed_under_two_reports_goes_with_one(forms, tmp_path):
    """8: with --views each the second report's sample would put the same image in another split;
    the image goes with the first report that lists it, the other one records why not."""
    src = forms["kaggle"].root
    root = tmp_path / "kaggle"
    root.mkdir()
    os.symlink(src / "images_normalized", root / "images_normalized")
    shutil.copy(src / "indiana_reports.csv", root)
    rows = list(csv.DictReader(open(src / "indiana_projections.csv")))
    first = {}
    for r in rows:
        first.setdefault(r["uid"], r)
    # two reports the documented rule puts in different splits (CXR2: test, CXR3: train)
    shared = first["2"]["filename"]
    rows.append({"uid": "3", "filename": shared, "projection": "Frontal"})
    with open(root / "indiana_projections.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["uid", "filename", "projection"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    form = Form("kaggle", root)
    m = run_prepare(form, tmp_path / "o", "--views", "each")["kaggle"]
    holders = [
        (split, x["id"])
        for split, v in load_samples(tmp_path / "o", "kaggle").items()
        for x in v
        if x["images"][0].endswith("/" + shared)
    ]
    assert holders == [("test", f"2/{shared}")]
    assert {"report": "3", "image": shared, "reason": "also listed under report 2"} in m["images_not_used"]


def test_script_of_targets():
    from xrayqwen2vl.data.text import script_of

    assert script_of("Findings: XXXX normal. Impression: No acute disease.") == "en"
    assert script_of("所见：XXXX XXXX XXXX XXXX。") == "zh"  # de-identification tokens do not count
    assert script_of("心脏 T8 正常") == "zh" and script_of("The heart 心 is normal.") == "en"
    assert script_of("XXXX [REDACTED] 1.") is None
