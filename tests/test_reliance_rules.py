"""eval/reliance.py's rules called directly, without evaluate runs: the verdict of one
counterfactual and over all of them, the warnings' text, unchanged predictions, the same-studies
check, the counterfactual dataset's name, the output guard and the console table. Fast: these are
the tests `make mutation` runs on reliance (test_reliance.py checks the command end to end)."""

from __future__ import annotations

import pytest

from xrayqwen2vl.data.records import InputFileError
from xrayqwen2vl.eval.inputs import Prediction
from xrayqwen2vl.eval.reliance import (
    HEADLINE,
    IGNORED_SHARE,
    IGNORES,
    NO_EVIDENCE,
    READS,
    SHOWN,
    _dataset_for,
    _norm,
    _refuse_outputs_over_inputs,
    check_same_studies,
    overall_verdict,
    summary_lines,
    unchanged,
    verdict,
    warning_text,
)


def _preds(labels, predicted):
    return [Prediction("<image>", p, r, n) for n, (r, p) in enumerate(zip(labels, predicted, strict=True), 1)]


def _drop(low: float, difference: float = 0.1, high: float = 0.2) -> dict:
    return {"difference": difference, "low": low, "high": high}


def test_the_verdict_of_one_counterfactual():
    assert IGNORED_SHARE == 0.9
    # 90% unchanged or more: ignored, whatever the drop
    assert verdict(_drop(0.05), 0.9) == IGNORES and verdict(_drop(0.05), 1.0) == IGNORES
    assert verdict(_drop(0.05), 0.89) == READS
    # reads only when the interval's low end is above 0: a positive drop is not enough
    assert verdict(_drop(0.001), 0.0) == READS
    assert verdict(_drop(0.0), 0.0) == NO_EVIDENCE
    assert verdict(_drop(-0.01, difference=0.05), 0.5) == NO_EVIDENCE
    assert verdict(_drop(-0.3, difference=-0.1, high=0.05), 0.0) == NO_EVIDENCE


def test_the_overall_verdict():
    assert overall_verdict([IGNORES]) == IGNORES and overall_verdict([IGNORES, READS]) == IGNORES
    assert overall_verdict([NO_EVIDENCE, NO_EVIDENCE]) == NO_EVIDENCE
    assert overall_verdict([READS, READS, NO_EVIDENCE]) == NO_EVIDENCE
    with pytest.raises(ValueError, match="^no counterfactual verdicts$"):
        overall_verdict([])


def _result(verdict_: str, count: int = 38, n: int = 40) -> dict:
    drop = {"difference": 0.0125, "low": -0.05, "high": 0.075}
    return {
        "n": n,
        "unchanged": {"count": count, "share": count / n},
        "metrics": {HEADLINE: drop},
        "verdict": verdict_,
    }


def test_the_warnings_text():
    assert warning_text("swapped", _result(IGNORES, 38)) == (
        "the model ignores the image: 38/40 predictions (95%) did not change with swapped images; "
        "CE micro-5 F1 drop +0.013 [-0.050, +0.075]"
    )
    assert warning_text("blank", _result(NO_EVIDENCE, 3)) == (
        "no evidence the model reads findings from the image: with blank images CE micro-5 F1 drop "
        "+0.013 [-0.050, +0.075], an interval that does not exclude 0 (3/40 predictions unchanged)"
    )
    assert warning_text("swapped", _result(READS, 0)) is None


def test_unchanged_predictions_up_to_whitespace():
    labels = ["a", "b", "c", "d"]
    true = _preds(labels, ["No  acute\nfindings.", "Cardiomegaly.", " x ", "y"])
    other = _preds(labels, ["No acute findings. ", "cardiomegaly.", "x", "y z"])
    assert unchanged(true, other) == [0, 2]
    assert _norm("\t a \n\n b  ") == "a b"
    with pytest.raises(ValueError):  # the lengths are checked before: never silently cut
        unchanged(true, other[:3])


def test_the_files_must_hold_the_same_studies(tmp_path):
    t, o = tmp_path / "true.jsonl", tmp_path / "swapped.jsonl"
    true = _preds(["Impression: normal.", "Impression: effusion."], ["p", "q"])
    # the same labels up to whitespace pass
    check_same_studies(t, o, true, _preds(["Impression:  normal.\n", "Impression: effusion."], ["r", "s"]))
    with pytest.raises(InputFileError) as err:
        check_same_studies(t, o, true, true[:1])
    assert str(err.value) == (
        f"{o} has 1 predictions, {t} 2: predict the counterfactual split of the same test split"
    )
    other = [true[0], Prediction("<image>", "q", "Impression: edema.", 7)]
    with pytest.raises(InputFileError) as err:
        check_same_studies(t, o, true, other)
    assert str(err.value) == (
        f"{o}:7: its label differs from {t}:2: "
        "the counterfactual predictions must be of the same studies in the same order"
    )


