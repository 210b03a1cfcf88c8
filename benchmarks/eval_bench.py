"""Benchmark: the whole evaluation of 590 reports (the size of R2Gen's IU X-ray test split).

Builds a synthetic test split of 590 studies with their images (xrayqwen2vl sample + prepare),
predictions that are other studies' reports, and times, each ``--repeats`` times (medians):

- ``evaluate``: everything ``xrayqwen2vl evaluate --images-from`` does (NLG metrics with METEOR's
  JVM, labeling, clinical metrics, diversity, 1,000 bootstrap resamples, per_sample.jsonl and
  report.html with embedded images);
- the baseline, in the same process: the bare COCO toolkit on the same normalised texts
  (``Bleu(4)``, ``Meteor()`` started and run, ``Rouge()``, ``Cider()``), the unavoidable part.

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
            f"evaluate, {args.reports} reports (NLG + clinical + diversity + 1000 bootstrap + HTML): "
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
            f"(BLEU-4 {metrics['BLEU-4']:.3f}, CE micro-14 F1 {metrics['clinical']['micro-14']['F1']:.3f}; "
            f"report.html {(root / 'eval0' / 'report.html').stat().st_size / 1e6:.1f} MB)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
