"""`xrayqwen2vl evaluate`: score LLaMA-Factory's generated_predictions.jsonl."""

from __future__ import annotations

from ..eval.meteor import METEOR_TIMEOUT

EXIT_COLLAPSE = 3


def run_evaluate(args) -> int:
    from ..eval.evaluate import evaluate, summary_table
    from ..eval.verdicts import warning_lines

    metrics = evaluate(
        args.predictions,
        args.out,
        lang=args.lang,
        images_from=args.images_from,
        media_dir=args.media_dir,
        resamples=args.bootstrap,
        seed=args.seed,
        title=args.title,
        html=not args.no_html,
        keep_headers=args.keep_headers,
        meteor_timeout=args.meteor_timeout,
        **rexrank_options(args),
    )
    print(summary_table(metrics))
    if "rexrank" in metrics:
        from ..eval.rexrank_run import summary_lines

        print("\n".join(summary_lines(metrics["rexrank"], metrics["clinical"])))
    for line in warning_lines(metrics):
        print(line)
    print(
        f"wrote {args.out}/metrics.json, {args.out}/per_sample.jsonl"
        + ("" if args.no_html else ", report.html")
    )
    if args.fail_on_collapse and metrics["diversity"]["collapse"]["collapsed"]:
        return EXIT_COLLAPSE
    return 0


def rexrank_options(args) -> dict:
    """--metrics rexrank and its options, as keyword arguments of evaluate()."""
    if args.metrics in (None, "default"):
        if args.green or args.green_endpoint:
            raise ValueError("--green and --green-endpoint score ReXrank's GREEN: add --metrics rexrank")
        return {}
    from ..eval.rexrank_run import parse_metric_list

    endpoint = None
    if args.green_endpoint:
        if not args.green_endpoint.startswith(("http://", "https://")):
            raise ValueError(f"--green-endpoint: not an http(s) URL: {args.green_endpoint!r}")
        endpoint = {
            "url": args.green_endpoint,
            "model": args.green_model,
            "concurrency": args.green_concurrency,
            "max_tokens": args.green_max_tokens,
        }
    return {
        "extra_metrics": ("rexrank",),
        "section": args.section,
        "rexrank_metrics": parse_metric_list(args.rexrank_metrics, args.green or bool(endpoint)),
        "green_endpoint": endpoint,
    }


def _positive_int(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_rexrank_arguments(p) -> None:
    from ..eval.rexrank_adapter import GREEN_MODEL

    p.add_argument(
        "--metrics",
        choices=["default", "rexrank"],
        default="default",
        help="rexrank: add ReXrank's suite (BLEU-2, BERTScore, SembScore, RadGraph, 1/RadCliQ-v1, RaTEScore, "
        "GREEN with --green, CheXbert CE F1) from the metrics environment (make metrics-venv)",
    )
    p.add_argument(
        "--section",
        choices=["findings", "impression", "both"],
        default="both",
        help="what the ReXrank metrics score, whatever the dataset's target (default: both, the text as written)",
    )
    p.add_argument(
        "--rexrank-metrics",
        metavar="LIST",
        help="comma-separated subset of bertscore,sembscore,radgraph,ratescore,green (default: all but green)",
    )
    p.add_argument("--green", action="store_true", help="also GREEN, its 7B judge loaded here (needs a GPU)")
    p.add_argument(
        "--green-endpoint",
        metavar="URL",
        help="also GREEN, its judge asked through this OpenAI-compatible server (e.g. http://127.0.0.1:8000/v1; "
        "key, if any, in $XRAYQWEN2VL_GREEN_API_KEY)",
    )
    p.add_argument(
        "--green-model",
        default=GREEN_MODEL,
        help="the model name the endpoint serves GREEN's judge under (default: %(default)s)",
    )
    p.add_argument(
        "--green-concurrency",
        type=_positive_int,
        default=4,
        metavar="N",
        help="requests in flight at once to --green-endpoint (default: %(default)s)",
    )
    p.add_argument(
        "--green-max-tokens",
        type=_positive_int,
        default=1400,
        metavar="N",
        help="the longest judge answer asked of --green-endpoint, in tokens (default: %(default)s; GREEN's own "
        "limit is 2,048 with the ~600-token prompt)",
    )


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="NLG metrics (COCO toolkit), clinical efficacy, diversity and an HTML report for predictions",
        description=(
            "Read LLaMA-Factory's generated_predictions.jsonl (prompt, predict, label per line) and write "
            "OUT/metrics.json (headline: CE micro-5 F1; BLEU-1..4, METEOR, ROUGE-L, CIDEr via pycocoevalcap "
            "on R2Gen-normalised text without section headers; CheXpert clinical precision/recall/F1; "
            "diversity; bootstrap intervals; the same figures for the constant most-common-reference report; "
            "warnings), OUT/per_sample.jsonl and OUT/report.html. Warnings (mode collapse, no better than the "
            "constant report, METEOR failure or truncation, empty predictions) are printed as WARNING lines. "
            "Exit status: 0 done, 2 bad input or unwritable --out, 3 mode collapse with --fail-on-collapse. "
            "METEOR needs Java."
        ),
    )
    p.add_argument("--predictions", required=True, help="generated_predictions.jsonl")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--lang", default="en", choices=["en", "zh"], help="report language (zh: jieba segmentation)"
    )
    p.add_argument(
        "--images-from",
        metavar="DATASET.json",
        help="the ShareGPT dataset the predictions were made on (same order): shows its images in report.html",
    )
    p.add_argument(
        "--media-dir", help="folder the dataset's image paths are relative to (default: its folder)"
    )
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000; 0: none)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--title", help="title of report.html (default: the predictions path)")
    p.add_argument("--no-html", action="store_true", help="do not write report.html")
    p.add_argument(
        "--keep-headers",
        action="store_true",
        help="score section headers (Findings:, Impression:, 所见：, 印象：) as words; default: removed, as in "
        "R2Gen's bare-findings references",
    )
    p.add_argument(
        "--fail-on-collapse",
        action="store_true",
        help=f"exit with status {EXIT_COLLAPSE} when the predictions show mode collapse (for CI); outputs are "
        "still written",
    )
    p.add_argument(
        "--meteor-timeout",
        type=float,
        default=METEOR_TIMEOUT,
        metavar="SECONDS",
        help=f"METEOR's Java process is killed when it answers nothing for this long (default {METEOR_TIMEOUT:.0f}); "
        "METEOR is then reported as failed and the other metrics are kept",
    )
    add_rexrank_arguments(p)
    p.set_defaults(func=run_evaluate)
