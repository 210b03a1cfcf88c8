"""ReXrank's protocol as pure functions (eval/rexrank.py): RadCliQ-v1 against the published
leaderboard, BLEU-2's tokenisation and smoothing, the section selection."""

import math

import pytest

from xrayqwen2vl.eval.rexrank import (
    bleu2,
    inverse_radcliq_v1,
    radcliq_v1,
    rexrank_tokens,
    select_section,
    split_sections,
)

# Published ReXrank rows (rajpurkarlab/ReXrank results/*.csv, 2024-07): model, RadGraph, BERTScore,
# SembScore, RadCliQ-v1. Sub-scores are given to 3 decimals, so the check allows 0.005.
PUBLISHED = [
    ("IU test", "CheXagent", 0.157, 0.38, 0.494, 1.137),
    ("IU test", "Cvt2distilgpt2", 0.2, 0.39, 0.605, 0.956),
    ("IU test", "MedVersa", 0.244, 0.518, 0.601, 0.692),
    ("IU test", "LLM-CXR", 0.023, 0.175, 0.061, 2.072),
    ("IU valid", "RGRG", 0.238, 0.436, 0.541, 0.896),
    ("MIMIC test", "MedVersa*", 0.273, 0.43, 0.315, 1.088),
    ("MIMIC test", "RadFM*", 0.111, 0.281, 0.245, 1.604),
    ("MIMIC test", "GPT4V", 0.085, 0.204, 0.19, 1.819),
]


@pytest.mark.parametrize(
    "split,model,rg,bert,semb,published", PUBLISHED, ids=[f"{r[0]}:{r[1]}" for r in PUBLISHED]
)
def test_radcliq_v1_reproduces_the_leaderboard(split, model, rg, bert, semb, published):
    assert radcliq_v1(rg, bert, semb) == pytest.approx(published, abs=0.005)
    assert inverse_radcliq_v1(rg, bert, semb) == pytest.approx(1 / published, abs=0.005)


def test_radcliq_v1_is_linear_and_vectorised():
    import numpy as np

    rg, bert, semb = np.array([0.1, 0.3]), np.array([0.2, 0.6]), np.array([0.4, 0.8])
    per_report = radcliq_v1(rg, bert, semb)
    assert per_report.shape == (2,)
    assert per_report.mean() == pytest.approx(radcliq_v1(rg.mean(), bert.mean(), semb.mean()))
    # better sub-scores, lower RadCliQ-v1
    assert per_report[1] < per_report[0]


def test_rexrank_tokens():
    assert rexrank_tokens("No acute  disease.The heart\nis normal.") == [
        "no",
        "acute",
        "disease",
        ".the",
        "heart\nis",
        "normal",
        ".",
    ]


def test_bleu2_hand_worked():
    # identical: 1
    assert bleu2("Heart size is normal.", "heart size is normal .") == pytest.approx(1.0)
    # hyp "the heart is" vs ref "the heart is normal": p1 = 3/3, p2 = 2/2, BP = exp(1 - 4/3)
    assert bleu2("the heart is", "the heart is normal") == pytest.approx(math.exp(1 - 4 / 3))
    # no bigram in common: p1 = 3/3, and method 1 gives p2 = 0.1 / 2 (2 bigrams, 0 matches)
    assert bleu2("lungs heart clear", "heart lungs are clear") == pytest.approx(
        math.exp(1 - 4 / 3) * math.sqrt(1.0 * 0.1 / 2)
    )
    assert bleu2("", "heart lungs") == 0.0


def test_sections():
    text = "Findings: The heart is normal. Impression: No acute disease."
    assert split_sections(text) == {"findings": "The heart is normal.", "impression": "No acute disease."}
    assert select_section(text, "findings") == "The heart is normal."
    assert select_section(text, "impression") == "No acute disease."
    assert select_section(text, "both") == text
    # bare findings (R2Gen's IU references), redactions kept
    assert select_section("XXXX is normal.", "findings") == "XXXX is normal."
    assert select_section("XXXX is normal.", "impression") == ""
    with pytest.raises(ValueError, match="--section"):
        select_section(text, "all")
