"""The whole evaluation of one prediction file: NLG metrics, clinical efficacy, diversity,
bootstrap intervals, the constant-report baseline, verdicts (warnings), per-sample results and
the HTML report.

Stages: check the output folder and read the inputs (before any work); score the predictions
and the constant most-common-reference report on the same studies; assemble metrics.json;
judge (warnings); write per_sample.jsonl, report.html and metrics.json.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.records import InputFileError
from ..fileio import atomic_write_json, atomic_write_text, check_regular_file, refuse_output_over_inputs
from .baselines import constant_description, most_common_text
from .bootstrap import SampleTable, confidence_intervals
from .chexpert_labeler import OBSERVATIONS, TOP5, label_report
from .clinical import best_constant, clinical_metrics, positive_matrix
from .diversity import StudyLabels, diversity_metrics, repetition
from .inputs import DatasetSample, Prediction, check_output_folder, read_dataset, read_jsonl, read_predictions
from .meteor import METEOR_MAX_TOKENS, METEOR_TIMEOUT, MeteorError
from .meteor import acquire as acquire_meteor
from .meteor import release as release_meteor
from .nlg import NLG_KEYS, NLGResult, compute_nlg
from .normalize import NORMALISATION, headers_note, normalize
from .verdicts import add_warning, baseline_warning, collapse_check, collapse_warning, lines_note

_WS = re.compile(r"\s+")

HEADLINE = "CE micro-5 F1"
HEADLINE_WHY = (
    "micro-averaged F1 of positive mentions of the five CheXpert competition observations (Atelectasis, "
    "Cardiomegaly, Consolidation, Edema, Pleural Effusion); 'No Finding' is not among them, so a constant "
    "normal report scores 0, and a constant report claiming findings for every study scores at most "
    "best_constant (see doc/evaluation.md)"
)
CONSTANT_NOTE = (
    "the most common reference of the evaluated studies (whitespace-normalised, ties: first seen) written "
    "as the prediction for every study, scored like the model"
)
CLINICAL_GROUPS = ("micro-14", "macro-14", "micro-5", "macro-5")


def _same_text(a: str, b: str) -> bool:
    return _WS.sub(" ", a).strip() == _WS.sub(" ", b).strip()


def match_dataset(predictions: list[Prediction], samples: list[DatasetSample], pred_path, data_path) -> None:
    """The dataset must be the one the predictions were made on: same count, same references."""
    if len(samples) != len(predictions):
        raise InputFileError(
            f"{data_path}: {len(samples)} samples but {pred_path} has {len(predictions)} predictions; "
            "--images-from must be the dataset the predictions were made on"
        )
    for k, (p, s) in enumerate(zip(predictions, samples, strict=True)):
        if not _same_text(p.label, s.report):
            raise InputFileError(
                f"{data_path}: entry {k}: its report differs from the label on {pred_path}:{p.line}; "
                "--images-from must be the dataset the predictions were made on, in the same order"
            )


def disagreements(pred: dict, ref: dict) -> list[dict]:
    """Observations where prediction and reference differ under the positive-only convention."""
    out = []
    for obs in OBSERVATIONS:
        if (pred[obs] == 1) != (ref[obs] == 1):
            out.append(
                {
                    "observation": obs,
                    "prediction": pred[obs],
                    "reference": ref[obs],
                    "kind": "false positive" if pred[obs] == 1 else "missed",
                }
            )
    return out


@dataclass
class Scored:
    """Everything computed from the texts: the model's scores and the constant report's."""

    hyp: list[str]  # normalised predictions
    ref: list[str]  # normalised references
    pred_labels: list[dict]
    ref_labels: list[dict]
    nlg: NLGResult
    constant: dict  # the constant most-common-reference baseline (metrics.json block)


def _score_constant(
    preds: list[Prediction], ref: list[str], ref_pos: np.ndarray, lang, keep_headers, meteor
) -> dict:
    text, count = most_common_text([p.label for p in preds])
    nlg = compute_nlg([normalize(text, lang, keep_headers)] * len(preds), ref, meteor=meteor)
    pos = positive_matrix([label_report(text, lang)] * len(preds))
    clinical = clinical_metrics(pos, ref_pos)
    return {
        "what": CONSTANT_NOTE,
        "report": text,
        "count": count,
        **nlg.corpus,
        "clinical": {group: clinical[group] for group in CLINICAL_GROUPS},
    }


def score(
    preds: list[Prediction], lang: str, keep_headers: bool, meteor_timeout: float = METEOR_TIMEOUT
) -> Scored:
    try:  # the JVM loads METEOR's tables while we label and normalise (or is still up from before)
        meteor = acquire_meteor(timeout=meteor_timeout)
    except MeteorError:
        meteor = None  # compute_nlg tries again and reports why METEOR has no value (no Java)
    finished = False
    try:
        hyp = [normalize(p.predict, lang, keep_headers) for p in preds]
        ref = [normalize(p.label, lang, keep_headers) for p in preds]
        pred_labels = [label_report(p.predict, lang) for p in preds]
        ref_labels = [label_report(p.label, lang) for p in preds]
        nlg = compute_nlg(hyp, ref, meteor=meteor)
        constant = _score_constant(preds, ref, positive_matrix(ref_labels), lang, keep_headers, meteor)
        finished = True
    finally:
        if meteor is not None:
            release_meteor(meteor, reuse=finished)
    return Scored(hyp, ref, pred_labels, ref_labels, nlg, constant)


def _bootstrap_block(table: SampleTable, nlg: NLGResult, resamples: int, seed: int) -> dict:
    intervals = confidence_intervals(table, resamples, seed) if resamples > 0 else {}
    if "METEOR" in intervals:
        # The jar's corpus METEOR is not the mean of its segment scores; the resamples give an
        # interval for that mean, which we move by the difference so it sits around the corpus value.
        m = intervals["METEOR"]
        shift = nlg.corpus["METEOR"] - m["value"]
        intervals["METEOR"] = {
            "value": nlg.corpus["METEOR"],
            "low": m["low"] + shift,
            "high": m["high"] + shift,
        }
    return {
        "resamples": resamples,
        "seed": seed,
        "level": 0.95,
        "method": (
            "percentile intervals over resampled test studies; BLEU recomputed from resampled n-gram counts, "
            "ROUGE-L/CIDEr from per-sample scores, clinical scores from resampled TP/FP/FN; METEOR: interval "
            "of the mean segment score moved by (corpus METEOR - mean segment score)"
        ),
        "intervals": intervals,
    }


def diversity_block(
    hyp: list[str],
    ref: list[str],
    pred_labels: list[dict],
    ref_labels: list[dict],
    lang: str,
    labels: StudyLabels | None = None,
) -> dict:
    """Text and label diversity, what the repeated predictions hide, and the collapse decision: by
    our labeler's labels, or by ``labels`` (another labeler's, e.g. CheXbert) when given."""
    if labels is None:
        labels = StudyLabels(f"xrayqwen2vl rule-based CheXpert labeler ({lang})", pred_labels, ref_labels)
    block = diversity_metrics(hyp, ref)
    block["repetition"] = repetition(hyp, ref, labels.predictions, labels.references)
    block["collapse"] = collapse_check(block["repetition"], labels.labeler)
    return block


def judge_texts(
    predictions: list[str], references: list[str], lang: str = "en", keep_headers: bool = False
) -> dict:
    """The diversity block (with the collapse decision) of prediction texts against their
    references, as ``evaluate`` computes it, without the NLG metrics (for calibration scripts)."""
    hyp = [normalize(p, lang, keep_headers) for p in predictions]
    ref = [normalize(r, lang, keep_headers) for r in references]
    pred_labels = [label_report(p, lang) for p in predictions]
    ref_labels = [label_report(r, lang) for r in references]
    return diversity_block(hyp, ref, pred_labels, ref_labels, lang)


def build_metrics(
    preds, predictions_path, lang, keep_headers, s: Scored, resamples, seed, labels: StudyLabels | None = None
) -> dict:
    nlg = s.nlg
    pred_pos, ref_pos = positive_matrix(s.pred_labels), positive_matrix(s.ref_labels)
    table = SampleTable(
        nlg.bleu_correct,
        nlg.bleu_guess,
        nlg.bleu_testlen,
        nlg.bleu_reflen,
        nlg.meteor,
        nlg.rouge_l,
        nlg.cider,
        pred_pos,
        ref_pos,
    )
    metrics: dict = {"n": len(preds), "lang": lang, "predictions": str(predictions_path), "warnings": []}
    clinical = clinical_metrics(pred_pos, ref_pos)
    clinical["labeler"] = f"xrayqwen2vl rule-based CheXpert labeler ({lang}), see doc/labeler.md"
    bootstrap = _bootstrap_block(table, nlg, resamples, seed)
    interval = bootstrap["intervals"].get("CE-micro-5-F1", {})
    metrics["headline"] = {
        "metric": HEADLINE,
        "value": clinical["micro-5"]["F1"],
        "low": interval.get("low"),
        "high": interval.get("high"),
        "constant_baseline": s.constant["clinical"]["micro-5"]["F1"],
        "best_constant": best_constant(ref_pos, TOP5),
        "why": HEADLINE_WHY,
    }
    metrics.update(nlg.corpus)
    if nlg.meteor_error:
        metrics["METEOR_error"] = nlg.meteor_error
    metrics["normalisation"] = NORMALISATION[lang]
    metrics["section_headers"] = headers_note(lang, keep_headers)
    metrics["nlg_toolkit"] = (
        "pycocoevalcap 1.2 (COCO caption toolkit): Bleu(4) with closest reference length, METEOR 1.5 "
        "(Java, the toolkit's jar and protocol, inputs cut to "
        f"{METEOR_MAX_TOKENS} tokens), ROUGE-L (beta 1.2), CIDEr-D; no PTB tokenizer; one reference per sample"
    )
    if lang == "zh":
        metrics["segmentation"] = "jieba (precise mode) before BLEU/METEOR/ROUGE-L/CIDEr"
    metrics["clinical"] = clinical
    metrics["constant_baseline"] = s.constant
    metrics["diversity"] = diversity_block(s.hyp, s.ref, s.pred_labels, s.ref_labels, lang, labels)
    metrics["bootstrap"] = bootstrap
    judge(metrics, preds, s)
    return metrics


def judge(metrics: dict, preds: list[Prediction], s: Scored) -> None:
    """The verdicts of evaluate, as warnings (see verdicts.py)."""
    d = metrics["diversity"]
    found = [
        collapse_warning(d["collapse"]),
        baseline_warning(metrics["headline"]),
    ]
    empty = [p.line for p in preds if not p.predict.strip()]
    if empty:
        found.append(
            f"empty predictions: {len(empty)} of {len(preds)} predictions are empty ({lines_note(empty)}); "
            "they are scored as written"
        )
    if s.nlg.meteor_error:
        found.append(f"METEOR failed, no METEOR figures: {s.nlg.meteor_error}")
    for side, what in (("hypotheses", "prediction"), ("references", "reference")):
        cut = s.nlg.meteor_truncated.get(side, [])
        if cut:
            found.append(
                f"METEOR input truncated: {len(cut)} {what}{'s' if len(cut) > 1 else ''} longer than "
                f"{METEOR_MAX_TOKENS} tokens, cut to the first {METEOR_MAX_TOKENS} tokens for METEOR only "
                f"({lines_note([preds[k].line for k in cut])}); BLEU, ROUGE-L and CIDEr score the full text"
            )
    for text in found:
        if text:
            add_warning(metrics, text)


def _number(x) -> float | None:
    return None if x is None or np.isnan(x) else float(x)


def per_sample_rows(preds, samples, s: Scored) -> list[dict]:
    nlg, rows = s.nlg, []
    for k, p in enumerate(preds):
        rows.append(
            {
                "index": k,
                "line": p.line,
                "prediction": p.predict,
                "reference": p.label,
                "images": samples[k].images if samples else [],
                "scores": {
                    "BLEU-4": float(nlg.sentence_bleu4[k]),
                    "METEOR": _number(nlg.meteor[k]),
                    "ROUGE-L": float(nlg.rouge_l[k]),
                    "CIDEr": float(nlg.cider[k]),
                },
                "bleu_counts": {
                    "correct": nlg.bleu_correct[k].astype(int).tolist(),
                    "guess": nlg.bleu_guess[k].astype(int).tolist(),
                    "testlen": int(nlg.bleu_testlen[k]),
                    "reflen": int(nlg.bleu_reflen[k]),
                },
                "labels_prediction": s.pred_labels[k],
                "labels_reference": s.ref_labels[k],
                "disagreements": disagreements(s.pred_labels[k], s.ref_labels[k]),
            }
        )
    return rows


# What evaluate writes into its --out folder.
OUTPUT_FILES = ("metrics.json", "per_sample.jsonl", "report.html")


def output_files(out_dir: str | Path, prefix: str = "OUT") -> dict[str, Path]:
    """The files ``evaluate`` writes under ``out_dir``, by name (for the output guard)."""
    return {f"{prefix}/{n}": Path(out_dir) / n for n in OUTPUT_FILES}


def evaluate(
    predictions_path: str | Path,
    out_dir: str | Path,
    lang: str = "en",
    images_from: str | Path | None = None,
    media_dir: str | Path | None = None,
    resamples: int = 1000,
    seed: int = 0,
    title: str | None = None,
    html: bool = True,
    keep_headers: bool = False,
    meteor_timeout: float = METEOR_TIMEOUT,
    collapse_labels: StudyLabels | None = None,
    extra_metrics: tuple[str, ...] = (),
    section: str = "both",
    rexrank_metrics: list[str] | None = None,
    green_endpoint: dict | None = None,
) -> dict:
    """Evaluate ``generated_predictions.jsonl``; write metrics.json, per_sample.jsonl, report.html.
    ``collapse_labels``: another labeler's labels of the predictions and references (in file
    order) to judge mode collapse by, instead of our rule labeler's. ``extra_metrics=("rexrank",)``
    adds ReXrank's suite (``rexrank_run.py``) on ``section``; ``green_endpoint`` (``{"url", "model",
    "concurrency"}``) has GREEN's judge asked through an OpenAI-compatible server.
    """
    t0 = time.perf_counter()
    predictions_path = Path(predictions_path)
    refuse_output_over_inputs(
        output_files(out_dir), {"--predictions": predictions_path, "--images-from": images_from}
    )
    if lang not in NORMALISATION:
        raise ValueError(f"--lang {lang}: unknown language (en or zh)")
    preds = read_predictions(predictions_path)
    if collapse_labels is not None and not (
        len(collapse_labels.predictions) == len(collapse_labels.references) == len(preds)
    ):
        raise ValueError(
            f"{collapse_labels.labeler} labels: {len(collapse_labels.predictions)} prediction and "
            f"{len(collapse_labels.references)} reference rows for the {len(preds)} predictions of {predictions_path}"
        )
    samples = None
    if images_from is not None:
        samples = read_dataset(images_from)
        match_dataset(preds, samples, predictions_path, images_from)
        media_dir = Path(media_dir) if media_dir is not None else Path(images_from).parent
        if html:  # report.html shows them: a FIFO or a missing file is found now, not after scoring
            for s in samples:
                for rel in s.images:
                    check_regular_file(media_dir / rel, "image file")
    out = check_output_folder(out_dir)  # before the work, not after it
    if "rexrank" in extra_metrics and lang == "en":
        from .rexrank_run import check_available

        check_available()  # one line naming the install command, before any work

    scored = score(preds, lang, keep_headers, meteor_timeout)
    metrics = build_metrics(
        preds, predictions_path, lang, keep_headers, scored, resamples, seed, collapse_labels
    )
    per_sample = per_sample_rows(preds, samples, scored)
    if "rexrank" in extra_metrics:
        add_rexrank(
            metrics,
            per_sample,
            preds,
            scored,
            lang,
            section,
            rexrank_metrics,
            resamples,
            seed,
            green_endpoint,
        )
    atomic_write_text(
        out / "per_sample.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in per_sample)
    )
    if html:
        from .html_report import write_report

        write_report(
            out / "report.html", metrics, per_sample, lang, media_dir, title or str(predictions_path)
        )
    metrics["seconds"] = round(time.perf_counter() - t0, 2)
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


def add_rexrank(
    metrics, per_sample, preds, s: Scored, lang, section, names, resamples, seed, green_endpoint=None
) -> None:
    """The hook for ``--metrics rexrank``: metrics.json's ``rexrank`` block, per-study scores."""
    from .rexrank_run import GREEN_SKIPPED, rexrank_block

    names = list(names) if names else ["bertscore", "sembscore", "radgraph", "ratescore"]
    block, rows = rexrank_block(
        [p.predict for p in preds],
        [p.label for p in preds],
        lang,
        section,
        names,
        s.ref_labels,
        resamples,
        seed,
        s.constant["report"],
        green_endpoint=green_endpoint,
    )
    if "green" not in names and lang == "en":
        block["skipped"]["green"] = GREEN_SKIPPED
    metrics["rexrank"] = block
    for row, scores in zip(per_sample, rows, strict=True):
        row["rexrank"] = scores


