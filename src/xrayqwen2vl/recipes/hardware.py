"""Checks of what a run needs from the machine: the GPUs (recipes.gpus), the driver against
torch's CUDA build, bf16, the GPU-only packages, and the toolchain ZeRO CPU offload compiles
DeepSpeed's CPU Adam with."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

from .. import lf_shim
from . import gpus as gpu_mod
from .report import EXTRA, Report, installed

BNB_METHODS = (None, "bnb", "bitsandbytes")
# CUDA versions DeepSpeed 0.16.9 accepts between torch's build and the toolkit's nvcc
# (op_builder/builder.py, cuda_minor_mismatch_ok); any other pair must be equal.
DS_CUDA_COMPATIBLE = [
    {"11.0", "11.1", "11.2", "11.3", "11.4", "11.5", "11.6", "11.7", "11.8"},
    {"12.0", "12.1", "12.2", "12.3", "12.4", "12.5", "12.6", "12.8"},
]


def deepspeed_config(r: Report) -> dict | None:
    ds = r.recipe.get("deepspeed")
    if not ds:
        return None
    if isinstance(ds, dict):
        return ds
    path = Path(str(ds))
    if not path.is_file():
        r.fail(
            f"deepspeed: {ds} not found: use configs/deepspeed/ds_z2_config.json or "
            "configs/deepspeed/ds_z3_offload_config.json"
        )
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        r.fail(f"deepspeed: {ds} is not valid JSON ({e}): fix it or use configs/deepspeed/ds_z2_config.json")
        return None


def check_deepspeed(r: Report) -> None:
    if not r.recipe.get("deepspeed"):
        return
    r.checked.append("deepspeed")
    r.deepspeed = deepspeed_config(r)
    if not installed("deepspeed"):
        r.fail(f"deepspeed: the config uses DeepSpeed, which is not installed: {EXTRA['deepspeed']}")


def offloads(ds: dict | None) -> bool:
    zero = (ds or {}).get("zero_optimization") or {}
    return any(
        str((zero.get(k) or {}).get("device", "none")).lower() == "cpu"
        for k in ("offload_optimizer", "offload_param")
    )


def check_packages(r: Report) -> None:
    v = r.recipe.values
    if v.get("enable_liger_kernel") and not installed("liger_kernel"):
        r.fail(
            f"enable_liger_kernel: liger-kernel is not installed: {EXTRA['liger']}, or pass enable_liger_kernel=false"
        )
    if v.get("quantization_bit") is not None and v.get("quantization_method") in BNB_METHODS:
        if not installed("bitsandbytes"):
            r.fail(
                f"quantization_bit: 4-bit loading needs bitsandbytes, which is not installed: {EXTRA['qlora']}, "
                "or pass quantization_bit=null (a bf16 LoRA, more memory)"
            )
    if str(v.get("flash_attn", "")).lower() == "fa2" and not installed("flash_attn"):
        r.fail("flash_attn: fa2 needs the flash-attn package, which is not installed: pass flash_attn=sdpa")
    r.checked.append("packages")


def check_inference_positions(r: Report) -> None:
    """Prediction and inference: the installed transformers places Qwen VL image positions right
    with LLaMA-Factory 0.9.5 only through our shim (lf_shim.py), which covers pinned versions."""
    line = lf_shim.problem()
    if line:
        r.fail(line)
    warning = lf_shim.disabled_warning()
    if warning:
        r.warn(warning)
    r.checked.append("inference positions")


def check_gpus(r: Report, env: dict, inventory: gpu_mod.Inventory | None) -> None:
    r.checked.append("gpus")
    v = r.recipe.values
    inv = inventory if inventory is not None else gpu_mod.query_gpus()
    plan, problems = gpu_mod.plan_launch(r.recipe.gpus, bool(v.get("deepspeed")), inv, env)
    for p in problems:
        r.fail(p)
    if plan is None:
        return
    r.plan = plan
    for note in plan.notes:
        r.warn(note)
    bnb = v.get("quantization_bit") is not None and v.get("quantization_method") in BNB_METHODS
    if plan.count == 0:
        if v.get("bf16"):
            r.fail(
                "bf16: true needs a CUDA GPU with bf16 (compute capability 8.0+); on the CPU pass bf16=false"
            )
        if v.get("enable_liger_kernel"):
            r.fail(
                "enable_liger_kernel: liger-kernel's Triton kernels need a CUDA GPU; on the CPU pass enable_liger_kernel=false"
            )
        if bnb:
            r.fail(
                "quantization_bit: bitsandbytes 4-bit loading needs a CUDA GPU; on the CPU pass quantization_bit=null"
            )
        return
    torch_version, torch_cuda = gpu_mod.torch_build()
    problem = gpu_mod.driver_problem(plan.selected, torch_version, torch_cuda)
    if problem:
        r.fail(problem)
    if v.get("bf16"):
        for gpu in plan.selected:
            if gpu is not None and gpu.compute_cap is not None and gpu.compute_cap < (8, 0):
                cap = ".".join(map(str, gpu.compute_cap))
                r.fail(
                    f"bf16: true, but {gpu.label()} has compute capability {cap}, without bf16: "
                    "pass bf16=false fp16=true"
                )
                break
    if offloads(r.deepspeed):
        problem = offload_toolchain_problem(str(v.get("deepspeed")), torch_cuda, env)
        if problem:
            r.fail(problem)


def cpu_adam_prebuilt() -> bool:
    """DeepSpeed installed with its CPU Adam compiled in (DS_BUILD_CPU_ADAM=1 pip install …).
    torch's extension cache is not trusted: a CPU-only build there is rebuilt on a GPU node."""
    spec = importlib.util.find_spec("deepspeed")
    if spec is None or not spec.submodule_search_locations:
        return False
    info = Path(list(spec.submodule_search_locations)[0]) / "git_version_info_installed.py"
    return info.is_file() and bool(re.search(r"'cpu_adam':\s*True", info.read_text(encoding="utf-8")))


