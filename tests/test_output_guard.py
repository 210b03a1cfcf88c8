"""No output replaces an input (issue 20, cause 4): every command that reads a file refuses, in
one line and before it writes anything, an output path that resolves to one of its inputs, for
every file it writes (``fileio.refuse_output_over_inputs``). Each case points one input at one
output of the command (directly, or through a symlink, or by a ``..`` detour) and checks the
error line and that nothing in the folder tree changed. ``download`` and ``sample`` read no
input file, so only their own outputs are at stake; they are not listed."""

from __future__ import annotations

import json
import os

import pytest
from security_support import tree_digest

from xrayqwen2vl.cli import main as cli_main

SAMPLE = {"messages": [{"role": "user", "content": "<image>Write."}, {"role": "assistant", "content": "ok"}]}
PREDICTION = {"prompt": "p", "predict": "No effusion.", "label": "No effusion."}


def _json(path, obj) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj) + "\n")
    return str(path)


def _jsonl(path, obj) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def r2gen(tmp_path_factory, sample_dir):
    """A synthetic R2Gen copy of the sample: annotation.json and images/."""
    from xrayqwen2vl.synthetic.formats import write_format

    out = tmp_path_factory.mktemp("r2gen")
    write_format("r2gen", sample_dir, out)
    (ann,) = out.rglob("annotation.json")
    return ann


# Each case: (name, function(tmp_path, r2gen annotation) -> argv, the input-output pair named).
def _prepare_annotation(output):
    def argv(tmp, ann):
        out = tmp / "X"
        out.mkdir()
        target = out / output
        target.write_bytes(ann.read_bytes())
        images = next(p for p in ann.parent.iterdir() if p.is_dir())
        return ["prepare", "--format", "r2gen", "--annotation", str(target), "--images-dir", str(images)] + [
            "--out",
            str(out),
            "--name",
            "ann",
            "--quiet",
        ]

    return argv


def _prepare_prompts(output):
    def argv(tmp, ann):
        out = tmp / "X"
        prompts = out / output
        prompts.parent.mkdir(parents=True)
        prompts.write_text("Describe the film.\n")
        images = next(p for p in ann.parent.iterdir() if p.is_dir())
        return ["prepare", "--format", "r2gen", "--annotation", str(ann), "--images-dir", str(images)] + [
            "--out",
            str(out),
            "--name",
            "ann",
            "--prompts",
            str(prompts),
            "--quiet",
        ]

    return argv


def _label(tmp, ann):
    reports = _jsonl(tmp / "in.jsonl", {"id": "1", "text": "No effusion."})
    return ["label", reports, "--out", reports]


def _label_via_link(tmp, ann):
    reports = _jsonl(tmp / "in.jsonl", {"id": "1", "text": "No effusion."})
    os.symlink(tmp / "in.jsonl", tmp / "out.csv")
    return ["label", reports, "--out", str(tmp / "sub" / ".." / "out.csv")]


def _translate(input_at, cache=None):
    def argv(tmp, ann):
        out = tmp / "zh"
        inp = _json(tmp / input_at, [SAMPLE])
        extra = ["--cache", str(tmp / cache) if cache != "=input" else inp] if cache else []
        return ["translate", "--input", inp, "--out", str(out), "--base-url", "http://127.0.0.1:9/v1"] + [
            "--model",
            "m",
            "--quiet",
            *extra,
        ]

    return argv


def _evaluate(output, flag="--predictions"):
    def argv(tmp, ann):
        out = tmp / "ev"
        preds = _jsonl(out / output if flag == "--predictions" else tmp / "p.jsonl", PREDICTION)
        extra = ["--images-from", _json(out / output, [SAMPLE])] if flag == "--images-from" else []
        return ["evaluate", "--predictions", preds, "--out", str(out), "--bootstrap", "0", *extra]

    return argv


def _baselines(output, flag):
    def argv(tmp, ann):
        out = tmp / "bl"
        other = _json(tmp / "other.json", [SAMPLE])
        target = _json(out / output, [SAMPLE])
        train, test = (target, other) if flag == "--train" else (other, target)
        return ["baselines", "--train", train, "--test", test, "--out", str(out), "--bootstrap", "0"]

    return argv


def _compare(tmp, ann):
    for run in ("a", "b"):
        _jsonl(tmp / run / "per_sample.jsonl", {"index": 0})
    return ["compare", str(tmp / "a"), str(tmp / "b"), "--out", str(tmp / "b" / "per_sample.jsonl")]


