"""CheXpert Plus, ReXGradient-160K and the ReXrank test JSONs through the real CLI, on the
synthetic copies `sample --format chexpert-plus|rexgradient|rexrank` writes: every study kept or
in the manifest with its reason, the official and the hash split by patient, frontal first, the
sections, no demographics in any sample, and the output loading in LLaMA-Factory's own loader."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import run_cli
from formats_helpers import load_samples
from test_formats_llamafactory import LOADER

from xrayqwen2vl.cli import main as cli_main
from xrayqwen2vl.data.formats.rexrank import context_text, image_relpath, labelled_parts
from xrayqwen2vl.data.records import InputFileError
from xrayqwen2vl.data.text import build_target, clean_section
from xrayqwen2vl.synthetic.leaderboard import CHEXPERT_CSV, DEMOGRAPHIC_MARKERS, REXRANK_FILES, TRUTH


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("collections_sample")
    for fmt in ("chexpert-plus", "rexgradient", "rexrank"):
        args = ["sample", "--out", str(out), "--reports", "60", "--seed", "2", "--format", fmt, "--quiet"]
        assert cli_main(args) == 0
    return out


def truth(raw: Path, fmt: str) -> dict[str, dict]:
    return json.loads((raw / fmt / TRUTH).read_text())["studies"]


def prepare(args: list[str], out: Path, name: str, *extra: str) -> dict:
    assert cli_main(["prepare", *args, "--out", str(out), "--name", name, "--quiet", *extra]) == 0
    return json.loads((out / "manifest.json").read_text())[name]


def chexpert_args(raw: Path, root: str = "PNG") -> list[str]:
    d = raw / "chexpert-plus"
    return ["--format", "chexpert-plus", "--reports", str(d / CHEXPERT_CSV), "--images-dir", str(d / root)]


def rexgradient_args(raw: Path) -> list[str]:
    d = raw / "rexgradient"
    return ["--format", "rexgradient", "--metadata-dir", str(d / "metadata"), "--images-dir", str(d)]


def rexrank_args(raw: Path, kind: str = "mimic") -> list[str]:
    d = raw / "rexrank"
    return [
        "--format",
        "rexrank",
        "--reports",
        str(d / REXRANK_FILES[kind]),
        "--images-dir",
        str(d / "images"),
    ]


def where(samples: dict[str, list[dict]]) -> dict[str, str]:
    return {x["id"]: s for s, xs in samples.items() for x in xs}


def check_accounting(manifest: dict, samples: dict, want: dict[str, dict]) -> None:
    """Every study of the truth in a split, with its target, or skipped with its reason."""
    kept = where(samples)
    skipped = {s["id"]: s["reason"] for s in manifest["skipped"]}
    assert manifest["counts"]["inputs"] == len(want) == len(kept) + len(skipped)
    by_id = {x["id"]: x for xs in samples.values() for x in xs}
    for key, t in want.items():
        if "reason" in t:
            assert t["reason"] in skipped[key], (key, skipped.get(key))
            continue
        assert key in kept, (key, skipped.get(key))
        target = build_target(clean_section(t["findings"]), clean_section(t["impression"]))
        assert by_id[key]["messages"][1]["content"] == target, key
    for x in by_id.values():
        text = x["messages"][0]["content"] + x["messages"][1]["content"]
        assert not any(m in text for m in DEMOGRAPHIC_MARKERS), x["id"]


# ---------------------------------------------------------------- CheXpert Plus


def test_chexpert_plus_official_split_and_accounting(raw, tmp_path):
    want = truth(raw, "chexpert-plus")
    manifest = prepare(chexpert_args(raw), tmp_path, "cxp")
    samples = load_samples(tmp_path, "cxp")
    check_accounting(manifest, samples, want)
    kept = where(samples)
    for key, split in kept.items():  # valid is the leaderboard's test set; val comes from train
        assert split == ("test" if want[key]["split"] == "valid" else split)
        assert split != "test" or want[key]["split"] == "valid"
    assert "test" in kept.values()
    # the .jpg of the CSV read as .png under the PNG root; frontal first; a missing image listed
    for xs in samples.values():
        for x in xs:
            assert all(p.endswith(".png") for p in x["images"])
            assert "frontal" in Path(x["images"][0]).name
    missing = [t["missing_image"] for t in want.values() if "missing_image" in t]
    unused = {(u["report"], u["image"]): u["reason"] for u in manifest["images_not_used"]}
    for path in missing:
        key = "/".join(path.split("/")[1:3])
        assert unused[(key, Path(path).with_suffix(".png").name)] == "image file not found"
    counts = manifest["counts"]["notes"]
    assert counts["impression header inside section_findings"] >= 1
    assert counts["sections parsed from the report column"] >= 1


def test_chexpert_plus_reads_the_original_jpgs_and_splits_by_patient(raw, tmp_path):
    manifest = prepare(chexpert_args(raw, "CheXpert-v1.0"), tmp_path, "jpg", "--split", "hash")
    samples = load_samples(tmp_path, "jpg")
    assert all(p.endswith(".jpg") for xs in samples.values() for x in xs for p in x["images"])
    assert manifest["counts"]["kept"] == len(
        [t for t in truth(raw, "chexpert-plus").values() if "reason" not in t]
    )
    patient_split = defaultdict(set)
    for key, split in where(samples).items():
        patient_split[key.split("/")[0]].add(split)
    assert all(len(v) == 1 for v in patient_split.values())
    assert any(len([k for k in where(samples) if k.startswith(p + "/")]) > 1 for p in patient_split)


def test_chexpert_plus_target_and_verify_full(raw, tmp_path):
    manifest = prepare(
        chexpert_args(raw), tmp_path, "imp", "--target", "impression", "--verify-images", "full"
    )
    samples = load_samples(tmp_path, "imp")
    assert all(x["messages"][1]["content"].startswith("Impression: ") for xs in samples.values() for x in xs)
    assert manifest["counts"]["images_decoded"] == manifest["counts"]["images_checked"] > 0


def test_chexpert_plus_bad_csv_is_one_line_error(raw, tmp_path, capsys):
    bad = tmp_path / CHEXPERT_CSV
    lines = (raw / "chexpert-plus" / CHEXPERT_CSV).read_text().split("\n")
    bad.write_text(lines[0].replace("path_to_image,", "") + "\n")
    args = ["prepare", "--format", "chexpert-plus", "--reports", str(bad), "--images-dir", str(tmp_path)]
    assert cli_main([*args, "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "path_to_image" in err[0]


# ---------------------------------------------------------------- ReXGradient-160K


def test_rexgradient_official_split_nan_and_views(raw, tmp_path):
    want = truth(raw, "rexgradient")
    manifest = prepare(rexgradient_args(raw), tmp_path, "rg")
    samples = load_samples(tmp_path, "rg")
    check_accounting(manifest, samples, want)
    kept = where(samples)
    assert {kept[k] for k in kept} == {"train", "val", "test"}
    assert all(kept[k] == want[k]["split"] for k in kept)
    unused = [u for u in manifest["images_not_used"] if u["image"].startswith("ImagePath[")]
    assert unused and unused[0]["reason"] == "not a path (nan)"
    # frontal first: the first image of every sample has a frontal ImageViewPosition (or one the
    # reader cannot place, told apart by its symmetry)
    positions = {}
    for name in ("train", "valid", "test"):
        meta = json.loads((raw / "rexgradient" / "metadata" / f"{name}_metadata.json").read_text())
        for study in meta.values():
            for p, vp in zip(study["ImagePath"], study["ImageViewPosition"], strict=True):
                if isinstance(p, str):
                    positions[Path(p).name] = vp
    firsts = [positions[Path(x["images"][0]).name] for xs in samples.values() for x in xs]
    assert all(vp not in ("LATERAL", "LL", "LEFT LATERAL") for vp in firsts)
    assert "POSTERO_ANTERIOR" in firsts


def test_rexgradient_hash_split_keeps_patients_together(raw, tmp_path):
    prepare(rexgradient_args(raw), tmp_path, "rgh", "--split", "hash")
    patient_split = defaultdict(set)
    for key, split in where(load_samples(tmp_path, "rgh")).items():
        patient_split[key.split("_")[0]].add(split)
    assert all(len(v) == 1 for v in patient_split.values())


@pytest.mark.parametrize("fmt", ["chexpert-plus", "rexgradient", "rexrank"])
def test_progress_bar_counts_to_every_study(fmt, raw, tmp_path, capsys):
    """The bar ends at its total, every study read (kept or skipped). ReXGradient's metadata
    carries no count: a first streaming pass counts its studies; an ImagePath that is no path
    (a record of its own) is not counted as a study."""
    args = {"chexpert-plus": chexpert_args, "rexgradient": rexgradient_args, "rexrank": rexrank_args}[fmt](
        raw
    )
    out = tmp_path / "o"
    assert cli_main(["prepare", *args, "--out", str(out), "--name", "p", "--workers", "1"]) == 0
    n = json.loads((out / "manifest.json").read_text())["p"]["counts"]["inputs"]
    err = capsys.readouterr().err
    assert "reports: 100%" in err and f"| {n}/{n} [" in err, err[-600:]
    if fmt == "rexgradient":
        assert n == len(truth(raw, fmt))


@pytest.mark.parametrize("quiet", [True, False], ids=["quiet", "counted-first"])
def test_rexgradient_cut_metadata_is_one_line_error(quiet, raw, tmp_path, capsys):
    """With the progress bar the count reads the file first: the same one line either way."""
    meta = tmp_path / "metadata"
    meta.mkdir()
    text = (raw / "rexgradient" / "metadata" / "train_metadata.json").read_text()
    (meta / "train_metadata.json").write_text(text[: len(text) // 2])
    args = ["prepare", "--format", "rexgradient", "--metadata-dir", str(meta), "--images-dir", str(tmp_path)]
    assert cli_main([*args, "--out", str(tmp_path / "o"), *(["--quiet"] if quiet else [])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train_metadata.json: line" in err[0], err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- ReXrank


@pytest.mark.parametrize("kind", ["mimic", "iu"])
def test_rexrank_one_test_sample_per_key(raw, tmp_path, kind):
    data = json.loads((raw / "rexrank" / REXRANK_FILES[kind]).read_text())
    manifest = prepare(rexrank_args(raw, kind), tmp_path, "rr")
    samples = load_samples(tmp_path, "rr")
    assert not samples["train"] and not samples["val"]
    assert [x["id"] for x in samples["test"]] == list(data)
    assert manifest["counts"]["skipped"] == 0
    root = raw / "rexrank" / "images"
    for x in samples["test"]:  # a leading '/' read under the root
        for p in x["images"]:
            assert (tmp_path / p).resolve().is_relative_to(root.resolve())
        assert x["messages"][0]["content"].count("<image>") == len(x["images"])
    if kind == "mimic":
        assert all(p.startswith("/") for s in data.values() for p in s["image_path"])


def test_rexrank_context_only_behind_the_flag_and_never_demographics(raw, tmp_path):
    want = truth(raw, "rexrank")
    prepare(rexrank_args(raw), tmp_path, "plain")
    prepare(rexrank_args(raw), tmp_path, "ctx", "--with-context")
    plain, ctx = load_samples(tmp_path, "plain")["test"], load_samples(tmp_path, "ctx")["test"]
    assert len({x["messages"][0]["content"].replace("<image>", "") for x in plain}) == 1
    with_indication = 0
    for x in ctx:
        prompt = x["messages"][0]["content"]
        assert "Age:" not in prompt and "Gender:" not in prompt
        if want[x["id"]]["indication"] and "Indication:" in prompt:
            assert want[x["id"]]["indication"] in prompt
            with_indication += 1
    assert with_indication > len(ctx) // 2


def test_rexrank_context_flag_is_refused_for_other_forms(raw, tmp_path, capsys):
    assert (
        cli_main(["prepare", *rexgradient_args(raw), "--with-context", "--out", str(tmp_path), "--quiet"])
        == 2
    )
    assert "--with-context is read only by --format rexrank" in capsys.readouterr().err


def test_rexrank_parts():
    parts = labelled_parts("Findings: None. Impression: No acute process.")
    assert parts == {"findings": "None.", "impression": "No acute process."}
    assert context_text("Age: 63. Gender: F. Indication: Cough. Comparison: None.") == "Indication: Cough."
    assert context_text(float("nan")) == ""
    assert image_relpath("/p10/p1/s5/a.jpg") == "p10/p1/s5/a.jpg"


def test_rexrank_not_an_object(tmp_path, capsys):
    bad = tmp_path / "x.json"
    bad.write_text("[1, 2]")
    args = ["prepare", "--format", "rexrank", "--reports", str(bad), "--images-dir", str(tmp_path)]
    assert cli_main([*args, "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert f"{bad}: line 1: expected a JSON object" in capsys.readouterr().err
    with pytest.raises(InputFileError):
        from xrayqwen2vl.data.formats.rexrank import ReXrankFile

        ReXrankFile(tmp_path / "none.json")


@pytest.mark.slow
def test_collections_load_in_llamafactory(raw, tiny_model_dir, tmp_path):
    out = tmp_path / "data"
    prepare(chexpert_args(raw), out, "cxp")
    prepare(rexgradient_args(raw), out, "rg")
    prepare(rexrank_args(raw), out, "rr", "--with-context")
    names = ["cxp_train", "rg_train", "rr_test"]
    expected = []
    for name in names:
        stem, split = name.rsplit("_", 1)
        expected += [len(x["images"]) for x in load_samples(out, stem)[split]]
    script = tmp_path / "load.py"
    script.write_text(LOADER)
    proc = run_cli(
        [sys.executable, str(script), str(tiny_model_dir), str(out), str(tmp_path / "lf"), ",".join(names)]
    )
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    assert json.loads(line.removeprefix("RESULT ")) == expected
