"""Several nodes and other GPU counts than the recipe's: the global batch the first line of the
wrappers states, the accumulation it suggests, the '# GPUs:' header it reads, and the rendezvous
preflight (NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT). The batch lines come from the real
launch plan of recipes/gpus.py over a listed inventory; the rendezvous checks run the real
`xrayqwen2vl check` with nvidia-smi faked (preflight_support.py)."""

from __future__ import annotations

import re

import pytest
from configs_support import rel, training_configs
from conftest import REPO
from preflight_support import (
    H100,
    clean_env,
    errors,
    fake_nvidia_smi,
    make_checkout,
    plan,
    prepared_openi_with_images,
    run_check,
    run_wrapper,
)

from xrayqwen2vl.recipes import gpus as gpu_mod
from xrayqwen2vl.recipes.config import load_recipe
from xrayqwen2vl.recipes.nodes import rendezvous_problems

TRAIN = training_configs()
TRAIN_7B = "configs/train_lora/qwen2vl_7b_lora_sft.yaml"
MIMIC = "configs/train_lora/qwen2vl_7b_lora_sft_mimic.yaml"
RENDEZVOUS = {"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}
# The situations the issue names: the recipe's own GPUs on one node, on two nodes, and 4 GPUs.
SITUATIONS = {
    "1 node": {},
    "2 nodes": {"NNODES": "2", "NODE_RANK": "0", **RENDEZVOUS},
    "4 GPUs": {"GPUS": "4"},
}
INVENTORY = gpu_mod.Inventory(
    [gpu_mod.Gpu(str(i), f"GPU-{i}", H100[0], 81559, (9, 0), H100[3]) for i in range(16)]
)


def stated_global_batch(recipe) -> int:
    """The samples per optimizer step the header states ('… = 256 samples per step')."""
    text = " ".join(line.lstrip("# ").strip() for line in recipe.header)
    m = re.search(r"= (\d[\d,]*) samples per (?:optimizer )?step", text)
    assert m, f"{recipe.name}: the header states no global batch ('= N samples per step')"
    return int(m.group(1).replace(",", ""))


def first_line(recipe, env: dict, **values) -> str:
    """The batch part of the wrappers' first line for this recipe in this environment."""
    launch, problems = gpu_mod.plan_launch(recipe.gpus, bool(recipe.get("deepspeed")), INVENTORY, env)
    assert launch is not None, problems
    return gpu_mod.batch_line({**recipe.values, **values}, recipe.own, recipe.gpus, launch, recipe.nodes)


def run_total(line: str) -> int:
    return int(re.match(r"\d+ × batch \d+ × accumulation \d+ = (\d+) samples", line).group(1))


@pytest.mark.parametrize("situation", list(SITUATIONS))
@pytest.mark.parametrize("path", TRAIN, ids=[rel(p) for p in TRAIN])
def test_first_line_states_the_recipes_global_batch(path, situation):
    """The recipe's batch in the first line is the header's, whatever the run's shape; the
    accumulation it suggests gives that batch again."""
    recipe = load_recipe(path)
    stated = stated_global_batch(recipe)
    line = first_line(recipe, SITUATIONS[situation])
    m = re.search(r"\(the recipe: [^=]+= (\d+); (.*)\)$", line)
    if m is None:
        assert run_total(line) == stated, f"{situation}: {line}"
        return
    assert int(m.group(1)) == stated, f"{situation}: {line}"
    assert run_total(line) != stated
    keep = re.fullmatch(r"gradient_accumulation_steps=(\d+) keeps it", m.group(2))
    if keep:
        again = first_line(recipe, SITUATIONS[situation], gradient_accumulation_steps=int(keep.group(1)))
        assert run_total(again) == stated and "the recipe" not in again, again


def test_mimic_is_256_on_two_nodes_and_says_how_to_keep_it_on_one():
    recipe = load_recipe(MIMIC)
    assert (recipe.gpus, recipe.nodes) == (8, 2)
    assert first_line(recipe, SITUATIONS["2 nodes"]) == (
        "16 × batch 8 × accumulation 2 = 256 samples per optimizer step"
    )
    assert first_line(recipe, SITUATIONS["1 node"]) == (
        "8 × batch 8 × accumulation 2 = 128 samples per optimizer step "
        "(the recipe: 2 nodes × 8 GPUs × 8 × 2 = 256; gradient_accumulation_steps=4 keeps it)"
    )
    assert first_line(recipe, SITUATIONS["4 GPUs"]).endswith("gradient_accumulation_steps=8 keeps it)")


@pytest.mark.parametrize("path", TRAIN, ids=[rel(p) for p in TRAIN])
def test_no_accumulation_is_suggested_that_does_not_divide_evenly(path):
    """On 3 GPUs: when the recipe's batch is no multiple of 3 × its per-device batch (none of ours
    is), the line says so and gives the two nearest, never 'gradient_accumulation_steps=K keeps
    it' with a K that does not; when it is one, K gives the batch exactly."""
    recipe = load_recipe(path)
    stated = stated_global_batch(recipe)
    line = first_line(recipe, {"GPUS": "3"})
    b = int(recipe.get("per_device_train_batch_size"))
    lo, rest = divmod(stated, 3 * b)
    if rest == 0:
        assert line.endswith(f"gradient_accumulation_steps={lo} keeps it)"), line
        return
    assert "keeps it)" not in line, line
    near = ", ".join(f"{k} gives {k * 3 * b}" for k in (lo, lo + 1) if k >= 1)
    assert line.endswith(f"no gradient_accumulation_steps keeps it exactly with 3 × batch {b}: {near})"), line


def test_our_recipes_do_not_divide_by_three():
    """So that the test above exercises the uneven case on the recipes of this repository."""
    recipe = load_recipe(REPO / TRAIN_7B)
    assert stated_global_batch(recipe) % (3 * int(recipe.get("per_device_train_batch_size"))) != 0
    assert first_line(recipe, {"GPUS": "3"}).endswith(
        "(the recipe: 4 GPUs × 8 × 8 = 256; no gradient_accumulation_steps keeps it exactly with "
        "3 × batch 8: 10 gives 240, 11 gives 264)"
    )


def test_a_gpus_comment_below_the_first_key_is_not_the_header(tmp_path):
    config = tmp_path / "configs" / "train_lora" / "notes.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(
        "# Command: bash scripts/train.sh configs/train_lora/notes.yaml\n"
        "# Hardware: one GPU\n"
        "\n"
        "### model\n"
        "model_name_or_path: weights/Qwen2-VL-2B-Instruct\n"
        "# GPUs: 8 per node, 2 nodes (a note about another setup, not this recipe's header)\n"
        "do_train: true\n"
        "per_device_train_batch_size: 4\n"
        "gradient_accumulation_steps: 16\n",
        encoding="utf-8",
    )
    recipe = load_recipe(config)
    assert (recipe.gpus, recipe.nodes) == (None, 1)
    count, source = gpu_mod.wanted_count(recipe.gpus, {})
    assert (count, source) == (1, "the default for a config without a '# GPUs: N' line")
    assert first_line(recipe, {}) == "1 × batch 4 × accumulation 16 = 64 samples per optimizer step"


