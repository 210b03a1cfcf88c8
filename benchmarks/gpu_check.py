"""GPU check of the real 7B configs: a random-init Qwen2-VL at the real 7B dimensions runs
configs/train_lora/qwen2vl_7b_lora_sft.yaml (DeepSpeed ZeRO-2 through scripts/train.sh) for a few
steps, then configs/predict/qwen2vl_7b_lora_sft.yaml on a handful of test samples and
configs/merge_lora/qwen2vl_7b_lora_sft.yaml (last: it runs on the CPU and is the slowest).
Records wall time, peak GPU memory (nvidia-smi, polled) and samples/s of each stage in
OUT/gpu_check.json (rewritten after every stage) and OUT/gpu_check.md (a table for
doc/benchmarks.md).

    python benchmarks/gpu_check.py --dims 7b --out "$OUT"     # on the GPU machine (see doc/benchmarks.md)
    python benchmarks/gpu_check.py --dims tiny --out gc-tiny  # the same path end to end on a CPU

The weights are random: the point is memory, speed and that every config runs, not report
quality. Only the overrides a run needs are passed: the model, data and output folders, a short
run (max_steps, max_samples, max_new_tokens), and on a CPU bf16=false.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import positions

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

RUN = "qwen2vl_7b_lora_sft"
TRAIN_CONFIG = f"configs/train_lora/{RUN}.yaml"
MERGE_CONFIG = f"configs/merge_lora/{RUN}.yaml"
PREDICT_CONFIG = f"configs/predict/{RUN}.yaml"

# Qwen2-VL-7B-Instruct's published dimensions (config.json of the Hugging Face checkpoint).
DIMS_7B = dict(
    vocab_size=152064,
    hidden_size=3584,
    intermediate_size=18944,
    num_hidden_layers=28,
    num_attention_heads=28,
    num_key_value_heads=4,
    vision_depth=32,
    vision_embed_dim=1280,
    vision_num_heads=16,
    vision_mlp_ratio=4,
    rms_norm_eps=1e-6,
)
# The tiny model's dimensions (xrayqwen2vl.synthetic.tiny_model.TinySize); vocab from its tokenizer.
DIMS_TINY = dict(
    vocab_size=None,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vision_depth=2,
    vision_embed_dim=64,
    vision_num_heads=4,
    vision_mlp_ratio=2,
    rms_norm_eps=1e-6,
)


def log(msg: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def make_config(dims: dict, ids: dict[str, int], vocab: int):
    """A Qwen2VLConfig with the given dimensions and the tokenizer's special-token ids."""
    from transformers import Qwen2VLConfig

    from xrayqwen2vl.synthetic.tiny_model import text_config, token_id_kwargs

    return Qwen2VLConfig(
        text_config=text_config(dims, vocab, ids, max_position_embeddings=32768),
        vision_config=dict(
            depth=dims["vision_depth"],
            embed_dim=dims["vision_embed_dim"],
            hidden_size=dims["hidden_size"],
            num_heads=dims["vision_num_heads"],
            mlp_ratio=dims["vision_mlp_ratio"],
        ),
        **token_id_kwargs(ids),
    )


def instantiate(config, device: str, dtype):
    """The model with random weights, built directly on ``device`` in ``dtype`` (bf16 on the GPU:
    16.6 GB for 7B, not 33 GB in fp32; ``meta`` allocates nothing)."""
    import torch
    from transformers import Qwen2VLForConditionalGeneration

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            return Qwen2VLForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)


def build_model(out: Path, dims: dict, device: str, seed: int = 0) -> dict:
    """A random Qwen2-VL with the given dimensions, the tiny model's tokenizer (Qwen2-VL special
    tokens) and the real processor classes; bf16 on a GPU, fp32 on a CPU."""
    import torch
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    from xrayqwen2vl.synthetic.tiny_model import CHAT_TEMPLATE, TinySize, special_token_ids, train_tokenizer

    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(out, TinySize().vocab_target)
    ids = special_token_ids(tokenizer)
    vocab = dims["vocab_size"] or (len(tokenizer) + 63) // 64 * 64
    assert vocab >= len(tokenizer)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    t0 = time.time()
    torch.manual_seed(seed)
    model = instantiate(make_config(dims, ids, vocab), device, dtype)
    model.generation_config.eos_token_id = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    n_params = sum(p.numel() for p in model.parameters())
    n_vision = sum(p.numel() for n, p in model.named_parameters() if "visual" in n)
    model.save_pretrained(out, safe_serialization=True)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=28 * 28 * 1280),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(min_pixels=56 * 56, max_pixels=28 * 28 * 1280),
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)
    return {
        "parameters": n_params,
        "vision_parameters": n_vision,
        "dtype": str(dtype).replace("torch.", ""),
        "build_and_save_s": time.time() - t0,
    }


