"""LLaMA-Factory 0.9.5 inference shim: Qwen VL image positions right under transformers >= 5.3.

Why it exists
    From transformers 5.3 on, ``generate()`` of Qwen2-VL, Qwen2.5-VL and Qwen3-VL builds the 3-D
    image positions (M-RoPE) only from ``mm_token_type_ids`` (1 at image tokens, 2 at video tokens);
    without the field every image token is numbered like text. LLaMA-Factory 0.9.5 computes the
    positions itself in training (its collator holds the model), but never supplies the field at
    inference: batch prediction (``do_predict`` + ``predict_with_generate``: the collator is built
    with ``model=None``) and ``ChatModel``'s Hugging Face engine (``xrayqwen2vl report``, ``web``,
    ``llamafactory-cli chat/webchat/api``). A trained model then reads its images at positions it
    never saw in training, silently (doc/evaluation.md, "image positions"). transformers 5.2.0 did
    not need the field, but carries CVE-2026-4372.

What it does
    At the two places LLaMA-Factory's inference builds model inputs it adds ``mm_token_type_ids``,
    shaped as the padded ``input_ids``, computed from the template's image and video tokens:
    ``MultiModalDataCollatorForSeq2Seq.__call__`` when the collator did not compute positions itself
    (inference), and ``HuggingfaceEngine._process_args`` (ChatModel). Gated on the installed
    transformers: below 5.3 the models take no such field (passing it raises), so nothing is patched.

How it takes effect
    - in our own processes: ``install()`` before LLaMA-Factory is imported (serve/report.py);
    - in every process LLaMA-Factory starts (``llamafactory-cli``, each torchrun rank):
      ``src/xrayqwen2vl/lf_boot/sitecustomize.py`` on ``PYTHONPATH``, which the wrappers put there
      (scripts/lf_env.sh, sourced by train/predict/merge/chat/api.sh and demo.sh). A bare
      ``llamafactory-cli`` started without it predicts with wrong image positions on
      transformers >= 5.3 (doc/gpu-quickstart.md says how to add it by hand).
    The patch is applied when the LLaMA-Factory module is first imported (an import hook), so a
    process that never imports LLaMA-Factory pays nothing.

When to delete it
    When LLaMA-Factory passes ``mm_token_type_ids`` at inference itself (its ``qwen2_vl`` plugin's
    ``get_mm_inputs``, or the HF engine), or when the stack goes back to a transformers that does
    not need it. tests/test_lf_shim.py fails when the pins leave ``COVERED``: re-check the positions
    (tests/test_positions.py) on the new versions, then widen ``COVERED`` or delete this module,
    its boot folder and scripts/lf_env.sh.

``XRAYQWEN2VL_LF_SHIM=0`` disables it (to show what goes wrong without it).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import re
import sys
from importlib import metadata

# The field is read by transformers' Qwen VL generate() from this version on.
NEEDS_FIELD_FROM = (5, 3, 0)
# The versions the shim was checked on (positions equal to the training collator's, predict with 1
# and 2 processes and ChatModel, tiny Qwen2-VL, Qwen2.5-VL and Qwen3-VL: tests/test_positions.py).
COVERED = {"llamafactory": ("0.9.5", "0.9.5"), "transformers": ("5.3.0", "5.5.4")}
DISABLE_ENV = "XRAYQWEN2VL_LF_SHIM"
BOOT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lf_boot")

COLLATOR_MODULE = "llamafactory.data.collator"
ENGINE_MODULE = "llamafactory.chat.hf_engine"
_MARK = "_xrayqwen2vl_mm_token_type_ids"


def _version_tuple(text: str) -> tuple[int, ...]:
    """(major, minor, micro) from a version string; a pre-release part (5.6.0rc1) counts as its
    leading number, so 5.6.0rc1 compares as 5.6.0."""
    parts = []
    for piece in text.split(".")[:3]:
        number = re.match(r"\d+", piece)
        if number is None:
            break
        parts.append(int(number.group()))
        if number.group() != piece:
            break
    return tuple(parts + [0] * (3 - len(parts)))


def installed(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def needs_field(transformers_version: str | None = None) -> bool:
    """Does this transformers' Qwen VL generate() need ``mm_token_type_ids`` for image positions?"""
    version = transformers_version or installed("transformers")
    return version is not None and _version_tuple(version) >= NEEDS_FIELD_FROM


def covers(package: str, version: str | None) -> bool:
    low, high = COVERED[package]
    return version is not None and _version_tuple(low) <= _version_tuple(version) <= _version_tuple(high)


def disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() in ("0", "off", "false", "no")


def problem() -> str | None:
    """One line when the installed stack would misplace Qwen VL image positions at inference even
    with this shim (transformers needs the field, and the shim was not checked on these versions);
    None when inference is right."""
    tf, lf = installed("transformers"), installed("llamafactory")
    if not needs_field(tf):
        return None
    for package, version in (("transformers", tf), ("llamafactory", lf)):
        if not covers(package, version):
            low, high = COVERED[package]
            span = low if low == high else f"{low} to {high}"
            return (
                f"{package} {version} is not a version the xrayqwen2vl inference shim covers ({span}), so "
                f"Qwen VL image positions may be numbered like text at inference under transformers {tf}: "
                f"pip install transformers=={COVERED['transformers'][1]} llamafactory=={COVERED['llamafactory'][1]} "
                "(the pinned stack; make venv)"
            )
    return None


