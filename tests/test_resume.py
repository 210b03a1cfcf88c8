"""Resume from a checkpoint: a run stopped after step 2 and resumed with
``resume_from_checkpoint=…/checkpoint-2`` (as doc/gpu-quickstart.md says) ends at the same step
count, with the same losses and the same adapter as an uninterrupted run. Uses the 7B recipe's
config, so the checkpoint is DeepSpeed ZeRO-2's."""

from __future__ import annotations

import re
import shutil

import pytest
import torch
from configs_support import CONFIGS, cpu_overrides, kv, load, openi_data, read_state, train_script
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

MAIN = CONFIGS / "train_lora" / "qwen2vl_7b_lora_sft.yaml"


def losses(state: dict) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in state["log_history"] if "loss" in e}


def test_resume_from_checkpoint_reaches_the_same_step_count(
    tiny_model_dir, sample_dir, tmp_path_factory, tmp_path
):
    data = openi_data(sample_dir, tmp_path_factory)
    common = [
        f"model_name_or_path={tiny_model_dir}",
        f"dataset_dir={data}",
        *kv(cpu_overrides(load(MAIN))),
        "max_steps=4",
        "per_device_train_batch_size=2",
        "gradient_accumulation_steps=1",
        "max_samples=8",
        "preprocessing_num_workers=1",
        "dataloader_num_workers=0",
        "save_strategy=steps",
        "save_steps=2",
        "logging_steps=1",
    ]
    full = tmp_path / "full"
    train_script(MAIN, *common, f"output_dir={full}", log=tmp_path / "full.log")
    full_state = read_state(full)
    assert full_state["global_step"] == 4
    assert (full / "checkpoint-2" / "global_step2").is_dir()

    # "Stop" after step 2: a fresh output folder holding only what existed at that point.
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(full / "checkpoint-2", resumed / "checkpoint-2")
    train_script(
        MAIN,
        *common,
        f"output_dir={resumed}",
        f"resume_from_checkpoint={resumed / 'checkpoint-2'}",
        log=tmp_path / "resumed.log",
    )
    log = (tmp_path / "resumed.log").read_text()
    # transformers 5.2 (pinned) logs "Continuing training from global step 2"; 5.6 "Resuming …".
    assert re.search(
        r"Continuing training from global step 2\b|Resuming training from checkpoint with epoch 0 and global step 2\b",
        log,
    )
    resumed_state = read_state(resumed)
    assert resumed_state["global_step"] == 4
    assert (resumed / "checkpoint-4").is_dir() and not (resumed / "checkpoint-6").exists()

    before, after = losses(full_state), losses(resumed_state)
    assert set(after) >= {3, 4}
    for step in (3, 4):  # same batches, optimizer and scheduler state after the resume
        assert after[step] == pytest.approx(before[step], rel=1e-4), (step, before, after)

    a = load_file(full / "adapter_model.safetensors")
    b = load_file(resumed / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-6)
