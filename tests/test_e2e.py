"""End to end through the real llamafactory-cli with the configs under configs/tiny:
LoRA SFT -> merge (export) -> batch prediction on the test split."""

from __future__ import annotations

import json

import pytest
from conftest import REPO, llamafactory

TINY = REPO / "configs" / "tiny"


@pytest.mark.slow
def test_train_merge_predict(tiny_model_dir, prepared_dir, tmp_path):
    lora, merged, pred = tmp_path / "lora", tmp_path / "merged", tmp_path / "predict"
    data = [f"dataset_dir={prepared_dir}"]

    llamafactory(
        "train",
        TINY / "qwen2vl_tiny_lora_sft.yaml",
        f"model_name_or_path={tiny_model_dir}",
        *data,
        f"output_dir={lora}",
        "num_train_epochs=1",
        log=tmp_path / "train.log",
    )
    assert (lora / "adapter_model.safetensors").is_file()
    cfg = json.loads((lora / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["r"] == 8
    results = json.loads((lora / "all_results.json").read_text())
    assert results["train_loss"] > 0 and "eval_loss" in results  # eval on the val split ran

    llamafactory(
        "export",
        TINY / "qwen2vl_tiny_lora_merge.yaml",
        f"model_name_or_path={tiny_model_dir}",
        f"adapter_name_or_path={lora}",
        f"export_dir={merged}",
        log=tmp_path / "merge.log",
    )
    assert (merged / "model.safetensors").is_file() and (merged / "config.json").is_file()
    assert not (merged / "adapter_config.json").exists()
    from xrayqwen2vl.model_scan import scan_model_folder

    # what we write carries no code, no attention override and no pickled weights (issue 19)
    assert scan_model_folder(merged) == [] and scan_model_folder(lora) == []

    llamafactory(
        "train",
        TINY / "qwen2vl_tiny_predict.yaml",
        f"model_name_or_path={merged}",
        *data,
        f"output_dir={pred}",
        "max_new_tokens=24",
        log=tmp_path / "predict.log",
    )
    lines = (pred / "generated_predictions.jsonl").read_text().splitlines()
    test = json.loads((prepared_dir / "demo_test.json").read_text())
    assert len(lines) == len(test) > 0
    for line, sample in zip(lines, test, strict=True):
        row = json.loads(line)
        assert set(row) >= {"prompt", "predict", "label"}
        assert row["label"].strip() == sample["messages"][1]["content"]
        assert row["prompt"].count("<|vision_start|>") == len(sample["images"])


@pytest.mark.slow
def test_two_image_samples_train(tiny_model_dir, prepared_dir, tmp_path):
    """A dataset of only frontal+lateral studies: two <image> tokens and two images per sample."""
    samples = [s for s in json.loads((prepared_dir / "demo_train.json").read_text()) if len(s["images"]) == 2]
    assert len(samples) >= 8
    data = tmp_path / "data"
    data.mkdir()
    # images stay where they are: rewrite the relative paths for the new folder
    for s in samples:
        s["images"] = [str((prepared_dir / p).resolve()) for p in s["images"]]
        assert s["messages"][0]["content"].count("<image>") == 2
    (data / "two.json").write_text(json.dumps(samples[:8]))
    from xrayqwen2vl.data.prepare import dataset_info_entry

    (data / "dataset_info.json").write_text(json.dumps({"two": dataset_info_entry("two.json")}))
    out = tmp_path / "out"
    proc = llamafactory(
        "train",
        TINY / "qwen2vl_tiny_lora_sft.yaml",
        f"model_name_or_path={tiny_model_dir}",
        f"dataset_dir={data}",
        "dataset=two",
        "eval_dataset=null",
        'eval_strategy="no"',
        f"output_dir={out}",
        "max_steps=2",
        "per_device_train_batch_size=2",
    )
    assert (out / "adapter_model.safetensors").is_file()
    log = proc.stdout + proc.stderr
    assert "Num examples = 8" in log
