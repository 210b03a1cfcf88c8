"""Clinical P/R/F1, the best constant report, diversity, verdicts and the paired bootstrap on
hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from xrayqwen2vl.eval.bootstrap import (
    BOOTSTRAP_KEYS,
    SampleTable,
    confidence_intervals,
    draw_counts,
    metrics_for_weights,
    paired_comparison,
    point_estimates,
)
from xrayqwen2vl.eval.chexpert_labeler import OBSERVATIONS
from xrayqwen2vl.eval.clinical import best_constant, clinical_metrics, positive_matrix
from xrayqwen2vl.eval.diversity import distinct_n, diversity_metrics, repetition
from xrayqwen2vl.eval.verdicts import (
    add_warning,
    baseline_warning,
    collapse_check,
    collapse_warning,
    warning_lines,
)


def _labels(**values):
    row = {o: None for o in OBSERVATIONS}
    row.update({k.replace("_", " "): v for k, v in values.items()})
    return row


def test_clinical_hand_computed():
    refs = [_labels(Cardiomegaly=1, Edema=1), _labels(Cardiomegaly=1), _labels(Pneumothorax=1)]
    # uncertain (-1) counts as negative: the Edema prediction below is a miss, not a hit.
    preds = [
        _labels(Cardiomegaly=1, Edema=-1),
        _labels(Cardiomegaly=0, Atelectasis=1),
        _labels(Pneumothorax=1),
    ]
    m = clinical_metrics(positive_matrix(preds), positive_matrix(refs))
    # TP: Cardiomegaly 1, Pneumothorax 1; FP: Atelectasis 1; FN: Cardiomegaly 1, Edema 1.
    assert m["micro-14"]["precision"] == pytest.approx(2 / 3)
    assert m["micro-14"]["recall"] == pytest.approx(2 / 4)
    assert m["micro-14"]["F1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    per = m["per_observation"]
    assert per["Cardiomegaly"]["F1"] == pytest.approx(2 / 3)  # P 1, R 1/2
    assert per["Edema"]["F1"] == 0.0 and per["Atelectasis"]["F1"] == 0.0 and per["Pneumothorax"]["F1"] == 1.0
    assert per["Fracture"]["F1"] is None  # in no reference and no prediction: undefined, left out of macro
    assert m["macro-14"]["F1"] == pytest.approx((2 / 3 + 0 + 0 + 1) / 4)
    # top 5: Cardiomegaly (TP 1, FN 1), Edema (FN 1), Atelectasis (FP 1)
    assert m["micro-5"]["F1"] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    assert m["macro-5"]["F1"] == pytest.approx((2 / 3) / 3)


def test_diversity_hand_computed():
    preds = ["a b a b", "a b a b", "c d"]
    assert distinct_n(preds, 1) == pytest.approx(4 / 10)
    assert distinct_n(preds, 2) == pytest.approx(3 / 7)  # ab ba ab | ab ba ab | cd
    d = diversity_metrics(preds, ["a b c", "d e f", "g h i"])
    p = d["predictions"]
    assert (p["distinct"], p["most_frequent"], p["most_frequent_count"]) == (2, "a b a b", 2)
    assert p["most_frequent_share"] == pytest.approx(2 / 3) and p["distinct_share"] == pytest.approx(2 / 3)
    assert p["mean_length"] == pytest.approx(10 / 3) and d["length_ratio"] == pytest.approx((10 / 3) / 3)
    assert d["references"]["distinct-1"] == 1.0


def _table(rng, n, quality):
    """A synthetic run: per-sample statistics whose quality grows with ``quality``."""
    guess = np.tile(np.array([10, 9, 8, 7], dtype=float), (n, 1))
    correct = np.minimum(guess, rng.binomial(guess.astype(int), quality)).astype(float)
    ref_pos = rng.random((n, 14)) < 0.2
    pred_pos = np.where(rng.random((n, 14)) < quality, ref_pos, ~ref_pos)
    return SampleTable(
        correct,
        guess,
        np.full(n, 10.0),
        np.full(n, 11.0),
        rng.random(n) * quality,
        rng.random(n) * quality,
        rng.random(n) * quality,
        pred_pos,
        ref_pos,
    )


def test_bootstrap_intervals_contain_the_point_and_are_seeded():
    t = _table(np.random.default_rng(1), 200, 0.6)
    ci = confidence_intervals(t, resamples=300, seed=5)
    assert set(ci) == set(BOOTSTRAP_KEYS)
    for key, v in ci.items():
        assert v["low"] <= v["value"] <= v["high"], key
        assert v["high"] > v["low"], key
    assert ci == confidence_intervals(t, resamples=300, seed=5)
    assert ci != confidence_intervals(t, resamples=300, seed=6)
    # the full sample (every draw count 1) reproduces the direct figures
    full = point_estimates(t)
    tp = (t.pred_pos & t.ref_pos).sum()
    assert full["CE-micro-14-precision"] == pytest.approx(tp / t.pred_pos.sum())
    assert full["ROUGE-L"] == pytest.approx(t.rouge_l.mean())


def test_draw_counts_resample_with_replacement():
    w = draw_counts(50, 40, seed=0)
    assert w.shape == (40, 50) and (w.sum(1) == 50).all()
    assert (w == 0).any() and (w > 1).any()
    one = metrics_for_weights(_table(np.random.default_rng(2), 50, 0.5), w[:1])
    assert all(v.shape == (1,) for v in one.values())


def test_paired_comparison_significance():
    rng = np.random.default_rng(3)
    good, bad = _table(rng, 300, 0.9), _table(rng, 300, 0.3)
    result = paired_comparison(good, bad, resamples=300, seed=0)
    for key in ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr", "CE-micro-14-F1"):
        assert result[key]["significant"] and result[key]["difference"] > 0 and result[key]["p_value"] < 0.05
    same = paired_comparison(good, good, resamples=300, seed=0)
    assert not any(r["significant"] for r in same.values())
    assert all(r["difference"] == 0 and r["p_value"] == 1.0 for r in same.values())
    with pytest.raises(ValueError, match="same test set"):
        paired_comparison(good, _table(rng, 10, 0.5))


def test_best_constant_report_hand_computed():
    # 10 studies: Cardiomegaly in 4 references, Pleural Effusion in 1, no other of the five: P = 5.
    refs = [_labels(Cardiomegaly=1)] * 3 + [_labels(Cardiomegaly=1, Pleural_Effusion=1)] + [_labels()] * 6
    ref_pos = positive_matrix(refs)
    best = best_constant(ref_pos)
    # claim {Cardiomegaly}: 2*4 / (1*10 + 5) = 0.533; claim both: 2*5 / (2*10 + 5) = 0.4
    assert best == {"F1": pytest.approx(8 / 15), "claims": ["Cardiomegaly"]}
    constant = positive_matrix([_labels(Cardiomegaly=1)] * 10)
    assert clinical_metrics(constant, ref_pos)["micro-5"]["F1"] == pytest.approx(8 / 15)
    assert best_constant(positive_matrix([_labels()] * 3)) == {"F1": 0.0, "claims": []}


def test_collapse_and_baseline_verdicts():
    normal, cardio = _labels(No_Finding=1), _labels(Cardiomegaly=1)
    # 10 studies; one normal text written for 4 of them, 2 of which have cardiomegaly
    hyp = ["n"] * 4 + [f"x{k}" for k in range(6)]
    ref = ["n", "n", "c1", "c2"] + [f"x{k}" for k in range(6)]
    ref_labels = [normal, normal, cardio, cardio] + [normal] * 6
    rep = repetition(hyp, ref, [normal] * 10, ref_labels)
    assert rep["studies_with_findings"] == 2 and rep["repeated_predictions"] == 1
    # the text is the reference of 2 studies: of its 4 studies, 2 are the references' own repetition
    assert rep["repeated"][0] == {
        "text": "n",
        "count": 4,
        "hidden": 2,
        "references_with_this_text": 2,
        "counted": 2,
        "expected_if_blind": pytest.approx(2 * 2 / 10),  # 2 counted copies, 2 of 10 studies unfit
        "missed": {"Cardiomegaly": 2},
    }
    assert rep["hidden"] == 2 and rep["hidden_share"] == 1.0 and rep["blindness"] == pytest.approx(5.0)
    check = collapse_check(rep, "ours")
    assert check["collapsed"] and check["reasons"][0] == (
        "the same report for 4 of 10 studies, 2 of which have findings it does not state (most often left out: "
        "Cardiomegaly 2); 2 of the references are this very text"
    )
    assert check["reasons"][1] == (
        "it leaves out stated findings of 2 of the 2 studies whose references state any (100.0% >= 20%), "
        "500% of the 0.4 the same predictions would leave out if handed out at random (>= 50%)"
    )
    assert (
        collapse_warning(check)
        == f'mode collapse: {"; ".join(check["reasons"])}. The report, normalised: "n"'
    )
    # written only for studies it fits, however often: no collapse (blindness 0)
    fits = repetition(hyp, ["n"] * 4 + ref[4:], [normal] * 10, [normal] * 4 + [cardio] * 6)
    assert fits["hidden"] == 0 and fits["blindness"] == 0.0 and not collapse_check(fits, "ours")["collapsed"]
    # 16 studies, 8 with cardiomegaly; one normal report for 10 of them. Written for 8 normal and 2
    # cardiomegaly studies it hides a quarter of the findings, but goes to the studies it fits more
    # often than chance (blindness 2 / (10 * 8/16) = 0.4): no collapse. For 5 and 5: blind, collapse.
    refs16, own = [normal] * 8 + [cardio] * 8, [f"r{k}" for k in range(16)]
    for normals, blindness, collapsed in ((8, 0.4, False), (5, 1.0, True)):
        order = list(range(normals)) + list(range(8, 8 + 10 - normals))  # the studies "n" is written for
        hyp16 = [f"own{k}" for k in range(16)]
        for k in order:
            hyp16[k] = "n"
        rep = repetition(hyp16, own, [normal] * 16, refs16)
        assert rep["hidden_share"] == pytest.approx((10 - normals) / 8) and rep["hidden_share"] >= 0.2
        assert rep["blindness"] == pytest.approx(blindness)
        assert collapse_check(rep, "ours")["collapsed"] is collapsed
    # the same text written only as often as the references use it hides nothing of the model's own
    rep = repetition(
        ["n"] * 3 + ref[3:], ["n"] * 3 + ref[3:], [normal] * 10, [normal, normal, cardio] + ref_labels[3:]
    )
    assert (
        rep["repeated"][0]["hidden"] == 1
        and rep["hidden"] == 0
        and not collapse_check(rep, "ours")["collapsed"]
    )
    # one study is not enough (MIN_HIDDEN 2), however large its share
    rep = repetition(hyp, ref, [normal] * 10, [normal, normal, normal, cardio] + [normal] * 6)
    assert rep["hidden"] == 1 and rep["hidden_share"] == 1.0 and not collapse_check(rep, "ours")["collapsed"]
    # a hedged mention states the finding; an uncertain reference is no stated finding
    hedged = _labels(Cardiomegaly=-1)
    rep = repetition(hyp, ref, [hedged] * 4 + [normal] * 6, ref_labels)
    assert rep["hidden"] == 0 and collapse_warning(collapse_check(rep, "ours")) is None
    rep = repetition(hyp, ref, [normal] * 10, [normal, normal, hedged, hedged] + [normal] * 6)
    assert rep["studies_with_findings"] == 0 and rep["hidden"] == 0
    # label sets: the predictions' against the references'
    assert repetition(hyp, ref, [normal] * 10, ref_labels)["label_sets"] == {
        "predictions": {"distinct": 1, "most_frequent": ["No Finding"], "most_frequent_share": 1.0},
        "references": {"distinct": 2, "most_frequent": ["No Finding"], "most_frequent_share": 0.8},
    }

    best = {"F1": 0.3, "claims": ["Cardiomegaly", "Pleural Effusion"]}
    h = {"metric": "CE micro-5 F1", "value": 0.0, "constant_baseline": 0.0, "best_constant": best}
    assert "0.000 of writing the most common reference" in baseline_warning(h)
    h["value"] = 0.2
    assert "0.300 of one report claiming Cardiomegaly and Pleural Effusion" in baseline_warning(h)
    h["value"] = 0.31
    assert baseline_warning(h) is None
    h.update(value=0.0, best_constant={"F1": 0.0, "claims": []})  # no positives to find: no verdict
    assert baseline_warning(h) is None
    metrics: dict = {}
    add_warning(metrics, "kind: text")
    assert warning_lines(metrics) == ["WARNING: kind: text"] and metrics == {"warnings": ["kind: text"]}
