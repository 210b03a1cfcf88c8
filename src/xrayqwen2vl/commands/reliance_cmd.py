"""`xrayqwen2vl reliance`: does the model look at the X-ray? True vs counterfactual images."""

from __future__ import annotations

# Exit status when the model ignores the image and --fail-on-ignored-image is set.
EXIT_IGNORED = 3


def run_reliance(args) -> int:
    from ..eval.reliance import IGNORES, image_reliance, summary_lines

    counterfactuals = {k: p for k, p in (("swapped", args.swapped), ("blank", args.blank)) if p}
    if not counterfactuals:
        raise ValueError("give --swapped and/or --blank predictions (from `xrayqwen2vl counterfactual`)")
    result = image_reliance(
        args.true,
        counterfactuals,
        args.out,
        lang=args.lang,
        images_from=args.images_from,
        resamples=args.bootstrap,
        seed=args.seed,
        html=not args.no_html,
    )
    print("\n".join(summary_lines(result)))
    print(
        f"wrote {args.out}/reliance.json ({', '.join(['true', *counterfactuals])}: evaluate's output per run)"
    )
    if args.fail_on_ignored_image and result["verdict"] == IGNORES:
        return EXIT_IGNORED
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "reliance",
        help="does the model look at the X-ray? drop in the figures when the images are swapped or blank",
        description=(
            "Evaluate the predictions on the true images and on counterfactual images (from `xrayqwen2vl "
            "counterfactual`: other studies' images, blank images) against the same references, and report per "
            "metric the drop (true minus counterfactual) with a paired bootstrap 95%% interval, how many "
            "predictions did not change at all, and a verdict. A model that ignores the image (>= 90%% unchanged) "
            "or shows no significant drop in CE micro-5 F1 gets a WARNING line and an entry in the warnings list "
            "of OUT/reliance.json. Use greedy decoding: with sampling, unchanged counts mean nothing."
        ),
    )
    p.add_argument("--true", required=True, help="generated_predictions.jsonl on the true images")
    p.add_argument("--swapped", help="generated_predictions.jsonl on the SPLIT_swapped dataset")
    p.add_argument("--blank", help="generated_predictions.jsonl on the SPLIT_blank dataset")
    p.add_argument(
        "--out", required=True, help="output folder (reliance.json; true/, swapped/, blank/ evaluations)"
    )
    p.add_argument(
        "--images-from",
        metavar="SPLIT.json",
        help="the true test split (its _swapped/_blank files beside it are shown in each report.html)",
    )
    p.add_argument("--lang", default="en", choices=["en", "zh"], help="report language")
    p.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--no-html", action="store_true", help="do not write the report.html files")
    p.add_argument(
        "--fail-on-ignored-image",
        action="store_true",
        help=f"exit {EXIT_IGNORED} when the verdict is 'ignores the image' (for CI)",
    )
    p.set_defaults(func=run_reliance)
