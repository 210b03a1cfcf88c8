"""benchmarks/gpu_check.py, the GPU check owed to the 7B configs: its 7B dimensions are Qwen2-VL-7B's
(counted on the meta device, nothing allocated), and the whole script runs end to end on a CPU
with the tiny dimensions (train with DeepSpeed ZeRO-2, merge, predict)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import OFFLINE_ENV, REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_check  # noqa: E402

SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def test_7b_dims_give_qwen2vl_7b_parameter_count():
    import torch

    from xrayqwen2vl.synthetic.tiny_model import SPECIAL_TOKENS

    ids = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    model = gpu_check.instantiate(
        gpu_check.make_config(gpu_check.DIMS_7B, ids, 152064), "meta", torch.bfloat16
    )
    total = sum(p.numel() for p in model.parameters())
    vision = sum(p.numel() for n, p in model.named_parameters() if "visual" in n)
    assert total == 8_291_375_616  # Qwen2-VL-7B-Instruct: 8.29e9
    assert vision == 675_759_104  # its 675M-parameter vision encoder
    assert model.config.text_config.rope_parameters["mrope_section"] == [16, 24, 24]


def _env():
    env = {**os.environ, **OFFLINE_ENV, "CUDA_VISIBLE_DEVICES": ""}
    env["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_work_folder_inside_out_is_refused(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--dims",
            "tiny",
            "--out",
            str(tmp_path),
            "--work",
            str(tmp_path / "w"),
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "must not be inside --out" in proc.stderr


def test_7b_dims_refused_without_a_gpu(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--dims", "7b", "--out", str(tmp_path)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "--dims 7b needs a CUDA GPU" in proc.stderr


@pytest.mark.slow
def test_gpu_check_runs_end_to_end_with_tiny_dims(tmp_path):
    out = tmp_path / "out"
    args = ["--dims", "tiny", "--out", str(out), "--work", str(tmp_path / "work")]
    args += ["--reports", "30", "--steps", "2", "--batch", "2"]
    args += ["--predict-samples", "2", "--max-new-tokens", "8"]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=_env(), capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    result = json.loads((out / "gpu_check.json").read_text())
    assert set(result["stages"]) == {"train", "merge", "predict"}
    assert all(s["rc"] == 0 for s in result["stages"].values())
    assert result["stages"]["train"]["train_samples_per_second"] > 0
    assert result["stages"]["predict"]["predictions"] == 2
    pos = result["stages"]["predict"]["positions"]  # condition (d) at these dims, base + adapter
    assert pos["rows"] == 2 and pos["same"] == 2, pos
    table = (out / "gpu_check.md").read_text()
    assert "| train |" in table and "configs/train_lora/qwen2vl_7b_lora_sft.yaml" in table
    assert "DeepSpeed info" in (out / "logs" / "train.log").read_text()
    assert (out / "generated_predictions.jsonl").is_file()
    assert list(out.rglob("*.safetensors")) == [], "model weights must stay out of OUT"