def cuda_home(env: dict) -> str | None:
    """Where torch.utils.cpp_extension looks for the CUDA toolkit, in its order."""
    home = env.get("CUDA_HOME") or env.get("CUDA_PATH")
    if home:
        return home
    nvcc = shutil.which("nvcc", path=env.get("PATH"))
    if nvcc:
        return str(Path(nvcc).resolve().parent.parent)
    return "/usr/local/cuda" if Path("/usr/local/cuda").is_dir() else None


def nvcc_release(home: str) -> str | None:
    try:
        out = subprocess.run(
            [os.path.join(home, "bin", "nvcc"), "--version"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"release (\d+\.\d+)", out.stdout)
    return m.group(1) if m else None


def offload_toolchain_problem(ds: str, torch_cuda: str | None, env: dict) -> str | None:
    if cpu_adam_prebuilt():
        return None
    lead = f"deepspeed: {ds} offloads to the CPU, and DeepSpeed compiles its CPU Adam on first use"
    fallback = "or train with configs/deepspeed/ds_z2_config.json"
    if not (shutil.which("c++", path=env.get("PATH")) or shutil.which("g++", path=env.get("PATH"))):
        return f"{lead} with a C++ compiler, and none is on PATH: install g++ (apt-get install build-essential), {fallback}"
    if not Path(sysconfig.get_paths()["include"], "Python.h").is_file():
        return f"{lead} against Python's headers, which are missing: install python3.11-dev, {fallback}"
    home = cuda_home(env)
    want = torch_cuda or "?"
    if home is None or not Path(home, "bin", "nvcc").is_file():
        return (
            f"{lead} against a CUDA toolkit (CUDA_HOME, nvcc), and none was found: install the CUDA {want} toolkit "
            f"and set CUDA_HOME to it, {fallback}"
        )
    release = nvcc_release(home)
    if release is None or torch_cuda is None or env.get("DS_SKIP_CUDA_CHECK") == "1":
        return None
    torch_mm = ".".join(torch_cuda.split(".")[:2])
    if release == torch_mm or any({release, torch_mm} <= ok for ok in DS_CUDA_COMPATIBLE):
        return None
    return (
        f"{lead} against CUDA_HOME={home} (nvcc {release}), which does not match torch's CUDA {torch_mm}: "
        f"point CUDA_HOME at a CUDA {torch_mm} toolkit or install the torch build of your toolkit "
        f"(doc/gpu-quickstart.md §0), {fallback}"
    )
