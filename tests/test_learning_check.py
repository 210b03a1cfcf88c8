"""The synthetic-data learning check: do the images reach the model?

On the synthetic sample, a tiny random Qwen2-VL fine-tuned on CPU for about two minutes
(configs/tiny/qwen2vl_tiny_learn_sft.yaml: full fine-tuning with the vision tower trainable) must
beat the most-common-report baseline on clinical F1. The baseline writes one report for every
study, so a model that ignores its images can at best match it on the findings it never names.

Target: the impression section (``prepare --target impression``), the part of the report that
names the findings. The findings section adds shuffled normal sentences that a two-minute
model spends its capacity on; see doc/evaluation.md for the figures with both targets.

Every llamafactory-cli run gets OMP_NUM_THREADS=1: on a shared two-core machine torch's default
two threads contend with other processes and made each step about six times slower.
"""

from __future__ import annotations

import json

import pytest
from conftest import REPO, llamafactory

from xrayqwen2vl.cli import main

LEARN_CONFIG = REPO / "configs" / "tiny" / "qwen2vl_tiny_learn_sft.yaml"
PREDICT_CONFIG = REPO / "configs" / "tiny" / "qwen2vl_tiny_predict.yaml"


@pytest.mark.slow
def test_tiny_model_beats_most_common_report_on_clinical_f1(tmp_path, tiny_model_dir, monkeypatch, capsys):
    from xrayqwen2vl.data.formats.openi import read_openi
    from xrayqwen2vl.data.prepare import PrepareOptions, prepare_dataset
    from xrayqwen2vl.synthetic.sample import generate_sample

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    raw, data = tmp_path / "raw", tmp_path / "data"
    generate_sample(raw, reports=400, seed=2, progress=False)
    prepare_dataset(
        read_openi(raw / "ecgen-radiology"),
        raw / "NLMCXR_png",
        data,
        PrepareOptions(name="demo", target="impression"),
        inputs={},
        progress=False,
    )
    model, predict = tmp_path / "model", tmp_path / "predict"
    llamafactory(
        "train",
        LEARN_CONFIG,
        f"model_name_or_path={tiny_model_dir}",
        f"dataset_dir={data}",
        f"output_dir={model}",
        log=tmp_path / "train.log",
    )
    llamafactory(
        "train",
        PREDICT_CONFIG,
        f"model_name_or_path={model}",
        f"dataset_dir={data}",
        f"output_dir={predict}",
        "image_max_pixels=12544",
        "max_new_tokens=32",
        log=tmp_path / "predict.log",
    )
    preds = predict / "generated_predictions.jsonl"
    assert (
        main(
            [
                "evaluate",
                "--predictions",
                str(preds),
                "--out",
                str(tmp_path / "eval"),
                "--images-from",
                str(data / "demo_test.json"),
                "--bootstrap",
                "200",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "baselines",
                "--train",
                str(data / "demo_train.json"),
                "--test",
                str(data / "demo_test.json"),
                "--out",
                str(tmp_path / "baselines"),
                "--bootstrap",
                "200",
            ]
        )
        == 0
    )
    model_m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    base_m = json.loads((tmp_path / "baselines" / "most_common" / "metrics.json").read_text())
    figures = {
        name: {g: round(m["clinical"][g]["F1"], 3) for g in ("micro-14", "macro-14", "micro-5")}
        for name, m in (("model", model_m), ("most_common", base_m))
    }
    train_loss = json.loads((model / "all_results.json").read_text())["train_loss"]
    with capsys.disabled():
        print(
            f"\nlearning check (train_loss {train_loss:.3f}): clinical F1 {json.dumps(figures)}; "
            f"distinct predictions {model_m['diversity']['predictions']['distinct']}/{model_m['n']}"
        )
    assert figures["model"]["micro-14"] > figures["most_common"]["micro-14"], figures
    assert figures["model"]["macro-14"] > figures["most_common"]["macro-14"], figures
    # more than one report: the model writes what it sees, not one report for every study
    assert model_m["diversity"]["predictions"]["distinct"] > 1
