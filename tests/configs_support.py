"""Helpers for the tests of configs/ (test_configs*.py, test_report*.py, test_resume.py).

The real configs name the base model under weights/, the data as ``openi_*`` in ``data/`` and
outputs under ``saves/``. On CPU the tests swap in the tiny random Qwen2-VL and the synthetic
sample prepared under the same dataset names, and change only what a CPU needs:

- ``bf16=false``: transformers refuses bf16 mixed precision without a GPU
  ("Your setup doesn't support bf16/gpu");
- ``quantization_bit=null`` (QLoRA only): bitsandbytes 4-bit loading needs CUDA;
- ``enable_liger_kernel=false`` (the fast recipe): LLaMA-Factory refuses the key unless
  liger-kernel is installed, and liger-kernel's Triton kernels need a CUDA GPU;
- ``GPUS=0`` in the wrappers' environment: run on the CPU, one process (the preflight would
  otherwise want the recipe's GPUs);
- DeepSpeed stays on: ZeRO-2 and ZeRO-3 offload run on CPU through torchrun with the gloo backend
  (``scripts/train.sh`` launches a DeepSpeed config through torchrun even for one process, as on a
  GPU node).

Everything else that differs only keeps the runs short: ``max_steps=2``, batch 2, no gradient
accumulation, ``max_samples=8``, one preprocessing worker (``SHORT_RUN``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml
from conftest import OFFLINE_ENV, REPO, prepare_sample, run_cli, tiny_model_of, tool

CONFIGS = REPO / "configs"
TRAIN_DIRS = ("train_lora", "train_qlora")

# What a CPU needs, by config key present (see the module docstring).
CPU_OVERRIDES = {"bf16": "false"}
CPU_OVERRIDES_QUANTIZED = {"quantization_bit": "null"}
CPU_OVERRIDES_LIGER = {"enable_liger_kernel": "false"}
# Training configs that are a faster way to train another run: only SPEED_KEYS and output_dir may
# differ. Each writes a folder of its own (here: its adapter folder), so it never replaces the
# run's adapter; the run's merge/inference/predict configs apply to it with the overrides its
# header gives (adapter_name_or_path=its folder, and an export_dir/output_dir of its own).
VARIANTS = {"qwen2vl_7b_lora_sft_fast": ("qwen2vl_7b_lora_sft", "saves/qwen2vl_7b/lora/sft_fast")}
SPEED_KEYS = {
    "enable_liger_kernel",
    "disable_gradient_checkpointing",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "per_device_eval_batch_size",
}
# Only for speed; not needed for correctness.
SHORT_RUN = {
    "max_steps": "2",
    "per_device_train_batch_size": "2",
    "gradient_accumulation_steps": "1",
    "per_device_eval_batch_size": "2",
    "max_samples": "8",
    "preprocessing_num_workers": "1",
    "dataloader_num_workers": "0",
}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def training_configs() -> list[Path]:
    return sorted(p for d in TRAIN_DIRS for p in (CONFIGS / d).glob("*.yaml"))


def real_configs() -> list[Path]:
    return sorted(p for p in CONFIGS.rglob("*.yaml") if p.parent.name != "tiny")


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def cpu_overrides(config: dict) -> dict[str, str]:
    out = dict(CPU_OVERRIDES) if config.get("bf16") else {}
    if config.get("quantization_bit") is not None:
        out.update(CPU_OVERRIDES_QUANTIZED)
    if config.get("enable_liger_kernel"):
        out.update(CPU_OVERRIDES_LIGER)
    return out


def kv(d: dict[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in d.items()]


def prepare_openi(sample_dir: Path, out: Path) -> Path:
    """The synthetic sample prepared like the real data: dataset names openi_train/val/test."""
    prepare_sample(sample_dir, out, "openi")
    return out


def prepare_mimic(sample_dir: Path, out: Path) -> Path:
    """The sample's synthetic MIMIC-CXR copy (under OUT/raw/mimic) prepared like the real data:
    dataset names mimic_train/val/test, the official split (the form's default)."""
    from xrayqwen2vl.data.formats.registry import get_form
    from xrayqwen2vl.data.prepare import PrepareOptions, prepare_dataset
    from xrayqwen2vl.synthetic.mimic import JPG_DIR, REPORTS_DIR, write_mimic

    raw = out / "raw" / "mimic"
    write_mimic(sample_dir, raw)
    form = get_form("mimic")
    given = {"images_dir": str(raw / JPG_DIR), "reports_dir": str(raw / REPORTS_DIR)}
    options = PrepareOptions(format="mimic", name="mimic", split=form.default_split)
    prepare_dataset(form.read(given), raw / JPG_DIR, out, options, inputs=given, progress=False)
    return out


def prepare_collections(sample_dir: Path, out: Path) -> Path:
    """The sample's synthetic CheXpert Plus and ReXGradient copies (under OUT/raw/) prepared like
    the real data: chexpert-plus_* and rexgradient_*, their official splits."""
    from xrayqwen2vl.data.formats.registry import get_form
    from xrayqwen2vl.data.prepare import PrepareOptions, prepare_dataset
    from xrayqwen2vl.synthetic.leaderboard import CHEXPERT_CSV, write_chexpert_plus, write_rexgradient

    raw = out / "raw"
    write_chexpert_plus(sample_dir, raw / "chexpert-plus")
    write_rexgradient(sample_dir, raw / "rexgradient")
    runs = {
        "chexpert-plus": {
            "reports": str(raw / "chexpert-plus" / CHEXPERT_CSV),
            "images_dir": str(raw / "chexpert-plus" / "PNG"),
        },
        "rexgradient": {
            "metadata_dir": str(raw / "rexgradient" / "metadata"),
            "images_dir": str(raw / "rexgradient"),
        },
    }
    for name, given in runs.items():
        form = get_form(name)
        options = PrepareOptions(format=name, name=name, split=form.default_split)
        prepare_dataset(form.read(given), given["images_dir"], out, options, inputs=given, progress=False)
    return out


def prepare_config_data(sample_dir: Path, out: Path) -> Path:
    """Every dataset the real configs name (openi_*, mimic_*, chexpert-plus_*, rexgradient_*), in
    one dataset_dir."""
    prepare_openi(sample_dir, out)
    prepare_collections(sample_dir, out)
    return prepare_mimic(sample_dir, out)


def run_script(script: str, config: Path, *overrides: str, env: dict | None = None, log: Path | None = None):
    """``bash scripts/SCRIPT CONFIG key=value …`` (the wrappers users run), offline."""
    import subprocess

    full_env = {**os.environ, **OFFLINE_ENV, "GPUS": "0", **(env or {})}
    full_env["PATH"] = f"{Path(tool('llamafactory-cli')).parent}{os.pathsep}{full_env.get('PATH', '')}"
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / script), str(config), *overrides],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if log is not None:
        log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-6000:]
        raise AssertionError(f"scripts/{script} {config} exited {proc.returncode}:\n{tail}")
    return proc


