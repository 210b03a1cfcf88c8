"""Diversity and mode collapse of the generated reports.

On the normalised texts (the ones the NLG metrics score): how many distinct predictions, their
share, the most frequent prediction and how often it occurs, distinct-1/2 (distinct n-grams
over all n-grams of all predictions), and the mean length in tokens of predictions and
references. The same figures for the references show what a varied output looks like.
"""

from __future__ import annotations

from collections import Counter


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
