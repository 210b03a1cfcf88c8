"""The output of every format loads through LLaMA-Factory's own dataset loader (tokenised with
the qwen2_vl template and the tiny model's processor, images included), and the tiny-model
LoRA training runs on a two-view dataset."""

from __future__ import annotations

import json
import re
import sys

import pytest
from conftest import REPO, llamafactory, run_cli, tool
from formats_helpers import FORMATS, assert_summary, load_samples, make_form, run_prepare

LOADER = r"""
import json, sys
from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
from llamafactory.hparams import get_train_args
from llamafactory.model import load_tokenizer

model, data_dir, out, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
args = dict(model_name_or_path=model, stage="sft", do_train=True, finetuning_type="lora",
            template="qwen2_vl", dataset_dir=data_dir, dataset=names, cutoff_len=4096,
            image_max_pixels=65536, output_dir=out, overwrite_cache=True, report_to="none")
model_args, data_args, training_args, _, _ = get_train_args(args)
tm = load_tokenizer(model_args)
template = get_template_and_fix_tokenizer(tm["tokenizer"], data_args)
ds = get_dataset(template, model_args, data_args, training_args, stage="sft", **tm)["train_dataset"]
start = tm["tokenizer"].convert_tokens_to_ids("<|vision_start|>")
print("RESULT " + json.dumps([ids.count(start) for ids in ds["input_ids"]]))
"""


@pytest.mark.slow
def test_every_format_loads_in_llamafactory(sample_dir, tiny_model_dir, tmp_path):
    """All four formats (with their odd-mode image copies), two views and one view per sample,
    through one call of LLaMA-Factory's get_dataset: every sample survives with one vision
    block per image."""
    out = tmp_path / "data"
    names, expected = [], []
    for fmt in FORMATS:
        form = make_form(fmt, sample_dir, tmp_path / fmt, bad=True)
        for views in ("both", "each") if fmt == "openi" else ("both",):
            name = f"{fmt}_{views}"
            run_prepare(form, out, "--views", views, "--name", name)
            names.append(f"{name}_train")
            counts = [len(x["images"]) for x in load_samples(out, name)["train"]]
            assert len(counts) > 10
            expected += counts
    script = tmp_path / "load.py"
    script.write_text(LOADER)
    proc = run_cli(
        [sys.executable, str(script), str(tiny_model_dir), str(out), str(tmp_path / "lf"), ",".join(names)]
    )
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    got = json.loads(line.removeprefix("RESULT "))
    assert got == expected  # in order: every sample of every dataset, one vision block per image
    assert 2 in got and 1 in got


@pytest.mark.slow
def test_tiny_training_on_two_view_dataset(sample_dir, tiny_model_dir, tmp_path):
    form = make_form("kaggle", sample_dir, tmp_path / "kaggle", bad=False)
    out = tmp_path / "data"
    run_prepare(form, out, "--views", "both", "--name", "two")
    train = load_samples(out, "two")["train"]
    assert sum(len(x["images"]) == 2 for x in train) > len(train) // 2
    lora = tmp_path / "lora"
    log = tmp_path / "train.log"
    llamafactory(
        "train",
        REPO / "configs/tiny/qwen2vl_tiny_lora_sft.yaml",
        f"model_name_or_path={tiny_model_dir}",
        f"dataset_dir={out}",
        "dataset=two_train",
        "eval_dataset=two_val",
        f"output_dir={lora}",
        "max_steps=3",
        "logging_steps=1",
        log=log,
    )
    assert (lora / "adapter_model.safetensors").is_file()
    text = log.read_text()
    assert "'loss'" in text or '"loss"' in text, text[-2000:]
    assert "eval_loss" in text, text[-2000:]


def test_cli_prepare_subprocess_prints_summary(sample_dir, tmp_path):
    form = make_form("r2gen", sample_dir, tmp_path / "r2gen", bad=False)
    proc = run_cli([tool("xrayqwen2vl"), *form.args(tmp_path / "out")[:-1]])
    assert_summary(proc.stdout, tmp_path / "out", "r2gen", form.inputs)
    checked = re.search(r"^checked (\d+) images \((\d+) decoded\) of (\d+) records in ", proc.stderr, re.M)
    assert checked and int(checked[3]) == form.inputs and int(checked[1]) >= int(checked[2]) > 0
