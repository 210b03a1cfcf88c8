"""``evaluate --metrics rexrank``: the ReXrank block of metrics.json, per-study scores, CheXbert CE.

Runs in ``.venv``: selects the section to score, computes BLEU-2 and RadCliQ-v1 itself
(``rexrank.py``), and has the model-based metrics computed by ``rexrank_adapter.py`` in the
metrics environment (``.venv-metrics``, ``make metrics-venv``) as a subprocess. It never imports
the metrics library.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .bootstrap import draw_counts
from .chexpert_labeler import OBSERVATIONS, TOP5
from .clinical import clinical_metrics, positive_matrix
from .rexrank import (
    KEYS,
    PROTOCOL_DIFFERENCES,
    bleu2_scores,
    radcliq_v1,
    select_section,
)
from .rexrank_adapter import GREEN_MODEL, PROGRESS

INSTALL = "make metrics-venv"
DEFAULT_METRICS = ("bertscore", "sembscore", "radgraph", "ratescore")
ALL_METRICS = (*DEFAULT_METRICS, "green")
ENV_VAR = "XRAYQWEN2VL_METRICS_PYTHON"


class MetricsUnavailable(ValueError):
    """The metrics environment is missing or failed; the message is one line (the CLI exits 2)."""


def metrics_python() -> Path:
    """The metrics environment's interpreter: $XRAYQWEN2VL_METRICS_PYTHON or .venv-metrics beside .venv."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    root = Path(__file__).resolve().parents[3]  # src/xrayqwen2vl/eval -> repository root
    return root / ".venv-metrics" / "bin" / "python"


def check_available() -> Path:
    python = metrics_python()
    if not python.is_file():
        raise MetricsUnavailable(
            f"--metrics rexrank needs the metrics environment ({python} not found); install it with `{INSTALL}`"
        )
    return python


def parse_metric_list(text: str | None, green: bool) -> list[str]:
    names = list(DEFAULT_METRICS) if not text else [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in ALL_METRICS]
    if unknown:
        raise ValueError(f"--rexrank-metrics: unknown {', '.join(unknown)} (known: {', '.join(ALL_METRICS)})")
    if green and "green" not in names:
        names.append("green")
    return names


