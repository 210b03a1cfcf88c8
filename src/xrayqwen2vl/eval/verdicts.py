"""Verdicts: what a reader of an evaluation must not miss, as warnings.

One mechanism for every check: ``metrics["warnings"]`` is a list of strings, each starting with
its kind ("mode collapse: …"); the console prints each as ``WARNING: <text>``
(:func:`warning_lines`), and report.html shows them in a banner at the top of the page. A check
looks at the metrics (or the inputs) and calls :func:`add_warning`; a check that also drives an
exit code (``--fail-on-collapse``) keeps its decision in a structured block of metrics.json
(``diversity.collapse``) so nothing has to parse the text.

Checks here:

- **mode collapse** (:func:`collapse_check`): predictions repeated across studies leave out the
  findings those studies' references state, for at least ``HIDDEN_SHARE`` (20%) of the studies
  whose references state any (and at least ``MIN_HIDDEN``, 2), and at least ``BLINDNESS`` (half)
  as often as the same predictions handed out regardless of the images would. Repetition alone
  is no evidence (one normal report for every normal film is what a good model writes); the
  figures come from ``diversity.repetition``; the thresholds and the runs they were chosen on are
  in doc/evaluation.md ("Mode collapse: what the repetition hides");
- **no better than a constant report**: the headline figure of the model does not exceed that of
  the constant most-common-reference report, or that of the best constant claim of findings
  (``clinical.best_constant``);
- **empty predictions**, **METEOR failed** and **METEOR input truncated** (added by evaluate).
"""

from __future__ import annotations

HIDDEN_SHARE = 0.20
BLINDNESS = 0.50
MIN_HIDDEN = 2


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


def _shown(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def collapse_check(rep: dict, labeler: str) -> dict:
    """The collapse decision from what the repeated predictions hide (``diversity.repetition``)."""
    reasons = []
    top = rep["repeated"][0] if rep["repeated"] else None
    if (
        top is not None
        and rep["hidden"] >= MIN_HIDDEN
        and rep["hidden_share"] >= HIDDEN_SHARE
        and rep["blindness"] >= BLINDNESS
    ):
        missed = ", ".join(f"{o} {c}" for o, c in list(top["missed"].items())[:3])
        own = top["references_with_this_text"]
        reasons.append(
            f"the same report for {top['count']} of {rep['studies']} studies, {top['hidden']} of which have "
            f"findings it does not state (most often left out: {missed})"
            + (f"; {own} of the references are this very text" if own else "")
        )
        others = rep["repeated_predictions_hiding"] - 1
        who = (
            f"it and {others} other repeated prediction{'s' if others > 1 else ''} leave"
            if others
            else "it leaves"
        )
        reasons.append(
            f"{who} out stated findings of {rep['hidden']} of the {rep['studies_with_findings']} studies whose "
            f"references state any ({rep['hidden_share']:.1%} >= {HIDDEN_SHARE:.0%}), {rep['blindness']:.0%} of "
            f"the {rep['expected_if_blind']:.1f} the same predictions would leave out if handed out at random "
            f"(>= {BLINDNESS:.0%})"
        )
    return {
        "collapsed": bool(reasons),
        "thresholds": {"hidden_share": HIDDEN_SHARE, "blindness": BLINDNESS, "min_hidden": MIN_HIDDEN},
        "labeler": labeler,
        "reasons": reasons,
        "report": top["text"] if reasons else None,
    }


def collapse_warning(check: dict) -> str | None:
    if not check["collapsed"]:
        return None
    return (
        f'mode collapse: {"; ".join(check["reasons"])}. The report, normalised: "{_shown(check["report"])}"'
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
