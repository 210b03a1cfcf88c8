"""ReXrank's metric protocol as pure functions: BLEU-2, RadCliQ-v1, key names, sections.

ReXrank (the public leaderboard of chest X-ray report generation, rajpurkarlab/ReXrank) scores
with the code of rajpurkarlab/CXR-Report-Metric (``CXRMetric/run_eval.py``). What it does, and
what this module reproduces without any model:

- **BLEU-2**: per report, one reference; each text lower-cased, every "." replaced by " .",
  split on single spaces, empty strings dropped; ``fast_bleu.BLEU`` with weights (1/2, 1/2) and its
  default smoothing (NLTK's method 1, epsilon 0.1); the mean over the reports. ``fast_bleu``
  states that it reproduces NLTK's sentence BLEU; we call NLTK's.
- **RadCliQ-v1**: a linear model over the per-report RadGraph (mean of entity and relation F1),
  BERTScore and SembScore (and BLEU-2, whose coefficient is 4e-12): each input standardised by the
  scaler of ``CXRMetric/radcliq-v1.pkl``, then the dot product with its coefficients plus its
  intercept. Lower is better; the leaderboard's site ranks by 1/RadCliQ-v1 (higher is better).
  Being linear, the mean of per-report RadCliQ-v1 equals RadCliQ-v1 of the mean sub-scores, which is
  how the published rows can be checked from their sub-scores.

Nothing here imports the optional metrics library (see ``rexrank_adapter.py``).
"""

from __future__ import annotations

import re

import numpy as np

# ReXrank's names, as on its leaderboard tables (results/*.csv) and site.
KEYS = {
    "bleu2": "BLEU-2",
    "bertscore": "BERTScore",
    "sembscore": "SembScore",
    "radgraph": "RadGraph",
    "radcliq_v1": "RadCliQ-v1",
    "inv_radcliq_v1": "1/RadCliQ-v1",
    "ratescore": "RaTEScore",
    "green": "GREEN",
}
# The model-based metrics: computed by the adapter in the metrics environment.
MODEL_METRICS = ("bertscore", "sembscore", "radgraph", "ratescore", "green")

# RadCliQ-v1 (CXRMetric/radcliq-v1.pkl): a StandardScaler and linear coefficients over the
# columns radgraph_combined, bertscore, semb_score, bleu_score; the last coefficient is the intercept.
RADCLIQ_V1_COLUMNS = ("radgraph", "bertscore", "sembscore", "bleu2")
RADCLIQ_V1_MEAN = np.array([0.53792312, 0.61757256, 0.76479421, 0.44738335])
RADCLIQ_V1_SCALE = np.array([0.30282584, 0.22430938, 0.25394391, 0.29892717])
RADCLIQ_V1_COEF = np.array([-3.77083683e-01, -3.70300100e-01, -2.52616218e-01, 4.31504841e-12])
RADCLIQ_V1_INTERCEPT = 2.46655256e-10

SECTIONS = ("findings", "impression", "both")

_SPACES = re.compile(r" +")


def rexrank_tokens(text: str) -> list[str]:
    """CXR-Report-Metric's ``prep_reports``: lower-case, "." split off, split on single spaces."""
    return [t for t in str(text).lower().replace(".", " .").split(" ") if t != ""]


def bleu2(hypothesis: str, reference: str) -> float:
    """ReXrank's per-report BLEU-2 (see the module docstring)."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    hyp, ref = rexrank_tokens(hypothesis), rexrank_tokens(reference)
    if not hyp:
        return 0.0
    return float(
        sentence_bleu([ref], hyp, weights=(0.5, 0.5), smoothing_function=SmoothingFunction().method1)
    )


def bleu2_scores(hypotheses: list[str], references: list[str]) -> np.ndarray:
    return np.array([bleu2(h, r) for h, r in zip(hypotheses, references, strict=True)], dtype=np.float64)


def bertscore_text(text: str) -> str:
    """CXR-Report-Metric collapses runs of spaces before BERTScore."""
    return _SPACES.sub(" ", text)


def radcliq_v1(radgraph, bertscore, sembscore, bleu2=0.0):
    """RadCliQ-v1 (lower is better) of per-report or mean sub-scores; scalars or arrays.

    ``bleu2`` enters with a coefficient of 4.3e-12: it changes nothing at the precision anyone
    reports, so it defaults to 0.
    """
    x = np.stack(np.broadcast_arrays(*map(np.asarray, (radgraph, bertscore, sembscore, bleu2))), axis=-1)
    value = ((x - RADCLIQ_V1_MEAN) / RADCLIQ_V1_SCALE) @ RADCLIQ_V1_COEF + RADCLIQ_V1_INTERCEPT
    return float(value) if np.ndim(value) == 0 else value


def inverse_radcliq_v1(radgraph, bertscore, sembscore, bleu2=0.0):
    """ReXrank's ranking figure, 1/RadCliQ-v1 of the mean sub-scores (higher is better)."""
    return 1.0 / radcliq_v1(radgraph, bertscore, sembscore, bleu2)


def split_sections(text: str) -> dict[str, str]:
    """A report's findings and impression, from our targets ("Findings: … Impression: …").

    A text without headers is all findings (R2Gen's IU references are bare findings).
    """
    m = re.search(r"(?:^|\s)(impressions?\s*:)", text, flags=re.IGNORECASE)
    head = re.match(r"\s*findings?\s*:\s*", text, flags=re.IGNORECASE)
    start = head.end() if head else 0
    if m:
        return {"findings": text[start : m.start(1)].strip(), "impression": text[m.end(1) :].strip()}
    return {"findings": text[start:].strip(), "impression": ""}


def select_section(text: str, section: str) -> str:
    """The part of a report to score: ``findings``, ``impression`` or ``both`` (the text as written)."""
    if section not in SECTIONS:
        raise ValueError(f"--section {section}: one of {', '.join(SECTIONS)}")
    if section == "both":
        return text.strip()
    return split_sections(text)[section]


# Where our run differs from ReXrank's, in words (metrics.json rexrank.protocol_differences).
PROTOCOL_DIFFERENCES = [
    "BLEU-2: NLTK's sentence_bleu (smoothing method 1) instead of fast_bleu 0.0.90, which states it "
    "reproduces it; same tokenisation (lower-case, '.' split off, split on spaces)",
    "BERTScore: RadEval's vendored copy of bert-score on transformers 5 (ReXrank: bert-score 0.3.11 on "
    "transformers 3.0.1); same model (distilroberta-base), layer 5, baseline rescaling, no IDF",
    "SembScore and CheXbert labels: RadEval's CheXbert (the same chexbert.pth weights) instead of "
    "CXR-Report-Metric's encode.py",
    "RadGraph: RadEval's vendored DyGIE++/AllenNLP inference of the original RadGraph model "
    "(radgraph.tar.gz) instead of AllenNLP 1.1.0; same exact-match entity and relation F1",
    "ReXrank keeps only studies present in both files; evaluate scores every prediction, one per study",
]
