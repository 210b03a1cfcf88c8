"""Helpers for the preflight and GPU-selection tests: a checkout in a temporary folder (the real
configs, weights/README.md, the tiny model linked in as the base weights, the synthetic sample
prepared as ``openi_*`` with its images copied inside ``data/``), and a fake ``nvidia-smi``, the
one thing mocked: it answers the query ``xrayqwen2vl check`` makes with the GPUs a test lists."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

from conftest import BIN, OFFLINE_ENV, REPO, prepare_sample, tool

# H100 on the CUDA 13 driver branch, V100 (no bf16), and a CUDA 12 driver.
H100 = ("NVIDIA H100 80GB HBM3", "81559", "9.0", "580.65.06")
V100 = ("Tesla V100-SXM2-32GB", "32768", "7.0", "580.65.06")
QUERY = "--query-gpu=index,uuid,name,memory.total,compute_cap,driver_version --format=csv,noheader,nounits"
# Variables a developer's shell may carry that would change what the wrappers choose.
LAUNCH_VARS = (
    "GPUS",
    "NPROC_PER_NODE",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "NNODES",
    "NODE_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "FORCE_TORCHRUN",
)


def fake_nvidia_smi(folder: Path, gpus: list[tuple[str, str, str, str]], driver: str | None = None) -> Path:
    """A folder with an executable ``nvidia-smi`` that lists ``gpus`` (name, MiB, compute
    capability, driver) for the query the preflight makes, and fails on any other arguments."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        f"{i}, GPU-{i:08d}-fake-0000-0000-000000000000, {name}, {mib}, {cap}, {driver or drv}"
        for i, (name, mib, cap, drv) in enumerate(gpus)
    ]
    (folder / "gpus.csv").write_text("".join(r + "\n" for r in rows))
    script = folder / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$*" = "{QUERY}" ]; then cat "$(dirname "$0")/gpus.csv"; exit 0; fi\n'
        'echo "fake nvidia-smi: unexpected arguments: $*" >&2\n'
        "exit 9\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder


def clean_env(fake_bin: Path | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    env.update(OFFLINE_ENV)
    path = [str(BIN), env.get("PATH", "")]
    if fake_bin is not None:
        path.insert(0, str(fake_bin))
    env["PATH"] = os.pathsep.join(path)
    env.update(extra)
    return env


def prepared_openi_with_images(sample_dir: Path, out: Path) -> Path:
    """The sample prepared as openi_* with image copies under OUT/images/ (so the folder can be
    copied anywhere and its image paths still resolve)."""
    prepare_sample(sample_dir, out, "openi", max_pixels=262144)
    return out


def make_checkout(dest: Path, data: Path, tiny_model: Path) -> Path:
    """configs/, scripts/, weights/README.md and data/dataset_info.json of the repository, the
    tiny model as weights/Qwen2-VL-{7B,2B}-Instruct, and a copy of the prepared data."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "configs", dest / "configs")
    shutil.copytree(REPO / "scripts", dest / "scripts")
    (dest / "weights").mkdir()
    shutil.copy(REPO / "weights" / "README.md", dest / "weights" / "README.md")
    for name in ("Qwen2-VL-7B-Instruct", "Qwen2-VL-2B-Instruct"):
        (dest / "weights" / name).symlink_to(tiny_model, target_is_directory=True)
    shutil.copytree(data, dest / "data")
    return dest


def run_check(checkout: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real ``xrayqwen2vl check ARGS`` in the checkout."""
    return subprocess.run(
        [tool("xrayqwen2vl"), "check", *args],
        cwd=checkout,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_wrapper(
    checkout: Path, script: str, *args: str, env: dict, timeout: int = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(checkout / "scripts" / script), *args],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def errors(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("xrayqwen2vl check: error: ")]


def plan(proc: subprocess.CompletedProcess) -> tuple[str, dict[str, str]]:
    """``check --shell`` output: (the first line, the exported variables)."""
    first, exported = "", {}
    for line in proc.stdout.splitlines():
        if line.startswith("# "):
            first = line[2:]
        elif "=" in line:
            key, value = line.split("=", 1)
            exported[key] = value
    return first, exported
