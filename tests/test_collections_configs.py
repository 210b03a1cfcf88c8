"""The multi-collection recipe: the MIMIC-CXR recipe with only the data changed, and the header's
step count worked out from the collections' sizes (it also goes through every check of
test_configs.py and runs 2 steps on CPU in test_configs_cpu_runs.py)."""

from __future__ import annotations

import re

from configs_support import CONFIGS, load

COLLECTIONS = CONFIGS / "train_lora" / "qwen2vl_7b_lora_sft_collections.yaml"
MIMIC = CONFIGS / "train_lora" / "qwen2vl_7b_lora_sft_mimic.yaml"
# Train-split studies the header uses (doc/collections.md, doc/mimic.md).
TRAIN_STUDIES = {"mimic_train": 222_000, "chexpert-plus_train": 183_800, "rexgradient_train": 140_000}


def test_collections_recipe_changes_only_the_data():
    ours, mimic = load(COLLECTIONS), load(MIMIC)
    differing = {k for k in set(ours) | set(mimic) if ours.get(k) != mimic.get(k)}
    assert differing == {"dataset", "mix_strategy", "tokenized_path", "output_dir"}
    assert ours["dataset"].split(",") == list(TRAIN_STUDIES)
    assert ours["mix_strategy"] == "concat"


def test_collections_header_steps_per_epoch():
    header = " ".join(COLLECTIONS.read_text(encoding="utf-8").split("### model")[0].replace("#", " ").split())
    cfg = load(COLLECTIONS)
    per_step = 16 * cfg["per_device_train_batch_size"] * cfg["gradient_accumulation_steps"]
    steps = sum(TRAIN_STUDIES.values()) / per_step
    stated = int(re.search(r"~([\d,]+) optimizer steps", header).group(1).replace(",", ""))
    assert abs(stated - steps) < 10, (stated, steps)
    ratio = float(re.search(r"([\d.]+) times the MIMIC run", header).group(1))
    assert abs(ratio - steps / 870) < 0.01
    warmup = int(re.search(r"warmup 3% \(~(\d+) steps\)", header).group(1))
    assert abs(warmup - 0.03 * steps) < 1
