"""benchmarks/train_throughput.py and benchmarks/predict_throughput.py (issue 7) run end to end on
a CPU with the tiny dimensions and the real llamafactory-cli; and batched greedy prediction (left
padding, views of different sizes so the batch is really padded) writes exactly the reports that
one-at-a-time prediction writes. Figures are not checked here: they are measured by the scripts
and recorded in doc/benchmarks.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import OFFLINE_ENV, REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import train_throughput  # noqa: E402


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H200", 989.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA A800-SXM4-80GB", 312.0),
        ("NVIDIA A10", 125.0),
        ("NVIDIA GeForce RTX 4090", 165.0),
        ("Tesla V100-SXM2-32GB", None),
    ],
)
def test_mfu_uses_the_cards_own_peak(name, peak):
    """MFU is against the card the run is on, never an H100 figure for every card (fast)."""
    assert train_throughput.card_peak(name)[0] == peak


def _env():
    env = {**os.environ, **OFFLINE_ENV, "CUDA_VISIBLE_DEVICES": ""}
    env["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(script: str, *args: str):
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return proc


@pytest.mark.slow
def test_batched_prediction_writes_the_same_reports_as_one_at_a_time(tmp_path):
    out = tmp_path / "out"
    _run(
        "predict_throughput.py",
        *("--dims", "tiny", "--out", str(out), "--work", str(tmp_path / "work")),
        *("--reports", "40", "--samples", "6", "--batch", "3", "--max-new-tokens", "12"),
    )
    result = json.loads((out / "predict_throughput.json").read_text())
    single, batched = result["runs"]["single"], result["runs"]["batched"]
    assert (single["batch"], batched["batch"]) == (1, 3)
    assert single["predictions"] == batched["predictions"] == 6
    # The batches are padded: the samples have different numbers of visual tokens.
    assert len(set(single["visual_tokens_per_sample"])) > 1
    assert single["visual_tokens_per_sample"] == batched["visual_tokens_per_sample"]
    assert result["identity"] == {"samples": 6, "identical": 6, "differing_indices": []}
    first = [json.loads(x)["predict"] for x in (out / "generated_predictions_single.jsonl").open()]
    assert all(first) and len(set(first)) > 1, "empty or constant generations prove nothing"
    assert single["samples_per_second"] > 0 and batched["samples_per_second"] > 0
    assert result["ratio"] > 0
    assert "| batched | 3 |" in (out / "predict_throughput.md").read_text()


@pytest.mark.slow
def test_train_throughput_runs_both_recipes_on_cpu(tmp_path):
    out = tmp_path / "out"
    _run(
        "train_throughput.py",
        *("--dims", "tiny", "--out", str(out), "--work", str(tmp_path / "work")),
        *("--reports", "30", "--steps", "3", "--warmup", "1", "--set", "gradient_accumulation_steps=1"),
    )
    result = json.loads((out / "train_throughput.json").read_text())
    original, fast = result["runs"]["original"], result["runs"]["fast"]
    assert original["config"].endswith("qwen2vl_7b_lora_sft.yaml")
    assert fast["config"].endswith("qwen2vl_7b_lora_sft_fast.yaml")
    assert (original["samples_per_step"], fast["samples_per_step"]) == (8, 16)
    assert fast["settings"]["disable_gradient_checkpointing"] is True
    assert fast["settings"]["enable_liger_kernel"] is False  # the CPU override
    for r in (original, fast):
        assert r["steps_logged"] == 3 and r["timed_steps"] == 2  # steps 2 and 3
        assert r["samples_per_second"] > 0 and r["tokens_per_sample"] > 0
        assert r["flop_per_sample"] > 4 * result["flop_count"]["n_lm"] * r["tokens_per_sample"]
        assert r["mfu"] is None  # no peak figure for a CPU
    assert result["ratio"] > 0
    assert result["train_samples"]["used"] >= 16 * 3
    table = (out / "train_throughput.md").read_text()
    assert "| original | 8 x 1 |" in table and "| fast | 16 x 1 |" in table


@pytest.mark.slow
def test_patch_count_matches_the_issue_example(tmp_path):
    """Issue 7's shape: one 512x512 view under the recipe's pixel bounds is 1,296 vision patches
    (324 visual tokens after the 2x2 merge), and 4 x 7.6e9 x 418 + 2 x 0.675e9 x 1,296 = 1.45e13."""
    from PIL import Image

    Image.new("L", (512, 512)).save(tmp_path / "a.png")
    (tmp_path / "openi_train.json").write_text(
        json.dumps([{"images": ["a.png"]}, {"images": ["a.png", "a.png"]}])
    )
    cfg = {"image_min_pixels": 3136, "image_max_pixels": 262144}
    assert train_throughput.patches_per_sample(tmp_path, cfg) == 1296 * 1.5
    assert 4 * 7.6e9 * 418 + 2 * 0.675e9 * 1296 == pytest.approx(1.45e13, rel=0.01)


def test_copy_bench_runs_and_the_copies_match(tmp_path):
    """benchmarks/copy_bench.py at its smallest (one film): both rows, and the pixels it reports
    against the old way of copying within the bounds doc/benchmarks.md quotes."""
    proc = _run("copy_bench.py", "--films", "1", "--runs", "1")
    rows = {line[:14].strip(): line for line in proc.stdout.splitlines()[1:]}
    assert set(rows) == {"JPEG film", "grey PNG film"}, proc.stdout
    assert rows["grey PNG film"].endswith("mean diff 0.00, largest 0")
    mean = float(rows["JPEG film"].split("mean diff ")[1].split(",")[0])
    assert 0 < mean < 0.5, rows["JPEG film"]
