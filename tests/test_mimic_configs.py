"""The MIMIC-CXR recipe: the OpenI 7B recipe with only what changes at 227k studies changed, and
each change explained in its header (the configs also go through every check of
test_configs.py, and run 2 steps on CPU in test_configs_cpu_runs.py)."""

from __future__ import annotations

import pytest
from configs_support import (
    CONFIGS,
    SHORT_RUN,
    cpu_overrides,
    kv,
    load,
    openi_data,
    read_state,
    train_script,
    trained_adapter,
)

MIMIC = CONFIGS / "train_lora" / "qwen2vl_7b_lora_sft_mimic.yaml"
OPENI = CONFIGS / "train_lora" / "qwen2vl_7b_lora_sft.yaml"
# What may differ from the OpenI recipe, and a phrase of the header that explains it.
SCALE_KEYS = {
    "dataset": "mimic_",
    "eval_dataset": "fixed subset",
    "tokenized_path": "Tokenised once",
    "preprocessing_num_workers": "preprocessing_num_workers 32",
    "dataloader_num_workers": "",
    "output_dir": "",
    "logging_steps": "",
    "save_strategy": "checkpoints every 200",
    "save_steps": "checkpoints every 200",
    "save_total_limit": "save_total_limit 3",
    "gradient_accumulation_steps": "2 nodes x 8 GPUs x batch 8 x accumulation 2 = 256",
    "overwrite_cache": "overwrite_cache true would make each node's first rank",
    "data_shared_file_system": "only rank 0 of node 0",
    "num_train_epochs": "One epoch",
    "warmup_ratio": "warmup 3%",
    "eval_strategy": "every 200 steps",
    "eval_steps": "every 200 steps",
}


def _header(path) -> str:
    return path.read_text(encoding="utf-8").split("### model")[0]


def test_mimic_recipe_changes_only_what_the_size_asks():
    mimic, openi = load(MIMIC), load(OPENI)
    differing = {k for k in set(mimic) | set(openi) if mimic.get(k) != openi.get(k)}
    assert differing <= set(SCALE_KEYS), f"unexplained changes: {sorted(differing - set(SCALE_KEYS))}"
    header = _header(MIMIC)
    for key in differing:
        assert SCALE_KEYS[key] in header, f"{key}: the header does not explain it"
    # the same samples per optimizer step as the OpenI recipe on its hardware (4 GPUs)
    per_gpu = mimic["per_device_train_batch_size"] * mimic["gradient_accumulation_steps"]
    assert (
        per_gpu * 16 == openi["per_device_train_batch_size"] * openi["gradient_accumulation_steps"] * 4 == 256
    )


def test_mimic_header_gives_the_scale_facts():
    header = _header(MIMIC)
    assert (
        "NNODES=2 NODE_RANK=" in header
        and "bash scripts/train.sh configs/train_lora/qwen2vl_7b_lora_sft_mimic.yaml" in header
    )
    assert "~870 optimizer steps" in header  # 222,000 / 256
    assert round(222_000 / 256, -1) == 870
    assert "ZeRO-2" in header and "configs/deepspeed/ds_z3_offload_config.json" in header
    cfg = load(MIMIC)
    assert cfg["tokenized_path"].startswith("saves/")  # git-ignored, shared between runs
    assert cfg["eval_dataset"] == "mimic_val" and cfg["dataset"] == "mimic_train"
    assert cfg["save_steps"] == cfg["eval_steps"] == 200


def test_derived_mimic_configs_use_the_mimic_run():
    predict = load(CONFIGS / "predict" / "qwen2vl_7b_lora_sft_mimic.yaml")
    assert predict["eval_dataset"] == "mimic_test"
    assert predict["output_dir"].startswith("saves/qwen2vl_7b_mimic/")
    merge = load(CONFIGS / "merge_lora" / "qwen2vl_7b_lora_sft_mimic.yaml")
    assert merge["adapter_name_or_path"] == load(MIMIC)["output_dir"]
    merged = load(CONFIGS / "inference" / "qwen2vl_7b_lora_sft_mimic_merged.yaml")
    assert merged["model_name_or_path"] == merge["export_dir"]


@pytest.mark.slow
def test_mimic_run_tokenises_once_and_the_next_run_reuses_it(
    sample_dir, tiny_model_dir, tmp_path_factory, tmp_path
):
    """The 2-step CPU run of the MIMIC config (shared with test_configs_cpu_runs.py) saved its
    tokenised datasets to tokenized_path; a second run on the same path loads them instead of
    tokenising again, as the header promises for later runs and other nodes."""
    data = openi_data(sample_dir, tmp_path_factory)
    first = trained_adapter(MIMIC, tiny_model_dir, data, tmp_path_factory)
    tokenized = first.parent / "tokenized"
    assert (tokenized / "dataset_dict.json").is_file()
    assert {p.name for p in tokenized.iterdir() if p.is_dir()} == {"train", "validation"}
    assert "Tokenized dataset is saved at" in (first.parent / "train.log").read_text()
    cfg = load(MIMIC)
    train_script(
        MIMIC,
        f"model_name_or_path={tiny_model_dir}",
        f"dataset_dir={data}",  # the preflight (xrayqwen2vl check) wants it; training reads the copy
        f"output_dir={tmp_path / 'sft'}",
        f"tokenized_path={tokenized}",
        *kv(cpu_overrides(cfg)),
        *kv(SHORT_RUN),
        log=tmp_path / "second.log",
    )
    assert "Loaded tokenized dataset from" in (tmp_path / "second.log").read_text()
    assert read_state(tmp_path / "sft")["global_step"] == 2
