"""`xrayqwen2vl sample`: the synthetic Open-i sample."""

from __future__ import annotations


def run_sample(args) -> int:
    from ..synthetic.sample import generate_sample

    size = (args.image_size, args.image_size)
    result = generate_sample(
        args.out, reports=args.reports, seed=args.seed, image_size=size, progress=not args.quiet
    )
    print(f"wrote {result['reports']} synthetic reports and {result['images']} images under {args.out}")
    print(
        f"  reports: {args.out}/ecgen-radiology/  images: {args.out}/NLMCXR_png/  truth: {args.out}/labels.csv"
    )
    if args.format != "openi":
        from ..synthetic.formats import write_format

        dest = f"{args.out}/{args.format}"
        counts = write_format(args.format, args.out, dest)
        print(f"  {args.format} form: {dest}/ ({', '.join(f'{k} {v}' for k, v in counts.items())})")
    return 0


def register(sub) -> None:
    from ..synthetic.formats import SYNTHETIC_FORMATS

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
    p.add_argument(
        "--format",
        default="openi",
        choices=["openi", *SYNTHETIC_FORMATS],
        help="also write the sample in this public form under OUT/FORMAT/ (default: openi layout only)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_sample)
