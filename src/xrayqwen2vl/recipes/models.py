"""Checks of the model a config loads: the base model folder and the LoRA adapter."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .config import SCRIPT_OF, display, names, same_path
from .report import Report

# The Qwen VL families (config.json model_type): their name and the LLaMA-Factory 0.9.5 templates
# that fit them, the first the one for their Instruct models (extras/constants.py registers
# Qwen3-VL-*-Instruct with qwen3_vl_nothink and Qwen3-VL-*-Thinking with qwen3_vl).
FAMILY_TEMPLATES = {
    "qwen2_vl": ("Qwen2-VL", ("qwen2_vl",)),
    "qwen2_5_vl": ("Qwen2.5-VL", ("qwen2_vl",)),
    "qwen3_vl": ("Qwen3-VL", ("qwen3_vl_nothink", "qwen3_vl")),
}
# Template -> the model families it fits. A template not listed here is not checked.
TEMPLATE_FAMILIES = {
    t: tuple(f for f, (_, ts) in FAMILY_TEMPLATES.items() if t in ts)
    for t in sorted({t for _, ts in FAMILY_TEMPLATES.values() for t in ts})
}


def family_template(model: str | Path) -> str | None:
    """The Instruct models' template of the Qwen VL family in ``model``/config.json (None: not a
    Qwen VL folder, or no readable config.json)."""
    try:
        model_type = json.loads((Path(model) / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None
    known = FAMILY_TEMPLATES.get(model_type)
    return known[1][0] if known else None


def weights_table(root: Path) -> dict[str, str]:
    """weights/README.md's table: folder -> Hugging Face model."""
    readme = root / "weights" / "README.md"
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError:
        return {}
    return dict(re.findall(r"^\|\s*`(weights/[^`]+)`\s*\|\s*`([^`]+)`", text, re.M))


def producer(others, folder: str) -> str | None:
    """'bash scripts/X.sh CONFIG writes it' for the config whose output is ``folder``."""
    for w in others:
        if w.job in ("train", "export") and same_path(w.folder, folder):
            return f"bash {SCRIPT_OF[w.job]} {display(w.config)} writes it; run that first"
    return None


def missing_model(r: Report, root: Path, others, env: dict, model: str) -> None:
    table = weights_table(root)
    norm = Path(model).as_posix().rstrip("/")
    if norm in table:
        r.fail(
            f"model_name_or_path: {model} not found: download {table[norm]} into it (see weights/README.md), "
            "or pass model_name_or_path=PATH"
        )
        return
    made_by = producer(others, model)
    if made_by:
        r.fail(f"model_name_or_path: {model} not found: {made_by}")
        return
    hub_like = re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", model) and not norm.startswith(
        ("weights/", "saves/")
    )
    if hub_like and env.get("HF_HUB_OFFLINE", "0") not in ("1", "true", "True"):
        r.warn(
            f"model_name_or_path: {model} is not a local folder: LLaMA-Factory will fetch it from the Hugging Face hub"
        )
        return
    r.fail(
        f"model_name_or_path: {model} not found (paths are relative to the current folder): put the base "
        "weights under weights/ (see weights/README.md) or pass model_name_or_path=PATH"
    )


def check_model(r: Report, root: Path, others, env: dict) -> None:
    r.checked.append("model")
    model = r.recipe.get("model_name_or_path")
    if not model:
        r.fail("model_name_or_path: not set: add it to the config or pass model_name_or_path=PATH")
        return
    model = str(model)
    folder = Path(os.path.expanduser(model))
    if not folder.exists():
        missing_model(r, root, others, env, model)
        return
    if not folder.is_dir():
        r.fail(f"model_name_or_path: {model} is a file, not a model folder (see weights/README.md)")
        return
    unfinished = "an unfinished download? fetch the whole repository again (see weights/README.md)"
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        r.fail(
            f"model_name_or_path: {model} has no config.json: not a Hugging Face model folder ({unfinished})"
        )
        return
    try:
        model_type = json.loads(cfg_file.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError) as e:
        r.fail(f"model_name_or_path: {model}/config.json does not parse ({e}): {unfinished}")
        return
    families = check_template(r, model, model_type)
    shards_problem = check_shards(folder)
    if shards_problem:
        r.fail(f"model_name_or_path: {model} {shards_problem}: {unfinished}")
    if not any((folder / n).is_file() for n in ("tokenizer.json", "tokenizer_config.json")):
        r.fail(f"model_name_or_path: {model} has no tokenizer (tokenizer.json): {unfinished}")
    processor = ("preprocessor_config.json", "processor_config.json")  # the hub's / transformers 5's
    if families and not any((folder / n).is_file() for n in processor):
        r.fail(
            f"model_name_or_path: {model} has no preprocessor_config.json (the image processor): {unfinished}"
        )


def check_template(r: Report, model: str, model_type) -> tuple[str, ...]:
    """The template must fit the model's family, both ways: a Qwen VL template on another family,
    or a Qwen VL model under another family's template, is one line naming the template to use.
    Returns the families the template fits (empty when it is not a Qwen VL template)."""
    template = str(r.recipe.get("template"))
    families = TEMPLATE_FAMILIES.get(template, ())
    known = FAMILY_TEMPLATES.get(model_type)
    if known and template not in known[1]:
        name, fits = known
        r.fail(
            f"template: {template} does not fit {model}, a {name} model ({model_type} in config.json): "
            f"pass template={fits[0]}"
            + (f" ({fits[1]} only for the Thinking models)" if len(fits) > 1 else "")
        )
    elif families and model_type not in families:
        names = " or ".join(FAMILY_TEMPLATES[f][0] for f in families)
        r.fail(
            f"model_name_or_path: {model} is a {model_type} model (config.json), but template {template} "
            f"needs {' or '.join(families)}: point model_name_or_path at a {names} folder"
        )
    elif template == "qwen3_vl" and "instruct" in Path(model).name.lower():
        r.warn(
            f"template: qwen3_vl is the Qwen3-VL Thinking models' template: it trains every report behind an "
            f"empty <think></think> block; {model} looks like an Instruct model: pass template=qwen3_vl_nothink"
        )
    elif template == "qwen3_vl_nothink" and "thinking" in Path(model).name.lower():
        r.warn(
            f"template: qwen3_vl_nothink is the Qwen3-VL Instruct models' template; {model} looks like a "
            "Thinking model, which writes a <think> block first: pass template=qwen3_vl"
        )
    return families


def check_shards(folder: Path) -> str | None:
    indexes = sorted(folder.glob("*.index.json"))
    if indexes:
        missing = []
        for index in indexes:
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
            except (OSError, ValueError):
                return f"has an unreadable {index.name}"
            missing += sorted({s for s in weight_map.values() if not (folder / s).is_file()})
        if missing:
            return f"lacks {len(missing)} weight shard{'s' if len(missing) > 1 else ''} ({missing[0]}, …)"
        return None
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        return "has no weights (*.safetensors)"
    return None


def check_adapter(r: Report, others) -> None:
    adapters = names(r.recipe.get("adapter_name_or_path"))
    if not adapters:
        return
    r.checked.append("adapter")
    for adapter in adapters:
        folder = Path(os.path.expanduser(adapter))
        if (folder / "adapter_config.json").is_file():
            continue
        made_by = producer(others, adapter)
        if not folder.exists():
            r.fail(f"adapter_name_or_path: {adapter} not found: {made_by or 'train the adapter first'}")
        else:
            r.fail(f"adapter_name_or_path: {adapter} has no adapter_config.json: not a finished LoRA adapter")
