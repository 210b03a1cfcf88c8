"""`evaluate`, `baselines` and `compare` end to end on the prepared synthetic sample, and their
errors on bad input."""

from __future__ import annotations

import json
import random

import pytest

from xrayqwen2vl.cli import main
from xrayqwen2vl.eval.chexpert_labeler import OBSERVATIONS, label_report
from xrayqwen2vl.eval.diversity import findings_of
from xrayqwen2vl.eval.inputs import read_dataset
from xrayqwen2vl.eval.nlg import NLG_KEYS


def _write_predictions(path, samples, predicted):
    path.write_text(
        "".join(
            json.dumps({"prompt": s.prompt, "predict": p, "label": s.report}, ensure_ascii=False) + "\n"
            for s, p in zip(samples, predicted, strict=True)
        )
    )


def _write_pairs(path, predicted, references):
    """A generated_predictions.jsonl of (predict, label) pairs."""
    path.write_text(
        "".join(
            json.dumps({"prompt": "", "predict": p, "label": r}) + "\n"
            for p, r in zip(predicted, references, strict=True)
        )
    )
    return path


def _evaluate(predictions, out, *extra) -> int:
    return main(["evaluate", "--predictions", str(predictions), "--out", str(out), *extra])


@pytest.fixture(scope="module")
def test_split(prepared_dir):
    return prepared_dir / "demo_test.json"


def test_evaluate_writes_metrics_per_sample_and_report(tmp_path, test_split, capsys):
    samples = read_dataset(test_split)
    rng = random.Random(0)
    predicted = [s.report for s in samples]
    rng.shuffle(predicted)  # plausible reports for the wrong studies
    predicted[0] = samples[0].report  # one exact hit
    preds = tmp_path / "generated_predictions.jsonl"
    _write_predictions(preds, samples, predicted)
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--predictions",
                str(preds),
                "--out",
                str(out),
                "--images-from",
                str(test_split),
                "--bootstrap",
                "200",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "BLEU-4" in printed and "CE micro-14 F1" in printed and "distinct predictions" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    intervals = metrics["bootstrap"]["intervals"]
    for key in NLG_KEYS:
        # the bootstrap's full-sample value is the toolkit's corpus figure, inside its interval
        assert intervals[key]["value"] == pytest.approx(metrics[key], rel=1e-9), key
        assert intervals[key]["low"] <= metrics[key] <= intervals[key]["high"], key
    assert intervals["CE-micro-14-F1"]["value"] == pytest.approx(metrics["clinical"]["micro-14"]["F1"])
    assert metrics["n"] == len(samples)
    assert "R2Gen" in metrics["normalisation"] and "uncertain" in metrics["clinical"]["convention"]
    assert set(metrics["clinical"]["per_observation"]) == set(OBSERVATIONS)
    assert metrics["diversity"]["predictions"]["distinct"] == len(set(predicted))
    assert metrics["diversity"]["collapse"]["collapsed"] is False
    assert not any(w.startswith("mode collapse") for w in metrics["warnings"])
    assert printed.index("HEADLINE CE micro-5 F1") < printed.index("BLEU-1")  # the headline comes first
    assert metrics["headline"]["value"] == metrics["clinical"]["micro-5"]["F1"]
    rows = [json.loads(line) for line in (out / "per_sample.jsonl").read_text().splitlines()]
    assert len(rows) == len(samples)
    assert rows[0]["images"] == samples[0].images and rows[0]["scores"]["BLEU-4"] == pytest.approx(1.0)
    assert rows[0]["disagreements"] == []
    assert any(r["disagreements"] for r in rows)
    html = (out / "report.html").read_text()
    assert html.count("data:image/jpeg;base64,") == sum(len(s.images) for s in samples)


def test_evaluate_perfect_predictions(tmp_path, test_split):
    samples = read_dataset(test_split)
    preds = tmp_path / "p.jsonl"
    _write_predictions(preds, samples, [s.report for s in samples])
    assert (
        main(
            [
                "evaluate",
                "--predictions",
                str(preds),
                "--out",
                str(tmp_path / "e"),
                "--no-html",
                "--bootstrap",
                "0",
            ]
        )
        == 0
    )
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert m["BLEU-4"] == pytest.approx(1.0) and m["ROUGE-L"] == pytest.approx(1.0)
    assert m["clinical"]["micro-14"]["F1"] == 1.0
    assert not (tmp_path / "e" / "report.html").exists()