def load_run(run_dir: str | Path) -> tuple[SampleTable, list[dict]]:
    """Per-sample statistics of an evaluated run folder (for ``compare``)."""
    path = Path(run_dir) / "per_sample.jsonl"
    if not path.is_file():
        raise InputFileError(f"{path}: no such file (run `xrayqwen2vl evaluate --out {run_dir}` first)")
    rows = []
    for n, row in read_jsonl(path):
        try:
            row["bleu_counts"]["correct"], row["scores"]["METEOR"], row["labels_prediction"]
        except (KeyError, TypeError) as e:
            raise InputFileError(f"{path}:{n}: not a per-sample record of evaluate ({e})") from None
        rows.append(row)
    if not rows:
        raise InputFileError(f"{path}: empty")
    counts = [r["bleu_counts"] for r in rows]
    table = SampleTable(
        np.array([c["correct"] for c in counts], dtype=np.float64),
        np.array([c["guess"] for c in counts], dtype=np.float64),
        np.array([c["testlen"] for c in counts], dtype=np.float64),
        np.array([c["reflen"] for c in counts], dtype=np.float64),
        np.array([r["scores"]["METEOR"] for r in rows], dtype=np.float64),  # None (failed) -> NaN
        np.array([r["scores"]["ROUGE-L"] for r in rows], dtype=np.float64),
        np.array([r["scores"]["CIDEr"] for r in rows], dtype=np.float64),
        positive_matrix([r["labels_prediction"] for r in rows]),
        positive_matrix([r["labels_reference"] for r in rows]),
    )
    return table, rows


