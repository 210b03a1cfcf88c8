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

from xrayqwen2vl.eval.meteor import MeteorProcess
from xrayqwen2vl.eval.nlg import bleu_from_counts, compute_nlg
from xrayqwen2vl.eval.normalize import normalize, r2gen_clean, strip_headers
from xrayqwen2vl.synthetic.text import choose_findings, write_report


@pytest.fixture(scope="module")
def meteor():
    """One METEOR JVM for the module (each start loads its tables for seconds)."""
    with MeteorProcess() as process:
        yield process


def test_bleu_hand_computed(meteor):
    # hypothesis "a b c d" vs reference "a b c e": unigrams 3/4, bigrams 2/3, trigrams 1/2, 4-grams 0/1.
    r = compute_nlg(["a b c d"], ["a b c e"], meteor=meteor)
    assert r.corpus["BLEU-1"] == pytest.approx(0.75)
    assert r.corpus["BLEU-2"] == pytest.approx(math.sqrt(0.75 * 2 / 3))
    assert r.corpus["BLEU-3"] == pytest.approx((0.75 * 2 / 3 * 0.5) ** (1 / 3))
    assert r.corpus["BLEU-4"] < 1e-3
    assert r.bleu_correct.tolist() == [[3, 2, 1, 0]]
    assert r.bleu_guess.tolist() == [[4, 3, 2, 1]]


def test_bleu_brevity_penalty_and_rouge_l_hand_computed(meteor):
    r = compute_nlg(["a b", "a b c d"], ["a b c d", "a c d e"], meteor=meteor)
    # corpus: 6 hypothesis words, reference length 8: BP = exp(1 - 8/6); unigram matches 2 + 3 of 6.
    assert r.corpus["BLEU-1"] == pytest.approx(5 / 6 * math.exp(1 - 8 / 6))
    # ROUGE-L, beta 1.2: sample 1 LCS 2, P 1, R 1/2; sample 2 LCS "a c d" = 3, P = R = 3/4.
    beta2 = 1.2**2
    f1 = (1 + beta2) * 1 * 0.5 / (0.5 + beta2 * 1)
    assert r.rouge_l.tolist() == pytest.approx([f1, 0.75])
    assert r.corpus["ROUGE-L"] == pytest.approx((f1 + 0.75) / 2)


def _bleu_of_counts(r):
    return bleu_from_counts(
        r.bleu_correct.sum(0), r.bleu_guess.sum(0), r.bleu_testlen.sum(), r.bleu_reflen.sum()
    ).tolist()


def test_bleu_brevity_penalty_of_short_predictions_hand_computed(meteor):
    # The toolkit smooths an n-gram order with no hypothesis n-gram as (0 + 1e-15) / (0 + 1e-9) = 1e-6
    # and multiplies every order by BP = exp(1 - reference length / hypothesis length) when shorter.
    half = compute_nlg(
        ["a b"], ["a b c d"], meteor=meteor
    )  # 2 of 4 words, all correct: BP = exp(1 - 4/2) = e^-1
    bp = math.exp(-1)
    expected = [bp, bp, (1e-6) ** (1 / 3) * bp, (1e-6 * 1e-6) ** (1 / 4) * bp]
    assert [half.corpus[f"BLEU-{k}"] for k in range(1, 5)] == pytest.approx(expected, rel=1e-6)
    assert half.sentence_bleu4.tolist() == pytest.approx([expected[3]], rel=1e-6)
    assert _bleu_of_counts(half) == pytest.approx(expected, rel=1e-6)

    one = compute_nlg(["a"], ["a b c d"], meteor=meteor)  # a single correct word: BP = exp(1 - 4) = e^-3
    assert one.corpus["BLEU-1"] == pytest.approx(math.exp(-3), rel=1e-6)
    assert one.corpus["BLEU-4"] == pytest.approx((1e-6) ** (3 / 4) * math.exp(-3), rel=1e-6)

    # corpus: one short and one exact prediction; lengths summed: 1 + 5 = 6 against 3 + 5 = 8.
    mixed = compute_nlg(["a", "a b c d e"], ["a b c", "a b c d e"], meteor=meteor)
    bp = math.exp(1 - 8 / 6)
    assert mixed.corpus["BLEU-1"] == pytest.approx(bp, rel=1e-6)  # 6 of 6 words correct
    assert mixed.corpus["BLEU-2"] == pytest.approx(bp, rel=1e-6)  # 4 of 4 bigrams (the short one has none)
    # per sample: the short one is penalised alone (BP e^-2), the exact one is 1
    assert mixed.sentence_bleu4.tolist() == pytest.approx([(1e-6) ** (3 / 4) * math.exp(-2), 1.0], rel=1e-6)
    assert _bleu_of_counts(mixed) == pytest.approx([mixed.corpus[f"BLEU-{k}"] for k in range(1, 5)])


