"""BLEU-1..4, METEOR, ROUGE-L and CIDEr(-D) with the COCO caption toolkit (``pycocoevalcap``).

The corpus figures are the toolkit's own (``Bleu(4)`` with its "closest" reference length,
``Meteor`` — the METEOR 1.5 jar, run with Java —, ``Rouge``, ``Cider``) on texts normalised by
:mod:`.normalize`; no PTB tokenizer is run, as in R2Gen. Alongside them we keep per-sample
statistics from which the same corpus figures can be recomputed on a resample (bootstrap):
the BLEU n-gram counts the toolkit's BleuScorer cooks (additive over samples), and the
per-sample METEOR, ROUGE-L and CIDEr-D scores (the corpus ROUGE-L and CIDEr-D are their means;
the corpus METEOR is the jar's aggregate, so a resample uses the mean of segment scores).

METEOR runs through :class:`.meteor.MeteorProcess` (the toolkit's jar and protocol with a
watchdog): when it fails, its figures are None/NaN with the reason in ``meteor_error``, and the
other metrics are still computed.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field

import numpy as np

from .meteor import MeteorError, MeteorProcess

NLG_KEYS = ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"]
_SMALL, _TINY = 1e-9, 1e-15  # the toolkit's constants in BleuScorer.compute_score


@dataclass
class NLGResult:
    corpus: dict[str, float]  # the toolkit's corpus figures, keys NLG_KEYS
    bleu_correct: np.ndarray  # [N, 4] clipped n-gram matches
    bleu_guess: np.ndarray  # [N, 4] hypothesis n-grams
    bleu_testlen: np.ndarray  # [N]
    bleu_reflen: np.ndarray  # [N] (closest reference length)
    sentence_bleu4: np.ndarray  # [N] the toolkit's per-sample BLEU-4
    meteor: np.ndarray  # [N]; NaN when METEOR failed
    rouge_l: np.ndarray  # [N]
    cider: np.ndarray  # [N]
    meteor_error: str | None = None  # why METEOR has no value (corpus["METEOR"] is None then)
    # indexes of the predictions ("hypotheses") and references cut to METEOR_MAX_TOKENS for METEOR
    meteor_truncated: dict[str, list[int]] = field(default_factory=dict)


def compute_nlg(
    predictions: list[str], references: list[str], meteor: MeteorProcess | None = None
) -> NLGResult:
    """Score normalised predictions against normalised references (one reference each).

    ``meteor``: an already started :class:`MeteorProcess` (left open), else one is started here.
    A METEOR failure does not raise: see ``NLGResult.meteor_error``.
    """
    from pycocoevalcap.bleu.bleu_scorer import BleuScorer
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("nothing to evaluate: no predictions")
    res = {i: [p] for i, p in enumerate(predictions)}
    gts = {i: [r] for i, r in enumerate(references)}

    bleu = BleuScorer(n=4)
    for i in res:
        bleu += (res[i][0], gts[i])
    with contextlib.redirect_stdout(io.StringIO()):  # the toolkit prints its totals
        bleu_corpus, bleu_per = bleu.compute_score(option="closest", verbose=0)
    correct = np.array([c["correct"] for c in bleu.ctest], dtype=np.float64)
    guess = np.array([c["guess"] for c in bleu.ctest], dtype=np.float64)
    testlen = np.array([c["testlen"] for c in bleu.ctest], dtype=np.float64)
    reflen = np.array(
        [min((abs(r - c["testlen"]), r) for r in c["reflen"])[1] for c in bleu.ctest], dtype=np.float64
    )

    meteor_corpus, meteor_per, meteor_error, truncated = _meteor(gts, res, meteor)
    rouge, rouge_per = Rouge().compute_score(gts, res)
    cider, cider_per = Cider().compute_score(gts, res)
    corpus = {f"BLEU-{k + 1}": float(bleu_corpus[k]) for k in range(4)}
    corpus.update({"METEOR": meteor_corpus, "ROUGE-L": float(rouge), "CIDEr": float(cider)})
    return NLGResult(
        corpus=corpus,
        bleu_correct=correct,
        bleu_guess=guess,
        bleu_testlen=testlen,
        bleu_reflen=reflen,
        sentence_bleu4=np.array(bleu_per[3], dtype=np.float64),
        meteor=np.array(meteor_per, dtype=np.float64),
        rouge_l=np.array(rouge_per, dtype=np.float64),
        cider=np.array(cider_per, dtype=np.float64),
        meteor_error=meteor_error,
        meteor_truncated=truncated,
    )


def _meteor(gts: dict, res: dict, meteor: MeteorProcess | None):
    """(corpus, per-sample, error, truncated prediction indexes); a failure gives NaNs and its reason."""
    own = None
    try:
        if meteor is None:
            meteor = own = MeteorProcess()
        corpus, per = meteor.compute_score(gts, res)
        return float(corpus), per, None, dict(meteor.truncated)
    except MeteorError as e:
        return None, [float("nan")] * len(res), str(e), {}
    finally:
        if own is not None:
            own.close()


def bleu_from_counts(correct: np.ndarray, guess: np.ndarray, testlen, reflen) -> np.ndarray:
    """Corpus BLEU-1..4 from summed counts, exactly as BleuScorer.compute_score does.

    ``correct`` and ``guess`` are [..., 4] sums, ``testlen``/``reflen`` [...] sums; returns [..., 4].
    Vectorised so a bootstrap computes all resamples at once.
    """
    correct = np.asarray(correct, dtype=np.float64)
    guess = np.asarray(guess, dtype=np.float64)
    ratios = (correct + _TINY) / (guess + _SMALL)
    cumulative = np.cumprod(ratios, axis=-1)
    bleus = cumulative ** (1.0 / np.arange(1, 5))
    ratio = (np.asarray(testlen, dtype=np.float64) + _TINY) / (np.asarray(reflen, dtype=np.float64) + _SMALL)
    with np.errstate(divide="ignore", over="ignore"):
        penalty = np.where(ratio < 1, np.exp(1 - 1 / ratio), 1.0)
    return bleus * penalty[..., None]
