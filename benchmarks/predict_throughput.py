"""One-at-a-time vs batched prediction with the real predict config.

Runs configs/predict/qwen2vl_7b_lora_sft.yaml through scripts/predict.sh (LLaMA-Factory
``do_predict`` + ``predict_with_generate``, greedy) twice on the same test samples and the same
``max_new_tokens``: once with ``per_device_eval_batch_size=1`` and once with ``--batch`` (default:
the config's own). Reports samples/s of each (LLaMA-Factory's ``predict_samples_per_second``: the
generation loop, model loading excluded), the ratio, and how many of the generated reports are
identical in the two runs. Writes OUT/predict_throughput.json and OUT/predict_throughput.md.

    python benchmarks/predict_throughput.py --dims 7b --out "$OUT"         # on the GPU machine
    python benchmarks/predict_throughput.py --dims tiny --out pt-tiny      # CPU, the tiny model

The model is gpu_check's random-init Qwen2-VL (7B or tiny dimensions), without an adapter
(``adapter_name_or_path=null``): the point is speed at a fixed generation length, not report
quality. Random weights seldom emit the end-of-turn token, so most samples run the full
``max_new_tokens``; the figures are for that length.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_check  # noqa: E402  (model building, synthetic data, memory polling, stage runner)

PREDICT_CONFIG = "configs/predict/qwen2vl_7b_lora_sft.yaml"


def log(msg: str) -> None:
    print(f"[predict_throughput {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def read_predictions(folder: Path) -> list[dict]:
    lines = (folder / "generated_predictions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def compare(single: list[dict], batched: list[dict]) -> dict:
    """How many generated reports are identical, sample by sample (same order: the test split)."""
    assert [p["label"] for p in single] == [p["label"] for p in batched], "the two runs saw other samples"
    same = [a["predict"] == b["predict"] for a, b in zip(single, batched, strict=True)]
    return {
        "samples": len(same),
        "identical": sum(same),
        "differing_indices": [i for i, s in enumerate(same) if not s],
    }


def vary_view_sizes(data_dir: Path, side: int, seed: int = 0) -> list[tuple[int, int]]:
    """Resize every view of the test split to its own aspect ratio (same area, about side x side),
    as real radiographs vary: the samples then have different numbers of visual tokens, so a batch
    is really padded. Returns the new sizes."""
    import random

    from PIL import Image

    rng = random.Random(seed)
    sizes = []
    for sample in json.loads((data_dir / "openi_test.json").read_text(encoding="utf-8")):
        for rel_path in sample["images"]:
            path = (data_dir / rel_path).resolve()
            ratio = rng.uniform(0.6, 1.6)
            size = (max(28, round(side * ratio**0.5)), max(28, round(side / ratio**0.5)))
            with Image.open(path) as im:
                im.resize(size).save(path)
            sizes.append(size)
    return sizes


def visual_tokens(predictions: list[dict]) -> list[int]:
    return [p["prompt"].count("<|image_pad|>") for p in predictions]


def versions() -> dict:
    return {m: __import__(m).__version__ for m in ("torch", "transformers", "llamafactory", "peft")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dims", choices=["7b", "tiny"], default="7b", help="model dimensions (default 7b)")
    ap.add_argument("--out", required=True, help="folder for predict_throughput.json/.md and the logs")
    ap.add_argument(
        "--work",
        help="scratch folder for model, data and outputs, never under OUT (default: xrayqwen2vl-throughput in the system temp folder, shared with train_throughput.py)",
    )
    ap.add_argument("--samples", type=int, default=32, help="test samples to predict (default 32)")
    ap.add_argument("--batch", type=int, help="batched run's per-device batch (default: the config's)")
    ap.add_argument("--max-new-tokens", type=int, default=128, help="generated tokens (default 128)")
    ap.add_argument("--reports", type=int, default=200, help="synthetic reports (default 200)")
    ap.add_argument(
        "--reuse-model",
        action="store_true",
        help="use the model already in WORK/model if there is one (e.g. the one train_throughput built)",
    )
    ap.add_argument("--image-size", type=int, help="synthetic image side (default 512 on 7b, 128 tiny)")
    args = ap.parse_args(argv)

    import torch
    import yaml

    gpu_check.log = log
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.dims == "7b" and device != "cuda":
        ap.error("--dims 7b needs a CUDA GPU; use --dims tiny on a CPU")
    if not shutil.which("llamafactory-cli"):
        ap.error("llamafactory-cli is not on PATH (install the wheels; see doc/benchmarks.md)")
    out = Path(args.out).resolve()
    default_work = Path(tempfile.gettempdir()) / "xrayqwen2vl-throughput"
    work = Path(args.work).resolve() if args.work else default_work
    if work == out or out in work.parents:
        ap.error("--work must not be inside --out")
    logs = out / "logs"
    for d in (out, work, logs):
        d.mkdir(parents=True, exist_ok=True)
    batch = (
        args.batch
        or yaml.safe_load((gpu_check.REPO / PREDICT_CONFIG).read_text())["per_device_eval_batch_size"]
    )

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # One GPU (the figures are per GPU), or the CPU: the wrappers otherwise want the recipe's GPUs.
    env.setdefault("GPUS", "1" if device == "cuda" else "0")
    results: dict = {"dims": args.dims, "device": device, "versions": versions()}
    results["gpu"] = torch.cuda.get_device_name(0) if device == "cuda" else None
    results["date"] = time.strftime("%Y-%m-%d", time.gmtime())

    dims = gpu_check.DIMS_7B if args.dims == "7b" else gpu_check.DIMS_TINY
    if args.reuse_model and (work / "model" / "config.json").is_file():
        log(f"reusing the model in {work / 'model'}")
        results["model"] = {"reused": True, "dtype": "bfloat16" if device == "cuda" else "float32"}
    else:
        log(f"building a random Qwen2-VL ({args.dims} dims) on {device}")
        results["model"] = gpu_check.build_model(work / "model", dims, device)
    image_size = args.image_size or (512 if args.dims == "7b" else 128)
    results["data"] = gpu_check.build_data(work, args.reports, image_size)
    vary_view_sizes(work / "data", image_size)
    n_test = len(json.loads((work / "data" / "openi_test.json").read_text()))
    if n_test < args.samples:
        ap.error(f"only {n_test} test samples from {args.reports} reports; raise --reports")
    log(f"data: {results['data']} samples, {image_size}x{image_size} images")

    common = [
        f"model_name_or_path={work / 'model'}",
        "adapter_name_or_path=null",
        f"dataset_dir={work / 'data'}",
        f"max_samples={args.samples}",
        f"max_new_tokens={args.max_new_tokens}",
        "preprocessing_num_workers=1",
    ]
    if device != "cuda":
        common.append("bf16=false")
    runs = {}
    for name, bs in (("single", 1), ("batched", batch)):
        folder = work / f"predict_{name}"
        shutil.rmtree(folder, ignore_errors=True)
        cmd = [
            "bash",
            "scripts/predict.sh",
            PREDICT_CONFIG,
            *common,
            f"output_dir={folder}",
            f"per_device_eval_batch_size={bs}",
        ]
        run = gpu_check.stage(f"predict_{name}", cmd, logs, env, work)
        run["batch"] = bs
        if run["rc"] == 0:
            metrics = json.loads((folder / "all_results.json").read_text())
            run["samples_per_second"] = metrics["predict_samples_per_second"]
            run["predict_runtime_s"] = metrics["predict_runtime"]
            preds = read_predictions(folder)
            run["predictions"] = len(preds)
            run["visual_tokens_per_sample"] = visual_tokens(preds)
            run["mean_generated_chars"] = round(sum(len(p["predict"]) for p in preds) / max(len(preds), 1), 1)
            shutil.copy(folder / "generated_predictions.jsonl", out / f"generated_predictions_{name}.jsonl")
        runs[name] = run
        results["runs"] = runs
        (out / "predict_throughput.json").write_text(json.dumps(results, indent=2) + "\n")
        if run["rc"] != 0:
            return 1

    results["ratio"] = round(runs["batched"]["samples_per_second"] / runs["single"]["samples_per_second"], 2)
    results["identity"] = compare(
        read_predictions(work / "predict_single"), read_predictions(work / "predict_batched")
    )
    (out / "predict_throughput.json").write_text(json.dumps(results, indent=2) + "\n")

    where = results["gpu"] or f"CPU ({os.cpu_count()} cores)"
    ident = results["identity"]
    md = [
        f"Prediction, one at a time vs batched ({args.dims} dims, {where}, {results['model']['dtype']}; "
        f"{args.samples} test samples, {image_size}x{image_size} views, max_new_tokens {args.max_new_tokens}, greedy; "
        f"{results['date']}; " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()) + ")",
        "",
        "| run | per-device batch | samples/s | predict time (s) | wall incl. load (s) | peak GPU MiB |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in runs.items():
        md.append(
            f"| {name} | {r['batch']} | {r['samples_per_second']} | {r['predict_runtime_s']} | {r['wall_s']} | {r['peak_gpu_mib'] or 'n/a'} |"
        )
    md += [
        "",
        f"Batched / single: **{results['ratio']}×** samples/s. Identical generated reports: "
        f"{ident['identical']} of {ident['samples']}. Visual tokens per sample (views resized to "
        f"different aspect ratios, so batches are padded): {sorted(set(runs['single']['visual_tokens_per_sample']))}.",
        "",
        "Commands:",
        "",
    ] + [f"- {name}: `{r['command']}`" for name, r in runs.items()]
    (out / "predict_throughput.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
