"""`xrayqwen2vl counterfactual`: the swapped-image and blank-image copies of a test split."""

from __future__ import annotations

from pathlib import Path


def _predict_lines(args, manifest: dict) -> list[str]:
    """The predict commands for the counterfactual splits (exact when --predict-config is given)."""
    from ..data.counterfactual import predict_overrides

    config, output_dir, extra = "PREDICT.yaml", "OUTPUT_DIR", ""
    if args.predict_config:
        from ..yamlfile import UnsafeYamlError, read_config_yaml

        path = Path(args.predict_config)
        try:
            cfg = read_config_yaml(path) or {}
        except UnsafeYamlError as e:
            raise ValueError(str(e)) from None
        except OSError as e:
            raise ValueError(f"{path}: cannot read the predict config ({e.strerror})") from None
        if not isinstance(cfg, dict) or "output_dir" not in cfg:
            raise ValueError(f"{path}: no output_dir: is it a LLaMA-Factory predict config?")
        config, output_dir = args.predict_config, str(cfg["output_dir"])
        if Path(str(cfg.get("dataset_dir", "data"))) != Path(args.dataset_dir):
            extra = f" dataset_dir={args.dataset_dir}"
    lines = [
        f"llamafactory-cli train {config} eval_dataset={args.split}{extra}   # true images (if not done yet)"
    ]
    for kind in manifest["counterfactuals"]:
        overrides = " ".join(predict_overrides(output_dir, args.split, kind))
        lines.append(f"llamafactory-cli train {config} {overrides}{extra}")
    cf = " ".join(
        f"--{kind} {output_dir}_{kind}/generated_predictions.jsonl" for kind in manifest["counterfactuals"]
    )
    lines.append(
        f"xrayqwen2vl reliance --true {output_dir}/generated_predictions.jsonl {cf} "
        f"--out {output_dir}_reliance --images-from {Path(args.dataset_dir) / manifest['source']}"
    )
    return lines


def run_counterfactual(args) -> int:
    from ..data.counterfactual import KINDS, write_counterfactuals

    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    if any(k not in KINDS for k in kinds) or not kinds:
        raise ValueError(f"--kinds {args.kinds}: expected a comma-separated subset of {','.join(KINDS)}")
    manifest = write_counterfactuals(
        args.dataset_dir,
        args.split,
        args.seed,
        kinds,
        args.media_dir,
        {"--predict-config": args.predict_config},
    )
    print(
        f"{args.split}: {manifest['studies']} studies, {manifest['images']} images "
        f"({manifest['studies_without_images']} studies without images kept as they are)"
    )
    for kind, c in manifest["counterfactuals"].items():
        note = f"; {c['view_mismatches']} image positions from another view" if kind == "swapped" else ""
        print(f"  {c['dataset']:<28} {args.dataset_dir}/{c['file_name']}  ({c['rule']}{note})")
    print(
        f"added to {args.dataset_dir}/dataset_info.json; donors in {args.dataset_dir}/{args.split}_counterfactual.json"
    )
    print("predict each and compare (greedy decoding, as the predict configs do):")
    for line in _predict_lines(args, manifest):
        print(f"  {line}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "counterfactual",
        help="write swapped-image and blank-image copies of a test split (for `xrayqwen2vl reliance`)",
        description=(
            "From the dataset SPLIT named in DATASET_DIR/dataset_info.json (as prepare writes it), write "
            "SPLIT_swapped.json (images permuted among the studies, each view position separately, a seeded "
            "derangement: no study keeps its own images) and SPLIT_blank.json (black images of the same size), "
            "their dataset_info.json entries and SPLIT_counterfactual.json (seed, which study each image came "
            "from). Prints the predict commands (exact with --predict-config) and the reliance command."
        ),
    )
    p.add_argument("--dataset-dir", default="data", help="folder with dataset_info.json (default data)")
    p.add_argument("--split", required=True, help="dataset name in dataset_info.json, e.g. openi_test")
    p.add_argument("--seed", type=int, default=0, help="seed of the permutation (default 0)")
    p.add_argument("--kinds", default="swapped,blank", help="which to write (default swapped,blank)")
    p.add_argument(
        "--media-dir",
        help="folder the image paths are relative to (LLaMA-Factory's media_dir; default DATASET_DIR)",
    )
    p.add_argument(
        "--predict-config",
        metavar="PREDICT.yaml",
        help="print the exact predict commands for this predict config",
    )
    p.set_defaults(func=run_counterfactual)
