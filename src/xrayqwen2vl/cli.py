"""The ``xrayqwen2vl`` command: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .records import InputFileError


def _cmd_sample(args) -> int:
    from .sample import generate_sample

    size = (args.image_size, args.image_size)
    result = generate_sample(args.out, reports=args.reports, seed=args.seed, image_size=size, progress=not args.quiet)
    print(f"wrote {result['reports']} synthetic reports and {result['images']} images under {args.out}")
    print(f"  reports: {args.out}/ecgen-radiology/  images: {args.out}/NLMCXR_png/  truth: {args.out}/labels.csv")
    return 0


def _cmd_prepare(args) -> int:
    from .formats.openi import read_openi
    from .prepare import PrepareOptions, prepare_dataset, print_summary
    from .splits import parse_ratios

    if args.format != "openi":
        raise InputFileError(f"--format {args.format}: not supported yet (openi only)")
    if not args.reports_dir or not args.images_dir:
        raise InputFileError("--format openi needs --reports-dir and --images-dir")
    options = PrepareOptions(
        format=args.format,
        name=args.name,
        lang=args.lang,
        target=args.target,
        views=args.views,
        prompt=args.prompt,
        split="hash",
        ratios=parse_ratios(args.ratios),
        seed=args.seed,
        deid=args.deid,
    )
    reports_dir = Path(args.reports_dir)
    total = len(list(reports_dir.glob("*.xml"))) if reports_dir.is_dir() else None
    inputs = {"reports_dir": args.reports_dir, "images_dir": args.images_dir}
    manifest = prepare_dataset(
        read_openi(reports_dir), args.images_dir, args.out, options, inputs, progress=not args.quiet, total=total
    )
    print_summary(manifest, args.out)
    return 0


def _cmd_tiny_model(args) -> int:
    from .tiny_model import build_tiny_model

    out = build_tiny_model(args.out, seed=args.seed)
    print(f"wrote a tiny random Qwen2-VL (not a trained model) to {out}")
    return 0


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

    p = sub.add_parser(
        "sample",
        help="write a synthetic dataset in the raw Open-i layout (XML reports + PNG images + labels.csv)",
        description=(
            "Write DIR/ecgen-radiology/<n>.xml (Open-i report schema), DIR/NLMCXR_png/<image id>.png "
            "(frontal and lateral drawings that show their findings) and DIR/labels.csv (true findings and "
            "views). Deterministic for a seed; no patient data."
        ),
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--reports", type=int, default=200, help="number of reports (default 200)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--image-size", type=int, default=256, help="image side in pixels (default 256)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser(
        "prepare",
        help="turn raw reports and images into LLaMA-Factory ShareGPT train/val/test files",
        description=(
            "Parse the reports, validate every image, split by report id (a hash of the id, so two views of "
            "one study never straddle splits), and write OUT/NAME_{train,val,test}.json, dataset_info.json "
            "entries NAME_train/NAME_val/NAME_test and manifest.json (counts; every skipped report with "
            "its reason)."
        ),
    )
    p.add_argument("--format", default="openi", choices=["openi"], help="input form of the collection")
    p.add_argument("--reports-dir", help="folder of Open-i report XML files (ecgen-radiology)")
    p.add_argument("--images-dir", help="folder of the PNG images (NLMCXR_png)")
    p.add_argument("--out", required=True, help="output data folder (LLaMA-Factory dataset_dir)")
    p.add_argument("--name", default="openi", help="dataset name prefix (default openi)")
    p.add_argument("--lang", default="en", choices=["en"], help="language of the target text")
    p.add_argument("--target", default="both", choices=["findings", "impression", "both"],
                   help='target text: "Findings: … Impression: …" (both, default) or one section')
    p.add_argument("--views", default="both", choices=["both", "frontal", "each"],
                   help="both: one sample per study with frontal+lateral (default); frontal: frontal only; "
                        "each: one sample per image, still split by study")
    p.add_argument("--prompt", help="user prompt (default: a fixed English instruction)")
    p.add_argument("--ratios", default="0.7,0.1,0.2", help="train,val,test shares (default 0.7,0.1,0.2)")
    p.add_argument("--seed", type=int, default=0, help="salt of the split hash (default 0)")
    p.add_argument("--deid", default="keep", choices=["keep", "mask"],
                   help="XXXX de-identification tokens: keep (default) or mask as [REDACTED]")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser(
        "tiny-model",
        help="build a tiny randomly initialised Qwen2-VL offline (for the CPU demo and tests)",
        description=(
            "Write a Qwen2-VL with random weights (hidden 64, 2 layers, vision depth 2), a byte-level BPE "
            "tokenizer trained on the spot with the Qwen2-VL special tokens, and the real Qwen2-VL processor "
            "classes. Loads with AutoProcessor/AutoModelForImageTextToText and trains with template qwen2_vl."
        ),
    )
    p.add_argument("--out", required=True, help="output model folder")
    p.add_argument("--seed", type=int, default=0, help="weight initialisation seed (default 0)")
    p.set_defaults(func=_cmd_tiny_model)
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