def repetition_line(rep: dict) -> str:
    """The label-level diversity line of the console summary."""
    sets = rep["label_sets"]
    return (
        f"label sets predicted {sets['predictions']['distinct']} vs {sets['references']['distinct']} in the "
        f"references; repeated predictions ({rep['repeated_predictions']}, for "
        f"{rep['studies_given_a_repeated_prediction']} studies) leave out stated findings of {rep['hidden']} of "
        f"{rep['studies_with_findings']} studies with findings ({rep['hidden_share']:.1%}), "
        f"{rep['blindness']:.2f} of the rate of chance"
    )


def _claims(best: dict) -> str:
    return ", ".join(best["claims"]) or "nothing to claim"


def _fmt(value, width: int = 8) -> str:
    return f"{'error':>{width}}" if value is None else f"{value:>{width}.3f}"


def summary_table(metrics: dict) -> str:
    """What ``evaluate`` prints: the headline first, then every metric beside the constant report."""
    ci = metrics.get("bootstrap", {}).get("intervals", {})
    cl, const = metrics["clinical"], metrics["constant_baseline"]
    h = metrics["headline"]
    span = f" [{h['low']:.3f}, {h['high']:.3f}]" if h["low"] is not None else ""
    lines = [
        f"{metrics['n']} reports ({metrics['lang']}); NLG on normalised text, {metrics['section_headers']}",
        f"HEADLINE {h['metric']} {h['value']:.3f}{span}   constant report: {h['constant_baseline']:.3f}; "
        f"best constant claim ({_claims(h['best_constant'])}): {h['best_constant']['F1']:.3f}",
        f"{'metric':<22}{'model':>8}   {'95% CI':<16}{'constant':>9}",
    ]

    def row(name, value, key, constant):
        interval = ci.get(key)
        span = f"[{interval['low']:.3f}, {interval['high']:.3f}]" if interval else ""
        lines.append(f"{name:<22}{_fmt(value)}   {span:<16}{_fmt(constant, 9)}")

    for group in ("micro-5", "macro-5"):
        row(f"CE {group} F1", cl[group]["F1"], f"CE-{group}-F1", const["clinical"][group]["F1"])
    for part, short in (("precision", "P"), ("recall", "R"), ("F1", "F1")):
        key = f"CE-micro-14-{part}"
        row(f"CE micro-14 {short}", cl["micro-14"][part], key, const["clinical"]["micro-14"][part])
    row("CE macro-14 F1", cl["macro-14"]["F1"], "CE-macro-14-F1", const["clinical"]["macro-14"]["F1"])
    for key in NLG_KEYS:
        row(key, metrics[key], key, const[key])
    d = metrics["diversity"]["predictions"]
    lines.append(
        f"distinct predictions  {d['distinct']}/{metrics['n']} ({d['distinct_share']:.1%}); most frequent "
        f"{d['most_frequent_count']}x ({d['most_frequent_share']:.1%}); distinct-1 {d['distinct-1']:.3f}, "
        f"distinct-2 {d['distinct-2']:.3f}; length {d['mean_length']:.1f} vs reference "
        f"{metrics['diversity']['references']['mean_length']:.1f} tokens"
    )
    lines.append(repetition_line(metrics["diversity"]["repetition"]))
    lines.append(f"constant = {constant_description(const, metrics['n'])}")
    if metrics.get("METEOR_error"):
        lines.append(f"METEOR: {metrics['METEOR_error']}")
    return "\n".join(lines)
