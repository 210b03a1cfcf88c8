"""The GPUs a run gets. LLaMA-Factory 0.9.5 starts torchrun with one process per visible device
whenever more than one is visible (llamafactory/launcher.py), whatever FORCE_TORCHRUN says, so
the wrappers hide every GPU but the recipe's N. nvidia-smi is faked (preflight_support.py); the
check, the wrappers and llamafactory-cli are real. The launch tests stop llamafactory-cli at its
argument parser (an unknown key) and record, from a sitecustomize on PYTHONPATH, the environment
each of its processes started with."""

from __future__ import annotations

import json
import os

import pytest
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

TRAIN_2B = "configs/train_lora/qwen2vl_2b_lora_sft.yaml"
TRAIN_7B = "configs/train_lora/qwen2vl_7b_lora_sft.yaml"
PREDICT_7B = "configs/predict/qwen2vl_7b_lora_sft.yaml"
PREDICT_OK = ("adapter_name_or_path=null", "finetuning_type=full")  # no adapter trained here


@pytest.fixture(scope="module")
def checkout(sample_dir, tiny_model_dir, tmp_path_factory):
    data = prepared_openi_with_images(sample_dir, tmp_path_factory.mktemp("gpus_data") / "data")
    return make_checkout(tmp_path_factory.mktemp("gpus") / "repo", data, tiny_model_dir)


@pytest.fixture
def four_gpus(tmp_path):
    return fake_nvidia_smi(tmp_path / "bin", [H100] * 4)


def shell_plan(checkout, config, *overrides, env):
    proc = run_check(checkout, config, *overrides, "--shell", env=env)
    assert proc.returncode == 0, proc.stderr
    return plan(proc)


def test_one_gpu_recipe_on_a_four_gpu_node(checkout, four_gpus):
    first, exported = shell_plan(checkout, TRAIN_2B, env=clean_env(four_gpus))
    assert first == (
        f"{TRAIN_2B}: 1 GPU (CUDA_VISIBLE_DEVICES=0), one process: "
        "1 × batch 4 × accumulation 16 = 64 samples per optimizer step"
    )
    assert exported == {
        "NPROC_PER_NODE": "1",
        "FORCE_TORCHRUN": "0",
        "CUDA_VISIBLE_DEVICES": "0",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }


def test_four_gpu_recipe_takes_four_of_eight(checkout, tmp_path):
    env = clean_env(fake_nvidia_smi(tmp_path / "bin", [H100] * 8))
    first, exported = shell_plan(checkout, TRAIN_7B, env=env)
    assert first == (
        f"{TRAIN_7B}: 4 GPUs (CUDA_VISIBLE_DEVICES=0,1,2,3), torchrun, 4 processes: "
        "4 × batch 8 × accumulation 8 = 256 samples per optimizer step"
    )
    assert exported["NPROC_PER_NODE"] == "4" and exported["FORCE_TORCHRUN"] == "1"


def test_the_users_cuda_visible_devices_is_the_pool(checkout, four_gpus):
    first, exported = shell_plan(checkout, TRAIN_2B, env=clean_env(four_gpus, CUDA_VISIBLE_DEVICES="2,3"))
    assert exported["CUDA_VISIBLE_DEVICES"] == "2"
    assert "CUDA_DEVICE_ORDER" not in exported  # the user's indices keep the user's meaning
    proc = run_check(checkout, TRAIN_7B, env=clean_env(four_gpus, CUDA_VISIBLE_DEVICES="2,3"))
    assert errors(proc) == [
        "xrayqwen2vl check: error: GPUs: 4 wanted (the recipe's '# GPUs: 4' line), 2 visible "
        "(CUDA_VISIBLE_DEVICES=2,3): run with GPUS=2 (the first line then shows the global batch) or free more GPUs"
    ]


