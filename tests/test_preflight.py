"""`xrayqwen2vl check`, the preflight every wrapper runs: each check fails on its own broken input
with one line that says what to do, on the CPU, in a checkout with the tiny model as the base
weights and the synthetic sample as the data. Only nvidia-smi is faked (preflight_support.py)."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import REPO
from preflight_support import (
    H100,
    V100,
    clean_env,
    errors,
    fake_nvidia_smi,
    make_checkout,
    plan,
    prepared_openi_with_images,
    run_check,
    run_wrapper,
)

from xrayqwen2vl.recipes.gpus import MIN_DRIVER, torch_build
from xrayqwen2vl.recipes.report import installed

TRAIN_2B = "configs/train_lora/qwen2vl_2b_lora_sft.yaml"
TRAIN_7B = "configs/train_lora/qwen2vl_7b_lora_sft.yaml"
FAST_7B = "configs/train_lora/qwen2vl_7b_lora_sft_fast.yaml"
QLORA = "configs/train_qlora/qwen2vl_7b_qlora_sft.yaml"
MERGE_7B = "configs/merge_lora/qwen2vl_7b_lora_sft.yaml"
PREDICT_7B = "configs/predict/qwen2vl_7b_lora_sft.yaml"
CPU = ("bf16=false",)


@pytest.fixture(scope="module")
def base_data(sample_dir, tmp_path_factory):
    return prepared_openi_with_images(sample_dir, tmp_path_factory.mktemp("preflight_data") / "data")


@pytest.fixture
def checkout(tmp_path, base_data, tiny_model_dir):
    return make_checkout(tmp_path / "repo", base_data, tiny_model_dir)


@pytest.fixture
def cpu_env():
    return clean_env(GPUS="0")


def one_error(proc, *needles):
    """Exactly one error line, and it contains every needle."""
    lines = errors(proc)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_a_complete_setup_passes(checkout, cpu_env):
    proc = run_check(checkout, TRAIN_2B, *CPU, env=cpu_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == (
        f"{TRAIN_2B}: CPU (GPUS=0), one process: 1 × batch 4 × accumulation 16 = 64 samples per optimizer step"
    )
    assert "checked: model, code, data, output, packages, gpus: ok" in proc.stdout
    for config in (TRAIN_7B, PREDICT_7B):  # DeepSpeed (7B), the test split (predict)
        extra = ("adapter_name_or_path=null", "finetuning_type=full") if "predict" in config else ()
        proc = run_check(checkout, config, *CPU, *extra, env=cpu_env)
        assert proc.returncode == 0, proc.stderr


def test_missing_weights(checkout, cpu_env):
    (checkout / "weights" / "Qwen2-VL-2B-Instruct").unlink()
    one_error(
        run_check(checkout, TRAIN_2B, *CPU, env=cpu_env),
        "model_name_or_path: weights/Qwen2-VL-2B-Instruct not found",
        "download Qwen/Qwen2-VL-2B-Instruct into it (see weights/README.md)",
    )


def test_incomplete_download(checkout, cpu_env, tiny_model_dir, tmp_path):
    """A sharded checkpoint with a shard missing, and a folder without its image processor."""
    model = tmp_path / "partial"
    model.mkdir()
    for f in tiny_model_dir.iterdir():
        if f.name not in ("model.safetensors", "processor_config.json"):
            (model / f.name).symlink_to(f)
    (model / "model-00001-of-00002.safetensors").symlink_to(tiny_model_dir / "model.safetensors")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (model / "model.safetensors.index.json").write_text(json.dumps(index))
    proc = run_check(checkout, TRAIN_2B, *CPU, f"model_name_or_path={model}", env=cpu_env)
    lines = errors(proc)
    assert proc.returncode == 1 and len(lines) == 2, proc.stderr
    assert "lacks 1 weight shard (model-00002-of-00002.safetensors, …)" in lines[0]
    assert "has no preprocessor_config.json" in lines[1]
    assert all("unfinished download" in line for line in lines)


def test_wrong_model_family_for_the_template(checkout, cpu_env, tiny_model_dir, tmp_path):
    model = tmp_path / "text-only"
    model.mkdir()
    for f in tiny_model_dir.iterdir():
        if f.name != "config.json":
            (model / f.name).symlink_to(f)
    cfg = json.loads((tiny_model_dir / "config.json").read_text())
    cfg["model_type"] = "qwen2"
    (model / "config.json").write_text(json.dumps(cfg))
    one_error(
        run_check(checkout, TRAIN_2B, *CPU, f"model_name_or_path={model}", env=cpu_env),
        "is a qwen2 model (config.json), but template qwen2_vl needs qwen2_vl or qwen2_5_vl",
    )


def test_dataset_not_in_dataset_info(checkout, cpu_env):
    one_error(
        run_check(checkout, TRAIN_2B, *CPU, "dataset=mimic_train", env=cpu_env),
        "dataset: mimic_train is not in data/dataset_info.json (it lists openi_test, openi_train, openi_val)",
        "xrayqwen2vl prepare … --out data (data/README.md) with --name mimic",
    )


def test_dataset_file_missing(checkout, cpu_env):
    (checkout / "data" / "openi_val.json").unlink()
    one_error(
        run_check(checkout, TRAIN_2B, *CPU, env=cpu_env),
        "eval_dataset: data/openi_val.json (openi_val) not found: prepare the data",
    )


def test_no_data_at_all(checkout, cpu_env):
    one_error(
        run_check(checkout, TRAIN_2B, *CPU, "dataset_dir=data/none", env=cpu_env),
        "dataset_dir: data/none not found: prepare the data: xrayqwen2vl prepare … --out data/none",
    )


def test_tokenized_data_stands_in_for_the_datasets(checkout, cpu_env):
    """A saved tokenised dataset is what LLaMA-Factory loads then (dataset keys ignored): the
    other nodes of a run need no dataset_info.json; a folder that is not a saved dataset fails."""
    tokenized = checkout / "saves" / "tokenized"
    tokenized.mkdir(parents=True)
    (tokenized / "dataset_dict.json").write_text('{"splits": ["train", "validation"]}')
    proc = run_check(
        checkout, TRAIN_2B, *CPU, "dataset_dir=data/none", "tokenized_path=saves/tokenized", env=cpu_env
    )
    assert proc.returncode == 0, proc.stderr
    (tokenized / "dataset_dict.json").unlink()
    (tokenized / "notes.txt").write_text("not a dataset")
    one_error(
        run_check(checkout, TRAIN_2B, *CPU, "tokenized_path=saves/tokenized", env=cpu_env),
        "tokenized_path: saves/tokenized is not empty but holds no saved dataset",
    )


def test_bad_image_path(checkout, cpu_env):
    path = checkout / "data" / "openi_train.json"
    records = json.loads(path.read_text())
    records[-1]["images"][0] = "images/openi/moved-away.png"
    path.write_text(json.dumps(records))
    one_error(
        run_check(checkout, TRAIN_2B, *CPU, env=cpu_env),
        f"dataset: data/openi_train.json record {len(records) - 1} (id {records[-1]['id']}): "
        "image images/openi/moved-away.png not found under data",
        "prepare again with --out data",
    )


def test_deepspeed_json_that_does_not_parse(checkout, cpu_env):
    bad = checkout / "configs" / "deepspeed" / "ds_z2_config.json"
    bad.write_text(bad.read_text().replace('"stage": 2,', '"stage": 2'))
    one_error(
        run_check(checkout, TRAIN_7B, *CPU, env=cpu_env),
        "deepspeed: configs/deepspeed/ds_z2_config.json is not valid JSON (Expecting ',' delimiter",
    )


def test_output_dir_of_another_recipe(checkout, cpu_env):
    """The fast recipe used to write the original's adapter folder: refused before any run."""
    one_error(
        run_check(
            checkout,
            FAST_7B,
            *CPU,
            "enable_liger_kernel=false",
            "output_dir=saves/qwen2vl_7b/lora/sft",
            env=cpu_env,
        ),
        f"output_dir: saves/qwen2vl_7b/lora/sft is where {TRAIN_7B} writes its adapter: this run would replace it",
    )
    assert run_check(checkout, FAST_7B, *CPU, "enable_liger_kernel=false", env=cpu_env).returncode == 0


