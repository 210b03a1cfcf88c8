"""How long `evaluate --metrics rexrank` takes on R2Gen's IU test-split size (590 studies), on CPU.

Every ReXrank metric except GREEN (BLEU-2, BERTScore, SembScore + CheXbert labels, RadGraph,
RaTEScore, RadCliQ-v1), through the real metrics library in the metrics environment
(.venv-metrics, `make metrics-venv`), on an offline cache of RANDOM weights of the real sizes
(distilroberta-base, bert-base CheXbert, PubMedBERT RadGraph, DeBERTa-v3-base tagger, MPNet encoder):
the scores mean nothing, the cost is the real one. Each model is loaded once; inputs are batched.
As in evaluate, the constant report is scored too (590 model pairs + 590 constant pairs).

    python benchmarks/rexrank_bench.py                      # builds the cache in a temporary folder
    python benchmarks/rexrank_bench.py --cache saves/metric-models --repeats 3
    python benchmarks/rexrank_bench.py --texts templated   # reports that repeat sentences, as real ones do

--texts random (default): every report a fresh draw of words, no sentence shared between reports,
the worst case for the per-sentence work (RadGraph's encoder, RaTEScore's tagger) and the most
entities per report. --texts templated: synthetic/report_mix.py's references (normal templates, a
few phrasings per finding), which share sentences far more than the random ones; real reports lie
in between (Open-i's normal reports are largely templated).

Goal: under 5 minutes for the 590 studies on 2 CPU cores (under 1 minute on one GPU: owed).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path

from xrayqwen2vl.eval.rexrank_run import DEFAULT_METRICS, metrics_python, rexrank_block, run_adapter
from xrayqwen2vl.synthetic.metric_models import _WORDS, build_cache, cache_env

GOAL_SECONDS = 300.0


def reports(n: int, seed: int) -> list[str]:
    """IU-sized findings: 3-7 sentences of 4-9 words (R2Gen's IU references average about 35 words)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        sentences = [
            " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 9))).capitalize() + "."
            for _ in range(rng.randint(3, 7))
        ]
        out.append(" ".join(sentences))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--studies", type=int, default=590)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--cache", help="reuse (or build once into) this folder of random real-size weights")
    ap.add_argument("--texts", choices=["random", "templated"], default="random")
    args = ap.parse_args()

    root = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="rexrank-bench-"))
    t = time.perf_counter()
    if not (root / "xdg" / "radgraph").is_dir():
        build_cache(root, tiny=False, metrics_python=metrics_python())
        print(f"built the real-size random cache in {time.perf_counter() - t:.0f} s under {root}")
    os.environ.update(cache_env(root))

    if args.texts == "random":
        preds, refs = reports(args.studies, 1), reports(args.studies, 2)
    else:
        from xrayqwen2vl.synthetic.report_mix import realistic_references

        preds = [s.report for s in realistic_references(args.studies, seed=1)]
        refs = [s.report for s in realistic_references(args.studies, seed=2)]
    labels = [{} for _ in refs]

    def runner(hyps, references, metrics, **options):
        return run_adapter(hyps, references, metrics, batch_size=args.batch_size, **options)

    times, cpu, block = [], [], None
    for _ in range(args.repeats):
        t, c = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        c = c.ru_utime + c.ru_stime
        block, _ = rexrank_block(
            preds, refs, "en", "both", list(DEFAULT_METRICS), _ours(labels), 1000, 0, preds[0], runner
        )
        times.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - c)
    median = statistics.median(times)
    distinct = len(set(preds + refs))
    sentences = {x.strip() for t in preds + refs for x in t.split(".") if x.strip()}
    print(
        f"{args.studies} studies ({2 * args.studies} pairs with the constant report), {os.cpu_count()} CPUs; "
        f"texts {args.texts}: {distinct} distinct reports, about {len(sentences)} distinct sentences"
    )
    print(f"per metric inside the metrics process (last run, wall s): {block['seconds']}")
    print(
        f"CPU time of the metrics process (user + system, all cores): median {statistics.median(cpu):.1f} s"
    )
    print(f"load average when done: {os.getloadavg()[0]:.1f} (other jobs on the machine inflate wall time)")
    print(
        f"rexrank total: median {median:.1f} s of {args.repeats} run(s) {[round(x, 1) for x in times]}; "
        f"goal {GOAL_SECONDS:.0f} s: {'met' if median < GOAL_SECONDS else 'NOT met'} (ratio {median / GOAL_SECONDS:.2f})"
    )
    return 0


def _ours(labels):
    from xrayqwen2vl.eval.chexpert_labeler import OBSERVATIONS

    return [{obs: None for obs in OBSERVATIONS} for _ in labels]


if __name__ == "__main__":
    raise SystemExit(main())
