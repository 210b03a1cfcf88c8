"""Paired bootstrap confidence intervals and significance tests.

A resample draws N samples with replacement (numpy ``default_rng(seed)``); every metric is
recomputed on it from per-sample statistics, all resamples at once as a [B, N] matrix of draw
counts:

- BLEU-1..4 exactly as the COCO toolkit computes a corpus BLEU, from the summed n-gram counts;
- ROUGE-L and CIDEr-D as the mean of per-sample scores (as the toolkit's corpus figures are;
  CIDEr's document frequencies stay those of the full test set);
- METEOR as the mean of segment scores (the toolkit's corpus METEOR is the jar's aggregate,
  close to but not equal to that mean);
- clinical precision/recall/F1 from the resampled per-observation TP/FP/FN.

A metric whose per-sample values are NaN (METEOR when it failed) is left out.
Diversity figures are not bootstrapped: a resample repeats samples by construction.
Intervals are percentile intervals. Two runs on the same test set are compared with the same
resamples for both (paired); a difference is significant when its interval excludes 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .clinical import scores_from_counts
from .nlg import bleu_from_counts

BOOTSTRAP_KEYS = [
    "BLEU-1",
    "BLEU-2",
    "BLEU-3",
    "BLEU-4",
    "METEOR",
    "ROUGE-L",
    "CIDEr",
    "CE-micro-14-precision",
    "CE-micro-14-recall",
    "CE-micro-14-F1",
    "CE-macro-14-F1",
    "CE-micro-5-F1",
    "CE-macro-5-F1",
]


@dataclass
class SampleTable:
    """Per-sample statistics of one evaluated run (N samples)."""

    bleu_correct: np.ndarray  # [N, 4]
    bleu_guess: np.ndarray  # [N, 4]
    bleu_testlen: np.ndarray  # [N]
    bleu_reflen: np.ndarray  # [N]
    meteor: np.ndarray  # [N]
    rouge_l: np.ndarray  # [N]
    cider: np.ndarray  # [N]
    pred_pos: np.ndarray  # [N, 14] bool
    ref_pos: np.ndarray  # [N, 14] bool

    @property
    def n(self) -> int:
        return len(self.meteor)


def draw_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """[B, N] how often each sample is drawn in each resample."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    flat = (idx + (np.arange(resamples) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=resamples * n).reshape(resamples, n).astype(np.float64)


def metrics_for_weights(t: SampleTable, w: np.ndarray) -> dict[str, np.ndarray]:
    """Every bootstrap metric for each row of draw counts ``w`` [B, N]; arrays of shape [B]."""
    size = w.sum(1)
    bleu = bleu_from_counts(w @ t.bleu_correct, w @ t.bleu_guess, w @ t.bleu_testlen, w @ t.bleu_reflen)
    out = {f"BLEU-{k + 1}": bleu[:, k] for k in range(4)}
    out["METEOR"] = (w @ t.meteor) / size
    out["ROUGE-L"] = (w @ t.rouge_l) / size
    out["CIDEr"] = (w @ t.cider) / size
    pred, ref = t.pred_pos.astype(np.float64), t.ref_pos.astype(np.float64)
    tp = w @ (pred * ref)
    fp = w @ (pred * (1 - ref))
    fn = w @ ((1 - pred) * ref)
    ce = scores_from_counts(tp, fp, fn)
    out["CE-micro-14-precision"] = ce["micro-14"]["precision"]
    out["CE-micro-14-recall"] = ce["micro-14"]["recall"]
    out["CE-micro-14-F1"] = ce["micro-14"]["F1"]
    out["CE-macro-14-F1"] = ce["macro-14"]["F1"]
    out["CE-micro-5-F1"] = ce["micro-5"]["F1"]
    out["CE-macro-5-F1"] = ce["macro-5"]["F1"]
    return out


def point_estimates(t: SampleTable) -> dict[str, float]:
    return {k: float(v[0]) for k, v in metrics_for_weights(t, np.ones((1, t.n))).items()}


def confidence_intervals(t: SampleTable, resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    w = draw_counts(t.n, resamples, seed)
    values = metrics_for_weights(t, w)
    point = point_estimates(t)
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    out = {}
    for key in BOOTSTRAP_KEYS:
        if np.isnan(point[key]):  # a metric that failed (METEOR without Java) has no interval
            continue
        low, high = np.percentile(values[key], q)
        out[key] = {"value": point[key], "low": float(low), "high": float(high)}
    return out


def paired_comparison(
    a: SampleTable, b: SampleTable, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict:
    """A minus B for every bootstrap metric, with a paired percentile interval and p-value."""
    if a.n != b.n:
        raise ValueError(f"runs have {a.n} and {b.n} samples: a paired comparison needs the same test set")
    w = draw_counts(a.n, resamples, seed)
    va, vb = metrics_for_weights(a, w), metrics_for_weights(b, w)
    pa, pb = point_estimates(a), point_estimates(b)
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    out = {}
    for key in BOOTSTRAP_KEYS:
        if np.isnan(pa[key]) or np.isnan(pb[key]):  # a metric that failed in either run
            continue
        diff = va[key] - vb[key]
        low, high = np.percentile(diff, q)
        p = min(1.0, 2 * min(float(np.mean(diff <= 0)), float(np.mean(diff >= 0))))
        out[key] = {
            "A": pa[key],
            "B": pb[key],
            "difference": pa[key] - pb[key],
            "low": float(low),
            "high": float(high),
            "p_value": p,
            "significant": bool(low > 0 or high < 0),
        }
    return out
