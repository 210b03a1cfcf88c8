"""Diversity of the generated reports, at the level of text and of labels, and what their
repetition hides.

Text (on the normalised texts the NLG metrics score): how many distinct predictions, their share,
the most frequent prediction and how often it occurs, distinct-1/2 (distinct n-grams over all
n-grams of all predictions), and the mean length in tokens of predictions and references. The
same figures for the references show what a varied output looks like.

Labels (:func:`repetition`): a report repeated across studies is a problem only where those
studies' references state findings it does not. For each prediction written for two or more
studies: how many studies it is written for (N), how many of them have a reference that states a
finding the prediction does not (M, "hidden"), and how many references are that same text (R:
the references' own repetition; only the N - R copies beyond it count, and at most that many of
the M). Over all repeated predictions: ``hidden``, the studies with findings that got a repeated
prediction leaving one out, and its share of all studies whose references state a finding
(``hidden_share``); ``blindness``, ``hidden`` against what the same predictions would hide if they
were handed out regardless of the images (``expected_if_blind``: for each, its counted copies
times the share of all studies whose findings it leaves out) — about 1 for a report written
whatever the film shows, near 0 for one written only for the films it fits. The collapse verdict
(verdicts.py) judges these two. Also: the number of distinct label sets predicted against the
number among the references.

A *finding* is one of the 13 CheXpert observations other than "No Finding" labelled positive in the
reference; a prediction *states* it when it labels it positive or uncertain (a hedged mention is
not a silence). Uncertain references and abnormalities outside the 14 observations are not counted.
The labels are our rule labeler's unless the caller gives others (:class:`StudyLabels`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .chexpert_labeler import OBSERVATIONS

NO_FINDING = "No Finding"
REPEATED_SHOWN = 5  # repeated predictions listed in metrics.json, most hiding first


@dataclass(frozen=True)
class StudyLabels:
    """Per-study labels of the predictions and references from one labeler: a dict of the 14
    CheXpert observations to 1 / 0 / -1 / None per report, in study order. ``evaluate`` takes one
    to judge repetition by another labeler's labels (CheXbert, when the metrics extra is there)."""

    labeler: str
    predictions: list[dict]
    references: list[dict]


def distinct_n(texts: list[str], n: int) -> float:
    grams: Counter = Counter()
    total = 0
    for text in texts:
        words = text.split()
        for i in range(len(words) - n + 1):
            grams[tuple(words[i : i + n])] += 1
            total += 1
    return len(grams) / total if total else 0.0


def text_diversity(texts: list[str]) -> dict:
    counts = Counter(texts)
    top, top_count = counts.most_common(1)[0] if counts else ("", 0)
    n = len(texts)
    return {
        "distinct": len(counts),
        "distinct_share": len(counts) / n if n else 0.0,
        "most_frequent": top,
        "most_frequent_count": top_count,
        "most_frequent_share": top_count / n if n else 0.0,
        "distinct-1": distinct_n(texts, 1),
        "distinct-2": distinct_n(texts, 2),
        "mean_length": sum(len(t.split()) for t in texts) / n if n else 0.0,
    }


def diversity_metrics(predictions: list[str], references: list[str]) -> dict:
    pred = text_diversity(predictions)
    ref = text_diversity(references)
    return {
        "predictions": pred,
        "references": ref,
        "length_ratio": pred["mean_length"] / ref["mean_length"] if ref["mean_length"] else 0.0,
    }


def findings_of(labels: dict) -> frozenset[str]:
    """The observations a report states as present (positive), "No Finding" aside."""
    return frozenset(o for o in OBSERVATIONS if o != NO_FINDING and labels.get(o) == 1)


def stated_in(labels: dict) -> frozenset[str]:
    """The observations a report mentions as present or possible (positive or uncertain)."""
    return frozenset(o for o in OBSERVATIONS if o != NO_FINDING and labels.get(o) in (1, -1))


def label_set(labels: dict) -> tuple[str, ...]:
    """A report at the level of labels: its positive observations ("No Finding" included)."""
    return tuple(o for o in OBSERVATIONS if labels.get(o) == 1)


def _label_sets(labels: list[dict]) -> dict:
    counts = Counter(label_set(x) for x in labels)
    top, count = counts.most_common(1)[0] if counts else ((), 0)
    return {
        "distinct": len(counts),
        "most_frequent": list(top),
        "most_frequent_share": count / len(labels) if labels else 0.0,
    }


def repetition(hyp: list[str], ref: list[str], pred_labels: list[dict], ref_labels: list[dict]) -> dict:
    """What the repeated predictions hide (module description): per repeated prediction N, M, R and
    the observations missed; over all of them ``hidden`` and ``hidden_share``; label sets."""
    n = len(hyp)
    if not (len(ref) == len(pred_labels) == len(ref_labels) == n):
        raise ValueError(
            f"repetition: {n} predictions, {len(ref)} references, {len(pred_labels)} and "
            f"{len(ref_labels)} label rows: one of each per study"
        )
    studies: dict[str, list[int]] = {}
    for k, text in enumerate(hyp):
        studies.setdefault(text, []).append(k)
    own = Counter(ref)
    ref_findings = [findings_of(x) for x in ref_labels]
    with_findings = sum(1 for f in ref_findings if f)
    repeated = []
    for text, ks in studies.items():
        if len(ks) < 2:
            continue
        missed: Counter = Counter()
        hidden = 0
        for k in ks:
            left_out = ref_findings[k] - stated_in(pred_labels[k])
            hidden += bool(left_out)
            missed.update(left_out)
        # Reference texts handed out at random (a reference-shuffled run) repeat each text exactly
        # as often as the references do: only the copies beyond the references' own use of the
        # text count against the model, and of the studies it hides at most as many.
        copies = max(len(ks) - own[text], 0)
        states = stated_in(pred_labels[ks[0]])
        unfit = sum(1 for f in ref_findings if f - states)  # studies whose findings it leaves out
        repeated.append(
            {
                "text": text,
                "count": len(ks),
                "hidden": hidden,
                "references_with_this_text": own[text],
                "counted": min(hidden, copies),
                # what the counted copies would hide, handed out regardless of the images
                "expected_if_blind": copies * unfit / n,
                "missed": dict(missed.most_common()),
            }
        )
    repeated.sort(key=lambda r: (-r["counted"], -r["count"]))
    hidden = sum(r["counted"] for r in repeated)
    expected = sum(r["expected_if_blind"] for r in repeated)
    return {
        "studies": n,
        "studies_with_findings": with_findings,
        "repeated_predictions": len(repeated),
        "repeated_predictions_hiding": sum(1 for r in repeated if r["counted"]),
        "studies_given_a_repeated_prediction": sum(r["count"] for r in repeated),
        "hidden": hidden,
        "hidden_share": hidden / with_findings if with_findings else 0.0,
        "expected_if_blind": expected,
        "blindness": hidden / expected if expected else 0.0,
        "repeated": repeated[:REPEATED_SHOWN],
        "label_sets": {"predictions": _label_sets(pred_labels), "references": _label_sets(ref_labels)},
    }