def train_script(config: Path, *overrides: str, env: dict | None = None, log: Path | None = None):
    return run_script("train.sh", config, *overrides, env=env, log=log)


_DATA: dict[str, Path] = {}


def openi_data(sample_dir: Path, tmp_path_factory) -> Path:
    """The sample prepared as openi_* and its MIMIC-CXR copy as mimic_* (once per test session)."""
    if "openi" not in _DATA:
        _DATA["openi"] = prepare_config_data(sample_dir, tmp_path_factory.mktemp("openi_data"))
    return _DATA["openi"]


_TRAINED: dict[str, Path] = {}
# The model folder a config names (base weights, or a run's saves/ folder, tiny ones included)
# -> the tiny family standing in for it on CPU.
TINY_FAMILY_OF = {
    "Qwen2.5-VL": "qwen2_5_vl",
    "qwen2_5vl": "qwen2_5_vl",
    "Qwen3-VL": "qwen3_vl",
    "qwen3vl": "qwen3_vl",
}


def family_of_config(config: dict) -> str:
    """qwen2_vl, qwen2_5_vl or qwen3_vl: the family of the model the config names."""
    model = str(config.get("model_name_or_path", ""))
    return next((f for name, f in TINY_FAMILY_OF.items() if name in model), "qwen2_vl")


def tiny_model_for(config: dict, tiny_model_dir: Path, tmp_path_factory) -> Path:
    """The tiny model of the config's family: Qwen2.5-VL or Qwen3-VL for their configs, else Qwen2-VL."""
    family = family_of_config(config)
    return tiny_model_dir if family == "qwen2_vl" else tiny_model_of(family, tmp_path_factory)


def trained_adapter(config: Path, tiny_model_dir: Path, data_dir: Path, tmp_path_factory) -> Path:
    """Run a real training config for 2 steps on CPU (once per test session); its output folder."""
    key = rel(config)
    if key in _TRAINED:
        return _TRAINED[key]
    cfg = load(config)
    out_root = tmp_path_factory.mktemp(f"train_{config.stem}")
    out = out_root / "sft"
    # Every folder the config writes goes to the test's tmp dir.
    written = [f"tokenized_path={out_root / 'tokenized'}"] if "tokenized_path" in cfg else []
    train_script(
        config,
        f"model_name_or_path={tiny_model_for(cfg, tiny_model_dir, tmp_path_factory)}",
        f"dataset_dir={data_dir}",
        f"output_dir={out}",
        *written,
        *kv(cpu_overrides(cfg)),
        *kv(SHORT_RUN),
        log=out_root / "train.log",
    )
    _TRAINED[key] = out
    return out


def read_state(output_dir: Path) -> dict:
    return json.loads((output_dir / "trainer_state.json").read_text())


__all__ = [
    "CONFIGS",
    "CPU_OVERRIDES",
    "SHORT_RUN",
    "SPEED_KEYS",
    "VARIANTS",
    "cpu_overrides",
    "kv",
    "load",
    "prepare_config_data",
    "prepare_mimic",
    "prepare_openi",
    "real_configs",
    "rel",
    "openi_data",
    "family_of_config",
    "tiny_model_for",
    "run_cli",
    "run_script",
    "train_script",
    "trained_adapter",
    "training_configs",
]