# --- the rendezvous ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkout(sample_dir, tiny_model_dir, tmp_path_factory):
    data = prepared_openi_with_images(sample_dir, tmp_path_factory.mktemp("nodes_data") / "data")
    return make_checkout(tmp_path_factory.mktemp("nodes") / "repo", data, tiny_model_dir)


@pytest.fixture(scope="module")
def four_gpus(tmp_path_factory):
    return fake_nvidia_smi(tmp_path_factory.mktemp("smi"), [H100] * 4)


def only_error(proc) -> str:
    lines = errors(proc)
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    return lines[0].removeprefix("xrayqwen2vl check: error: ")


def test_two_nodes_without_a_rendezvous_is_one_line(checkout, four_gpus):
    env = clean_env(four_gpus, NNODES="2", NODE_RANK="0")
    line = only_error(run_check(checkout, TRAIN_7B, "gradient_accumulation_steps=4", env=env))
    assert line.startswith(
        "NNODES=2 without MASTER_ADDR and MASTER_PORT: each node would fall back to 127.0.0.1"
    )
    assert "set the same MASTER_ADDR (node 0's address) and MASTER_PORT on every node" in line


def test_node_rank_beyond_the_nodes_is_one_line(checkout, four_gpus):
    env = clean_env(four_gpus, NNODES="2", NODE_RANK="2", **RENDEZVOUS)
    line = only_error(run_check(checkout, TRAIN_7B, env=env))
    assert line.startswith("NODE_RANK=2 with NNODES=2: node ranks run from 0 to 1")


def test_a_complete_rendezvous_passes_on_either_node(checkout, four_gpus):
    for rank in ("0", "1"):
        env = clean_env(four_gpus, NNODES="2", NODE_RANK=rank, **RENDEZVOUS)
        proc = run_check(checkout, TRAIN_7B, "gradient_accumulation_steps=4", "--shell", env=env)
        assert proc.returncode == 0, proc.stderr
        assert plan(proc)[0].endswith(
            "8 processes on 2 nodes: 8 × batch 8 × accumulation 4 = 256 samples per optimizer step"
        )


@pytest.mark.parametrize(
    ("env", "start"),
    [
        ({"NNODES": "2", **RENDEZVOUS}, "NNODES=2 without NODE_RANK: every node would claim rank 0"),
        ({"NODE_RANK": "1"}, "NODE_RANK=1 with NNODES=1: node ranks run from 0 to 0"),
        ({"NNODES": "2", "NODE_RANK": "1", "MASTER_PORT": "29500"}, "NNODES=2 without MASTER_ADDR:"),
        ({"NNODES": "2", "NODE_RANK": "x", **RENDEZVOUS}, "NODE_RANK=x: not a node number"),
        ({"NNODES": "two", "NODE_RANK": "0"}, "NNODES=two: not a number of nodes"),
        (
            {"NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"},
            "MASTER_ADDR=127.0.0.1 with NNODES=2: a loopback address",
        ),
        (
            {"NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "0"},
            "MASTER_PORT=0: not a port",
        ),
    ],
)
def test_each_rendezvous_mistake_is_one_line(env, start):
    problems = rendezvous_problems(env)
    assert len(problems) == 1 and problems[0].startswith(start), problems


def test_one_node_needs_nothing():
    assert rendezvous_problems({}) == []
    assert rendezvous_problems({"NNODES": "1", "NODE_RANK": "0"}) == []
    assert rendezvous_problems({"NNODES": "2", "NODE_RANK": "1", **RENDEZVOUS}) == []


def test_train_sh_help_gives_each_node_its_own_rank(checkout):
    text = run_wrapper(checkout, "train.sh", "--help", env=clean_env()).stdout
    commands = re.findall(r"NNODES=2 NODE_RANK=(\d) MASTER_ADDR=10\.0\.0\.1", text)
    assert commands == ["0", "1"], text
    assert "same command on both" not in text
