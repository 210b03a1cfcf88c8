"""Records the image positions a Qwen VL model is given when it starts writing.

Put on PYTHONPATH (after src/xrayqwen2vl/lf_boot, whose sitecustomize runs this one next) with
XRAYQWEN2VL_POSITION_PROBE=DIR: in every process (llamafactory-cli, each torchrun rank, or the
caller's own process when imported) the forward pass of Qwen2-VL, Qwen2.5-VL and Qwen3-VL that
carries images and no cache (the prefill, which yields the first generated token) saves what the
language model received: input ids, attention mask, image grid and the three M-RoPE position rows,
to DIR/<pid>-<n>.pt (the first 8 such calls of a process). benchmarks/positions.py compares them
with the positions LLaMA-Factory's training collator computes for the same tokens."""

import importlib.abc
import importlib.machinery
import os
import sys

MODULES = {
    "transformers.models.qwen2_vl.modeling_qwen2_vl": "Qwen2VLModel",
    "transformers.models.qwen2_5_vl.modeling_qwen2_5_vl": "Qwen2_5_VLModel",
    "transformers.models.qwen3_vl.modeling_qwen3_vl": "Qwen3VLModel",
}
LIMIT = 8
_count = [0]


def _record(out_dir, model_type, kwargs, positions):
    import torch

    if positions is None or _count[0] >= LIMIT:
        return
    _count[0] += 1
    rows = positions[-3:] if positions.ndim == 3 else positions
    record = {
        "model_type": model_type,
        "input_ids": kwargs["input_ids"].detach().cpu(),
        "attention_mask": None
        if kwargs.get("attention_mask") is None
        else kwargs["attention_mask"].detach().cpu(),
        "image_grid_thw": kwargs["image_grid_thw"].detach().cpu(),
        "positions": rows.detach().cpu(),
        "rank": os.environ.get("RANK", "0"),
    }
    os.makedirs(out_dir, exist_ok=True)
    torch.save(record, os.path.join(out_dir, f"{os.getpid()}-{_count[0]}.pt"))


def _wrap(cls, out_dir):
    original = cls.forward
    if getattr(original, "_position_probe", False):
        return

    def forward(self, *args, **kwargs):
        prefill = kwargs.get("pixel_values") is not None and kwargs.get("input_ids") is not None
        cache = kwargs.get("past_key_values")
        if not prefill or (cache is not None and cache.get_seq_length() > 0):
            return original(self, *args, **kwargs)
        seen = {}
        inner = self.language_model.forward

        def language_model_forward(*a, **k):
            seen["positions"] = k.get("position_ids")
            return inner(*a, **k)

        self.language_model.forward = language_model_forward
        try:
            out = original(self, *args, **kwargs)
        finally:
            del self.language_model.forward
        _record(out_dir, self.config.model_type, kwargs, seen.get("positions"))
        return out

    forward._position_probe = True
    cls.forward = forward


class _Hook(importlib.abc.MetaPathFinder):
    def __init__(self, out_dir):
        self.out_dir = out_dir

    def find_spec(self, name, path, target=None):
        if name not in MODULES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_wrap(module):
            exec_module(module)
            _wrap(getattr(module, MODULES[name]), self.out_dir)

        spec.loader.exec_module = exec_and_wrap
        return spec


def install(out_dir):
    for name, cls_name in MODULES.items():
        if name in sys.modules:
            _wrap(getattr(sys.modules[name], cls_name), out_dir)
    if not any(isinstance(f, _Hook) for f in sys.meta_path):
        sys.meta_path.insert(0, _Hook(out_dir))


if os.environ.get("XRAYQWEN2VL_POSITION_PROBE"):
    install(os.environ["XRAYQWEN2VL_POSITION_PROBE"])