def test_gpus_and_nproc_per_node_set_the_count(checkout, four_gpus):
    first, exported = shell_plan(checkout, TRAIN_7B, env=clean_env(four_gpus, GPUS="1"))
    # DeepSpeed needs the launcher even for one process.
    assert first.startswith(f"{TRAIN_7B}: 1 GPU (CUDA_VISIBLE_DEVICES=0), torchrun, 1 process: 1 × batch 8")
    assert "(the recipe: 4 GPUs × 8 × 8 = 256; gradient_accumulation_steps=32 keeps it)" in first
    assert exported["FORCE_TORCHRUN"] == "1" and exported["NPROC_PER_NODE"] == "1"
    first, exported = shell_plan(checkout, TRAIN_2B, env=clean_env(four_gpus, NPROC_PER_NODE="2"))
    assert exported["CUDA_VISIBLE_DEVICES"] == "0,1" and exported["FORCE_TORCHRUN"] == "1"
    assert (
        "2 × batch 4 × accumulation 16 = 128 samples per optimizer step (the recipe: 1 GPU × 4 × 16 = 64; gradient_accumulation_steps=8 keeps it)"
        in first
    )


def test_two_nodes(checkout, four_gpus):
    env = clean_env(four_gpus, NNODES="2", NODE_RANK="1", MASTER_ADDR="10.0.0.1", MASTER_PORT="29500")
    first, exported = shell_plan(checkout, TRAIN_7B, "gradient_accumulation_steps=4", env=env)
    assert first == (
        f"{TRAIN_7B}: 4 GPUs (CUDA_VISIBLE_DEVICES=0,1,2,3), torchrun, 8 processes on 2 nodes: "
        "8 × batch 8 × accumulation 4 = 256 samples per optimizer step"
    )


def test_prediction_runs_on_one_gpu(checkout, four_gpus):
    first, exported = shell_plan(checkout, PREDICT_7B, *PREDICT_OK, env=clean_env(four_gpus))
    assert first == (
        f"{PREDICT_7B}: 1 GPU (CUDA_VISIBLE_DEVICES=0), one process: batch 8 per process, "
        "predictions in the order of the test file"
    )
    assert exported["CUDA_VISIBLE_DEVICES"] == "0" and exported["FORCE_TORCHRUN"] == "0"


def test_nvidia_smi_that_fails(checkout, tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    smi = fake / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\necho 'NVIDIA-SMI has failed because it couldn'\"'\"'t communicate with the NVIDIA driver.'\nexit 9\n"
    )
    smi.chmod(0o755)
    proc = run_check(checkout, TRAIN_2B, env=clean_env(fake))
    assert errors(proc) == [
        "xrayqwen2vl check: error: GPUs: 1 wanted (the recipe's '# GPUs: 1' line), none visible (nvidia-smi "
        "failed: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.). On a machine "
        "without GPUs pass GPUS=0 (and bf16=false)"
    ]


# --- what llamafactory-cli really gets (slow: it imports torch and LLaMA-Factory) ------------------

RECORDER = """\
import json, os, sys
_out = os.environ.get("RECORD_LAUNCH")
if _out and sys.argv and "llamafactory" in os.path.basename(sys.argv[0]) + " ".join(sys.argv[:1]):
    keys = ("CUDA_VISIBLE_DEVICES", "FORCE_TORCHRUN", "NPROC_PER_NODE", "LOCAL_RANK", "WORLD_SIZE")
    with open(_out, "a") as f:
        # the inference shim's import hook, installed by src/xrayqwen2vl/lf_boot (first on PYTHONPATH),
        # whose sitecustomize runs this one after it
        shim = any(type(f).__name__ == "_PatchOnImport" for f in sys.meta_path)
        f.write(json.dumps({"argv0": os.path.basename(sys.argv[0]), "shim": shim, **{k: os.environ.get(k) for k in keys}}) + "\\n")
"""


