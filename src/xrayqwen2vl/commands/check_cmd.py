"""`xrayqwen2vl check`: the preflight of a config (recipes/preflight.py), run by every wrapper
before llamafactory-cli."""

from __future__ import annotations

import argparse
import os
import sys

EPILOG = """\
Exit status: 0 every check passed, 1 a check failed (one line each on stderr), 2 the config or an
override could not be read.

GPUs (train and predict configs): the first N GPUs of the pool, N from GPUS, else NPROC_PER_NODE,
else the config's '# GPUs: N' line (GPUs per node; '# GPUs: N per node, M nodes' for a multi-node
recipe, whose global batch is M × N × batch × accumulation); the pool is CUDA_VISIBLE_DEVICES if
set, else what nvidia-smi lists. GPUS=0 runs on the CPU.

Several nodes (NNODES > 1): NODE_RANK (0 … NNODES-1, a different one on each node), MASTER_ADDR
(node 0's address, not a loopback one) and MASTER_PORT must all be set; a missing or wrong one is
one error line, since torchrun would otherwise wait until the timeout. --shell prints what the wrappers export (CUDA_VISIBLE_DEVICES,
NPROC_PER_NODE, FORCE_TORCHRUN) as KEY=VALUE lines after a '# ' line that states the run's
global batch.
"""


def run_check(args) -> int:
    from ..model_scan import REMOTE_CODE_ENV
    from ..recipes.config import ConfigError
    from ..recipes.preflight import preflight, record_output

    if args.allow_remote_code:
        os.environ[REMOTE_CODE_ENV] = "1"
    try:
        report = preflight(args.config, args.overrides, job=args.job)
    except ConfigError as e:
        print(f"xrayqwen2vl check: error: {e}", file=sys.stderr)
        return 2
    for line in report.warnings:
        print(f"xrayqwen2vl check: warning: {line}", file=sys.stderr)
    level = "warning" if args.warn_only else "error"
    for line in report.problems:
        print(f"xrayqwen2vl check: {level}: {line}", file=sys.stderr)
    failed = bool(report.problems) and not args.warn_only
    if args.shell:
        if failed:
            return 1
        print(f"# {report.summary}")
        for key, value in (report.plan.env if report.plan else {}).items():
            print(f"{key}={value}")
        if not report.problems:
            record_output(report.recipe)
        return 0
    if failed:
        return 1
    print(report.summary)
    print(f"checked: {', '.join(report.checked)}: ok")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "check",
        help="preflight a config in about a second: weights, data, images, DeepSpeed, output folder, GPUs",
        description=(
            "Check a LLaMA-Factory config (with key=value overrides, merged as llamafactory-cli merges "
            "them) before a run: the model folder is complete and of the template's family, the datasets "
            "are in dataset_info.json with their files and the images of a sample of records, the "
            "DeepSpeed JSON parses, the output folder is not another recipe's, the GPUs the recipe is "
            "written for are visible, the driver runs torch's CUDA build, bf16 is supported, and the "
            "packages the config needs are installed. Each problem is one line that says what to do."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", help="the config file (YAML)")
    p.add_argument(
        "overrides", nargs="*", metavar="key=value", help="overrides, as llamafactory-cli takes them"
    )
    p.add_argument(
        "--job",
        choices=["train", "predict", "export", "infer"],
        help="the job the caller runs (scripts/train.sh: train, predict.sh: predict, merge.sh: export); "
        "a config of another kind is refused",
    )
    p.add_argument(
        "--shell", action="store_true", help="print the launch plan as KEY=VALUE lines (for the wrappers)"
    )
    p.add_argument("--warn-only", action="store_true", help="report problems as warnings and exit 0")
    p.add_argument(
        "--allow-remote-code",
        action="store_true",
        help="accept trust_remote_code: true and a model folder's auto_map (code shipped with the model); "
        "also XRAYQWEN2VL_ALLOW_REMOTE_CODE=1",
    )
    p.set_defaults(func=run_check)
