"""Clinical efficacy: precision, recall and F1 of the CheXpert observations of generated reports
against those of the reference reports, both labelled by :mod:`.chexpert_labeler`.

Convention (stated in metrics.json): an observation counts as present only when labelled 1
(positive); uncertain (-1), negative (0) and not mentioned count as absent. Micro averages pool
the true/false positives and false negatives of the observations; macro averages are the mean
of the per-observation figures over the observations that are present in at least one
reference or prediction (an observation absent from both has no defined F1 and is left out).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from .chexpert_labeler import OBSERVATIONS, TOP5

CONVENTION = (
    "positive = labeler value 1; uncertain (-1), negative (0) and unmentioned count as negative; "
    "micro = pooled TP/FP/FN; macro = mean over observations present in a reference or a prediction"
)
GROUPS = {"14": OBSERVATIONS, "5": TOP5}


def positive_matrix(labels: list[dict[str, int | None]]) -> np.ndarray:
    """[N, 14] booleans: observation labelled positive."""
    return np.array([[row.get(obs) == 1 for obs in OBSERVATIONS] for row in labels], dtype=bool).reshape(
        len(labels), len(OBSERVATIONS)
    )


def _prf(tp, fp, fn):
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        r = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return p, r, f


def scores_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, np.ndarray]:
    """Micro/macro P/R/F1 over the 14 and the top 5 from per-observation counts [..., 14].

    Leading axes (bootstrap resamples) are kept; returns arrays of shape [...].
    """
    out = {}
    p, r, f = _prf(tp, fp, fn)
    defined = (tp + fp + fn) > 0
    for name, group in GROUPS.items():
        idx = [OBSERVATIONS.index(o) for o in group]
        mp, mr, mf = _prf(tp[..., idx].sum(-1), fp[..., idx].sum(-1), fn[..., idx].sum(-1))
        d = defined[..., idx]
        n = np.maximum(d.sum(-1), 1)
        out[f"micro-{name}"] = {"precision": mp, "recall": mr, "F1": mf}
        out[f"macro-{name}"] = {
            "precision": (p[..., idx] * d).sum(-1) / n,
            "recall": (r[..., idx] * d).sum(-1) / n,
            "F1": (f[..., idx] * d).sum(-1) / n,
        }
    return out


def best_constant(ref_pos: np.ndarray, group: list[str] = TOP5) -> dict:
    """The highest micro F1 over ``group`` that one report written for every study can reach.

    A constant report claiming the set S of observations positive for all N studies has TP = the
    references' positives of S, FP = |S| N - TP and FN = P - TP (P: all reference positives of the
    group), so its micro F1 is 2 TP / (|S| N + P); every non-empty S is tried (2^5 - 1 for the top 5).
    """
    n = len(ref_pos)
    positives = {o: int(ref_pos[:, OBSERVATIONS.index(o)].sum()) for o in group}
    total = sum(positives.values())
    best = {"F1": 0.0, "claims": []}
    if n == 0 or total == 0:
        return best
    for k in range(1, len(group) + 1):
        for claims in combinations(group, k):
            f1 = 2 * sum(positives[o] for o in claims) / (k * n + total)
            if f1 > best["F1"]:
                best = {"F1": f1, "claims": list(claims)}
    return best


def clinical_metrics(pred_pos: np.ndarray, ref_pos: np.ndarray) -> dict:
    """The clinical block of metrics.json from [N, 14] positive matrices."""
    tp = (pred_pos & ref_pos).sum(0)
    fp = (pred_pos & ~ref_pos).sum(0)
    fn = (~pred_pos & ref_pos).sum(0)
    p, r, f = _prf(tp, fp, fn)
    per = {}
    for k, obs in enumerate(OBSERVATIONS):
        per[obs] = {
            "precision": float(p[k]),
            "recall": float(r[k]),
            "F1": float(f[k]) if tp[k] + fp[k] + fn[k] > 0 else None,
            "TP": int(tp[k]),
            "FP": int(fp[k]),
            "FN": int(fn[k]),
            "reference_positives": int(ref_pos[:, k].sum()),
            "predicted_positives": int(pred_pos[:, k].sum()),
        }
    summary = {
        group: {k: float(v) for k, v in values.items()}
        for group, values in scores_from_counts(tp, fp, fn).items()
    }
    return {"convention": CONVENTION, **summary, "per_observation": per}