def run_adapter(
    hyps: list[str],
    refs: list[str],
    metrics: list[str],
    batch_size: int = 32,
    green_endpoint: dict | None = None,
) -> dict:
    """The model-based scores, from the adapter in the metrics environment. ``green_endpoint``:
    ``{"url", "model", "concurrency"}`` of an OpenAI-compatible server that runs GREEN's judge."""
    python = check_available()
    src = str(Path(__file__).resolve().parents[2])  # this package's source wins in the subprocess too
    env = dict(os.environ)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with tempfile.TemporaryDirectory(prefix="rexrank-") as tmp:
        request, result = Path(tmp) / "request.json", Path(tmp) / "result.json"
        request.write_text(
            json.dumps(
                {
                    "hyps": hyps,
                    "refs": refs,
                    "metrics": metrics,
                    "batch_size": batch_size,
                    "green_endpoint": green_endpoint,
                }
            ),
            encoding="utf-8",
        )
        proc = subprocess.Popen(
            [str(python), "-m", "xrayqwen2vl.eval.rexrank_adapter", str(request), str(result)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        last = "no output"
        for line in proc.stdout:  # the adapter's progress lines are shown, the libraries' chatter kept back
            if line.startswith(PROGRESS):
                print(line.rstrip(), file=sys.stderr, flush=True)
            elif line.strip():
                last = line.strip()
        returncode = proc.wait()
        if returncode != 0 or not result.is_file():
            raise MetricsUnavailable(
                f"the metrics environment ({python}) failed with exit status {returncode}: {last}"
            )
        return json.loads(result.read_text(encoding="utf-8"))


def _interval(values: np.ndarray, weights: np.ndarray) -> dict:
    means = weights @ values / weights.sum(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"low": float(low), "high": float(high)}


def _chexbert_positive(labels: list[dict]) -> np.ndarray:
    return positive_matrix([{obs: row.get(obs) for obs in OBSERVATIONS} for row in labels])


def agreement(ours: list[dict], chexbert: list[dict]) -> dict:
    """Per observation: how often our labeler and CheXbert give the same value (1, -1, 0/blank)."""

    def norm(v):
        return 0 if v in (None, 0) else v

    out = {}
    for obs in OBSERVATIONS:
        a = np.array([norm(o[obs]) for o in ours])
        b = np.array([norm(c[obs]) for c in chexbert])
        pos_a, pos_b = a == 1, b == 1
        both = int((pos_a & pos_b).sum())
        out[obs] = {
            "agreement": float((a == b).mean()),
            "positive_ours": int(pos_a.sum()),
            "positive_chexbert": int(pos_b.sum()),
            "positive_both": both,
        }
    return out


def rexrank_block(
    predictions: list[str],
    references: list[str],
    lang: str,
    section: str,
    metrics: list[str],
    our_labels_ref: list[dict],
    resamples: int,
    seed: int,
    constant_report: str,
    runner=run_adapter,
    green_endpoint: dict | None = None,
) -> tuple[dict, list[dict]]:
    """The ``rexrank`` block of metrics.json and the per-study scores (one dict per study)."""
    hyps = [select_section(p, section) for p in predictions]
    refs = [select_section(r, section) for r in references]
    n = len(hyps)
    per: dict[str, np.ndarray] = {"bleu2": bleu2_scores(hyps, refs)}
    block: dict = {
        "section": section,
        "what": "ReXrank's metric suite (rexrank.ai, rajpurkarlab/ReXrank), see doc/evaluation.md",
        "keys": KEYS,
        "protocol_differences": list(PROTOCOL_DIFFERENCES),
        "skipped": {},
    }
    const_hyps = [select_section(constant_report, section)] * n
    const: dict = {"BLEU-2": float(bleu2_scores(const_hyps, refs).mean())}
    adapter: dict = {}
    if lang != "en":
        note = f"the model-based ReXrank metrics are English models: not applied to {lang} reports"
        block["skipped"] = {m: note for m in metrics}
        block["notice"] = note
    else:
        extra = {"green_endpoint": green_endpoint} if green_endpoint and "green" in metrics else {}
        adapter = runner(hyps + const_hyps, refs + refs, metrics, **extra)
        for name, values in adapter["per_sample"].items():
            arr = np.asarray(values, dtype=np.float64)
            per[name], const[KEYS[name]] = arr[:n], float(arr[n:].mean())
        block["versions"] = adapter.get("versions", {})
        block["models"] = {
            k: v for k, v in adapter.get("models", {}).items() if k in metrics or k == "chexbert"
        }
        block["device"] = adapter.get("device")
        block["seconds"] = adapter.get("seconds", {})
    if all(k in per for k in ("radgraph", "bertscore", "sembscore")):
        per["radcliq_v1"] = radcliq_v1(per["radgraph"], per["bertscore"], per["sembscore"], per["bleu2"])
        const["RadCliQ-v1"] = float(
            radcliq_v1(const["RadGraph"], const["BERTScore"], const["SembScore"], const["BLEU-2"])
        )
        const["1/RadCliQ-v1"] = 1.0 / const["RadCliQ-v1"]
    weights = draw_counts(n, resamples, seed).astype(np.float64) if resamples > 0 else None
    means: dict = {}
    for name, values in per.items():
        entry = {"value": float(values.mean())}
        if weights is not None:
            entry.update(_interval(values, weights))
        means[KEYS[name]] = entry
    if "radcliq_v1" in per:
        r = means["RadCliQ-v1"]
        inv = {"value": 1.0 / r["value"]}
        if weights is not None:  # 1/x is monotone: the interval's ends swap
            inv.update({"low": 1.0 / r["high"], "high": 1.0 / r["low"]})
        means["1/RadCliQ-v1"] = inv
    block["means"] = means
    block["constant_baseline"] = const
    if "green" in adapter:
        block["green"] = green_summary(adapter["green"], n)
    if "chexbert_labels" in adapter:
        labels = adapter["chexbert_labels"]
        pred_pos = _chexbert_positive(labels["prediction"][:n])
        ref_pos = _chexbert_positive(labels["reference"][:n])
        ce = clinical_metrics(pred_pos, ref_pos)
        block["chexbert_ce"] = {
            "labeler": "CheXbert (RadEval), positive only: uncertain counts as negative",
            **{g: ce[g] for g in ("micro-5", "macro-5", "micro-14", "macro-14")},
            "top5": list(TOP5),
        }
        block["labeler_agreement"] = agreement(our_labels_ref, labels["reference"][:n])
    rows = []
    for k in range(n):
        row = {KEYS[name]: float(values[k]) for name, values in per.items()}
        if "chexbert_labels" in adapter:
            row["chexbert_prediction"] = adapter["chexbert_labels"]["prediction"][k]
            row["chexbert_reference"] = adapter["chexbert_labels"]["reference"][k]
        rows.append(row)
    return block, rows


def green_summary(green: dict, n: int) -> dict:
    """GREEN's error counts over the model's reports (the first ``n`` pairs), and the judge's answers
    without GREEN's sections: GREEN scores those 0, so they are counted and named, not hidden."""
    counts = np.asarray(green["counts"][:n], dtype=np.float64).reshape(n, -1)
    unparsed = [k for k in green["unparsed"] if k < n]
    out = {
        "mean_counts": dict(zip(green["categories"], (float(x) for x in counts.mean(axis=0)), strict=True)),
        "studies": n,
        "unparsed": len(unparsed),
        "unparsed_studies": unparsed[:50],
    }
    if "endpoint" in green:
        out["endpoint"] = green["endpoint"]
    return out


def summary_lines(block: dict, ours: dict) -> list[str]:
    """What evaluate prints under its table for --metrics rexrank."""
    lines = [f"ReXrank metrics ({block['section']}):"]
    if block.get("notice"):
        lines.append(f"  {block['notice']}")
    const = block["constant_baseline"]
    for key, m in block["means"].items():
        span = f"[{m['low']:.3f}, {m['high']:.3f}]" if "low" in m else ""
        c = const.get(key)
        lines.append(f"  {key:<20}{m['value']:>8.3f}   {span:<16}{'' if c is None else f'{c:>9.3f}'}")
    ce = block.get("chexbert_ce")
    if ce:
        for group in ("micro-5", "macro-5", "micro-14", "macro-14"):
            lines.append(
                f"  CE {group} F1: CheXbert {ce[group]['F1']:.3f}   our labeler {ours[group]['F1']:.3f}"
            )
    green = block.get("green")
    if green and green["unparsed"]:
        lines.append(
            f"  GREEN: {green['unparsed']} of {green['studies']} judge answers had no GREEN sections "
            "and count 0, as GREEN counts them (metrics.json rexrank.green.unparsed_studies)"
        )
    for name, why in block.get("skipped", {}).items():
        if not block.get("notice"):
            lines.append(f"  {name}: skipped ({why})")
    return lines


GREEN_SKIPPED = (
    f"needs a 7B judge ({GREEN_MODEL}): add --green (a GPU here) or --green-endpoint URL "
    "(an OpenAI-compatible server running it)"
)