def test_evaluate_zh_segments_and_labels(tmp_path):
    preds = tmp_path / "zh.jsonl"
    lines = [
        {"prompt": "", "predict": "心脏增大。未见胸腔积液。", "label": "心脏增大。左侧胸腔积液。"},
        {"prompt": "", "predict": "双肺清晰。未见气胸。", "label": "双肺清晰。未见气胸。"},
    ]
    preds.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
    assert (
        main(
            [
                "evaluate",
                "--predictions",
                str(preds),
                "--out",
                str(tmp_path / "e"),
                "--lang",
                "zh",
                "--bootstrap",
                "50",
            ]
        )
        == 0
    )
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert "jieba" in m["segmentation"] and "jieba" in m["normalisation"]
    per = m["clinical"]["per_observation"]
    assert per["Cardiomegaly"]["TP"] == 1 and per["Pleural Effusion"]["FN"] == 1


@pytest.mark.parametrize(
    "content,message",
    [
        (
            '{"prompt": "", "predict": "a", "label": "b"}\n{"prompt": "", "predict": "a", "label": \n',
            "{path}:2: not valid JSON (Expecting value at column 41)",  # the newline is not column 1 of line 3
        ),
        ('{"prompt": "", "predict": "a"}\n', '{path}:1: missing "label"'),
        ('{"prompt": "", "predict": 3, "label": "b"}\n', '{path}:1: "predict" must be a string'),
        ("[1]\n", "{path}:1: expected a JSON object"),
        ("\n", "{path}: no predictions"),
    ],
)
def test_evaluate_bad_predictions_name_file_and_line(tmp_path, capsys, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    assert main(["evaluate", "--predictions", str(path), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip()
    assert message.format(path=path) in err and len(err.splitlines()) == 1
    assert not (tmp_path / "e" / "metrics.json").exists()


def test_evaluate_bad_encoding_names_file_line_and_column(tmp_path, capsys, test_split):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(
        b'{"prompt": "", "predict": "a", "label": "b"}\n{"prompt": "", "predict": "caf\xe9", "label": "b"}\n'
    )
    assert main(["evaluate", "--predictions", str(path), "--out", str(tmp_path / "e")]) == 2
    assert f"{path}:2: not UTF-8 (byte 0xe9 at column 31)" in capsys.readouterr().err
    # the dataset of --images-from: one JSON document, the line counted from the start
    samples = read_dataset(test_split)
    preds = tmp_path / "p.jsonl"
    _write_predictions(preds, samples, [s.report for s in samples])
    data = test_split.read_bytes().split(b"\n")
    data[2] = data[2].replace(b'"', b'"\xff', 1)
    bad = tmp_path / "bad_test.json"
    bad.write_bytes(b"\n".join(data))
    assert (
        main(
            ["evaluate", "--predictions", str(preds), "--out", str(tmp_path / "e"), "--images-from", str(bad)]
        )
        == 2
    )
    assert f"{bad}:3: not UTF-8 (byte 0xff" in capsys.readouterr().err


def test_evaluate_empty_predictions(tmp_path, capsys):
    refs = ["The heart is normal.", "No effusion."]
    path = _write_pairs(tmp_path / "p.jsonl", ["", ""], refs)
    assert _evaluate(path, tmp_path / "e") == 2
    assert f'{path}: every "predict" is empty (2 lines)' in capsys.readouterr().err
    _write_pairs(path, ["The heart is normal.", ""], refs)
    assert _evaluate(path, tmp_path / "e", "--bootstrap", "0") == 0
    assert "WARNING: empty predictions: 1 of 2 predictions are empty (line 2)" in capsys.readouterr().out


def test_evaluate_unwritable_out_fails_before_the_work(tmp_path, capsys):
    path = _write_pairs(tmp_path / "p.jsonl", ["No effusion."], ["No effusion."])
    a_file = tmp_path / "taken"
    a_file.write_text("not a folder")
    for out, message in ((a_file, "exists and is not a folder"), (a_file / "eval", "cannot write there")):
        assert _evaluate(path, out) == 2
        captured = capsys.readouterr()
        assert f"{out}: {message}" in captured.err and len(captured.err.splitlines()) == 1
        assert captured.out == ""  # nothing was scored


def _synthetic_reports(n: int, seed: int) -> list[str]:
    from xrayqwen2vl.data.text import build_target
    from xrayqwen2vl.synthetic.text import choose_findings, write_report

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        r = write_report(choose_findings(rng), rng)["en"]
        out.append(build_target(r["findings"], r["impression"]))
    return out


NORMAL = (
    "Findings: The heart size is normal. The lungs are clear. No pleural effusion or pneumothorax. "
    "Impression: No acute cardiopulmonary abnormality."
)


def test_a_constant_report_is_flagged_and_cannot_win_the_headline(tmp_path, capsys):
    # 40 studies; as in IU X-ray, one normal report is the reference of many (10) of them
    refs = _synthetic_reports(30, seed=3) + [NORMAL] * 10
    random.Random(1).shuffle(refs)
    constant = _write_pairs(tmp_path / "constant.jsonl", [NORMAL] * len(refs), refs)
    out = tmp_path / "constant"
    assert _evaluate(constant, out, "--bootstrap", "100") == 0
    printed = capsys.readouterr().out
    # the references' 30 synthetic reports: those with findings are the studies the constant report hides
    with_findings = sum(1 for r in refs if findings_of(label_report(r)))
    assert (
        f"WARNING: mode collapse: the same report for 40 of 40 studies, {with_findings} of which have findings "
        "it does not state" in printed
    )
    assert "WARNING: no better than a constant report: CE micro-5 F1 0.000" in printed
    m = json.loads((out / "metrics.json").read_text())
    assert m["diversity"]["collapse"]["collapsed"] is True
    assert m["warnings"][0].startswith("mode collapse: ") and len(m["warnings"]) == 2
    base = m["constant_baseline"]
    assert base["report"] == NORMAL and base["count"] == 10
    for key in ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr"):  # the model *is* the constant report here
        assert m[key] == pytest.approx(base[key]), key
    assert m["clinical"]["micro-14"]["F1"] == pytest.approx(base["clinical"]["micro-14"]["F1"])
    # "No Finding" hands a constant normal report micro-14 F1; the headline gives it nothing
    assert m["clinical"]["micro-14"]["F1"] > 0.3 and m["headline"]["value"] == 0.0
    assert m["headline"]["metric"] == "CE micro-5 F1" and m["headline"]["constant_baseline"] == 0.0
    html = (out / "report.html").read_text()
    assert html.index("id='warnings'") < html.index("id='metrics'") and "mode collapse" in html

    # for CI: the same run fails with status 3, still writing everything
    again = tmp_path / "again"
    assert _evaluate(constant, again, "--bootstrap", "0", "--fail-on-collapse") == 3
    assert (again / "metrics.json").exists() and (again / "report.html").exists()

    # real reports for the wrong studies score on the headline, where the constant report cannot; the
    # 10 copies of the normal reference, shuffled in, are repeated as often as the references repeat
    # them: no collapse (their blindness to the images is the other verdicts' business)
    shuffled = refs[:]
    random.Random(2).shuffle(shuffled)
    assert (
        _evaluate(
            _write_pairs(tmp_path / "shuffled.jsonl", shuffled, refs), tmp_path / "v", "--bootstrap", "0"
        )
        == 0
    )
    v = json.loads((tmp_path / "v" / "metrics.json").read_text())
    top = v["diversity"]["repetition"]["repeated"][0]
    assert top["count"] == top["references_with_this_text"] == 10 and top["counted"] == 0
    assert v["diversity"]["collapse"]["collapsed"] is False
    assert v["headline"]["value"] > 0 and v["headline"]["constant_baseline"] == 0.0


def test_a_varied_run_has_no_collapse_warning(tmp_path, capsys):
    refs = _synthetic_reports(30, seed=4)
    preds = refs[1:] + refs[:1]  # every study gets the next study's report
    path = _write_pairs(tmp_path / "p.jsonl", preds, refs)
    assert _evaluate(path, tmp_path / "e", "--bootstrap", "0", "--fail-on-collapse") == 0
    assert "mode collapse" not in capsys.readouterr().out
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert m["diversity"]["collapse"] == {
        "collapsed": False,
        "thresholds": {"hidden_share": 0.2, "blindness": 0.5, "min_hidden": 2},
        "labeler": "xrayqwen2vl rule-based CheXpert labeler (en)",
        "reasons": [],
        "report": None,
    }


def test_section_headers_are_stripped_unless_kept(tmp_path):
    refs = _synthetic_reports(6, seed=5)
    bare = [r.replace("Findings: ", "").replace("Impression: ", "") for r in refs]
    path = _write_pairs(tmp_path / "p.jsonl", bare, refs)
    results = {}
    for name, extra in (("stripped", []), ("kept", ["--keep-headers"])):
        out = tmp_path / name
        assert _evaluate(path, out, "--bootstrap", "0", "--no-html", *extra) == 0
        results[name] = json.loads((out / "metrics.json").read_text())
    assert results["stripped"]["BLEU-4"] == pytest.approx(1.0)
    assert results["kept"]["BLEU-4"] < 0.99
    assert "removed before scoring" in results["stripped"]["section_headers"]
    assert "kept" in results["kept"]["section_headers"]


def test_evaluate_rejects_a_dataset_that_does_not_match(tmp_path, test_split, capsys):
    samples = read_dataset(test_split)
    preds = tmp_path / "p.jsonl"
    _write_predictions(preds, samples[1:], [s.report for s in samples[1:]])
    assert (
        main(
            [
                "evaluate",
                "--predictions",
                str(preds),
                "--out",
                str(tmp_path / "e"),
                "--images-from",
                str(test_split),
            ]
        )
        == 2
    )
    assert "predictions were made on" in capsys.readouterr().err


@pytest.mark.slow
def test_baselines_and_compare(tmp_path, prepared_dir, capsys):
    out = tmp_path / "baselines"
    assert (
        main(
            [
                "baselines",
                "--train",
                str(prepared_dir / "demo_train.json"),
                "--test",
                str(prepared_dir / "demo_test.json"),
                "--out",
                str(out),
                "--bootstrap",
                "200",
            ]
        )
        == 0
    )
    train = read_dataset(prepared_dir / "demo_train.json")
    test = read_dataset(prepared_dir / "demo_test.json")
    common = [json.loads(x)["predict"] for x in (out / "most_common" / "generated_predictions.jsonl").open()]
    assert len(common) == len(test) and len(set(common)) == 1 and common[0] in {s.report for s in train}
    nn = [
        json.loads(x)["predict"] for x in (out / "nearest_neighbour" / "generated_predictions.jsonl").open()
    ]
    assert len(nn) == len(test) and all(p in {s.report for s in train} for p in nn) and len(set(nn)) > 1
    for name in ("most_common", "nearest_neighbour"):
        m = json.loads((out / name / "metrics.json").read_text())
        assert m["n"] == len(test) and (out / name / "report.html").exists()
    m = json.loads((out / "most_common" / "metrics.json").read_text())
    assert (
        m["diversity"]["predictions"]["distinct"] == 1
        and m["diversity"]["predictions"]["most_frequent_share"] == 1
    )
    capsys.readouterr()
    cmp_json = tmp_path / "cmp.json"
    assert (
        main(
            [
                "compare",
                str(out / "nearest_neighbour"),
                str(out / "most_common"),
                "--bootstrap",
                "200",
                "--out",
                str(cmp_json),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "CE-micro-14-F1" in printed and ("significant" in printed or "n.s." in printed)
    result = json.loads(cmp_json.read_text())["metrics"]
    assert set(result) >= {"BLEU-4", "CE-micro-14-F1"}
    same = tmp_path / "same.json"
    assert main(["compare", str(out / "most_common"), str(out / "most_common"), "--out", str(same)]) == 0
    assert not any(r["significant"] for r in json.loads(same.read_text())["metrics"].values())


def test_compare_needs_the_same_test_set(tmp_path, capsys):
    for name, label in (("a", "The heart is enlarged."), ("b", "No pneumothorax.")):
        p = tmp_path / f"{name}.jsonl"
        p.write_text(json.dumps({"prompt": "", "predict": "Cardiomegaly.", "label": label}) + "\n")
        assert (
            main(
                [
                    "evaluate",
                    "--predictions",
                    str(p),
                    "--out",
                    str(tmp_path / name),
                    "--no-html",
                    "--bootstrap",
                    "0",
                ]
            )
            == 0
        )
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert "same test set" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "missing")]) == 2
    assert "per_sample.jsonl: no such file" in capsys.readouterr().err
