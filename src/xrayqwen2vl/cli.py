"""The ``xrayqwen2vl`` command: one entry point, one subcommand per job (see commands/)."""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .commands import (
    baselines_cmd,
    check_cmd,
    compare_cmd,
    counterfactual_cmd,
    download_cmd,
    evaluate_cmd,
    label_cmd,
    prepare_cmd,
    reliance_cmd,
    report_cmd,
    rexrank_predict_cmd,
    sample_cmd,
    tiny_model_cmd,
    translate_cmd,
    web_cmd,
)
from .data.records import InputFileError

# Subcommands in the order --help lists them: data, model (and the preflight of a run), inference,
# evaluation.
COMMANDS = [
    sample_cmd,
    download_cmd,
    prepare_cmd,
    translate_cmd,
    tiny_model_cmd,
    check_cmd,
    report_cmd,
    web_cmd,
    rexrank_predict_cmd,
    evaluate_cmd,
    label_cmd,
    baselines_cmd,
    compare_cmd,
    counterfactual_cmd,
    reliance_cmd,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xrayqwen2vl",
        description=(
            "Prepare OpenI chest X-ray data for LLaMA-Factory, build a tiny Qwen2-VL for offline tests, "
            "and evaluate generated reports. Research use only: outputs are not diagnoses."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (InputFileError, ValueError) as e:
        print(f"xrayqwen2vl {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
