"""The batch line of `xrayqwen2vl check` (recipes/gpus.py), called directly: the samples per
optimizer step of this run, the recipe's own when they differ, and the accumulation that keeps
it only when one does exactly. test_preflight.py checks it in the command's output."""

from __future__ import annotations

from xrayqwen2vl.recipes.gpus import Plan, batch_line, keep_hint


def _plan(count: int, processes: int, nnodes: int = 1, torchrun: bool = True, devices=None) -> Plan:
    return Plan(count, "test", nnodes, processes, torchrun, devices)


RECIPE = {"per_device_train_batch_size": 8, "gradient_accumulation_steps": 8}


def test_the_recipes_batch_and_the_accumulation_that_keeps_it():
    assert batch_line(RECIPE, RECIPE, 4, _plan(2, 2)) == (
        "2 × batch 8 × accumulation 8 = 128 samples per optimizer step "
        "(the recipe: 4 GPUs × 8 × 8 = 256; gradient_accumulation_steps=16 keeps it)"
    )
    # 256 / (3 × 8) is not whole: no accumulation keeps it, the two nearest and what they give
    assert batch_line(RECIPE, RECIPE, 4, _plan(3, 3)) == (
        "3 × batch 8 × accumulation 8 = 192 samples per optimizer step (the recipe: 4 GPUs × 8 × 8 = 256; "
        "no gradient_accumulation_steps keeps it exactly with 3 × batch 8: 10 gives 240, 11 gives 264)"
    )
    # more ranks than the recipe's batch allows at accumulation 1: none keeps it, and 0 is no choice
    big = {"per_device_train_batch_size": 8, "gradient_accumulation_steps": 1}
    assert batch_line(big, big, 2, _plan(4, 4)) == (
        "4 × batch 8 × accumulation 1 = 32 samples per optimizer step (the recipe: 2 GPUs × 8 × 1 = 16; "
        "no gradient_accumulation_steps keeps it exactly with 4 × batch 8: 1 gives 32)"
    )
    assert batch_line(RECIPE, RECIPE, 1, _plan(2, 2)) == (
        "2 × batch 8 × accumulation 8 = 128 samples per optimizer step "
        "(the recipe: 1 GPU × 8 × 8 = 64; gradient_accumulation_steps=4 keeps it)"
    )


def test_the_same_batch_or_no_recipe_count_says_nothing_more():
    line = "4 × batch 8 × accumulation 8 = 256 samples per optimizer step"
    assert batch_line(RECIPE, RECIPE, 4, _plan(4, 4)) == line
    assert batch_line(RECIPE, RECIPE, None, _plan(2, 2)) == line.replace("4 ×", "2 ×", 1).replace(
        "256", "128"
    )
    assert batch_line(RECIPE, RECIPE, 0, _plan(2, 2)).endswith("= 128 samples per optimizer step")
    # nodes multiply the ranks; the run's own values, the recipe's where they differ
    run = {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 2}
    assert batch_line(run, RECIPE, 4, _plan(2, 2, nnodes=2)) == (
        "4 × batch 4 × accumulation 2 = 32 samples per optimizer step "
        "(the recipe: 4 GPUs × 8 × 8 = 256; gradient_accumulation_steps=16 keeps it)"
    )
    # missing keys: batch 8 and accumulation 1, as the trainer's defaults
    assert batch_line({}, {}, None, _plan(1, 1, torchrun=False)) == (
        "1 × batch 8 × accumulation 1 = 8 samples per optimizer step"
    )
    assert batch_line({}, {}, 2, _plan(1, 1, torchrun=False)) == (
        "1 × batch 8 × accumulation 1 = 8 samples per optimizer step "
        "(the recipe: 2 GPUs × 8 × 1 = 16; gradient_accumulation_steps=2 keeps it)"
    )


def test_where_and_how_it_runs():
    assert _plan(0, 1, torchrun=False).where() == "CPU (GPUS=0)"
    assert _plan(1, 1).where() == "1 GPU"
    assert _plan(2, 2, devices=["0", "1"]).where() == "2 GPUs (CUDA_VISIBLE_DEVICES=0,1)"
    assert _plan(1, 1, torchrun=False).launch() == "one process"
    assert _plan(1, 1).launch() == "torchrun, 1 process"
    assert _plan(2, 2).launch() == "torchrun, 2 processes"
    assert _plan(2, 2, nnodes=2).launch() == "torchrun, 4 processes on 2 nodes"


def test_the_recipes_own_batch_and_an_accumulation_of_one():
    own = {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 4}
    run = {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 8}
    assert batch_line(run, own, 2, _plan(2, 2)) == (
        "2 × batch 4 × accumulation 8 = 64 samples per optimizer step "
        "(the recipe: 2 GPUs × 4 × 4 = 32; gradient_accumulation_steps=4 keeps it)"
    )
    own = {"per_device_train_batch_size": 8, "gradient_accumulation_steps": 1}
    run = {"per_device_train_batch_size": 8, "gradient_accumulation_steps": 2}
    assert batch_line(run, own, 2, _plan(2, 2)) == (
        "2 × batch 8 × accumulation 2 = 32 samples per optimizer step "
        "(the recipe: 2 GPUs × 8 × 1 = 16; gradient_accumulation_steps=1 keeps it)"
    )


def test_the_recipes_nodes_multiply_its_batch():
    assert batch_line(RECIPE, RECIPE, 8, _plan(8, 8), recipe_nodes=2) == (
        "8 × batch 8 × accumulation 8 = 512 samples per optimizer step "
        "(the recipe: 2 nodes × 8 GPUs × 8 × 8 = 1024; gradient_accumulation_steps=16 keeps it)"
    )
    # one node (or a count below one) is written as GPUs only
    assert batch_line(RECIPE, RECIPE, 4, _plan(2, 2), recipe_nodes=0).endswith(
        "(the recipe: 4 GPUs × 8 × 8 = 256; gradient_accumulation_steps=16 keeps it)"
    )
    # two nodes of the recipe run as two nodes here: the same batch, nothing more to say
    assert batch_line(RECIPE, RECIPE, 4, _plan(4, 4, nnodes=2), recipe_nodes=2) == (
        "8 × batch 8 × accumulation 8 = 512 samples per optimizer step"
    )


def test_keep_hint_divides_exactly_or_gives_the_two_nearest():
    assert keep_hint(256, 4, 8) == "gradient_accumulation_steps=8 keeps it"
    assert keep_hint(32, 4, 8) == "gradient_accumulation_steps=1 keeps it"
    assert keep_hint(100, 3, 4) == (
        "no gradient_accumulation_steps keeps it exactly with 3 × batch 4: 8 gives 96, 9 gives 108"
    )
    # fewer samples than one step of the run: accumulation 0 is no choice, 1 is the nearest
    assert (
        keep_hint(16, 4, 8) == "no gradient_accumulation_steps keeps it exactly with 4 × batch 8: 1 gives 32"
    )
