"""eval/verdicts.py on hand-made figures: the collapse rule at its thresholds, the reasons' text,
the baseline verdict at equality, the warnings' console form and the line lists. Fast; with
test_eval_clinical_diversity_bootstrap.py (figures from real repetition) these are the tests
`make mutation` runs on verdicts."""

from __future__ import annotations

from xrayqwen2vl.eval.verdicts import (
    BLINDNESS,
    HIDDEN_SHARE,
    MIN_HIDDEN,
    baseline_warning,
    collapse_check,
    collapse_warning,
    lines_note,
    warning_lines,
)


def _rep(hidden=4, hidden_share=0.4, blindness=0.8, hiding=1, own=0, missed=None, text="no acute disease"):
    top = {
        "text": text,
        "count": 12,
        "hidden": hidden,
        "references_with_this_text": own,
        "missed": missed if missed is not None else {"Cardiomegaly": 3, "Edema": 1},
    }
    return {
        "studies": 30,
        "studies_with_findings": 10,
        "hidden": hidden,
        "hidden_share": hidden_share,
        "blindness": blindness,
        "expected_if_blind": 5.0,
        "repeated": [top],
        "repeated_predictions_hiding": hiding,
    }


def test_the_thresholds_are_inclusive():
    assert (HIDDEN_SHARE, BLINDNESS, MIN_HIDDEN) == (0.20, 0.50, 2)
    assert collapse_check(_rep(hidden=2, hidden_share=0.2, blindness=0.5), "ours")["collapsed"]
    assert not collapse_check(_rep(hidden=1, hidden_share=0.2, blindness=0.5), "ours")["collapsed"]
    assert not collapse_check(_rep(hidden_share=0.19, blindness=0.5), "ours")["collapsed"]
    assert not collapse_check(_rep(hidden_share=0.2, blindness=0.49), "ours")["collapsed"]


def test_nothing_repeated_is_no_collapse():
    rep = _rep()
    rep["repeated"] = []
    check = collapse_check(rep, "chexbert")
    assert check == {
        "collapsed": False,
        "thresholds": {"hidden_share": 0.2, "blindness": 0.5, "min_hidden": 2},
        "labeler": "chexbert",
        "reasons": [],
        "report": None,
    }
    assert collapse_warning(check) is None
    # a repeated text that hides too little: no reasons and no report either
    assert collapse_check(_rep(blindness=0.1), "ours")["report"] is None


def test_the_reasons_name_three_findings_and_the_other_repeated_predictions():
    missed = {"Cardiomegaly": 3, "Edema": 2, "Pleural Effusion": 2, "Atelectasis": 1}
    check = collapse_check(_rep(missed=missed, hiding=3, own=0), "ours")
    assert check["collapsed"] and check["report"] == "no acute disease"
    assert check["reasons"] == [
        "the same report for 12 of 30 studies, 4 of which have findings it does not state "
        "(most often left out: Cardiomegaly 3, Edema 2, Pleural Effusion 2)",
        "it and 2 other repeated predictions leave out stated findings of 4 of the 10 studies whose "
        "references state any (40.0% >= 20%), 80% of the 5.0 the same predictions would leave out if "
        "handed out at random (>= 50%)",
    ]
    one_other = collapse_check(_rep(hiding=2, own=1), "ours")["reasons"]
    assert one_other[0].endswith(
        "(most often left out: Cardiomegaly 3, Edema 1); 1 of the references are this very text"
    )
    assert one_other[1].startswith(
        "it and 1 other repeated prediction leave out stated findings of 4 of the 10"
    )


def test_a_long_report_is_shortened_in_the_warning():
    long = "x" * 121
    warning = collapse_warning(collapse_check(_rep(text=long), "ours"))
    assert warning.endswith(f'The report, normalised: "{"x" * 117}..."')
    exact = "y" * 120
    assert collapse_warning(collapse_check(_rep(text=exact), "ours")).endswith(f'normalised: "{exact}"')


def test_the_baseline_verdict_at_equality():
    best = {"F1": 0.25, "claims": ["Cardiomegaly"]}
    h = {"metric": "CE micro-5 F1", "value": 0.125, "constant_baseline": 0.125, "best_constant": best}
    assert baseline_warning(h) == (
        "no better than a constant report: CE micro-5 F1 0.125 does not exceed the 0.125 of writing the "
        "most common reference for every study"
    )
    h["value"] = 0.25
    assert baseline_warning(h) == (
        "no better than a constant report: CE micro-5 F1 0.250 does not exceed the 0.250 of one report "
        "claiming Cardiomegaly for every study: the model does not show that it reads the images"
    )
    h["value"] = 0.2501
    assert baseline_warning(h) is None


def test_warning_lines_and_line_lists():
    assert warning_lines({}) == []
    assert warning_lines({"warnings": ["a: b", "c: d"]}) == ["WARNING: a: b", "WARNING: c: d"]
    assert lines_note([3]) == "line 3"
    assert lines_note([3, 7]) == "lines 3, 7"
    assert lines_note(list(range(1, 11))) == "lines 1, 2, 3, 4, 5, 6, 7, 8, 9, 10"
    assert lines_note(list(range(1, 13))) == "lines 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 2 more"
    assert lines_note([5, 6, 7], limit=2) == "lines 5, 6 and 1 more"
