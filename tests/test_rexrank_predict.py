"""The ReXrank submission path: `rexrank-predict` on the tiny model through scripts/predict.sh
(chunks, resume), the organisers' inference.py, and `evaluate` reading the file back."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import OFFLINE_ENV, run_cli, tool

from xrayqwen2vl.cli import main as cli_main
from xrayqwen2vl.eval.inputs import read_predictions
from xrayqwen2vl.serve.leaderboard import for_track, sections_of
from xrayqwen2vl.synthetic.leaderboard import REXRANK_FILES

TINY_PREDICT = "configs/tiny/qwen2vl_tiny_predict.yaml"


def test_generated_report_cut_to_the_track():
    text = "Findings: Heart normal. Lungs clear. Impression: No acute process."
    assert sections_of(text) == ("Heart normal. Lungs clear.", "No acute process.")
    assert for_track(text, "findings") == "Heart normal. Lungs clear."
    assert for_track(text, "full") == text
    assert for_track("Impression: Normal.", "full") == "Findings: None. Impression: Normal."
    assert for_track("Impression: Normal.", "findings") == "Normal."
    assert for_track("no headers at all", "findings") == "no headers at all"
    assert for_track("no headers at all", "full") == "Findings: no headers at all Impression: None."


def test_evaluate_reads_a_submission_file(tmp_path):
    nan = float("nan")
    data = {
        "s1": {
            "section_findings": "Lungs clear.",
            "section_impression": "Normal.",
            "model_prediction": "Lungs clear.",
        },
        "s2": {"section_findings": nan, "section_impression": "Effusion.", "model_prediction": "Effusion."},
        "s3": {"report": "Findings: Heart big. Impression: None.", "model_prediction": "Heart big."},
    }
    path = tmp_path / "sub.json"
    path.write_text(json.dumps(data))
    preds = read_predictions(path)
    assert [(p.prompt, p.predict, p.label) for p in preds] == [
        ("s1", "Lungs clear.", "Lungs clear."),
        ("s2", "Effusion.", "Effusion."),
        ("s3", "Heart big.", "Heart big."),
    ]
    full = {"s1": {**data["s1"], "model_prediction": "Findings: Lungs clear. Impression: Normal."}}
    path.write_text(json.dumps(full))
    assert read_predictions(path)[0].label == "Findings: Lungs clear. Impression: Normal."
    del full["s1"]["model_prediction"]
    path.write_text(json.dumps(full))
    with pytest.raises(ValueError, match="study 's1': no \"model_prediction\""):
        read_predictions(path)


def test_inference_script_has_exactly_the_organisers_arguments(tmp_path, capsys):
    script = tmp_path / "inference.py"
    args = ["rexrank-predict", "--model", str(tmp_path), "--config", TINY_PREDICT, "--track", "findings"]
    assert cli_main([*args, "--write-script", str(script)]) == 0
    proc = run_cli([sys.executable, str(script), "--help"])
    flags = {w for w in proc.stdout.split() if w.startswith("--")}
    assert flags == {"--help", "--input_json_file", "--save_json_file", "--img_root_dir"}
    text = script.read_text()
    assert f"'--config', '{TINY_PREDICT}'" in text and "'--track', 'findings'" in text


def test_rexrank_predict_refuses_missing_model(tmp_path, capsys):
    assert cli_main(["rexrank-predict", "--input-json", "x", "--output-json", "y", "--images-dir", "z"]) == 2
    assert "give --model" in capsys.readouterr().err


@pytest.mark.slow
def test_rexrank_predict_tiny_model_resumes_and_evaluates(sample_dir, tiny_model_dir, tmp_path):
    raw = tmp_path / "raw"
    assert cli_main(["sample", "--out", str(raw), "--reports", "24", "--format", "rexrank", "--quiet"]) == 0
    full = json.loads((raw / "rexrank" / REXRANK_FILES["mimic"]).read_text())
    nan = [k for k, v in full.items() if any(x != x for x in v.values() if isinstance(x, float))]
    keys = [*nan[:1], *[k for k in full if k not in nan[:1]][:4]]
    subset = tmp_path / "in.json"
    subset.write_text(json.dumps({k: full[k] for k in keys}, indent=1))  # NaN literals kept
    assert "NaN" in subset.read_text()
    out = tmp_path / "out.json"
    env = {**os.environ, **OFFLINE_ENV, "GPUS": "0"}
    cmd = [
        tool("xrayqwen2vl"),
        "rexrank-predict",
        "--input-json", str(subset),
        "--output-json", str(out),
        "--images-dir", str(raw / "rexrank" / "images"),
        "--model", str(tiny_model_dir),
        "--config", TINY_PREDICT,
        "--set", "max_new_tokens=12",
        "--set", "per_device_eval_batch_size=2",
        "--chunk-size", "3",
        "--track", "full",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "chunk 2/2" in proc.stderr
    result = json.loads(out.read_text())
    assert list(result) == keys
    for k in keys:
        assert result[k]["model_prediction"].startswith("Findings: ")
        assert {x: v for x, v in result[k].items() if x != "model_prediction"}.keys() == full[k].keys()

    # the organisers' entry point, on the same work folder: both chunks kept, the file rewritten
    script = tmp_path / "inference.py"
    write = [*cmd[:2], *cmd[8:], "--write-script", str(script)]
    assert subprocess.run(write, cwd=tmp_path, env=env, capture_output=True, timeout=120).returncode == 0
    out.unlink()
    proc = subprocess.run(
        [sys.executable, str(script), "--input_json_file", str(subset), "--save_json_file", str(out),
         "--img_root_dir", str(raw / "rexrank" / "images")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("done in an earlier run, kept") == 2
    assert json.loads(out.read_text()) == result

    run_cli(
        [
            tool("xrayqwen2vl"),
            "evaluate",
            "--predictions",
            str(out),
            "--out",
            str(tmp_path / "ev"),
            "--bootstrap",
            "0",
        ]
    )
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["n"] == 5
