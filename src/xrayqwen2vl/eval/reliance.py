"""Does the model look at the X-ray? Compare its predictions on the true images with those on
counterfactual images (other studies' images, or blank ones: ``xrayqwen2vl counterfactual``),
scored against the same reference reports.

A model that reads findings off the film writes worse reports when it is shown another study's
film: its clinical figures drop, significantly (a paired bootstrap interval of the drop that
excludes 0). A model that writes the prior whatever it sees shows no drop, and with greedy
decoding most of its predictions do not change at all. Both figures are reported per
counterfactual, with a verdict:

- ``ignores the image``: at least ``IGNORED_SHARE`` of the predictions are unchanged;
- ``no evidence of reading findings``: predictions change, but the headline clinical figure
  (CE micro-5 F1) does not drop significantly;
- ``reads the image``: the headline figure drops and the drop's 95% interval excludes 0.

The first two are warnings, through the same mechanism as evaluate's (``eval/verdicts.py``:
"WARNING: …" lines, and the ``warnings`` list of reliance.json). The overall verdict reads only when
every counterfactual reads (:func:`overall_verdict`). Mode collapse is judged by evaluate's own
rule on each run (``collapse`` in reliance.json); on the true images it is a warning here too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..data.counterfactual import KINDS, counterfactual_name
from ..data.records import InputFileError
from ..fileio import atomic_write_json, refuse_output_over_inputs
from .bootstrap import paired_comparison
from .evaluate import evaluate, load_run, output_files
from .inputs import read_predictions
from .verdicts import add_warning, collapse_warning, warning_lines

HEADLINE = "CE-micro-5-F1"
# Figures the console table shows (reliance.json has every bootstrap metric).
SHOWN = ["CE-micro-5-F1", "CE-micro-14-F1", "CE-macro-14-F1", "BLEU-1", "BLEU-4", "ROUGE-L"]
IGNORED_SHARE = 0.9
IGNORES, NO_EVIDENCE, READS = "ignores the image", "no evidence of reading findings", "reads the image"
_WS = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _WS.sub(" ", text).strip()


def check_same_studies(true_path: Path, other_path: Path, true_preds, other_preds) -> None:
    """Both prediction files must hold the same test studies in the same order (same references)."""
    if len(true_preds) != len(other_preds):
        raise InputFileError(
            f"{other_path} has {len(other_preds)} predictions, {true_path} {len(true_preds)}: "
            "predict the counterfactual split of the same test split"
        )
    for a, b in zip(true_preds, other_preds, strict=True):
        if _norm(a.label) != _norm(b.label):
            raise InputFileError(
                f"{other_path}:{b.line}: its label differs from {true_path}:{a.line}: "
                "the counterfactual predictions must be of the same studies in the same order"
            )


def unchanged(true_preds, other_preds) -> list[int]:
    """Indices of the studies whose prediction is the same text (up to whitespace) on both."""
    return [
        k
        for k, (a, b) in enumerate(zip(true_preds, other_preds, strict=True))
        if _norm(a.predict) == _norm(b.predict)
    ]


def verdict(drop: dict, unchanged_share: float) -> str:
    if unchanged_share >= IGNORED_SHARE:
        return IGNORES
    return READS if drop["low"] > 0 else NO_EVIDENCE


def overall_verdict(verdicts: list[str]) -> str:
    """The verdict over the counterfactuals: "reads the image" only when every counterfactual
    reads (a model that follows swapped films but writes the same report on blank ones has not
    shown it reads findings), "ignores the image" when any one ignores it, else no evidence."""
    if not verdicts:
        raise ValueError("no counterfactual verdicts")
    if all(v == READS for v in verdicts):
        return READS
    return IGNORES if IGNORES in verdicts else NO_EVIDENCE


def warning_text(kind: str, result: dict) -> str | None:
    n, u, d = result["n"], result["unchanged"], result["metrics"][HEADLINE]
    drop = f"CE micro-5 F1 drop {d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
    if result["verdict"] == IGNORES:
        return (
            f"the model ignores the image: {u['count']}/{n} predictions ({u['share']:.0%}) did not change "
            f"with {kind} images; {drop}"
        )
    if result["verdict"] == NO_EVIDENCE:
        return (
            f"no evidence the model reads findings from the image: with {kind} images {drop}, "
            f"an interval that does not exclude 0 ({u['count']}/{n} predictions unchanged)"
        )
    return None


def _dataset_for(images_from: Path | None, kind: str | None) -> Path | None:
    if images_from is None or kind is None:
        return images_from
    path = images_from.with_name(f"{counterfactual_name(images_from.stem, kind)}.json")
    return path if path.is_file() else None


def _refuse_outputs_over_inputs(out: Path, true_path: Path, counterfactual: dict, images_from) -> None:
    """Before anything is read or written: no file this run writes is one of its inputs."""
    outputs = {"OUT/reliance.json": out / "reliance.json"}
    for name in ("true", *counterfactual):
        outputs.update(output_files(out / name, f"OUT/{name}"))
    inputs = {"--true": true_path, **{f"--{k}": p for k, p in counterfactual.items()}}
    inputs["--images-from"] = images_from
    for kind in counterfactual:
        inputs[f"the {kind} dataset"] = _dataset_for(images_from, kind)
    refuse_output_over_inputs(outputs, inputs)


def image_reliance(
    true_predictions: str | Path,
    counterfactual_predictions: dict[str, str | Path],
    out_dir: str | Path,
    lang: str = "en",
    images_from: str | Path | None = None,
    resamples: int = 1000,
    seed: int = 0,
    html: bool = True,
) -> dict:
    """Evaluate the true and each counterfactual prediction file (OUT/true/, OUT/<kind>/), compare
    each counterfactual with the true one (paired bootstrap: drop = true - counterfactual), count
    the unchanged predictions, and write OUT/reliance.json."""
    if not counterfactual_predictions:
        raise ValueError("no counterfactual predictions: give the swapped (and/or blank) predictions")
    bad = [k for k in counterfactual_predictions if k not in KINDS]
    if bad:
        raise ValueError(f"counterfactual kinds {bad}: expected {', '.join(KINDS)}")
    out = Path(out_dir)
    true_path = Path(true_predictions)
    images_from = Path(images_from) if images_from is not None else None
    _refuse_outputs_over_inputs(out, true_path, counterfactual_predictions, images_from)
    true_preds = read_predictions(true_path)
    paths = {kind: Path(p) for kind, p in counterfactual_predictions.items()}
    preds = {kind: read_predictions(p) for kind, p in paths.items()}
    for kind, p in preds.items():
        check_same_studies(true_path, paths[kind], true_preds, p)

    def run(name: str, path: Path, kind: str | None) -> None:
        dataset = _dataset_for(images_from, kind)
        evaluate(
            path,
            out / name,
            lang=lang,
            images_from=dataset,
            media_dir=images_from.parent if dataset is not None else None,
            resamples=resamples,
            seed=seed,
            title=f"image reliance: predictions on {name} images",
            html=html,
        )

    run("true", true_path, None)
    true_table, _ = load_run(out / "true")
    result: dict = {
        "n": len(true_preds),
        "true": str(true_path),
        "headline": HEADLINE,
        "resamples": resamples,
        "seed": seed,
        "drop": "true minus counterfactual; paired bootstrap over the test studies, 95% percentile interval",
        "ignored_if_unchanged_share_at_least": IGNORED_SHARE,
        "counterfactuals": {},
        "warnings": [],
    }
    for kind, path in paths.items():
        run(kind, path, kind)
        table, _ = load_run(out / kind)
        same = unchanged(true_preds, preds[kind])
        share = len(same) / len(true_preds)
        metrics = paired_comparison(true_table, table, resamples, seed)
        metrics = {
            key: {
                "true": m["A"],
                "counterfactual": m["B"],
                "difference": m["difference"],
                "low": m["low"],
                "high": m["high"],
                "p_value": m["p_value"],
                "significant": m["significant"],
            }
            for key, m in metrics.items()
        }
        entry = {
            "n": len(true_preds),
            "predictions": str(path),
            "unchanged": {"count": len(same), "share": share, "indices": same},
            "metrics": metrics,
            "verdict": verdict(metrics[HEADLINE], share),
        }
        result["counterfactuals"][kind] = entry
        text = warning_text(kind, entry)
        if text:
            add_warning(result, text)
    result["verdict"] = overall_verdict([e["verdict"] for e in result["counterfactuals"].values()])
    # Mode collapse, judged by evaluate's rule on each run; on the true images it is a warning here too.
    result["collapse"] = {
        name: json.loads((out / name / "metrics.json").read_text(encoding="utf-8"))["diversity"]["collapse"]
        for name in ("true", *paths)
    }
    text = collapse_warning(result["collapse"]["true"])
    if text:
        add_warning(result, text.replace("mode collapse: ", "mode collapse on the true images: ", 1))
    atomic_write_json(out / "reliance.json", result)
    return result


def summary_lines(result: dict) -> list[str]:
    """The table ``xrayqwen2vl reliance`` prints, then its verdict and WARNING lines."""
    kinds = list(result["counterfactuals"])
    lines = [
        f"image reliance on {result['n']} studies ({result['resamples']} paired resamples; "
        "drop = true images minus counterfactual)"
    ]
    head = f"{'metric':<18}{'true':>7}" + "".join(f"{k:>9}{'drop':>9}   95% CI of drop   " for k in kinds)
    lines.append(head.rstrip())
    for key in SHOWN:
        first = result["counterfactuals"][kinds[0]]["metrics"][key]
        row = f"{key.replace('CE-', 'CE ').replace('-F1', ' F1'):<18}{first['true']:>7.3f}"
        for k in kinds:
            m = result["counterfactuals"][k]["metrics"][key]
            interval = f"[{m['low']:+.3f}, {m['high']:+.3f}]"
            row += f"{m['counterfactual']:>9.3f}{m['difference']:>+9.3f}   {interval:<17}"
        lines.append(row.rstrip())
    for k in kinds:
        e = result["counterfactuals"][k]
        u = e["unchanged"]
        lines.append(
            f"{k}: {u['count']}/{e['n']} predictions unchanged ({u['share']:.1%}); verdict: {e['verdict']}"
        )
    lines.append(f"image reliance verdict: {result['verdict']}")
    lines += warning_lines(result)
    return lines
