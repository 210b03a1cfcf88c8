"""Guard: at inference, does a Qwen VL model get the image positions it was trained with?

LLaMA-Factory's training collator computes the 3-D image positions (M-RoPE) itself, with the
model's ``get_rope_index``. At inference, transformers >= 5.3 builds them only from
``mm_token_type_ids``, which LLaMA-Factory 0.9.5 supplies only through our shim
(src/xrayqwen2vl/lf_shim.py). This module runs the real inference paths with a recorder on
PYTHONPATH (benchmarks/position_probe/sitecustomize.py), which saves the positions the language
model receives in the prefill (the pass that writes the first token), and compares them, token by
token, with what the training collator computes for the same input ids and image grid:

- ``predict``: ``llamafactory-cli train`` with do_predict + predict_with_generate, in one process or
  in two torchrun ranks, started with the environment the wrappers export (lf_shim.launch_env());
- ``chat``: ``xrayqwen2vl report`` (LLaMA-Factory's ChatModel, as behind ``web`` and the API),
  which installs the shim in its own process.

Used by tests/test_positions.py (tiny Qwen2-VL, Qwen2.5-VL and Qwen3-VL with random weights: the
positions do not depend on the weights) and by the learning check's condition (d)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # run from a checkout without the package installed
PROBE_DIR = REPO / "benchmarks" / "position_probe"
PREDICT_CONFIG = REPO / "configs" / "tiny" / "qwen2vl_tiny_predict.yaml"


def template_of(model_dir: Path) -> str:
    """The Instruct template of the model's Qwen VL family, as the preflight knows it."""
    from xrayqwen2vl.recipes.models import family_template

    template = family_template(model_dir)
    if template is None:
        raise ValueError(f"{model_dir}: not a Qwen VL model folder")
    return template


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe_env(records: Path, shim: bool = True, base: dict | None = None) -> dict:
    """The wrappers' environment (the shim's boot folder first on PYTHONPATH) plus the recorder."""
    from xrayqwen2vl import lf_shim

    env = dict(os.environ if base is None else base)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.update(WANDB_DISABLED="true", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env = lf_shim.launch_env(env)
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(PROBE_DIR)])
    env["XRAYQWEN2VL_POSITION_PROBE"] = str(records)
    if not shim:
        env[lf_shim.DISABLE_ENV] = "0"
    return env


def record_here(records: Path) -> None:
    """Install the recorder in this process (for an in-process ChatModel)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("position_probe", PROBE_DIR / "sitecustomize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.install(str(records))


def _run(args: list[str], env: dict, log: Path, timeout: int = 900) -> None:
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, args))} exited {proc.returncode}; log {log}:\n{proc.stderr[-3000:]}"
        )


def _without_boot(env: dict) -> dict:
    parts = [p for p in env["PYTHONPATH"].split(os.pathsep) if not p.endswith("lf_boot")]
    return {**env, "PYTHONPATH": os.pathsep.join(parts)}


def run_predict(
    model_dir: Path,
    data_dir: Path,
    dataset: str,
    work: Path,
    ranks: int = 1,
    shim: bool = True,
    samples: int = 4,
    wrapper: bool = False,
) -> Path:
    """Real batch prediction (1 new token) with the recorder; returns the records folder.
    ``wrapper``: through scripts/predict.sh on the CPU (GPUS=0), which must put the shim's boot
    folder on PYTHONPATH itself; else ``llamafactory-cli`` with lf_shim.launch_env()."""
    records = work / "records"
    env = probe_env(records, shim)
    if ranks > 1:
        env.update(FORCE_TORCHRUN="1", NPROC_PER_NODE=str(ranks), MASTER_ADDR="127.0.0.1")
        env["MASTER_PORT"] = str(_free_port())
    cli = Path(sys.executable).parent / "llamafactory-cli"
    overrides = {
        "model_name_or_path": model_dir,
        "template": template_of(model_dir),
        "dataset_dir": data_dir,
        "eval_dataset": dataset,
        "max_samples": samples,
        "max_new_tokens": 1,
        "per_device_eval_batch_size": 2,
        "output_dir": work / "predict",
    }
    args = [str(cli if cli.exists() else "llamafactory-cli"), "train", str(PREDICT_CONFIG)]
    if wrapper:
        if ranks != 1:
            raise ValueError("the wrapper runs prediction on the CPU in one process (GPUS=0)")
        env = {**_without_boot(env), "GPUS": "0"}
        args = ["bash", str(REPO / "scripts" / "predict.sh"), str(PREDICT_CONFIG)]
    args += [f"{k}={v}" for k, v in overrides.items()]
    _run(args, env, work / "predict.log")
    return records


def run_chat(model_dir: Path, images: list[Path], work: Path, shim: bool = True) -> Path:
    """``xrayqwen2vl report`` on one study (1 new token) with the recorder; the report command
    installs the shim itself, so the boot folder is left off PYTHONPATH here."""
    records = work / "records"
    env = _without_boot(probe_env(records, shim))
    cli = Path(sys.executable).parent / "xrayqwen2vl"
    args = [str(cli if cli.exists() else "xrayqwen2vl"), "report", "--model", str(model_dir)]
    args += ["--template", template_of(model_dir), "--max-new-tokens", "1", "--image-max-pixels", "65536"]
    _run(args + [str(p) for p in images], env, work / "chat.log")
    return records


def _collator(model):
    """LLaMA-Factory's training collator holding ``model``: the one that computes positions."""
    from llamafactory.data.collator import MultiModalDataCollatorForSeq2Seq
    from llamafactory.data.template import TEMPLATES

    return MultiModalDataCollatorForSeq2Seq(template=TEMPLATES["qwen2_vl"], model=model, tokenizer=None)


def training_positions(collator, record: dict):
    """The 3 M-RoPE rows the training collator computes for the recorded ids and image grid."""
    import torch

    ids = record["input_ids"]
    mask = record["attention_mask"] if record["attention_mask"] is not None else torch.ones_like(ids)
    features = {"input_ids": ids, "attention_mask": mask}
    with torch.no_grad():
        collator._compute_rope_position_ids(features, {"image_grid_thw": record["image_grid_thw"]})
    return features["position_ids"]


def compare(records: Path, model_dir: Path) -> dict:
    """Recorded prefill positions against the training collator's, on the attended tokens."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    files = sorted(Path(records).glob("*.pt"))
    # The positions depend on the config alone: the model is built without weights (a 7B in a second).
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(model_dir))
    collator = _collator(model)
    rows = same = 0
    first = None
    ranks = set()
    for f in files:
        record = torch.load(f, weights_only=False)
        ranks.add(record["rank"])
        expected = training_positions(collator, record)
        got = record["positions"]
        mask = record["attention_mask"]
        for b in range(record["input_ids"].shape[0]):
            keep = mask[b].bool() if mask is not None else torch.ones_like(record["input_ids"][b]).bool()
            e, g = expected[:, b][:, keep], got[:, b][:, keep]
            rows += 1
            if e.shape == g.shape and torch.equal(e, g):
                same += 1
            elif first is None:
                where = (e != g).any(0).nonzero()
                at = int(where[0]) if e.shape == g.shape and len(where) else 0
                first = {
                    "file": f.name,
                    "row": b,
                    "token": at,
                    "expected": e[:, at].tolist(),
                    "got": g[:, at].tolist(),
                }
    return {
        "model_type": model.config.model_type,
        "records": len(files),
        "ranks": sorted(ranks),
        "rows": rows,
        "same": same,
        "first_difference": first,
    }
