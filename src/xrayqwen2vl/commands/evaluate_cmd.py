"""`xrayqwen2vl evaluate`: score LLaMA-Factory's generated_predictions.jsonl."""

from __future__ import annotations


def run_evaluate(args) -> int:
    from ..eval.evaluate import evaluate, summary_table

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
    )
    print(summary_table(metrics))
    print(
        f"wrote {args.out}/metrics.json, {args.out}/per_sample.jsonl"
        + ("" if args.no_html else ", report.html")
    )
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="NLG metrics (COCO toolkit), clinical efficacy, diversity and an HTML report for predictions",
        description=(
            "Read LLaMA-Factory's generated_predictions.jsonl (prompt, predict, label per line) and write "
            "OUT/metrics.json (BLEU-1..4, METEOR, ROUGE-L, CIDEr via pycocoevalcap; CheXpert clinical "
            "precision/recall/F1; diversity; bootstrap intervals), OUT/per_sample.jsonl and OUT/report.html. "
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
    p.set_defaults(func=run_evaluate)