# R2Gen's clean_report_iu_xray worked by hand from its published steps (see normalize.py):
# list numbers "1. " are deleted anywhere and " 2. ".." 5. " end a sentence; ". " splits sentences;
# [.,?;*!%^&_+():-\[\]{}] has the range ":-[" so hyphens survive; quotes and "/" are deleted in place.
R2GEN_CASES = [
    (
        "The heart is normal in size. The lungs are well-expanded and clear. No pleural effusion.",
        "the heart is normal in size . the lungs are well-expanded and clear . no pleural effusion .",
    ),
    (
        "1. No acute cardiopulmonary abnormality. 2. Stable T-spine degenerative changes. "
        "3. Calcified granuloma, right upper lobe.",
        "no acute cardiopulmonary abnormality . stable t-spine degenerative changes . "
        "calcified granuloma right upper lobe .",
    ),
    (
        "Low lung volumes 2. Bibasilar opacities 3. No effusion.",
        "low lung volumes . bibasilar opacities . no effusion .",
    ),
    ("Stable compression deformity of T11. No fracture.", "stable compression deformity of t1no fracture ."),
    (
        'Heart size upper limits of normal/mildly enlarged; "XXXX" opacity (left) 1.5 cm <2 cm.',
        "heart size upper limits of normalmildly enlarged xxxx opacity left 15 cm 2 cm .",
    ),
    ("No acute disease.. Heart normal...", "no acute disease . heart normal ."),
    (
        "Lungs clear - no effusion. Post-surgical changes.",
        "lungs clear - no effusion . post-surgical changes .",
    ),
    ("a. . b", "a . . b ."),
    ("", "."),
]


@pytest.mark.parametrize("text,expected", R2GEN_CASES)
def test_r2gen_tokenisation_hyphens_and_numbered_lists(text, expected):
    assert r2gen_clean(text) == expected
    assert normalize(text) == expected  # no header in these: normalize is R2Gen's cleaning


def test_line_breaks_are_spaces_but_runs_of_spaces_are_r2gens():
    assert r2gen_clean("Heart normal.\nLungs clear.") == r2gen_clean("Heart normal. Lungs clear.")
    # runs of spaces are left as R2Gen leaves them: "T11.  No" loses "1. " and keeps a space
    assert r2gen_clean("Stable T11.  No fracture.") == "stable t1 no fracture ."


def test_section_headers_are_not_scored_unless_kept(meteor):
    bare = "The heart is normal. The lungs are clear."
    headed = f"Findings: {bare} Impression: No acute disease."
    assert normalize(headed) == normalize(f"{bare} No acute disease.")
    assert normalize(headed, keep_headers=True).split()[0] == "findings"
    assert strip_headers("FINDINGS: a. IMPRESSION:b") == "a. b"
    assert strip_headers("No new findings. Impression unchanged.") == "No new findings. Impression unchanged."
    zh = "所见：心脏大小正常。双肺清晰。\n印象：无急性心肺异常。"
    assert normalize(zh, "zh") == normalize("心脏大小正常。双肺清晰。\n无急性心肺异常。", "zh")
    assert "印象" in normalize(zh, "zh", keep_headers=True).split()
    # "Findings: X" against "X" is a perfect match once the header is gone (BLEU-4 0.96 with it)
    ref = "The cardiomediastinal silhouette is normal. There is no focal consolidation. No effusion."
    stripped = compute_nlg([normalize(f"Findings: {ref}")], [normalize(ref)], meteor=meteor)
    kept = compute_nlg(
        [normalize(f"Findings: {ref}", keep_headers=True)], [normalize(ref, keep_headers=True)], meteor=meteor
    )
    assert stripped.corpus["BLEU-4"] == pytest.approx(1.0)
    assert kept.corpus["BLEU-4"] < 0.97