def test_output_folder_holding_another_recipes_adapter(checkout, cpu_env):
    """The wrappers mark the folder a run writes; another recipe pointed at it later is refused,
    the same recipe again is not."""
    out = "saves/mine/sft"
    first = run_check(checkout, TRAIN_2B, *CPU, f"output_dir={out}", "--shell", env=cpu_env)
    assert first.returncode == 0, first.stderr
    marker = json.loads((checkout / out / "xrayqwen2vl_run.json").read_text())
    assert marker == {"config": TRAIN_2B}
    again = run_check(checkout, TRAIN_2B, *CPU, f"output_dir={out}", env=cpu_env)
    assert again.returncode == 0, again.stderr
    one_error(
        run_check(checkout, TRAIN_7B, *CPU, f"output_dir={out}", env=cpu_env),
        f"output_dir: {out} holds the adapter of {TRAIN_2B} (xrayqwen2vl_run.json): this run would replace it",
    )


def test_merging_another_adapter_into_a_merged_folder(checkout, cpu_env, tiny_model_dir, tmp_path):
    adapter = checkout / "saves" / "qwen2vl_7b" / "lora" / "sft"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    other = checkout / "saves" / "qwen2vl_7b" / "lora" / "sft_fast"
    other.mkdir(parents=True)
    (other / "adapter_config.json").write_text("{}")
    assert run_check(checkout, MERGE_7B, "--shell", env=cpu_env).returncode == 0
    one_error(
        run_check(checkout, MERGE_7B, "adapter_name_or_path=saves/qwen2vl_7b/lora/sft_fast", env=cpu_env),
        "export_dir: saves/qwen2vl_7b/lora/merged holds the merged model of "
        f"{MERGE_7B} with adapter saves/qwen2vl_7b/lora/sft",
    )
    # The fast recipe's documented merge command (its header) writes a folder of its own.
    ok = run_check(
        checkout,
        MERGE_7B,
        "adapter_name_or_path=saves/qwen2vl_7b/lora/sft_fast",
        "export_dir=saves/qwen2vl_7b/lora/merged_fast",
        env=cpu_env,
    )
    assert ok.returncode == 0, ok.stderr


