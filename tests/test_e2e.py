"""End to end through the real llamafactory-cli with the configs under configs/tiny, for the
tiny Qwen2-VL and the tiny Qwen3-VL: LoRA SFT -> merge (export) -> batch prediction on the test
split. The adapter of each family is trained once per session (conftest.tiny_lora)."""

from __future__ import annotations

import json
import math

import pytest
from conftest import REPO, TINY_CONFIG_PREFIX, llamafactory

TINY = REPO / "configs" / "tiny"
MODEL_CLASS = {"qwen2_vl": "Qwen2VLForConditionalGeneration", "qwen3_vl": "Qwen3VLForConditionalGeneration"}


def check_training(lora) -> None:
    """A LoRA adapter of rank 8, trained with finite losses, evaluated on the val split."""
    assert (lora / "adapter_model.safetensors").is_file()
    cfg = json.loads((lora / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["r"] == 8
    results = json.loads((lora / "all_results.json").read_text())
    assert math.isfinite(results["train_loss"]) and results["train_loss"] > 0
    assert math.isfinite(results["eval_loss"])  # eval on the val split ran
    history = json.loads((lora / "trainer_state.json").read_text())["log_history"]
    losses = [h["loss"] for h in history if "loss" in h]
    assert losses and all(math.isfinite(x) and x > 0 for x in losses)


def check_merged(merged, base, lora, family: str) -> None:
    """The merged folder loads as the family's model, and a LoRA-targeted weight is the base's
    plus the adapter's scaled B·A (the merge applied, nothing else)."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    assert (merged / "model.safetensors").is_file() and (merged / "config.json").is_file()
    assert not (merged / "adapter_config.json").exists()
    model = AutoModelForImageTextToText.from_pretrained(merged)
    assert type(model).__name__ == MODEL_CLASS[family]
    cfg = json.loads((lora / "adapter_config.json").read_text())
    adapter = load_file(lora / "adapter_model.safetensors")
    a_key = next(k for k in adapter if k.endswith("layers.0.self_attn.q_proj.lora_A.weight"))
    delta = adapter[a_key.replace("lora_A", "lora_B")] @ adapter[a_key] * (cfg["lora_alpha"] / cfg["r"])
    name = "model.language_model.layers.0.self_attn.q_proj.weight"  # as loaded (Qwen2-VL saves it as model.layers…)
    base_weight = dict(AutoModelForImageTextToText.from_pretrained(base).named_parameters())[name].detach()
    merged_weight = dict(model.named_parameters())[name].detach()
    assert delta.abs().max() > 0
    torch.testing.assert_close(merged_weight, base_weight + delta, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(TINY_CONFIG_PREFIX))
def test_train_merge_predict(family, tiny_family_model, tiny_lora, prepared_dir, tmp_path):
    prefix = TINY_CONFIG_PREFIX[family]
    base, lora = tiny_family_model(family), tiny_lora(family)
    check_training(lora)

    merged, pred = tmp_path / "merged", tmp_path / "predict"
    llamafactory(
        "export",
        TINY / f"{prefix}_lora_merge.yaml",
        f"model_name_or_path={base}",
        f"adapter_name_or_path={lora}",
        f"export_dir={merged}",
        log=tmp_path / "merge.log",
    )
    check_merged(merged, base, lora, family)
    from xrayqwen2vl.model_scan import scan_model_folder

    # what we write carries no code, no attention override and no pickled weights (issue 19)
    assert scan_model_folder(merged) == [] and scan_model_folder(lora) == []

    llamafactory(
        "train",
        TINY / f"{prefix}_predict.yaml",
        f"model_name_or_path={merged}",
        f"dataset_dir={prepared_dir}",
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
        # Qwen3-VL's template has no default system turn; Qwen2-VL's has
        assert row["prompt"].startswith("<|im_start|>system\n") == (family == "qwen2_vl")


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