def test_headers_go_after_a_sentence_end_with_no_space():
    """A header glued to the sentence before it ("normal.Impression:", "X;Findings:") is still a
    header; a header word inside a word or without its colon is not."""
    assert strip_headers("Heart normal.Impression: No acute disease.") == "Heart normal.No acute disease."
    assert strip_headers("X;Findings: clear lungs") == "X;clear lungs"
    assert strip_headers("Heart normal.Impressions:stable") == "Heart normal.stable"
    assert strip_headers("nofindings: x") == "nofindings: x"
    assert strip_headers("Findings are stable.") == "Findings are stable."
    assert normalize("normal.Impression: stable") == normalize("normal.stable")
    assert strip_headers("心脏正常。印象：无异常", "zh") == "心脏正常。无异常"
    assert strip_headers("心脏正常；结论:无异常", "zh") == "心脏正常；无异常"
    assert strip_headers("心脏正常!诊断意见： 无异常", "zh") == "心脏正常!无异常"


def test_cider_of_exact_copies_is_ten_and_meteor_orders_quality(meteor):
    refs = ["a b c d e", "f g h i j"]
    r = compute_nlg(refs, refs, meteor=meteor)
    # Every n-gram occurs in one of two documents (idf log 2): cosine 1 for n = 1..4, times 10.
    assert r.corpus["CIDEr"] == pytest.approx(10.0)
    assert r.corpus["BLEU-4"] == pytest.approx(1.0)
    bad = compute_nlg(["k l m n o", "p q r s t"], refs, meteor=meteor)
    assert bad.corpus["CIDEr"] == 0.0 and bad.corpus["BLEU-1"] < 1e-6
    half = compute_nlg(["a b c x y", "f g z w v"], refs, meteor=meteor).corpus["METEOR"]
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
    ours = compute_nlg(hyp, ref)  # starts and closes its own METEOR
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


def test_bleu_from_counts_reproduces_the_toolkit_on_a_resample(meteor):
    hyp, ref = _synthetic_pairs(30, seed=4)
    ours = compute_nlg(hyp, ref, meteor=meteor)
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
    # headers removed; R2Gen splits sentences at ". " only, so "!" does not end one
    assert normalize("Findings: The heart is enlarged. No effusion (left)! Impression: Cardiomegaly.") == (
        "the heart is enlarged . no effusion left cardiomegaly ."
    )
    assert normalize("") == "."  # R2Gen turns an empty report into " ."
    zh = normalize("所见：左侧胸腔积液，肋膈角变钝。未见气胸。", "zh")
    assert zh.endswith(" .") and "，" not in zh and "：" not in zh
    assert "气胸" in zh.split() and "胸腔" in zh.split()  # jieba words, space separated
    with pytest.raises(ValueError):
        normalize("x", "fr")


def test_chinese_scores_with_segmentation(meteor):
    hyp = [normalize("左侧胸腔积液。未见气胸。", "zh"), normalize("心脏增大。", "zh")]
    ref = [normalize("左侧胸腔积液。未见气胸。", "zh"), normalize("未见气胸。", "zh")]
    r = compute_nlg(hyp, ref, meteor=meteor)
    assert r.rouge_l[0] == pytest.approx(1.0) and r.meteor[0] > r.meteor[1]


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        compute_nlg(["a", "b"], ["a"])
