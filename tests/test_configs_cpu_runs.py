"""Each real training config runs 2 steps on CPU through scripts/train.sh (torchrun, DeepSpeed where
the config names it) with the tiny model and only the CPU overrides of configs_support.py; then the
7B run's merge and predict configs run on its adapter, as in the GPU quick start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from configs_support import (
    CONFIGS,
    SHORT_RUN,
    cpu_overrides,
    family_of_config,
    kv,
    load,
    openi_data,
    read_state,
    rel,
    run_script,
    train_script,
    trained_adapter,
    training_configs,
)
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

TRAIN = training_configs()
MAIN = CONFIGS / "train_lora" / "qwen2vl_7b_lora_sft.yaml"
LINEAR = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


@pytest.fixture(scope="module")
def data_dir(sample_dir, tmp_path_factory):
    return openi_data(sample_dir, tmp_path_factory)


def check_adapter(out, rank: int = 8) -> None:
    adapter_cfg = json.loads((out / "adapter_config.json").read_text())
    assert adapter_cfg["r"] == rank
    targets = adapter_cfg["target_modules"]
    targets = targets if isinstance(targets, list) else [targets]
    assert {t.rsplit(".", 1)[-1] for t in targets} == LINEAR, targets  # lora_target: all
    assert not [t for t in targets if "visual" in t], "LoRA on the frozen vision tower"
    tensors = load_file(out / "adapter_model.safetensors")
    assert tensors, "empty adapter"
    # freeze_vision_tower: LoRA only on the language model
    assert not [k for k in tensors if ".visual." in k]
    for name, t in tensors.items():  # ZeRO-3 saves empty tensors unless it gathers weights on save
        assert t.numel() > 0 and rank in t.shape, (name, tuple(t.shape))


@pytest.mark.parametrize("config", TRAIN, ids=[rel(p) for p in TRAIN])
def test_training_config_runs_two_steps_on_cpu(config, tiny_model_dir, data_dir, tmp_path_factory):
    cfg = load(config)
    out = trained_adapter(config, tiny_model_dir, data_dir, tmp_path_factory)
    state = read_state(out)
    assert state["global_step"] == 2
    base = json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"]
    family = json.loads((Path(base) / "config.json").read_text())["model_type"]
    assert family == family_of_config(cfg)
    assert state["max_steps"] == 2
    check_adapter(out, cfg["lora_rank"])
    results = json.loads((out / "all_results.json").read_text())
    assert "eval_loss" in results, "the eval_dataset (openi_val) was not evaluated"
    log = (out.parent / "train.log").read_text()
    # GPUS=0: one process; torchrun only for DeepSpeed, which needs its launcher.
    launched = "distributed training: True" in log
    assert launched == ("deepspeed" in cfg), "scripts/train.sh chose the wrong launch"
    assert log.startswith(f"{rel(config)}: CPU (GPUS=0), "), log[:300]
    if "deepspeed" in cfg:
        # DeepSpeed's own checkpoint layout: the engine really ran with our JSON.
        assert (out / "checkpoint-2" / "global_step2").is_dir()
        assert "DeepSpeed info" in log


def test_zero3_offload_json_trains_on_cpu(tiny_model_dir, data_dir, tmp_path):
    """configs/deepspeed/ds_z3_offload_config.json with the 7B recipe (first run builds DeepSpeed's
    CPU Adam, a few minutes; cached in ~/.cache/torch_extensions afterwards)."""
    out = tmp_path / "z3"
    train_script(
        MAIN,
        f"model_name_or_path={tiny_model_dir}",
        f"dataset_dir={data_dir}",
        f"output_dir={out}",
        "deepspeed=configs/deepspeed/ds_z3_offload_config.json",
        *kv(cpu_overrides(load(MAIN))),
        *kv(SHORT_RUN),
        log=tmp_path / "z3.log",
    )
    assert read_state(out)["global_step"] == 2
    assert (out / "checkpoint-2" / "global_step2").is_dir()
    assert "ZeRO Offload" in (tmp_path / "z3.log").read_text()
    check_adapter(out)


def test_train_script_refuses_a_missing_config():
    with pytest.raises(AssertionError, match="config file not found"):
        train_script(CONFIGS / "train_lora" / "no_such_run.yaml")


def _predict(config, model, data_dir, out, *extra):
    run_script(
        "predict.sh",
        config,
        f"model_name_or_path={model}",
        f"dataset_dir={data_dir}",
        f"output_dir={out}",
        *kv(cpu_overrides(load(config))),
        "max_samples=3",
        "max_new_tokens=16",
        "per_device_eval_batch_size=2",
        "preprocessing_num_workers=1",
        "dataloader_num_workers=0",
        *extra,
        log=out.parent / f"{out.name}.log",
    )
    lines = (out / "generated_predictions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_merge_and_predict_configs_on_the_trained_adapter(
    tiny_model_dir, data_dir, tmp_path_factory, tmp_path
):
    adapter = trained_adapter(MAIN, tiny_model_dir, data_dir, tmp_path_factory)
    run = MAIN.stem

    merged = tmp_path / "merged"
    run_script(
        "merge.sh",
        CONFIGS / "merge_lora" / f"{run}.yaml",
        f"model_name_or_path={tiny_model_dir}",
        f"adapter_name_or_path={adapter}",
        f"export_dir={merged}",
        log=tmp_path / "merge.log",
    )
    assert (merged / "config.json").is_file()
    assert list(merged.glob("*.safetensors")), "no weights written"
    assert not (merged / "adapter_config.json").exists(), "export wrote an adapter, not a merged model"
    assert (merged / "tokenizer.json").is_file() and (merged / "chat_template.jinja").is_file()

    references = json.loads((data_dir / "openi_test.json").read_text(encoding="utf-8"))[:3]
    labels = [r["messages"][1]["content"] for r in references]

    predict_config = CONFIGS / "predict" / f"{run}.yaml"
    with_adapter = _predict(
        predict_config, tiny_model_dir, data_dir, tmp_path / "predict", f"adapter_name_or_path={adapter}"
    )
    assert [p["label"].strip() for p in with_adapter] == labels
    assert all(set(p) >= {"prompt", "predict", "label"} for p in with_adapter)

    # The merged model, as the predict config's header documents.
    with_merged = _predict(
        predict_config,
        merged,
        data_dir,
        tmp_path / "predict_merged",
        "adapter_name_or_path=null",
        "finetuning_type=full",
    )
    assert [p["label"].strip() for p in with_merged] == labels
