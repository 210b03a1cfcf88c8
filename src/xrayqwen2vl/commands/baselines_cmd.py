"""`xrayqwen2vl baselines`: most-common-report and nearest-neighbour baselines, evaluated."""

from __future__ import annotations

from pathlib import Path

RUNS = ("most_common", "nearest_neighbour")


def run_baselines(args) -> int:
    from ..eval.baselines import most_common_report, nearest_neighbour_reports, write_predictions
    from ..eval.evaluate import evaluate, output_files, summary_table
    from ..eval.inputs import check_output_folder, read_dataset
    from ..eval.verdicts import warning_lines
    from ..fileio import refuse_output_over_inputs

    train_path, test_path = Path(args.train), Path(args.test)
    outputs = {}
    for name in RUNS:
        outputs[f"OUT/{name}/generated_predictions.jsonl"] = (
            Path(args.out) / name / "generated_predictions.jsonl"
        )
        outputs.update(output_files(Path(args.out) / name, f"OUT/{name}"))
    refuse_output_over_inputs(outputs, {"--train": train_path, "--test": test_path})
    train, test = read_dataset(train_path), read_dataset(test_path)
    train_media = Path(args.media_dir) if args.media_dir else train_path.parent
    test_media = Path(args.media_dir) if args.media_dir else test_path.parent
    out = check_output_folder(args.out)  # before the work, not after it
    report, count = most_common_report(train)
    print(f"most common training report ({count} of {len(train)}): {report}")
    runs = {
        "most_common": [report] * len(test),
        "nearest_neighbour": nearest_neighbour_reports(
            train, test, train_media, test_media, train_path, test_path
        ),
    }
    for name, predicted in runs.items():
        write_predictions(out / name / "generated_predictions.jsonl", test, predicted)
        metrics = evaluate(
            out / name / "generated_predictions.jsonl",
            out / name,
            lang=args.lang,
            images_from=test_path,
            media_dir=test_media,
            resamples=args.bootstrap,
            seed=args.seed,
            title=f"baseline {name}",
        )
        print(f"\n== {name} ==")
        print(summary_table(metrics))
        for line in warning_lines(metrics):
            print(line)
    print(f"\nwrote {out}/most_common/ and {out}/nearest_neighbour/ (predictions, metrics.json, report.html)")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "baselines",
        help="most-common-report and nearest-neighbour (image feature) baselines, evaluated like a model",
        description=(
            "Write OUT/most_common/ and OUT/nearest_neighbour/: generated_predictions.jsonl in LLaMA-Factory's "
            "format for the TEST split, and the same metrics.json, per_sample.jsonl and report.html as "
            "evaluate. Nearest neighbour: cosine similarity of 16x16 greyscale thumbnails of the first image."
        ),
    )
    p.add_argument("--train", required=True, help="TRAIN.json (ShareGPT dataset from prepare)")
    p.add_argument("--test", required=True, help="TEST.json (ShareGPT dataset from prepare)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--media-dir", help="folder image paths are relative to (default: each file's folder)")
    p.add_argument("--lang", default="en", choices=["en", "zh"], help="report language")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.set_defaults(func=run_baselines)