def test_the_counterfactual_dataset_next_to_the_true_one(tmp_path):
    test = tmp_path / "openi_test.json"
    assert _dataset_for(None, "swapped") is None
    assert _dataset_for(test, None) == test
    assert _dataset_for(test, "swapped") is None  # not written (yet): no images to check
    (tmp_path / "openi_test_swapped.json").write_text("[]")
    assert _dataset_for(test, "swapped") == tmp_path / "openi_test_swapped.json"
    assert _dataset_for(test, "blank") is None


def test_no_output_is_an_input(tmp_path):
    out = tmp_path / "rel"
    true, swapped = tmp_path / "true.jsonl", tmp_path / "swapped.jsonl"
    _refuse_outputs_over_inputs(out, true, {"swapped": swapped}, None)  # nothing shared: passes
    cases = [
        (out / "reliance.json", "OUT/reliance.json", "--true"),
        (out / "true" / "metrics.json", "OUT/true/metrics.json", "--true"),
        (out / "swapped" / "per_sample.jsonl", "OUT/swapped/per_sample.jsonl", "--true"),
    ]
    for path, name, flag in cases:
        with pytest.raises(InputFileError) as err:
            _refuse_outputs_over_inputs(out, path, {"swapped": swapped}, None)
        assert (
            str(err.value) == f"{path}: the output {name} is the input {flag} ({path}); choose another output"
        )
    blank = out / "true" / "report.html"
    with pytest.raises(InputFileError, match=r"the output OUT/true/report.html is the input --blank "):
        _refuse_outputs_over_inputs(out, true, {"swapped": swapped, "blank": blank}, None)
    # the dataset the images are checked against, and its counterfactual next to it
    data = tmp_path / "data"
    data.mkdir()
    (data / "openi_test_blank.json").write_text("[]")
    dest = tmp_path / "odd"
    with pytest.raises(InputFileError, match=r"the output OUT/reliance.json is the input --images-from "):
        _refuse_outputs_over_inputs(tmp_path, true, {"swapped": swapped}, tmp_path / "reliance.json")
    with pytest.raises(
        InputFileError, match=r"the output OUT/blank/metrics.json is the input the blank dataset"
    ):
        (dest / "blank").mkdir(parents=True)
        (dest / "blank" / "metrics.json").symlink_to(data / "openi_test_blank.json")
        _refuse_outputs_over_inputs(dest, true, {"blank": swapped}, data / "openi_test.json")


def _metrics(base: float) -> dict:
    return {
        key: {"true": base, "counterfactual": base - 0.25, "difference": 0.25, "low": 0.125, "high": 0.375}
        for key in SHOWN
    }


def test_the_console_table():
    result = {
        "n": 40,
        "resamples": 300,
        "counterfactuals": {
            "swapped": {
                "n": 40,
                "unchanged": {"count": 2, "share": 0.05},
                "metrics": _metrics(0.75),
                "verdict": READS,
            },
            "blank": {
                "n": 40,
                "unchanged": {"count": 39, "share": 0.975},
                "metrics": _metrics(0.5),
                "verdict": IGNORES,
            },
        },
        "verdict": IGNORES,
        "warnings": ["the model ignores the image: w"],
    }
    lines = summary_lines(result)
    assert (
        lines[0]
        == "image reliance on 40 studies (300 paired resamples; drop = true images minus counterfactual)"
    )
    assert lines[1] == (
        "metric               true  swapped     drop   95% CI of drop       blank     drop   95% CI of drop"
    )
    # the true column is the first counterfactual's; each counterfactual its own figures
    assert lines[2] == (
        "CE micro-5 F1       0.750    0.500   +0.250   [+0.125, +0.375]     0.250   +0.250   [+0.125, +0.375]"
    )
    assert [line.split()[0] + " " + line.split()[1] for line in lines[3:8]] == [
        "CE micro-14",
        "CE macro-14",
        "BLEU-1 0.750",
        "BLEU-4 0.750",
        "ROUGE-L 0.750",
    ]
    assert lines[8:] == [
        "swapped: 2/40 predictions unchanged (5.0%); verdict: reads the image",
        "blank: 39/40 predictions unchanged (97.5%); verdict: ignores the image",
        "image reliance verdict: ignores the image",
        "WARNING: the model ignores the image: w",
    ]
