"""The preflight of a config: everything that would otherwise fail minutes later, inside torchrun,
as 400 lines of traceback, checked in about a second on the CPU. Each problem is one line that
names the key or file and says what to do.

Checks, in order (those that do not apply to the config's job are skipped):

1. job: the wrapper runs the kind of config it is given (train / predict / export);
2. model: ``model_name_or_path`` is a complete Hugging Face folder (config.json, weights, every
   shard of the index, tokenizer, image processor) of a family the ``template`` fits;
3. adapter: ``adapter_name_or_path`` exists (else: which config trains it);
   then code: no ``trust_remote_code``, and nothing in the model or adapter folder that makes the
   loaders fetch or run code, nor pickled weights (``trust``, ``model_scan``);
4. data: ``dataset`` / ``eval_dataset`` are in ``dataset_dir/dataset_info.json``, their files
   exist and have records, and the images of a sample of records exist;
5. deepspeed: the JSON exists and parses, the package is installed;
6. output: the folder is not another config's output, nor holds another recipe's adapter or
   merged model (``xrayqwen2vl_run.json``, written by the wrappers);
7. resume_from_checkpoint exists;
8. packages a key needs: liger-kernel, bitsandbytes, flash-attn; and, for prediction and
   inference, a transformers that the inference shim covers (lf_shim.py: image positions);
9. GPUs (train, predict): the recipe's GPU count is visible (``recipes.gpus``), the driver runs
   torch's CUDA build, bf16 is supported, liger-kernel / bitsandbytes have a GPU, and ZeRO
   CPU offload can compile DeepSpeed's CPU Adam (a CUDA toolkit matching torch's CUDA).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..fileio import atomic_write_json
from . import gpus as gpu_mod
from .config import SCRIPT_OF, Recipe, display, load_recipe, repo_root, same_file, same_path, writers
from .datasets import check_data
from .hardware import check_deepspeed, check_gpus, check_inference_positions, check_packages
from .models import check_adapter, check_model
from .nodes import check_rendezvous
from .report import Report
from .trust import check_trust

JOB_NOUN = {"train": "training", "predict": "prediction", "export": "merge", "infer": "inference"}
MARKER = "xrayqwen2vl_run.json"  # which config (and adapter) wrote a folder; see record_output()


def preflight(
    config: str | Path,
    overrides: list[str] | None = None,
    job: str | None = None,
    env: dict | None = None,
    inventory: gpu_mod.Inventory | None = None,
) -> Report:
    """Run every check that applies; ``job`` is what the calling wrapper runs (None: the config's)."""
    env = dict(os.environ if env is None else env)
    recipe = load_recipe(config, overrides)
    r = Report(recipe)
    if job is not None and recipe.job != job:
        r.fail(
            f"{recipe.name} is a {JOB_NOUN[recipe.job]} config, not a {JOB_NOUN[job]} config: run it with "
            f"{SCRIPT_OF[recipe.job]} {recipe.name}"
        )
        return r
    for key, value in recipe.overrides.items():
        if key.isupper():  # GPUS=2, CUDA_VISIBLE_DEVICES=1 typed after the config
            r.fail(
                f"{key}={value} is an environment variable, not a config key: put it before the command "
                f"({key}={value} bash {SCRIPT_OF[recipe.job]} {recipe.name} …)"
            )
    root = repo_root(recipe.path)
    others = writers(recipe.path)
    check_model(r, root, others, env)
    check_adapter(r, others)
    check_trust(r, env)
    if recipe.job in ("train", "predict"):
        check_data(r)
        check_deepspeed(r)
        check_resume(r)
    check_output(r, others)
    check_packages(r)
    if recipe.job in ("predict", "infer"):
        check_inference_positions(r)
    if recipe.job in ("train", "predict"):
        check_gpus(r, env, inventory)
        check_rendezvous(r, env)
    r.summary = summary(r)
    return r


# --- resume and output -------------------------------------------------------------------------


def check_resume(r: Report) -> None:
    ckpt = r.recipe.get("resume_from_checkpoint")
    if isinstance(ckpt, str) and ckpt and not Path(ckpt).is_dir():
        r.checked.append("resume")
        parent = Path(ckpt).parent
        have = sorted(p.name for p in parent.glob("checkpoint-*")) if parent.is_dir() else []
        hint = (
            f"{parent.as_posix()} has {', '.join(have[-3:])}"
            if have
            else "pick an existing saves/<run>/checkpoint-N"
        )
        r.fail(f"resume_from_checkpoint: {ckpt} not found: {hint}")


def output_key(job: str) -> str | None:
    return {"train": "output_dir", "predict": "output_dir", "export": "export_dir"}.get(job)


def identity(recipe: Recipe) -> dict:
    """What a folder's marker records: the config, and for a merge the adapter it merged."""
    ident = {"config": Path(os.path.relpath(recipe.path.resolve(), repo_root(recipe.path))).as_posix()}
    if recipe.job == "export":
        ident["adapter_name_or_path"] = recipe.get("adapter_name_or_path")
    return ident


def check_output(r: Report, others) -> None:
    key = output_key(r.recipe.job)
    folder = r.recipe.get(key) if key else None
    if not folder:
        return
    r.checked.append("output")
    folder = str(folder)
    what = {"train": "adapter", "export": "merged model", "predict": "predictions"}
    for w in others:
        if not same_file(w.config, r.recipe.path) and same_path(w.folder, folder):
            r.fail(
                f"{key}: {folder} is where {display(w.config)} writes its {what[w.job]}: this run would "
                f"replace it; pass {key}=FOLDER (a folder of its own)"
            )
            return
    if r.recipe.job not in ("train", "export"):
        return
    marker = Path(folder) / MARKER
    if marker.is_file():
        try:
            found = json.loads(marker.read_text(encoding="utf-8"))
        except ValueError:
            found = None
        mine = identity(r.recipe)
        if isinstance(found, dict) and {k: found.get(k) for k in mine} != mine:
            source = found.get("config", "another config")
            if found.get("adapter_name_or_path"):
                source += f" with adapter {found['adapter_name_or_path']}"
            r.fail(
                f"{key}: {folder} holds the {what[r.recipe.job]} of {source} ({MARKER}): this run would "
                f"replace it; pass {key}=FOLDER, or delete the folder"
            )
    elif (Path(folder) / ("adapter_config.json" if r.recipe.job == "train" else "config.json")).is_file():
        r.warn(
            f"{key}: {folder} holds a {what[r.recipe.job]} of unknown origin (no {MARKER}); it will be replaced"
        )


def record_output(recipe: Recipe) -> Path | None:
    """Mark the folder a train or merge run is about to write (the wrappers call this once every
    check passed), so that a later run of another recipe into it is refused."""
    key = output_key(recipe.job)
    if recipe.job not in ("train", "export") or not recipe.get(key):
        return None
    marker = Path(str(recipe.get(key))) / MARKER
    atomic_write_json(marker, identity(recipe))
    return marker


# --- the first line ---------------------------------------------------------------------------------


def summary(r: Report) -> str:
    recipe, plan = r.recipe, r.plan
    v = recipe.values
    if recipe.job == "train" and plan is not None:
        line = gpu_mod.batch_line(v, recipe.own, recipe.gpus, plan, recipe.nodes)
        return f"{recipe.name}: {plan.where()}, {plan.launch()}: {line}"
    if recipe.job == "predict" and plan is not None:
        b = v.get("per_device_eval_batch_size", 8)
        # More ranks keep the order too (accelerate gathers the batches in turn and drops the
        # padding): tests/test_wrappers_gpus.py checks two ranks.
        return (
            f"{recipe.name}: {plan.where()}, {plan.launch()}: batch {b} per process, predictions in the order "
            "of the test file"
        )
    if recipe.job == "export":
        return f"{recipe.name}: merge on the {v.get('export_device', 'cpu')} into {v.get('export_dir')}"
    return f"{recipe.name}: {recipe.job}"
