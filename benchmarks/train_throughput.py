"""Training throughput: the original recipe vs the tuned one, back to back, same model and data.

Runs configs/train_lora/qwen2vl_7b_lora_sft.yaml (the original project's recipe) and
configs/train_lora/qwen2vl_7b_lora_sft_fast.yaml through scripts/train.sh (the real
``llamafactory-cli train``, DeepSpeed ZeRO-2 through torchrun) for ``--steps`` optimizer steps
each, on gpu_check's random-init Qwen2-VL (7B dimensions on a GPU, ``--dims tiny`` on a CPU) and
synthetic studies with ``--views`` views of ``--image-size`` pixels. Per-step wall clock comes from
benchmarks/step_timer (a hook on the trainer's step-end callback, inside the run); the first
``--warmup`` steps are dropped and the median of the rest is used. Reports per recipe: samples/s,
tokens/s (non-padding input tokens, counted by the trainer), peak memory, the FLOP count per
sample and MFU, and the tuned/original ratio. Writes OUT/train_throughput.json and .md.

    python benchmarks/train_throughput.py --dims 7b --out "$OUT"      # GPU (see doc/benchmarks.md)
    python benchmarks/train_throughput.py --dims tiny --out tt-tiny   # CPU, the tiny model

FLOP per sample: 4 x N_lm x tokens for the LoRA-trained language model (forward,
and the backward pass through the activations; no weight gradients for frozen weights) plus
2 x N_vision x patches for the frozen vision tower (forward only). N_lm counts every parameter
outside the vision tower, embeddings included. Gradient-checkpointing recomputation is not
counted (MFU is useful work). MFU = FLOP/s over the card's dense bf16 peak, from PEAK_BF16_TFLOPS
by the name torch gives the card (H100 SXM 989, H100 PCIe 756, A100 312, ...), or --peak-tflops;
a card not in the table gets no MFU unless --peak-tflops is given; on a CPU only FLOP/s is given.

Only the overrides a run needs are passed: model, data and output folders, max_steps, no
checkpoint or validation, logging every step, the token counter; on a CPU also bf16=false and, for
the tuned recipe, enable_liger_kernel=false (liger-kernel needs a CUDA GPU), and one
preprocessing/no dataloader worker for both (2 cores).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import gpu_check  # noqa: E402  (model building, synthetic data, memory polling, stage runner)

RECIPES = {
    "original": "configs/train_lora/qwen2vl_7b_lora_sft.yaml",
    "fast": "configs/train_lora/qwen2vl_7b_lora_sft_fast.yaml",
}
# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) from NVIDIA's data sheets, matched in this
# order against torch.cuda.get_device_name() (e.g. "NVIDIA H100 80GB HBM3" is the SXM card).
PEAK_BF16_TFLOPS = [
    (r"H100.*PCIe", "H100 PCIe", 756.0),
    (r"H100.*NVL", "H100 NVL", 835.0),
    (r"H100|H800", "H100 SXM", 989.0),
    (r"H200", "H200", 989.0),
    (r"A100|A800", "A100", 312.0),
    (r"L40S", "L40S", 362.0),
    (r"\bA10\b", "A10", 125.0),
    (r"\bL4\b", "L4", 121.0),
    (r"RTX 4090", "RTX 4090", 165.0),
]


def card_peak(name: str | None) -> tuple[float | None, str]:
    """(dense bf16 peak in TFLOP/s, the table row it came from) for a card name; (None, why) if unknown."""
    import re

    for pattern, card, tflops in PEAK_BF16_TFLOPS:
        if name and re.search(pattern, name):
            return tflops, f"{card} dense bf16, {tflops:g} TFLOP/s"
    return None, f"{name or 'no GPU'}: not in the card table; pass --peak-tflops for an MFU"


def log(msg: str) -> None:
    print(f"[train_throughput {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_sets(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def patches_per_sample(data_dir: Path, config: dict) -> float:
    """Mean vision-tower patches (14x14 pixels) per training sample: each view resized as the
    Qwen2-VL processor does (smart_resize to multiples of 28 within the config's pixel bounds)."""
    from PIL import Image
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    samples = json.loads((data_dir / "openi_train.json").read_text(encoding="utf-8"))
    lo, hi = config.get("image_min_pixels", 56 * 56), config.get("image_max_pixels", 768 * 768)
    total = 0
    for sample in samples:
        for rel_path in sample["images"]:
            with Image.open(data_dir / rel_path) as im:
                w, h = im.size
            h2, w2 = smart_resize(h, w, factor=28, min_pixels=lo, max_pixels=hi)
            total += (h2 // 14) * (w2 // 14)
    return total / len(samples)


def fill_train_split(data_dir: Path, needed: int) -> dict:
    """Repeat the training samples until there are ``needed``: an epoch that ends inside the run
    would end an optimizer step early (fewer samples than batch x accumulation) and skew the
    figures. Repeats cost nothing to prepare; the model sees them as new samples."""
    path = data_dir / "openi_train.json"
    samples = json.loads(path.read_text(encoding="utf-8"))
    distinct = len(samples)
    if distinct < needed:
        samples = (samples * math.ceil(needed / distinct))[:needed]
        path.write_text(json.dumps(samples, ensure_ascii=False), encoding="utf-8")
    return {"distinct": distinct, "used": len(samples)}


def step_figures(step_log: Path, warmup: int, samples_per_step: int) -> dict:
    records = [json.loads(line) for line in step_log.read_text().splitlines() if line.strip()]
    records.sort(key=lambda r: r["step"])
    # Duration of step k = end of k - end of k-1; step 1 (no previous end) is always warm-up.
    durations = {b["step"]: b["t"] - a["t"] for a, b in zip(records, records[1:], strict=False)}
    tokens = {
        b["step"]: b["tokens_seen"] - a["tokens_seen"] for a, b in zip(records, records[1:], strict=False)
    }
    timed = [s for s in durations if s > warmup]
    if not timed:
        raise SystemExit(f"no timed steps: {len(records)} steps logged, warm-up {warmup}")
    median_s = statistics.median(durations[s] for s in timed)
    tokens_per_step = statistics.median(tokens[s] for s in timed)
    cuda = [r["cuda_max_allocated"] for r in records if r["cuda_max_allocated"] is not None]
    return {
        "steps_logged": len(records),
        "timed_steps": len(timed),
        "step_seconds": [round(durations[s], 4) for s in sorted(durations)],
        "median_step_s": round(median_s, 4),
        "samples_per_step": samples_per_step,
        "samples_per_second": round(samples_per_step / median_s, 3),
        "tokens_per_step": tokens_per_step,
        "tokens_per_sample": round(tokens_per_step / samples_per_step, 1),
        "tokens_per_second": round(tokens_per_step / median_s, 1),
        "peak_cuda_allocated_gib": round(max(cuda) / 2**30, 2) if cuda else None,
        "peak_rss_gib": round(max(r["max_rss_kib"] for r in records) / 2**20, 2),
    }


def run_recipe(name, config_path, args, model, data, work, logs, env, device, sets) -> dict:
    import yaml

    cfg = yaml.safe_load((gpu_check.REPO / config_path).read_text())
    out_dir = work / f"sft_{name}"
    shutil.rmtree(out_dir, ignore_errors=True)
    overrides = {
        "model_name_or_path": str(model),
        "dataset_dir": str(data),
        "output_dir": str(out_dir),
        "max_steps": str(args.steps),
        "save_strategy": "'no'",  # quoted: OmegaConf reads a bare no as false
        "eval_strategy": "'no'",
        "logging_steps": "1",
        "plot_loss": "false",
        "include_num_input_tokens_seen": "non_padding",
    }
    if device != "cuda":
        overrides.update(bf16="false", preprocessing_num_workers="1", dataloader_num_workers="0")
        if cfg.get("enable_liger_kernel"):
            overrides["enable_liger_kernel"] = "false"
    overrides.update(sets)
    step_log = logs / f"steps_{name}.jsonl"
    step_log.unlink(missing_ok=True)
    run_env = {
        **env,
        "XRAYQWEN2VL_STEP_LOG": str(step_log),
        "PYTHONPATH": os.pathsep.join(p for p in (str(BENCH / "step_timer"), env.get("PYTHONPATH")) if p),
    }
    cmd = ["bash", "scripts/train.sh", config_path, *(f"{k}={v}" for k, v in overrides.items())]
    result = gpu_check.stage(f"train_{name}", cmd, logs, run_env, work)
    result["config"] = config_path
    effective = {**cfg, **{k: yaml.safe_load(v) for k, v in overrides.items()}}
    result["settings"] = {
        k: effective.get(k)
        for k in (
            "per_device_train_batch_size",
            "gradient_accumulation_steps",
            "enable_liger_kernel",
            "disable_gradient_checkpointing",
            "image_max_pixels",
            "bf16",
        )
    }
    if result["rc"] == 0:
        per_step = effective["per_device_train_batch_size"] * effective["gradient_accumulation_steps"]
        result.update(step_figures(step_log, args.warmup, per_step))
        result["image_pixels"] = (
            effective.get("image_min_pixels", 56 * 56),
            effective.get("image_max_pixels"),
        )
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dims", choices=["7b", "tiny"], default="7b", help="model dimensions (default 7b)")
    ap.add_argument("--out", required=True, help="folder for train_throughput.json/.md and the logs")
    ap.add_argument(
        "--work",
        help="scratch folder for model, data and run outputs, never under OUT (default: xrayqwen2vl-throughput in the system temp folder)",
    )
    ap.add_argument("--views", type=int, choices=[1, 2], default=1, help="views per study (default 1)")
    ap.add_argument("--image-size", type=int, help="synthetic view side (default 512 on 7b, 128 tiny)")
    ap.add_argument("--steps", type=int, default=6, help="optimizer steps per recipe (default 6)")
    ap.add_argument("--warmup", type=int, default=2, help="first steps left out of the median (default 2)")
    ap.add_argument("--reports", type=int, default=200, help="synthetic reports (default 200)")
    ap.add_argument(
        "--peak-tflops",
        type=float,
        help="accelerator peak for MFU (default: the card's, from PEAK_BF16_TFLOPS)",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra override for both recipes (e.g. to shrink batches on a CPU); recorded",
    )
    ap.add_argument("--only", choices=sorted(RECIPES), help="run one recipe only (no ratio)")
    args = ap.parse_args(argv)
    if args.steps <= args.warmup + 1:
        ap.error("--steps must exceed --warmup + 1 (step 1 is never timed)")

    import torch
    import yaml

    gpu_check.log = log
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.dims == "7b" and device != "cuda":
        ap.error("--dims 7b needs a CUDA GPU; use --dims tiny on a CPU")
    if not shutil.which("llamafactory-cli"):
        ap.error("llamafactory-cli is not on PATH (install the wheels; see doc/benchmarks.md)")
    sets = parse_sets(args.set)
    out = Path(args.out).resolve()
    work = Path(args.work).resolve() if args.work else Path(tempfile.gettempdir()) / "xrayqwen2vl-throughput"
    if work == out or out in work.parents:
        ap.error("--work must not be inside --out (the model is 16.6 GB at 7B dims)")
    logs = out / "logs"
    for d in (out, work, logs):
        d.mkdir(parents=True, exist_ok=True)
    gpu_name = torch.cuda.get_device_name(0) if device == "cuda" else None
    if args.peak_tflops:
        peak_tflops, peak_source = args.peak_tflops, "--peak-tflops"
    elif device == "cuda":
        peak_tflops, peak_source = card_peak(gpu_name)
    else:
        peak_tflops, peak_source = None, "CPU: FLOP/s only"
    log(f"MFU peak: {peak_source}")

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # One GPU (the figures are per GPU), or the CPU: the wrappers otherwise want the recipe's GPUs.
    env.setdefault("GPUS", "1" if device == "cuda" else "0")
    results: dict = {
        "dims": args.dims,
        "device": device,
        "gpu": gpu_name,
        "cpu_cores": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "versions": {
            m: __import__(m).__version__
            for m in ("torch", "transformers", "llamafactory", "peft", "deepspeed")
        },
        "views": args.views,
        "steps": args.steps,
        "warmup": args.warmup,
        "extra_overrides": sets,
        "peak_tflops": peak_tflops,
        "peak_tflops_source": peak_source,
        "runs": {},
    }

    def save():
        (out / "train_throughput.json").write_text(json.dumps(results, indent=2) + "\n")

    log(f"building a random Qwen2-VL ({args.dims} dims) on {device}")
    dims = gpu_check.DIMS_7B if args.dims == "7b" else gpu_check.DIMS_TINY
    results["model"] = gpu_check.build_model(work / "model", dims, device)
    image_size = args.image_size or (512 if args.dims == "7b" else 128)
    results["image_size"] = image_size
    data_root = work / f"views{args.views}"
    shutil.rmtree(data_root, ignore_errors=True)
    results["data"] = gpu_check.build_data(
        data_root, args.reports, image_size, views="frontal" if args.views == 1 else "both"
    )
    most_per_step = 0
    for config_path in RECIPES.values():
        cfg = {
            **yaml.safe_load((gpu_check.REPO / config_path).read_text()),
            **{k: yaml.safe_load(v) for k, v in sets.items()},
        }
        most_per_step = max(
            most_per_step, cfg["per_device_train_batch_size"] * cfg["gradient_accumulation_steps"]
        )
    results["train_samples"] = fill_train_split(data_root / "data", most_per_step * args.steps)
    log(
        f"data: {results['data']} samples, {args.views} view(s) of {image_size}x{image_size}; "
        f"training split repeated to {results['train_samples']['used']} (one pass, no epoch boundary)"
    )
    n_vision = results["model"]["vision_parameters"]
    n_lm = results["model"]["parameters"] - n_vision
    results["flop_count"] = {"n_lm": n_lm, "n_vision": n_vision}
    save()

    for name, config_path in RECIPES.items():
        if args.only and name != args.only:
            continue
        r = run_recipe(
            name, config_path, args, work / "model", data_root / "data", work, logs, env, device, sets
        )
        if r["rc"] == 0:
            cfg = yaml.safe_load((gpu_check.REPO / config_path).read_text())
            patches = patches_per_sample(
                data_root / "data", {**cfg, **{k: yaml.safe_load(v) for k, v in sets.items()}}
            )
            flop = 4 * n_lm * r["tokens_per_sample"] + 2 * n_vision * patches
            r["patches_per_sample"] = round(patches, 1)
            r["flop_per_sample"] = flop
            r["flop_per_second"] = flop * r["samples_per_second"]
            r["mfu"] = round(r["flop_per_second"] / (peak_tflops * 1e12), 4) if peak_tflops else None
            log(
                f"{name}: {r['samples_per_second']} samples/s, {r['tokens_per_second']} tokens/s, "
                f"{flop:.3e} FLOP/sample = 4 x {n_lm:.4g} x {r['tokens_per_sample']} + 2 x {n_vision:.4g} "
                f"x {patches:.1f}; {r['flop_per_second']:.3e} FLOP/s; MFU {r['mfu']}"
            )
        results["runs"][name] = r
        save()
        if r["rc"] != 0:
            return 1
    runs = results["runs"]
    if len(runs) == 2:
        results["ratio"] = round(
            runs["fast"]["samples_per_second"] / runs["original"]["samples_per_second"], 2
        )
    save()

    where = results["gpu"] or f"CPU, {os.cpu_count()} cores"
    md = [
        f"Training throughput ({args.dims} dims, {where}, {results['model']['dtype']}, random weights, "
        f"{results['model']['parameters']:,} parameters; {args.views} view(s) of {image_size}x{image_size} per "
        f"sample; {args.steps} steps per recipe, median of steps {args.warmup + 1}-{args.steps}; "
        f"{results['date']}; " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()) + ")",
        "",
        "| recipe | batch x accum | Liger | grad. ckpt | samples/s | tokens/s | tokens/sample | "
        "FLOP/sample | FLOP/s | MFU | peak GPU alloc. (GiB) | peak GPU (MiB, nvidia-smi) | peak RSS (GiB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in runs.items():
        s = r["settings"]
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"
        md.append(
            f"| {name} | {s['per_device_train_batch_size']} x {s['gradient_accumulation_steps']} | "
            f"{'on' if s['enable_liger_kernel'] else 'off'} | "
            f"{'off' if s['disable_gradient_checkpointing'] else 'on'} | {r['samples_per_second']} | "
            f"{r['tokens_per_second']} | {r['tokens_per_sample']} | {r['flop_per_sample']:.3e} | "
            f"{r['flop_per_second']:.3e} | {mfu} | {r['peak_cuda_allocated_gib'] or 'n/a'} | "
            f"{r['peak_gpu_mib'] or 'n/a'} | {r['peak_rss_gib']} |"
        )
    md += ["", f"MFU against: {peak_source}."]
    if "ratio" in results:
        md += ["", f"Tuned / original: **{results['ratio']}×** samples/s."]
    md += ["", "Commands:", ""] + [f"- {name}: `{r['command']}`" for name, r in runs.items()]
    (out / "train_throughput.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    if math.isnan(results.get("ratio", 0.0)):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