def _reliance(flag, output):
    def argv(tmp, ann):
        out = tmp / "rel"
        given = {"--true": tmp / "t.jsonl", "--swapped": tmp / "s.jsonl", "--blank": tmp / "b.jsonl"}
        given[flag] = out / output
        for p in given.values():
            _jsonl(p, PREDICTION)
        return ["reliance", *[x for k, p in given.items() for x in (k, str(p))], "--out", str(out)] + [
            "--bootstrap",
            "0",
        ]

    return argv


def _counterfactual(file_name, predict_config=None):
    def argv(tmp, ann):
        data = tmp / "data"
        _json(data / file_name, [SAMPLE | {"images": ["a.png"]}, SAMPLE | {"images": ["b.png"]}])
        _json(data / "dataset_info.json", {"x": {"file_name": file_name, "formatting": "sharegpt"}})
        extra = ["--predict-config", str(data / predict_config)] if predict_config else []
        if predict_config:
            (data / predict_config).write_text("output_dir: saves/x\n")
        return ["counterfactual", "--dataset-dir", str(data), "--split", "x", *extra]

    return argv


CASES = {
    "prepare: --annotation is OUT/ann_train.json": _prepare_annotation("ann_train.json"),
    "prepare: --annotation is OUT/ann_val.json": _prepare_annotation("ann_val.json"),
    "prepare: --annotation is OUT/ann_test.json": _prepare_annotation("ann_test.json"),
    "prepare: --annotation is OUT/manifest.json": _prepare_annotation("manifest.json"),
    "prepare: --annotation is OUT/dataset_info.json": _prepare_annotation("dataset_info.json"),
    "prepare: --prompts is OUT/ann_test.json": _prepare_prompts("ann_test.json"),
    "prepare: --prompts inside OUT/images/ann": _prepare_prompts("images/ann/prompts.txt"),
    "label: --out is REPORTS": _label,
    "label: --out links to REPORTS": _label_via_link,
    "translate: --input is OUT/dataset_info.json": _translate("zh/dataset_info.json"),
    "translate: --cache is the --input": _translate("en_train.json", cache="=input"),
    "translate: --cache is OUT/en_zh_train.json": _translate("en_train.json", cache="zh/en_zh_train.json"),
    "evaluate: --predictions is OUT/per_sample.jsonl": _evaluate("per_sample.jsonl"),
    "evaluate: --predictions is OUT/metrics.json": _evaluate("metrics.json"),
    "evaluate: --predictions is OUT/report.html": _evaluate("report.html"),
    "evaluate: --images-from is OUT/metrics.json": _evaluate("metrics.json", "--images-from"),
    "baselines: --test is OUT/most_common/generated_predictions.jsonl": _baselines(
        "most_common/generated_predictions.jsonl", "--test"
    ),
    "baselines: --train is OUT/nearest_neighbour/metrics.json": _baselines(
        "nearest_neighbour/metrics.json", "--train"
    ),
    "baselines: --test is OUT/most_common/per_sample.jsonl": _baselines(
        "most_common/per_sample.jsonl", "--test"
    ),
    "baselines: --train is OUT/nearest_neighbour/report.html": _baselines(
        "nearest_neighbour/report.html", "--train"
    ),
    "compare: --out is RUN_B/per_sample.jsonl": _compare,
    "reliance: --true is OUT/reliance.json": _reliance("--true", "reliance.json"),
    "reliance: --blank is OUT/swapped/per_sample.jsonl": _reliance("--blank", "swapped/per_sample.jsonl"),
    "reliance: --swapped is OUT/true/metrics.json": _reliance("--swapped", "true/metrics.json"),
    "reliance: --true is OUT/blank/report.html": _reliance("--true", "blank/report.html"),
    "counterfactual: the split file is SPLIT_swapped.json": _counterfactual("x_swapped.json"),
    "counterfactual: the split file is SPLIT_blank.json": _counterfactual("x_blank.json"),
    "counterfactual: the split file is SPLIT_counterfactual.json": _counterfactual("x_counterfactual.json"),
    "counterfactual: the split file is inside SPLIT_blank/": _counterfactual("x_blank/x.json"),
    "counterfactual: --predict-config is SPLIT_counterfactual.json": _counterfactual(
        "x.json", "x_counterfactual.json"
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_output_never_replaces_an_input(case, tmp_path, r2gen, capsys):
    argv = CASES[case](tmp_path, r2gen)
    before = tree_digest(tmp_path)
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "choose another output" in err and ("is the input" in err or "which this command writes" in err), (
        err
    )
    assert tree_digest(tmp_path) == before
