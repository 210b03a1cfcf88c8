"""Benchmark: the whole evaluation of 590 reports (the size of R2Gen's IU X-ray test split).

Builds a synthetic test split of 590 studies with their images (xrayqwen2vl sample + prepare),
predictions that are other studies' reports, and times, each ``--repeats`` times (medians):

- ``evaluate``: everything ``xrayqwen2vl evaluate --images-from`` does (NLG metrics with METEOR's
  JVM, labeling, clinical metrics, diversity, 1,000 bootstrap resamples, the constant
  most-common-reference baseline scored on the same studies, verdicts, per_sample.jsonl and
  report.html with embedded images);
- the baseline, in the same process: the bare COCO toolkit on the same normalised texts
  (``Bleu(4)``, ``Meteor()`` started and run, ``Rouge()``, ``Cider()``), the unavoidable part.

Then, not timed, the figures doc/evaluation.md quotes for the headline choice: one constant normal
report written for every study, against the other-study reports, on micro-14 and micro-5 F1.

Usage: python benchmarks/eval_bench.py [--reports 590] [--repeats 3] [--keep DIR]
The issue's budget: under 30 s for 590 reports on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def build_inputs(root: Path, reports: int) -> tuple[Path, Path]:
    from xrayqwen2vl.data.formats.openi import read_openi
    from xrayqwen2vl.data.prepare import PrepareOptions, prepare_dataset
    from xrayqwen2vl.synthetic.sample import generate_sample

    # about 2% of synthetic reports are empty and skipped: draw a few more than needed
    generate_sample(root / "raw", reports=int(reports * 1.06) + 10, seed=11, progress=False)
    prepare_dataset(
        read_openi(root / "raw" / "ecgen-radiology"),
        root / "raw" / "NLMCXR_png",
        root / "data",
        PrepareOptions(name="bench", ratios=(0.0, 0.0, 1.0)),
        inputs={},
        progress=False,
    )
    samples = json.loads((root / "data" / "bench_test.json").read_text())[:reports]
    if len(samples) < reports:
        raise SystemExit(f"only {len(samples)} test samples were prepared")
    test = root / "data" / f"bench_{reports}.json"
    test.write_text(json.dumps(samples))
    preds = root / "generated_predictions.jsonl"
    with preds.open("w") as f:
        for k, s in enumerate(samples):
            other = samples[(k + 1) % len(samples)]  # another study's report: partly right, partly wrong
            label = s["messages"][1]["content"]
            f.write(
                json.dumps(
                    {
                        "prompt": s["messages"][0]["content"],
                        "predict": other["messages"][1]["content"],
                        "label": label,
                    }
                )
                + "\n"
            )
    return preds, test


NORMAL = (
    "Findings: The heart size is normal. The lungs are clear. No pleural effusion or pneumothorax. "
    "Impression: No acute cardiopulmonary abnormality."
)


def constant_vs_varied(root: Path, preds: Path, model: dict) -> None:
    """Clinical F1 of one constant normal report for every study against the varied predictions."""
    from xrayqwen2vl.eval.evaluate import evaluate

    rows = [json.loads(line) for line in preds.open()]
    constant = root / "constant_predictions.jsonl"
    constant.write_text("".join(json.dumps({**r, "predict": NORMAL}) + "\n" for r in rows))
    with contextlib.redirect_stdout(io.StringIO()):
        m = evaluate(constant, root / "eval_constant", resamples=0, html=False)
    from itertools import combinations

    from xrayqwen2vl.eval.chexpert_labeler import TOP5

    per = model["clinical"]["per_observation"]
    positives = {o: per[o]["reference_positives"] for o in TOP5}
    total, n = sum(positives.values()), len(rows)
    # a constant report claiming the observations S for every study: TP = the references' positives
    # of S, FP = |S| * n - TP, FN = total - TP, so micro-5 F1 = 2 TP / (|S| * n + total)
    best_f1, best_set = max(
        (2 * sum(positives[o] for o in s) / (len(s) * n + total), s)
        for k in range(1, 6)
        for s in combinations(TOP5, k)
    )
    print(f'constant normal report ("{NORMAL[:48]}..."), {len(rows)} studies, not timed:')
    for name, metrics in (("constant normal report", m), ("other studies' reports", model)):
        cl = metrics["clinical"]
        print(
            f"  {name:<24} CE micro-14 F1 {cl['micro-14']['F1']:.3f}   CE micro-5 F1 {cl['micro-5']['F1']:.3f}   "
            f"BLEU-4 {metrics['BLEU-4']:.3f}   warnings: {[w.split(':')[0] for w in metrics['warnings']]}"
        )
    print(
        f"  the best any constant report can do on micro-5: claim {', '.join(best_set)} for every study: "
        f"F1 {best_f1:.3f} (reference positives of the five: {positives})"
    )


def bare_toolkit(preds: Path) -> float:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge

    from xrayqwen2vl.eval.normalize import normalize

    t0 = time.perf_counter()
    rows = [json.loads(line) for line in preds.open()]
    res = {i: [normalize(r["predict"])] for i, r in enumerate(rows)}
    gts = {i: [normalize(r["label"])] for i, r in enumerate(rows)}
    with contextlib.redirect_stdout(io.StringIO()):
        Bleu(4).compute_score(gts, res)
    meteor = Meteor()
    meteor.compute_score(gts, res)
    Rouge().compute_score(gts, res)
    Cider().compute_score(gts, res)
    seconds = time.perf_counter() - t0
    del meteor
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=590)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", help="keep inputs and outputs in this folder")
    args = parser.parse_args()
    from xrayqwen2vl.eval.evaluate import evaluate

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        preds, test = build_inputs(root, args.reports)
        print(
            f"inputs: {args.reports} studies with images in {time.perf_counter() - t:.1f} s (not timed below)"
        )
        ours, base = [], []
        for k in range(args.repeats):
            t = time.perf_counter()
            metrics = evaluate(preds, root / f"eval{k}", images_from=test, resamples=1000, seed=0)
            ours.append(time.perf_counter() - t)
            base.append(bare_toolkit(preds))
            print(f"  run {k + 1}: evaluate {ours[-1]:.2f} s, bare toolkit {base[-1]:.2f} s", flush=True)
        med_ours, med_base = statistics.median(ours), statistics.median(base)
        print(
            f"evaluate, {args.reports} reports (NLG + clinical + diversity + 1000 bootstrap + constant "
            "baseline + HTML): "
            f"median {med_ours:.2f} s over {args.repeats} runs"
        )
        print(
            f"baseline, bare pycocoevalcap BLEU/METEOR/ROUGE-L/CIDEr on the same texts: median {med_base:.2f} s"
        )
        print(
            f"ratio evaluate / bare toolkit: {med_ours / med_base:.2f}x; "
            f"budget 30 s: {'met' if med_ours < 30 else 'NOT met'}"
        )
        print(
            f"(headline CE micro-5 F1 {metrics['headline']['value']:.3f} vs constant most-common reference "
            f"{metrics['headline']['constant_baseline']:.3f}; BLEU-4 {metrics['BLEU-4']:.3f}; "
            f"report.html {(root / 'eval0' / 'report.html').stat().st_size / 1e6:.1f} MB)"
        )
        constant_vs_varied(root, preds, metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
