"""prepare's options on every format: target, de-identification, prompts, Chinese targets,
resized copies, and the errors for combinations that cannot work."""

from __future__ import annotations

import csv
import json

import pytest
from formats_helpers import FORMATS, load_samples, make_form, run_prepare
from PIL import Image

from xrayqwen2vl.cli import main as cli_main
from xrayqwen2vl.data.formats.openi import read_openi
from xrayqwen2vl.data.text import DEFAULT_PROMPTS, clean_section


@pytest.fixture(scope="module")
def forms(sample_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("opts")
    return {fmt: make_form(fmt, sample_dir, base / fmt, bad=False) for fmt in FORMATS}


def _targets(out, name):
    return [x["messages"][1]["content"] for v in load_samples(out, name).values() for x in v]


@pytest.mark.parametrize("fmt", ["openi", "kaggle"])
def test_target_sections(fmt, forms, tmp_path):
    for target, prefix, absent in (
        ("both", "Findings: ", None),
        ("findings", "Findings: ", "Impression:"),
        ("impression", "Impression: ", "Findings:"),
    ):
        m = run_prepare(forms[fmt], tmp_path, "--target", target, "--name", target)[target]
        texts = _targets(tmp_path, target)
        assert texts and m["counts"]["kept"] + m["counts"]["skipped"] == forms[fmt].inputs
        if target == "both":
            assert sum(t.startswith(prefix) and " Impression: " in t for t in texts) > len(texts) // 2
        else:
            assert all(t.startswith(prefix) and absent not in t for t in texts)
    # reports without a findings section are kept for "both"/"impression", skipped for "findings"
    skipped = json.loads((tmp_path / "manifest.json").read_text())["findings"]["skipped"]
    assert any(s["reason"] == "no findings section" for s in skipped)


def test_deid_mask_is_consistent(forms, tmp_path):
    run_prepare(forms["openi"], tmp_path, "--deid", "mask", "--name", "m")
    run_prepare(forms["openi"], tmp_path, "--name", "k")
    masked, kept = _targets(tmp_path, "m"), _targets(tmp_path, "k")
    assert any("XXXX" in t for t in kept)
    assert not any("XXXX" in t for t in masked) and any("[REDACTED]" in t for t in masked)
    assert not any("[REDACTED] [REDACTED]" in t for t in masked)  # one token per run


def test_xrayglm_caption_is_the_target_and_needs_target_both(forms, tmp_path):
    run_prepare(forms["xrayglm"], tmp_path)
    assert all(not t.startswith("Findings:") for t in _targets(tmp_path, "xrayglm"))
    m = run_prepare(forms["xrayglm"], tmp_path, "--target", "findings", "--name", "f")["f"]
    assert m["counts"]["kept"] == 0
    assert all("undivided report text" in s["reason"] for s in m["skipped"])


def test_prompt_and_prompts_file(forms, tmp_path):
    run_prepare(forms["kaggle"], tmp_path, "--prompt", "Describe the films.", "--name", "p")
    assert {
        x["messages"][0]["content"].replace("<image>", "")
        for v in load_samples(tmp_path, "p").values()
        for x in v
    } == {"Describe the films."}
    pf = tmp_path / "prompts.txt"
    pf.write_text("Report, please.\n\nWhat do you see?\nWrite findings and impression.\n")
    m = run_prepare(forms["kaggle"], tmp_path, "--prompts", str(pf), "--name", "q")["q"]
    used = [
        x["messages"][0]["content"].replace("<image>", "")
        for v in load_samples(tmp_path, "q").values()
        for x in v
    ]
    assert set(used) == {"Report, please.", "What do you see?", "Write findings and impression."}
    assert m["prompt"] == ["Report, please.", "What do you see?", "Write findings and impression."]
    pf.write_text("ok\nlook at <image> here\n")
    assert cli_main(forms["kaggle"].args(tmp_path, "--prompts", str(pf), "--name", "r")) == 2


def _translations(sample_dir, path, drop: int = 0):
    zh = {}
    with open(sample_dir / "labels.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            zh[row["id"]] = row
    lines = []
    for rec in read_openi(sample_dir / "ecgen-radiology"):
        row = zh[rec.id]
        for en, key in ((rec.findings, "findings_zh"), (rec.impression, "impression_zh")):
            if clean_section(en):
                lines.append(
                    json.dumps({"source": clean_section(en), "translation": row[key]}, ensure_ascii=False)
                )
    lines = sorted(set(lines))
    path.write_text("\n".join(lines[drop:]) + "\n", encoding="utf-8")


@pytest.mark.parametrize("fmt", ["openi", "kaggle", "r2gen"])
def test_chinese_targets_from_translations(fmt, forms, sample_dir, tmp_path):
    tr = tmp_path / "translations.jsonl"
    _translations(sample_dir, tr)
    m = run_prepare(forms[fmt], tmp_path, "--lang", "zh", "--translations", str(tr), "--name", "zh")["zh"]
    samples = load_samples(tmp_path, "zh")
    texts = _targets(tmp_path, "zh")
    assert texts and all(t.startswith(("所见：", "印象：")) for t in texts)
    assert not any(c.isascii() and c.isalpha() and c != "X" for t in texts for c in t)
    prompts = {x["messages"][0]["content"].replace("<image>", "") for v in samples.values() for x in v}
    assert prompts == {DEFAULT_PROMPTS["zh"]}
    assert m["inputs"]["translations"] == str(tr)
    # a missing translation skips the report with a reason, never an English target
    _translations(sample_dir, tr, drop=5)
    m = run_prepare(forms[fmt], tmp_path, "--lang", "zh", "--translations", str(tr), "--name", "zh2")["zh2"]
    assert any("no Chinese translation" in s["reason"] for s in m["skipped"])
    assert m["counts"]["kept"] + m["counts"]["skipped"] == forms[fmt].inputs


def test_chinese_from_xrayglm_zh(forms, tmp_path):
    form = forms["xrayglm"]
    args = form.args(tmp_path, "--lang", "zh", "--name", "glmzh")
    args[args.index("--captions") + 1] = str(form.root / "openi-zh.json")
    assert cli_main(args) == 0
    texts = _targets(tmp_path, "glmzh")
    assert texts and all(any("\u4e00" <= c <= "\u9fff" for c in t) for t in texts)


def test_zh_without_translations_is_an_error(forms, tmp_path, capsys):
    assert cli_main(forms["openi"].args(tmp_path, "--lang", "zh")) == 2
    assert "--translations" in capsys.readouterr().err


def test_r2gen_split_needs_the_annotation(forms, tmp_path, capsys):
    assert cli_main(forms["openi"].args(tmp_path, "--split", "r2gen")) == 2
    assert "--split r2gen with --format openi needs --annotation" in capsys.readouterr().err


def test_max_pixels_writes_small_rgb_copies(forms, tmp_path):
    m = run_prepare(forms["r2gen"], tmp_path, "--max-pixels", "4096")["r2gen"]
    n = 0
    for v in load_samples(tmp_path, "r2gen").values():
        for x in v:
            for rel in x["images"]:
                assert rel.startswith("images/r2gen/")
                with Image.open(tmp_path / rel) as img:
                    assert img.mode == "RGB" and img.width * img.height <= 4096
                n += 1
    assert n == sum(m["counts"]["images"].values()) == m["counts"]["image_copies"]
    assert m["options"]["max_pixels"] == 4096
