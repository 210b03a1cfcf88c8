"""The whole evaluation of one prediction file: NLG metrics, clinical efficacy, diversity,
bootstrap intervals, per-sample results and the HTML report."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np

from ..data.records import InputFileError
from ..fileio import atomic_write_json, atomic_write_text
from .bootstrap import SampleTable, confidence_intervals
from .chexpert_labeler import OBSERVATIONS, label_report
from .clinical import clinical_metrics, positive_matrix
from .diversity import diversity_metrics
from .inputs import DatasetSample, Prediction, read_dataset, read_predictions
from .nlg import NLG_KEYS, MeteorProcess, compute_nlg
from .normalize import NORMALISATION, normalize

_WS = re.compile(r"\s+")


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
) -> dict:
    """Evaluate ``generated_predictions.jsonl``; write metrics.json, per_sample.jsonl, report.html."""
    t0 = time.perf_counter()
    predictions_path = Path(predictions_path)
    out = Path(out_dir)
    if lang not in NORMALISATION:
        raise ValueError(f"--lang {lang}: unknown language (en or zh)")
    preds = read_predictions(predictions_path)
    samples = None
    if images_from is not None:
        samples = read_dataset(images_from)
        match_dataset(preds, samples, predictions_path, images_from)
        media_dir = Path(media_dir) if media_dir is not None else Path(images_from).parent

    meteor = MeteorProcess()  # the JVM loads METEOR's tables while we label and normalise
    try:
        hyp = [normalize(p.predict, lang) for p in preds]
        ref = [normalize(p.label, lang) for p in preds]
        pred_labels = [label_report(p.predict, lang) for p in preds]
        ref_labels = [label_report(p.label, lang) for p in preds]
        nlg = compute_nlg(hyp, ref, meteor=meteor)
    finally:
        meteor.close()

    pred_pos, ref_pos = positive_matrix(pred_labels), positive_matrix(ref_labels)
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
    metrics: dict = {"n": len(preds), "lang": lang, "predictions": str(predictions_path)}
    metrics.update(nlg.corpus)
    metrics["normalisation"] = NORMALISATION[lang]
    metrics["nlg_toolkit"] = (
        "pycocoevalcap 1.2 (COCO caption toolkit): Bleu(4) with closest reference length, METEOR 1.5 "
        "(Java), ROUGE-L (beta 1.2), CIDEr-D; no PTB tokenizer; one reference per sample"
    )
    if lang == "zh":
        metrics["segmentation"] = "jieba (precise mode) before BLEU/METEOR/ROUGE-L/CIDEr"
    metrics["clinical"] = clinical_metrics(pred_pos, ref_pos)
    metrics["clinical"]["labeler"] = f"xrayqwen2vl rule-based CheXpert labeler ({lang}), see doc/labeler.md"
    metrics["diversity"] = diversity_metrics(hyp, ref)
    intervals = confidence_intervals(table, resamples, seed) if resamples > 0 else {}
    if intervals:
        # The jar's corpus METEOR is not the mean of its segment scores; the resamples give an
        # interval for that mean, which we move by the difference so it sits around the corpus value.
        shift = nlg.corpus["METEOR"] - intervals["METEOR"]["value"]
        m = intervals["METEOR"]
        intervals["METEOR"] = {
            "value": nlg.corpus["METEOR"],
            "low": m["low"] + shift,
            "high": m["high"] + shift,
        }
    metrics["bootstrap"] = {
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

    per_sample = []
    for k, p in enumerate(preds):
        per_sample.append(
            {
                "index": k,
                "line": p.line,
                "prediction": p.predict,
                "reference": p.label,
                "images": samples[k].images if samples else [],
                "scores": {
                    "BLEU-4": float(nlg.sentence_bleu4[k]),
                    "METEOR": float(nlg.meteor[k]),
                    "ROUGE-L": float(nlg.rouge_l[k]),
                    "CIDEr": float(nlg.cider[k]),
                },
                "bleu_counts": {
                    "correct": nlg.bleu_correct[k].astype(int).tolist(),
                    "guess": nlg.bleu_guess[k].astype(int).tolist(),
                    "testlen": int(nlg.bleu_testlen[k]),
                    "reflen": int(nlg.bleu_reflen[k]),
                },
                "labels_prediction": pred_labels[k],
                "labels_reference": ref_labels[k],
                "disagreements": disagreements(pred_labels[k], ref_labels[k]),
            }
        )
    out.mkdir(parents=True, exist_ok=True)
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


def load_run(run_dir: str | Path) -> tuple[SampleTable, list[dict]]:
    """Per-sample statistics of an evaluated run folder (for ``compare``)."""
    path = Path(run_dir) / "per_sample.jsonl"
    if not path.is_file():
        raise InputFileError(f"{path}: no such file (run `xrayqwen2vl evaluate --out {run_dir}` first)")
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            try:
                row = json.loads(line)
                row["bleu_counts"]["correct"], row["scores"]["METEOR"], row["labels_prediction"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
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
        np.array([r["scores"]["METEOR"] for r in rows], dtype=np.float64),
        np.array([r["scores"]["ROUGE-L"] for r in rows], dtype=np.float64),
        np.array([r["scores"]["CIDEr"] for r in rows], dtype=np.float64),
        positive_matrix([r["labels_prediction"] for r in rows]),
        positive_matrix([r["labels_reference"] for r in rows]),
    )
    return table, rows


def summary_table(metrics: dict) -> str:
    """The short table ``evaluate`` prints."""
    ci = metrics.get("bootstrap", {}).get("intervals", {})
    lines = [f"{metrics['n']} reports ({metrics['lang']})", f"{'metric':<22}{'value':>8}   95% CI"]

    def row(name, value, key=None):
        interval = ci.get(key or name)
        span = f"   [{interval['low']:.3f}, {interval['high']:.3f}]" if interval else ""
        lines.append(f"{name:<22}{value:>8.3f}{span}")

    for key in NLG_KEYS:
        row(key, metrics[key])
    cl = metrics["clinical"]
    row("CE micro-14 P", cl["micro-14"]["precision"], "CE-micro-14-precision")
    row("CE micro-14 R", cl["micro-14"]["recall"], "CE-micro-14-recall")
    row("CE micro-14 F1", cl["micro-14"]["F1"], "CE-micro-14-F1")
    row("CE macro-14 F1", cl["macro-14"]["F1"], "CE-macro-14-F1")
    row("CE micro-5 F1", cl["micro-5"]["F1"], "CE-micro-5-F1")
    row("CE macro-5 F1", cl["macro-5"]["F1"], "CE-macro-5-F1")
    d = metrics["diversity"]["predictions"]
    lines.append(
        f"distinct predictions  {d['distinct']}/{metrics['n']} ({d['distinct_share']:.1%}); most frequent "
        f"{d['most_frequent_count']}x ({d['most_frequent_share']:.1%}); distinct-1 {d['distinct-1']:.3f}, "
        f"distinct-2 {d['distinct-2']:.3f}; length {d['mean_length']:.1f} vs reference "
        f"{metrics['diversity']['references']['mean_length']:.1f} tokens"
    )
    return "\n".join(lines)
