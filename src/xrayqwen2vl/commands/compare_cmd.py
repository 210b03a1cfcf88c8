"""`xrayqwen2vl compare`: paired bootstrap comparison of two evaluated runs."""

from __future__ import annotations

import re
from pathlib import Path

_WS = re.compile(r"\s+")


def run_compare(args) -> int:
    from ..data.records import InputFileError
    from ..eval.bootstrap import paired_comparison
    from ..eval.evaluate import load_run
    from ..fileio import atomic_write_json, refuse_output_over_inputs

    if args.out:
        refuse_output_over_inputs(
            {"--out": args.out},
            {
                f"{args.run_a}/per_sample.jsonl": Path(args.run_a) / "per_sample.jsonl",
                f"{args.run_b}/per_sample.jsonl": Path(args.run_b) / "per_sample.jsonl",
            },
        )
    a, rows_a = load_run(args.run_a)
    b, rows_b = load_run(args.run_b)
    if len(rows_a) != len(rows_b):
        raise InputFileError(
            f"{args.run_a} has {len(rows_a)} samples, {args.run_b} {len(rows_b)}: not the same test set"
        )
    for ra, rb in zip(rows_a, rows_b, strict=True):
        if _WS.sub(" ", ra["reference"]).strip() != _WS.sub(" ", rb["reference"]).strip():
            raise InputFileError(
                f"{args.run_b}/per_sample.jsonl:{ra['index'] + 1}: reference differs from {args.run_a}'s: "
                "a paired comparison needs the same test set in the same order"
            )
    result = paired_comparison(a, b, args.bootstrap, args.seed)
    print(f"A = {args.run_a}\nB = {args.run_b}\n{len(rows_a)} paired samples, {args.bootstrap} resamples")
    print(f"{'metric':<24}{'A':>8}{'B':>8}{'A-B':>9}   95% CI of A-B        p      ")
    for key, r in result.items():
        flag = "significant" if r["significant"] else "n.s."
        print(
            f"{key:<24}{r['A']:>8.3f}{r['B']:>8.3f}{r['difference']:>+9.3f}   "
            f"[{r['low']:+.3f}, {r['high']:+.3f}]   {r['p_value']:.3f}  {flag}"
        )
    print(
        "(METEOR here is the mean of segment scores, which the resamples use; metrics.json has the jar's corpus value)"
    )
    if args.out:
        atomic_write_json(
            args.out,
            {
                "A": str(args.run_a),
                "B": str(args.run_b),
                "resamples": args.bootstrap,
                "seed": args.seed,
                "metrics": result,
            },
        )
        print(f"wrote {args.out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="which metric differences between two evaluated runs are significant (paired bootstrap)",
        description=(
            "Read RUN_A/per_sample.jsonl and RUN_B/per_sample.jsonl (from evaluate, on the same test set) and "
            "print A, B, A-B with a paired bootstrap 95%% interval and p-value per metric; a difference is "
            "significant when its interval excludes 0. Same resamples as evaluate (seeded)."
        ),
    )
    p.add_argument("run_a", metavar="RUN_A", help="folder written by evaluate")
    p.add_argument("run_b", metavar="RUN_B", help="folder written by evaluate")
    p.add_argument("--bootstrap", type=int, default=1000, help="resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--out", help="also write the comparison as JSON here")
    p.set_defaults(func=run_compare)