def test_adapter_not_trained_yet(checkout, cpu_env):
    one_error(
        run_check(checkout, MERGE_7B, env=cpu_env),
        f"adapter_name_or_path: saves/qwen2vl_7b/lora/sft not found: bash scripts/train.sh {TRAIN_7B} writes it",
    )


def test_resume_from_a_missing_checkpoint(checkout, cpu_env):
    one_error(
        run_check(
            checkout,
            TRAIN_2B,
            *CPU,
            "resume_from_checkpoint=saves/qwen2vl_2b/lora/sft/checkpoint-9",
            env=cpu_env,
        ),
        "resume_from_checkpoint: saves/qwen2vl_2b/lora/sft/checkpoint-9 not found",
    )


def test_a_config_for_another_wrapper(checkout, cpu_env):
    one_error(
        run_check(checkout, MERGE_7B, "--job", "train", env=cpu_env),
        f"{MERGE_7B} is a merge config, not a training config: run it with scripts/merge.sh {MERGE_7B}",
    )


def test_environment_variable_typed_as_an_override(checkout, cpu_env):
    one_error(
        run_check(checkout, TRAIN_2B, *CPU, "GPUS=2", env=cpu_env),
        "GPUS=2 is an environment variable, not a config key: put it before the command",
    )


def test_unreadable_config_or_override_exits_2(checkout, cpu_env):
    proc = run_check(checkout, "configs/train_lora/nope.yaml", env=cpu_env)
    assert proc.returncode == 2 and "configs/train_lora/nope.yaml: config file not found" in proc.stderr
    proc = run_check(checkout, TRAIN_2B, "bf16", env=cpu_env)
    assert proc.returncode == 2 and "override 'bf16' is not key=value" in proc.stderr


