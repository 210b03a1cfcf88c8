"""`xrayqwen2vl check` knows the Qwen VL families: the Qwen3-VL recipe passes on a Qwen3-VL folder
(the tiny one standing in for weights/Qwen3-VL-8B-Instruct), and a folder of one family under
another family's template is refused in one line that names the template to pass."""

from __future__ import annotations

import pytest
from preflight_support import clean_env, errors, make_checkout, prepared_openi_with_images, run_check

TRAIN_8B = "configs/train_lora/qwen3vl_8b_lora_sft.yaml"
TRAIN_2_5 = "configs/train_lora/qwen2_5vl_7b_lora_sft.yaml"
TRAIN_2B = "configs/train_lora/qwen2vl_2b_lora_sft.yaml"
CPU = ("bf16=false",)


@pytest.fixture(scope="module")
def checkout(sample_dir, tiny_model_dir, tiny_family_model, tmp_path_factory):
    """A checkout with the tiny models of the three families as their weights/ folders."""
    root = tmp_path_factory.mktemp("families")
    data = prepared_openi_with_images(sample_dir, root / "data")
    repo = make_checkout(root / "repo", data, tiny_model_dir)
    for name, family in (("Qwen2.5-VL-7B-Instruct", "qwen2_5_vl"), ("Qwen3-VL-8B-Instruct", "qwen3_vl")):
        (repo / "weights" / name).symlink_to(tiny_family_model(family), target_is_directory=True)
    return repo


def one_error(proc) -> str:
    lines = errors(proc)
    assert proc.returncode == 1 and len(lines) == 1, proc.stdout + proc.stderr
    return lines[0]


def test_each_family_passes_under_its_template(checkout):
    env = clean_env(GPUS="0")
    for config in (TRAIN_8B, TRAIN_2_5):
        proc = run_check(checkout, config, *CPU, env=env)
        assert proc.returncode == 0, proc.stderr
        assert "checked: model, code, data, deepspeed, output, packages, gpus: ok" in proc.stdout
        assert "warning" not in proc.stderr


def test_qwen2_vl_template_on_a_qwen3_vl_model(checkout):
    line = one_error(run_check(checkout, TRAIN_8B, *CPU, "template=qwen2_vl", env=clean_env(GPUS="0")))
    assert line == (
        "xrayqwen2vl check: error: template: qwen2_vl does not fit weights/Qwen3-VL-8B-Instruct, a Qwen3-VL "
        "model (qwen3_vl in config.json): pass template=qwen3_vl_nothink (qwen3_vl only for the Thinking models)"
    )


def test_qwen3_vl_template_on_qwen2_family_models(checkout):
    env = clean_env(GPUS="0")
    line = one_error(run_check(checkout, TRAIN_2_5, *CPU, "template=qwen3_vl_nothink", env=env))
    assert (
        "template: qwen3_vl_nothink does not fit weights/Qwen2.5-VL-7B-Instruct, a Qwen2.5-VL model" in line
    )
    assert line.endswith("pass template=qwen2_vl")
    line = one_error(run_check(checkout, TRAIN_2B, *CPU, "template=qwen3_vl", env=env))
    assert "a Qwen2-VL model (qwen2_vl in config.json): pass template=qwen2_vl" in line


def test_thinking_template_on_the_instruct_model_warns(checkout):
    proc = run_check(checkout, TRAIN_8B, *CPU, "template=qwen3_vl", env=clean_env(GPUS="0"))
    assert proc.returncode == 0, proc.stderr
    warnings = [w for w in proc.stderr.splitlines() if w.startswith("xrayqwen2vl check: warning: ")]
    assert len(warnings) == 1 and "pass template=qwen3_vl_nothink" in warnings[0], proc.stderr
    assert "empty <think></think> block" in warnings[0]


def test_instruct_template_on_a_thinking_folder_warns(checkout, tiny_family_model):
    thinking = checkout / "weights" / "Qwen3-VL-8B-Thinking"
    if not thinking.exists():
        thinking.symlink_to(tiny_family_model("qwen3_vl"), target_is_directory=True)
    model = "model_name_or_path=weights/Qwen3-VL-8B-Thinking"
    proc = run_check(checkout, TRAIN_8B, *CPU, model, env=clean_env(GPUS="0"))
    assert proc.returncode == 0, proc.stderr
    warnings = [w for w in proc.stderr.splitlines() if w.startswith("xrayqwen2vl check: warning: ")]
    assert len(warnings) == 1 and warnings[0].endswith(
        "Thinking model, which writes a <think> block first: pass template=qwen3_vl"
    )
    proc = run_check(checkout, TRAIN_8B, *CPU, model, "template=qwen3_vl", env=clean_env(GPUS="0"))
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
