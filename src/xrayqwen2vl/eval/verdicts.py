"""Verdicts: what a reader of an evaluation must not miss, as warnings.

One mechanism for every check: ``metrics["warnings"]`` is a list of strings, each starting with
its kind ("mode collapse: …"); the console prints each as ``WARNING: <text>``
(:func:`warning_lines`), and report.html shows them in a banner at the top of the page. A check
looks at the metrics (or the inputs) and calls :func:`add_warning`; a check that also drives an
exit code (``--fail-on-collapse``) keeps its decision in a structured block of metrics.json
(``diversity.collapse``) so nothing has to parse the text.

Checks here:

- **mode collapse** (:func:`collapse_check`): the most frequent prediction is written for at
  least ``MOST_FREQUENT_SHARE`` (20%) of the studies — and at least twice, so that a set of 1–4
  studies is not flagged for having a prediction at all — or fewer than ``DISTINCT_SHARE`` (50%)
  of the predictions are distinct;
- **no better than a constant report**: the headline figure of the model does not exceed that of
  the constant most-common-reference report, or that of the best constant claim of findings
  (``clinical.best_constant``);
- **empty predictions**, **METEOR failed** and **METEOR input truncated** (added by evaluate).
"""

from __future__ import annotations

MOST_FREQUENT_SHARE = 0.20
DISTINCT_SHARE = 0.50


def add_warning(metrics: dict, text: str) -> None:
    """Append one warning ("kind: what happened; what it means") to ``metrics["warnings"]``."""
    metrics.setdefault("warnings", []).append(text)


def warning_lines(metrics: dict) -> list[str]:
    """The console form: one ``WARNING: …`` line per warning."""
    return [f"WARNING: {w}" for w in metrics.get("warnings", [])]


def lines_note(lines: list[int], limit: int = 10) -> str:
    """'line 3' / 'lines 3, 7, 9 and 12 more' for a warning."""
    shown = ", ".join(str(n) for n in lines[:limit])
    more = f" and {len(lines) - limit} more" if len(lines) > limit else ""
    return f"line{'s' if len(lines) > 1 else ''} {shown}{more}"


def collapse_check(predictions: dict, n: int) -> dict:
    """The collapse decision from the diversity block of the predictions (``text_diversity``)."""
    top_share = predictions["most_frequent_share"]
    top_count = predictions["most_frequent_count"]
    distinct_share = predictions["distinct_share"]
    reasons = []
    if top_count >= 2 and top_share >= MOST_FREQUENT_SHARE:
        reasons.append(
            f"the most frequent prediction is written for {top_count} of {n} studies "
            f"({top_share:.1%} >= {MOST_FREQUENT_SHARE:.0%})"
        )
    if distinct_share < DISTINCT_SHARE:
        reasons.append(
            f"only {predictions['distinct']} of {n} predictions are distinct "
            f"({distinct_share:.1%} < {DISTINCT_SHARE:.0%})"
        )
    return {
        "collapsed": bool(reasons),
        "thresholds": {"most_frequent_share": MOST_FREQUENT_SHARE, "distinct_share": DISTINCT_SHARE},
        "reasons": reasons,
    }


def collapse_warning(check: dict, most_frequent: str) -> str | None:
    if not check["collapsed"]:
        return None
    shown = most_frequent if len(most_frequent) <= 120 else most_frequent[:117] + "..."
    return (
        f"mode collapse: {'; '.join(check['reasons'])}. The model writes the same report whatever the "
        f'images show (most frequent, normalised: "{shown}")'
    )


def baseline_warning(headline: dict) -> str | None:
    """The model's headline figure does not beat a constant report: the most common reference
    written for every study, or the best claim of findings a constant report can make."""
    model, constant, best = headline["value"], headline["constant_baseline"], headline["best_constant"]
    start = f"no better than a constant report: {headline['metric']} {model:.3f} does not exceed the"
    if not best["claims"]:  # the references have no positive of the group: nothing to judge
        return None
    if model <= constant:
        return f"{start} {constant:.3f} of writing the most common reference for every study"
    if model <= best["F1"]:
        return (
            f"{start} {best['F1']:.3f} of one report claiming {' and '.join(best['claims'])} for every study: "
            "the model does not show that it reads the images"
        )
    return None