# --- GPUs, driver, bf16, packages (nvidia-smi faked) -------------------------------------------------


def test_fewer_gpus_than_the_recipe(checkout, tmp_path):
    env = clean_env(fake_nvidia_smi(tmp_path / "bin", [H100, H100]))
    one_error(
        run_check(checkout, TRAIN_7B, env=env),
        "GPUs: 4 wanted (the recipe's '# GPUs: 4' line), 2 visible (nvidia-smi): run with GPUS=2",
    )
    proc = run_check(checkout, TRAIN_7B, "--shell", env={**env, "GPUS": "2"})
    assert proc.returncode == 0, proc.stderr
    first, _ = plan(proc)
    assert first == (
        f"{TRAIN_7B}: 2 GPUs (CUDA_VISIBLE_DEVICES=0,1), torchrun, 2 processes: 2 × batch 8 × accumulation 8 = "
        "128 samples per optimizer step (the recipe: 4 GPUs × 8 × 8 = 256; gradient_accumulation_steps=16 keeps it)"
    )


def test_no_gpu_without_gpus_0(checkout, tmp_path):
    env = clean_env(fake_nvidia_smi(tmp_path / "bin", []))
    one_error(
        run_check(checkout, TRAIN_2B, env=env),
        "GPUs: 1 wanted (the recipe's '# GPUs: 1' line), none visible (nvidia-smi lists no GPU). "
        "On a machine without GPUs pass GPUS=0 (and bf16=false)",
    )


def test_bf16_on_a_gpu_without_it_and_on_the_cpu(checkout, tmp_path, cpu_env):
    env = clean_env(fake_nvidia_smi(tmp_path / "bin", [V100]))
    one_error(
        run_check(checkout, TRAIN_2B, env=env),
        "bf16: true, but GPU 0 (Tesla V100-SXM2-32GB) has compute capability 7.0, without bf16: pass bf16=false fp16=true",
    )
    one_error(run_check(checkout, TRAIN_2B, env=cpu_env), "bf16: true needs a CUDA GPU", "pass bf16=false")


def test_driver_too_old_for_torchs_cuda_build(checkout, tmp_path):
    version, cuda = torch_build()
    assert cuda, "these tests run with a CUDA build of torch (pyproject pins the PyPI wheel)"
    major = int(cuda.split(".")[0])
    old = f"{MIN_DRIVER[major] - 5}.10.01"
    env = clean_env(fake_nvidia_smi(tmp_path / "bin", [H100], driver=old))
    line = one_error(
        run_check(checkout, TRAIN_2B, env=env),
        f"driver: NVIDIA driver {old} is older than torch {version} (a CUDA {cuda} build) needs "
        f"({MIN_DRIVER[major]} or newer)",
    )
    if major >= 13:
        assert "make venv TORCH_INDEX=https://download.pytorch.org/whl/cu126" in line