def disabled_warning() -> str | None:
    """One line when the shim is switched off (XRAYQWEN2VL_LF_SHIM=0) on a transformers that needs it."""
    if disabled() and needs_field():
        return (
            f"{DISABLE_ENV}=0: the inference shim is off, so Qwen VL image tokens are numbered like text "
            f"at inference (transformers {installed('transformers')}); unset {DISABLE_ENV}"
        )
    return None


# --- the two patches ---------------------------------------------------------------------------


def token_type_ids(input_ids, image_token_id: int | None, video_token_id: int | None):
    """``mm_token_type_ids`` for a batch of input ids (a tensor): 1 image, 2 video, 0 otherwise."""
    import torch

    types = torch.zeros_like(input_ids)
    if image_token_id is not None:
        types[input_ids == image_token_id] = 1
    if video_token_id is not None:
        types[input_ids == video_token_id] = 2
    return types


def _token_ids(template, tokenizer) -> tuple[int | None, int | None]:
    plugin = getattr(template, "mm_plugin", None)
    ids = []
    for token in (getattr(plugin, "image_token", None), getattr(plugin, "video_token", None)):
        ids.append(None if token is None else tokenizer.convert_tokens_to_ids(token))
    return ids[0], ids[1]


def _patch_collator(module) -> None:
    cls = module.MultiModalDataCollatorForSeq2Seq
    if getattr(cls.__call__, _MARK, False):
        return
    original = cls.__call__

    def __call__(self, features):
        batch = original(self, features)
        has_vision = batch.get("image_grid_thw") is not None or batch.get("video_grid_thw") is not None
        # Training: the collator computed the positions itself (position_ids); leave it as it is.
        if has_vision and "mm_token_type_ids" not in batch and "position_ids" not in batch:
            image_id, video_id = _token_ids(self.template, self.tokenizer)
            batch["mm_token_type_ids"] = token_type_ids(batch["input_ids"], image_id, video_id)
        return batch

    setattr(__call__, _MARK, True)
    __call__.__doc__ = original.__doc__
    cls.__call__ = __call__


def _patch_engine(module) -> None:
    cls = module.HuggingfaceEngine
    original = cls.__dict__["_process_args"].__func__  # a staticmethod
    if getattr(original, _MARK, False):
        return

    def _process_args(model, tokenizer, processor, template, generating_args, *args, **kwargs):
        gen_kwargs, prompt_length = original(
            model, tokenizer, processor, template, generating_args, *args, **kwargs
        )
        has_vision = (
            gen_kwargs.get("image_grid_thw") is not None or gen_kwargs.get("video_grid_thw") is not None
        )
        if has_vision and "mm_token_type_ids" not in gen_kwargs:
            image_id, video_id = _token_ids(template, tokenizer)
            gen_kwargs["mm_token_type_ids"] = token_type_ids(gen_kwargs["inputs"], image_id, video_id)
        return gen_kwargs, prompt_length

    setattr(_process_args, _MARK, True)
    cls._process_args = staticmethod(_process_args)


PATCHES = {COLLATOR_MODULE: _patch_collator, ENGINE_MODULE: _patch_engine}


def patched(module_name: str) -> bool:
    """Is the patch of ``module_name`` in place (for the tests and ``check``)?"""
    module = sys.modules.get(module_name)
    if module is None:
        return False
    if module_name == COLLATOR_MODULE:
        return getattr(module.MultiModalDataCollatorForSeq2Seq.__call__, _MARK, False)
    return getattr(module.HuggingfaceEngine.__dict__["_process_args"].__func__, _MARK, False)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Applies a patch right after its LLaMA-Factory module has been executed."""

    def find_spec(self, name, path, target=None):
        patch = PATCHES.get(name)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            patch(module)

        loader.exec_module = exec_and_patch
        return spec


def install() -> bool:
    """Make LLaMA-Factory's inference pass ``mm_token_type_ids`` in this process; returns whether
    it is (or will be, at LLaMA-Factory's import) patched. Idempotent; a no-op below transformers 5.3
    or with XRAYQWEN2VL_LF_SHIM=0."""
    if disabled() or not needs_field():
        return False
    if not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())
    for name, patch in PATCHES.items():
        if name in sys.modules:  # imported before install(): patch it now
            patch(sys.modules[name])
    return True


def launch_env(env: dict | None = None) -> dict:
    """``env`` (default: os.environ) with the boot folder first on PYTHONPATH: what the wrappers
    export, for our own code that starts ``llamafactory-cli``."""
    env = dict(os.environ if env is None else env)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != BOOT_DIR]
    env["PYTHONPATH"] = os.pathsep.join([BOOT_DIR, *parts])
    return env