def launch(checkout, tmp_path, fake, config, *overrides, **env_extra):
    recorder = tmp_path / "recorder"
    recorder.mkdir()
    (recorder / "sitecustomize.py").write_text(RECORDER)
    record = tmp_path / "launch.jsonl"
    env = clean_env(fake, RECORD_LAUNCH=str(record), **env_extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(recorder), os.environ.get("PYTHONPATH")) if p)
    # An unknown key stops every process at LLaMA-Factory's argument parser, after the launch
    # (bf16=false: on a CPU the bf16 check of the same parser would stop it first).
    proc = run_wrapper(
        checkout, "train.sh", config, *overrides, "bf16=false", "not_a_key=1", env=env, timeout=600
    )
    assert proc.returncode != 0
    assert "not_a_key" in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-3000:]
    starts = [json.loads(line) for line in record.read_text().splitlines()]
    return proc, starts


@pytest.mark.slow
def test_wrapper_gives_llamafactory_one_gpu_and_one_process(checkout, four_gpus, tmp_path):
    """The issue's trap: a one-GPU recipe on a four-GPU node used to start torchrun on all four."""
    proc, starts = launch(checkout, tmp_path, four_gpus, TRAIN_2B)
    assert proc.stdout.splitlines()[0].startswith(f"{TRAIN_2B}: 1 GPU (CUDA_VISIBLE_DEVICES=0), one process:")
    assert starts == [
        {
            "argv0": "llamafactory-cli",
            "shim": True,
            "CUDA_VISIBLE_DEVICES": "0",
            "FORCE_TORCHRUN": "0",
            "NPROC_PER_NODE": "1",
            "LOCAL_RANK": None,
            "WORLD_SIZE": None,
        }
    ]


@pytest.mark.slow
def test_wrapper_gives_llamafactory_the_gpus_asked_for(checkout, four_gpus, tmp_path):
    proc, starts = launch(checkout, tmp_path, four_gpus, TRAIN_7B, GPUS="2")
    assert "2 × batch 8 × accumulation 8 = 128 samples per optimizer step" in proc.stdout.splitlines()[0]
    assert "Initializing 2 distributed tasks" in proc.stdout + proc.stderr
    workers = sorted((s for s in starts if s["LOCAL_RANK"] is not None), key=lambda s: s["LOCAL_RANK"])
    assert [(w["LOCAL_RANK"], w["WORLD_SIZE"], w["CUDA_VISIBLE_DEVICES"]) for w in workers] == [
        ("0", "2", "0,1"),
        ("1", "2", "0,1"),
    ]
    assert [s["shim"] for s in starts] == [True] * len(starts)  # llamafactory-cli and both ranks


@pytest.mark.slow
def test_prediction_on_two_ranks_keeps_the_order_of_the_test_file(checkout, tmp_path):
    """GPUS=2 for prediction: two torchrun ranks (gloo on the CPU), an odd number of samples so the
    last batch is padded; generated_predictions.jsonl still follows data/openi_test.json."""
    fake = fake_nvidia_smi(tmp_path / "bin", [H100] * 2)
    out = tmp_path / "predict"
    proc = run_wrapper(
        checkout,
        "predict.sh",
        PREDICT_7B,
        *PREDICT_OK,
        "bf16=false",
        "max_samples=7",
        "max_new_tokens=8",
        "per_device_eval_batch_size=2",
        "preprocessing_num_workers=1",
        "dataloader_num_workers=0",
        f"output_dir={out}",
        env=clean_env(fake, GPUS="2"),
        timeout=900,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "torchrun, 2 processes" in proc.stdout.splitlines()[0]
    assert "Initializing 2 distributed tasks" in proc.stdout + proc.stderr
    test = json.loads((checkout / "data" / "openi_test.json").read_text())[:7]
    lines = (out / "generated_predictions.jsonl").read_text().splitlines()
    assert [json.loads(x)["label"].strip() for x in lines] == [
        r["messages"][1]["content"].strip() for r in test
    ]