def build_data(out: Path, reports: int, image_size: int, views: str = "both") -> dict:
    """The synthetic sample prepared like the real data (openi_train/val/test in out/data);
    ``views`` as prepare's --views (both: two views per study, frontal: one)."""
    from xrayqwen2vl.data.formats.openi import read_openi
    from xrayqwen2vl.data.prepare import PrepareOptions, prepare_dataset
    from xrayqwen2vl.synthetic.sample import generate_sample

    generate_sample(out / "raw", reports=reports, seed=3, image_size=(image_size, image_size), progress=False)
    manifest = prepare_dataset(
        read_openi(out / "raw" / "ecgen-radiology"),
        out / "raw" / "NLMCXR_png",
        out / "data",
        PrepareOptions(name="openi", views=views),
        inputs={},
        progress=False,
    )
    return manifest["counts"]["samples"]


class GpuMemoryPoller:
    """Peak memory.used of GPU 0 from nvidia-smi, polled every 0.5 s (None without nvidia-smi)."""

    def __init__(self):
        self.peak_mib: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> int | None:
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
                capture_output=True,
                text=True,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return int(out.stdout.strip().splitlines()[0]) if out.returncode == 0 and out.stdout.strip() else None

    def _run(self):
        while not self._stop.is_set():
            used = self._read()
            if used is not None:
                self.peak_mib = max(self.peak_mib or 0, used)
            self._stop.wait(0.5)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def stage(name: str, cmd: list[str], logs: Path, env: dict, work: Path) -> dict:
    shown = " ".join(cmd).replace(str(work), "$WORK")  # no machine-specific paths in the record
    log(f"{name}: {shown}")
    t0 = time.time()
    with GpuMemoryPoller() as mem, open(logs / f"{name}.log", "w") as fh:
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
    result = {"command": shown, "wall_s": round(time.time() - t0, 1), "peak_gpu_mib": mem.peak_mib}
    result["rc"] = proc.returncode
    if proc.returncode != 0:
        tail = (logs / f"{name}.log").read_text(errors="replace")[-4000:]
        log(f"{name} FAILED (rc {proc.returncode}); end of its log:\n{tail}")
    else:
        log(f"{name}: done in {result['wall_s']} s, peak GPU memory {mem.peak_mib} MiB")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dims", choices=["7b", "tiny"], default="7b", help="model dimensions (default 7b)")
    ap.add_argument("--out", required=True, help="folder for gpu_check.json/.md and the logs")
    ap.add_argument(
        "--work",
        help="scratch folder for model, data and run outputs, ~35 GB at 7B dims; never under OUT "
        "(default: xrayqwen2vl-gpu-check in the system temp folder)",
    )
    ap.add_argument("--steps", type=int, default=4, help="training steps (default 4)")
    ap.add_argument("--batch", type=int, default=8, help="per-device batch (default 8, the recipe's)")
    ap.add_argument("--predict-samples", type=int, default=8, help="test samples to predict (default 8)")
    ap.add_argument(
        "--max-new-tokens", type=int, default=128, help="generated tokens per sample (default 128)"
    )
    ap.add_argument("--reports", type=int, default=120, help="synthetic reports (default 120)")
    ap.add_argument("--skip-merge", action="store_true", help="leave out the merge stage")
    args = ap.parse_args(argv)

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.dims == "7b" and device != "cuda":
        ap.error("--dims 7b needs a CUDA GPU (about 60 GB for the ZeRO-2 run); use --dims tiny on a CPU")
    out = Path(args.out).resolve()
    work = Path(args.work).resolve() if args.work else Path(tempfile.gettempdir()) / "xrayqwen2vl-gpu-check"
    if work == out or out in work.parents:
        ap.error("--work must not be inside --out (the model is 16.6 GB at 7B dims)")
    logs = out / "logs"
    for d in (out, work, logs):
        d.mkdir(parents=True, exist_ok=True)
    for d in ("sft", "merged", "predict"):
        shutil.rmtree(work / d, ignore_errors=True)

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # One GPU (the figures are per GPU), or the CPU: the wrappers otherwise want the recipe's GPUs.
    env.setdefault("GPUS", "1" if device == "cuda" else "0")
    bin_dir = shutil.which("llamafactory-cli")
    if not bin_dir:
        ap.error("llamafactory-cli is not on PATH (install the wheels; see doc/benchmarks.md)")
    cpu = [] if device == "cuda" else ["bf16=false"]
    results: dict = {"dims": args.dims, "device": device, "stages": {}}
    if device == "cuda":
        results["gpu"] = torch.cuda.get_device_name(0)
    results["versions"] = {
        m: __import__(m).__version__ for m in ("torch", "transformers", "llamafactory", "peft", "deepspeed")
    }

    def save():
        (out / "gpu_check.json").write_text(json.dumps(results, indent=2) + "\n")

    log(f"building a random Qwen2-VL ({args.dims} dims) on {device}")
    results["model"] = build_model(work / "model", DIMS_7B if args.dims == "7b" else DIMS_TINY, device)
    log(f"model: {results['model']}")
    image_size = 512 if args.dims == "7b" else 128
    results["data"] = build_data(work, args.reports, image_size)
    log(f"data: {results['data']} samples, {image_size}x{image_size} images")
    save()

    model, data = work / "model", work / "data"
    train = stage(
        "train",
        [
            "bash",
            "scripts/train.sh",
            TRAIN_CONFIG,
            f"model_name_or_path={model}",
            f"dataset_dir={data}",
            f"output_dir={work / 'sft'}",
            f"max_steps={args.steps}",
            f"per_device_train_batch_size={args.batch}",
            "gradient_accumulation_steps=1",
            f"per_device_eval_batch_size={args.batch}",
            "save_strategy='no'",  # quoted: OmegaConf reads a bare no as false
            "logging_steps=1",
            *cpu,
        ],
        logs,
        env,
        work,
    )
    if train["rc"] == 0:
        metrics = json.loads((work / "sft" / "all_results.json").read_text())
        train.update({k: metrics.get(k) for k in ("train_samples_per_second", "train_runtime", "eval_loss")})
        train["samples"] = args.steps * args.batch
    results["stages"]["train"] = train
    save()
    if train["rc"] != 0:
        return 1

    # Condition (d) of the learning check at the 7B dimensions: the recorder on PYTHONPATH saves the
    # image positions of the first generated token (benchmarks/positions.py compares them below).
    probe_env = {**env, "XRAYQWEN2VL_POSITION_PROBE": str(work / "positions")}
    probe_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (env.get("PYTHONPATH"), str(positions.PROBE_DIR)) if p
    )
    predict = stage(
        "predict",
        [
            "bash",
            "scripts/predict.sh",
            PREDICT_CONFIG,
            f"model_name_or_path={model}",
            f"adapter_name_or_path={work / 'sft'}",
            f"dataset_dir={data}",
            f"output_dir={work / 'predict'}",
            f"max_samples={args.predict_samples}",
            f"max_new_tokens={args.max_new_tokens}",
            *cpu,
        ],
        logs,
        probe_env,
        work,
    )
    if predict["rc"] == 0:
        predict["positions"] = positions.compare(work / "positions", model)
        metrics = json.loads((work / "predict" / "all_results.json").read_text())
        predict.update({k: metrics.get(k) for k in ("predict_samples_per_second", "predict_runtime")})
        lines = (work / "predict" / "generated_predictions.jsonl").read_text().splitlines()
        predict["predictions"] = len(lines)
        shutil.copy(work / "predict" / "generated_predictions.jsonl", out / "generated_predictions.jsonl")
    results["stages"]["predict"] = predict
    save()

    if not args.skip_merge:
        merge = stage(
            "merge",
            [
                "bash",
                "scripts/merge.sh",
                MERGE_CONFIG,
                f"model_name_or_path={model}",
                f"adapter_name_or_path={work / 'sft'}",
                f"export_dir={work / 'merged'}",
            ],
            logs,
            env,
            work,
        )
        results["stages"]["merge"] = merge
        save()

    md = [
        f"GPU check ({args.dims} dims, {results.get('gpu', device)}; random weights, "
        f"{results['model']['parameters']:,} parameters, {results['model']['dtype']})",
        "",
        "| stage | wall time (s) | peak GPU memory (MiB, nvidia-smi) | samples/s | rc |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, r in results["stages"].items():
        sps = r.get("train_samples_per_second") or r.get("predict_samples_per_second") or ""
        md.append(f"| {name} | {r['wall_s']} | {r['peak_gpu_mib']} | {sps} | {r['rc']} |")
    pos = results["stages"].get("predict", {}).get("positions")
    positions_ok = bool(pos and pos["rows"] and pos["same"] == pos["rows"])
    if pos:
        md += [
            "",
            f"Condition (d), image positions of the first generated token equal the training collator's: "
            f"{pos['same']}/{pos['rows']} samples"
            + (f"; first difference {pos['first_difference']}" if pos["first_difference"] else ""),
        ]
    md += ["", "Commands:", ""] + [f"- {name}: `{r['command']}`" for name, r in results["stages"].items()]
    (out / "gpu_check.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0 if all(r["rc"] == 0 for r in results["stages"].values()) and positions_ok else 1


if __name__ == "__main__":
    sys.exit(main())