def test_liger_kernel_and_bitsandbytes_needed_by_the_config(checkout, tmp_path, cpu_env):
    env = clean_env(fake_nvidia_smi(tmp_path / "bin", [H100] * 4))
    proc = run_check(checkout, FAST_7B, env=env)
    if installed("liger_kernel"):
        assert proc.returncode == 0, proc.stderr
    else:
        one_error(proc, "enable_liger_kernel: liger-kernel is not installed: pip install -e '.[liger]'")
    proc = run_check(checkout, QLORA, env=env)
    if installed("bitsandbytes"):
        assert proc.returncode == 0, proc.stderr
    else:
        one_error(proc, "quantization_bit: 4-bit loading needs bitsandbytes", "pip install -e '.[qlora]'")
    # Without a GPU both refuse whatever is installed.
    lines = errors(run_check(checkout, QLORA, *CPU, env=cpu_env))
    assert any(
        "bitsandbytes 4-bit loading needs a CUDA GPU; on the CPU pass quantization_bit=null" in x
        for x in lines
    )


def test_zero3_offload_needs_a_cuda_toolkit_matching_torch(checkout, tmp_path):
    """ZeRO-3 CPU offload compiles DeepSpeed's CPU Adam on first use against CUDA_HOME."""
    _, cuda = torch_build()
    fake = fake_nvidia_smi(tmp_path / "bin", [H100] * 4)
    ds = "deepspeed=configs/deepspeed/ds_z3_offload_config.json"
    base = clean_env(fake)
    base.pop("CUDA_HOME", None)
    base.pop("CUDA_PATH", None)
    no_toolkit = run_check(checkout, TRAIN_7B, ds, env=base)
    if not (subprocess.run(["sh", "-c", "command -v nvcc || test -d /usr/local/cuda"]).returncode == 0):
        one_error(
            no_toolkit,
            "offloads to the CPU, and DeepSpeed compiles its CPU Adam on first use",
            "set CUDA_HOME",
        )
    # A toolkit of another CUDA version: its nvcc answers like the real one.
    toolkit = tmp_path / "cuda-11.8"
    (toolkit / "bin").mkdir(parents=True)
    nvcc = toolkit / "bin" / "nvcc"
    nvcc.write_text("#!/bin/sh\necho 'Cuda compilation tools, release 11.8, V11.8.89'\n")
    nvcc.chmod(0o755)
    one_error(
        run_check(checkout, TRAIN_7B, ds, env={**base, "CUDA_HOME": str(toolkit)}),
        f"against CUDA_HOME={toolkit} (nvcc 11.8), which does not match torch's CUDA {cuda}",
    )
    # The ZeRO-2 config needs no toolkit.
    assert run_check(checkout, TRAIN_7B, env={**base, "CUDA_HOME": str(toolkit)}).returncode == 0


# --- the wrappers -------------------------------------------------------------------------------------


def test_train_sh_help(checkout):
    for script in ("train.sh", "merge.sh", "predict.sh"):
        proc = run_wrapper(checkout, script, "--help", env=clean_env())
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"usage: bash scripts/{script} ")
    text = run_wrapper(checkout, "train.sh", "--help", env=clean_env()).stdout
    for word in ("GPUS=N", "CUDA_VISIBLE_DEVICES", "NNODES", "global batch", "# GPUs: N"):
        assert word in text
    proc = run_wrapper(checkout, "train.sh", env=clean_env())
    assert proc.returncode == 2 and proc.stderr.startswith("usage: bash scripts/train.sh")


def test_7b_without_weights_stops_at_once_naming_weights_readme(tmp_path):
    """The done-when of issue 16, in a fresh copy of the repository (no weights, no data)."""
    import shutil

    repo = tmp_path / "fresh"
    for part in ("configs", "scripts"):
        shutil.copytree(REPO / part, repo / part)
    for part in ("weights/README.md", "data/dataset_info.json"):
        (repo / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / part, repo / part)
    proc = run_wrapper(
        repo, "train.sh", "configs/train_lora/qwen2vl_7b_lora_sft.yaml", env=clean_env(), timeout=60
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert all(line.startswith("xrayqwen2vl check: error: ") for line in proc.stderr.splitlines())
    weights = [line for line in proc.stderr.splitlines() if "weights/README.md" in line]
    assert len(weights) == 1 and "weights/Qwen2-VL-7B-Instruct not found" in weights[0]
