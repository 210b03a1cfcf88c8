"""NLG metrics: hand-computed values, the bootstrap's BLEU recomputation, and equality with a
direct pycocoevalcap call on the same inputs."""

from __future__ import annotations

import contextlib
import io
import math
import random

import numpy as np
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge

from xrayqwen2vl.eval.nlg import bleu_from_counts, compute_nlg
from xrayqwen2vl.eval.normalize import normalize
from xrayqwen2vl.synthetic.text import choose_findings, write_report


def test_bleu_hand_computed():
    # hypothesis "a b c d" vs reference "a b c e": unigrams 3/4, bigrams 2/3, trigrams 1/2, 4-grams 0/1.
    r = compute_nlg(["a b c d"], ["a b c e"])
    assert r.corpus["BLEU-1"] == pytest.approx(0.75)
    assert r.corpus["BLEU-2"] == pytest.approx(math.sqrt(0.75 * 2 / 3))
    assert r.corpus["BLEU-3"] == pytest.approx((0.75 * 2 / 3 * 0.5) ** (1 / 3))
    assert r.corpus["BLEU-4"] < 1e-3
    assert r.bleu_correct.tolist() == [[3, 2, 1, 0]]
    assert r.bleu_guess.tolist() == [[4, 3, 2, 1]]


def test_bleu_brevity_penalty_and_rouge_l_hand_computed():
    r = compute_nlg(["a b", "a b c d"], ["a b c d", "a c d e"])
    # corpus: 6 hypothesis words, reference length 8: BP = exp(1 - 8/6); unigram matches 2 + 3 of 6.
    assert r.corpus["BLEU-1"] == pytest.approx(5 / 6 * math.exp(1 - 8 / 6))
    # ROUGE-L, beta 1.2: sample 1 LCS 2, P 1, R 1/2; sample 2 LCS "a c d" = 3, P = R = 3/4.
    beta2 = 1.2**2
    f1 = (1 + beta2) * 1 * 0.5 / (0.5 + beta2 * 1)
    assert r.rouge_l.tolist() == pytest.approx([f1, 0.75])
    assert r.corpus["ROUGE-L"] == pytest.approx((f1 + 0.75) / 2)


def test_cider_of_exact_copies_is_ten_and_meteor_orders_quality():
    refs = ["a b c d e", "f g h i j"]
    r = compute_nlg(refs, refs)
    # Every n-gram occurs in one of two documents (idf log 2): cosine 1 for n = 1..4, times 10.
    assert r.corpus["CIDEr"] == pytest.approx(10.0)
    assert r.corpus["BLEU-4"] == pytest.approx(1.0)
    bad = compute_nlg(["k l m n o", "p q r s t"], refs)
    assert bad.corpus["CIDEr"] == 0.0 and bad.corpus["BLEU-1"] < 1e-6
    half = compute_nlg(["a b c x y", "f g z w v"], refs).corpus["METEOR"]
    assert r.corpus["METEOR"] > half > bad.corpus["METEOR"]


def _synthetic_pairs(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts = []
    for _ in range(2 * n):
        rep = write_report(choose_findings(rng), rng)["en"]
        texts.append(f"Findings: {rep['findings']} Impression: {rep['impression']}")
    return [normalize(t) for t in texts[:n]], [normalize(t) for t in texts[n:]]


def test_equals_direct_pycocoevalcap_call():
    hyp, ref = _synthetic_pairs(40, seed=3)
    hyp[5] = ""  # an empty prediction is scored, not dropped
    ours = compute_nlg(hyp, ref)
    res = {i: [h] for i, h in enumerate(hyp)}
    gts = {i: [r] for i, r in enumerate(ref)}
    with contextlib.redirect_stdout(io.StringIO()):
        bleu, bleu_per = Bleu(4).compute_score(gts, res)
    meteor_scorer = Meteor()
    meteor, meteor_per = meteor_scorer.compute_score(gts, res)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, cider_per = Cider().compute_score(gts, res)
    for k in range(4):
        assert ours.corpus[f"BLEU-{k + 1}"] == bleu[k]
    assert ours.sentence_bleu4.tolist() == bleu_per[3]
    assert ours.corpus["METEOR"] == meteor
    assert ours.meteor.tolist() == meteor_per
    assert ours.corpus["ROUGE-L"] == rouge
    assert ours.corpus["CIDEr"] == cider
    assert ours.cider.tolist() == pytest.approx(list(cider_per))
    assert len(ours.meteor) == 40


def test_bleu_from_counts_reproduces_the_toolkit_on_a_resample():
    hyp, ref = _synthetic_pairs(30, seed=4)
    ours = compute_nlg(hyp, ref)
    total = bleu_from_counts(
        ours.bleu_correct.sum(0), ours.bleu_guess.sum(0), ours.bleu_testlen.sum(), ours.bleu_reflen.sum()
    )
    assert total.tolist() == pytest.approx([ours.corpus[f"BLEU-{k}"] for k in range(1, 5)], rel=1e-12)
    idx = np.random.default_rng(0).integers(0, 30, 30)
    w = np.bincount(idx, minlength=30).astype(float)
    resampled = bleu_from_counts(
        w @ ours.bleu_correct, w @ ours.bleu_guess, w @ ours.bleu_testlen, w @ ours.bleu_reflen
    )
    res = {j: [hyp[i]] for j, i in enumerate(idx)}
    gts = {j: [ref[i]] for j, i in enumerate(idx)}
    with contextlib.redirect_stdout(io.StringIO()):
        direct, _ = Bleu(4).compute_score(gts, res)
    assert resampled.tolist() == pytest.approx(direct, rel=1e-12)


def test_normalisation_en_and_zh():
    assert normalize("Findings: The heart is enlarged. No effusion (left)! Impression: Cardiomegaly.") == (
        "findings the heart is enlarged . no effusion left impression cardiomegaly ."
    )
    assert normalize("") == ""
    zh = normalize("所见：左侧胸腔积液，肋膈角变钝。未见气胸。", "zh")
    assert zh.endswith(" .") and "，" not in zh and "：" not in zh
    assert "气胸" in zh.split() and "胸腔" in zh.split()  # jieba words, space separated
    with pytest.raises(ValueError):
        normalize("x", "fr")


def test_chinese_scores_with_segmentation():
    hyp = [normalize("左侧胸腔积液。未见气胸。", "zh"), normalize("心脏增大。", "zh")]
    ref = [normalize("左侧胸腔积液。未见气胸。", "zh"), normalize("未见气胸。", "zh")]
    r = compute_nlg(hyp, ref)
    assert r.rouge_l[0] == pytest.approx(1.0) and r.meteor[0] > r.meteor[1]


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        compute_nlg(["a", "b"], ["a"])
