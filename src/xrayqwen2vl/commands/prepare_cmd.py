"""`xrayqwen2vl prepare`: raw collection to LLaMA-Factory datasets."""

from __future__ import annotations

from pathlib import Path

from ..records import InputFileError


def run_prepare(args) -> int:
    from ..formats.openi import read_openi
    from ..prepare import PrepareOptions, prepare_dataset, print_summary
    from ..splits import parse_ratios

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
        read_openi(reports_dir),
        args.images_dir,
        args.out,
        options,
        inputs,
        progress=not args.quiet,
        total=total,
    )
    print_summary(manifest, args.out)
    return 0


def register(sub) -> None:
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
    p.add_argument(
        "--target",
        default="both",
        choices=["findings", "impression", "both"],
        help='target text: "Findings: … Impression: …" (both, default) or one section',
    )
    p.add_argument(
        "--views",
        default="both",
        choices=["both", "frontal", "each"],
        help="both: one sample per study with frontal+lateral (default); frontal: frontal only; "
        "each: one sample per image, still split by study",
    )
    p.add_argument("--prompt", help="user prompt (default: a fixed English instruction)")
    p.add_argument("--ratios", default="0.7,0.1,0.2", help="train,val,test shares (default 0.7,0.1,0.2)")
    p.add_argument("--seed", type=int, default=0, help="salt of the split hash (default 0)")
    p.add_argument(
        "--deid",
        default="keep",
        choices=["keep", "mask"],
        help="XXXX de-identification tokens: keep (default) or mask as [REDACTED]",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_prepare)
