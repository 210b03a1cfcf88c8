"""Which GPUs a run gets, and how it is launched.

LLaMA-Factory 0.9.5's launcher (``llamafactory/launcher.py``) starts torchrun for ``train``
whenever ``FORCE_TORCHRUN`` is on **or more than one device is visible**, with one process per
visible device unless ``NPROC_PER_NODE`` says otherwise. So the only way to give a run the GPUs
its recipe is written for is to hide the others: the wrappers set ``CUDA_VISIBLE_DEVICES`` to the
first N GPUs of the pool, where

- N is ``GPUS`` if set, else ``NPROC_PER_NODE`` if set, else the recipe's ``# GPUs: N`` header
  line, else 1;
- the pool is ``CUDA_VISIBLE_DEVICES`` if the user set it, else every GPU ``nvidia-smi`` lists
  (indices in PCI bus order; ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` makes CUDA count the same way).

``GPUS=0`` runs on the CPU (the tests, tiny models). A run is launched through torchrun when it
has more than one process (or node) or a DeepSpeed config (DeepSpeed needs the launcher even for
one process); otherwise it is one plain process (``FORCE_TORCHRUN=0`` and one visible GPU).

Nothing here imports torch: GPUs come from ``nvidia-smi``, torch's CUDA version from its
``version.py``, so the check takes well under a second.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

QUERY = ("index", "uuid", "name", "memory.total", "compute_cap", "driver_version")
# Oldest Linux driver branch each CUDA major version runs on (NVIDIA's CUDA compatibility tables:
# CUDA 13.x >= 580.65.06, CUDA 12.x >= 525.60.13 with minor-version compatibility, 11.x >= 450.80.02).
MIN_DRIVER = {13: 580, 12: 525, 11: 450}
# The CUDA 12 build of the pinned torch, from PyTorch's own wheel index (doc/gpu-quickstart.md §0).
CU12_INDEX = "https://download.pytorch.org/whl/cu126"


@dataclass(frozen=True)
class Gpu:
    index: str
    uuid: str
    name: str
    memory_mib: int | None
    compute_cap: tuple[int, int] | None
    driver: str

    def label(self) -> str:
        return f"GPU {self.index} ({self.name})"


@dataclass
class Inventory:
    gpus: list[Gpu]
    note: str = ""  # why there are none (nvidia-smi missing or failing)
    found_smi: bool = True


def _number(text: str) -> int | None:
    try:
        return int(float(text))
    except ValueError:
        return None


def _cap(text: str) -> tuple[int, int] | None:
    m = re.fullmatch(r"(\d+)\.(\d+)", text.strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


def query_gpus(timeout: float = 15.0) -> Inventory:
    """The GPUs ``nvidia-smi`` lists (all of them: it ignores CUDA_VISIBLE_DEVICES)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return Inventory([], "nvidia-smi not found on PATH", found_smi=False)
    fields = list(QUERY)
    for _ in range(2):
        try:
            proc = subprocess.run(
                [exe, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            return Inventory([], f"nvidia-smi did not answer: {e}")
        out = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0 and "compute_cap" in out and "compute_cap" in fields:
            fields.remove("compute_cap")  # drivers older than ~510 do not know the field
            continue
        break
    if proc.returncode != 0:
        first = out.splitlines()[0] if out else f"exit status {proc.returncode}"
        return Inventory([], f"nvidia-smi failed: {first}")
    gpus = []
    for line in proc.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != len(fields):
            continue
        row = dict(zip(fields, parts, strict=True))
        gpus.append(
            Gpu(
                index=row["index"],
                uuid=row["uuid"],
                name=row["name"],
                memory_mib=_number(row["memory.total"]),
                compute_cap=_cap(row.get("compute_cap", "")),
                driver=row["driver_version"],
            )
        )
    return Inventory(gpus, "" if gpus else "nvidia-smi lists no GPU")


@dataclass
class Pool:
    """The devices a run may use: entries as CUDA_VISIBLE_DEVICES names them, with what nvidia-smi
    says about each (None for entries it does not list, e.g. MIG instances)."""

    entries: list[str]
    gpus: list[Gpu | None]
    source: str  # "CUDA_VISIBLE_DEVICES=…" or "nvidia-smi"
    user_set: bool


def pool(inventory: Inventory, env: dict) -> Pool:
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    if cvd is None:
        return Pool([g.index for g in inventory.gpus], list(inventory.gpus), "nvidia-smi", False)
    entries = [e.strip() for e in cvd.split(",") if e.strip()]
    if entries and entries[0] in ("-1", "none", "NoDevFiles"):
        entries = []
    by_key = {g.index: g for g in inventory.gpus} | {g.uuid: g for g in inventory.gpus}
    return Pool(entries, [by_key.get(e) for e in entries], f"CUDA_VISIBLE_DEVICES={cvd}", True)


@dataclass
class Plan:
    count: int  # GPUs per node (0: CPU)
    count_source: str
    nnodes: int
    processes: int  # per node
    torchrun: bool
    devices: list[str] | None  # what CUDA_VISIBLE_DEVICES becomes (None: left alone)
    selected: list[Gpu | None] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # warnings worth a line

    def where(self) -> str:
        if self.count == 0:
            return "CPU (GPUS=0)"
        gpus = f"{self.count} GPU{'s' if self.count > 1 else ''}"
        if self.devices is None:
            return gpus
        return f"{gpus} (CUDA_VISIBLE_DEVICES={','.join(self.devices)})"

    def launch(self) -> str:
        if not self.torchrun:
            return "one process"
        procs = self.nnodes * self.processes
        what = f"{procs} process{'es' if procs > 1 else ''}"
        if self.nnodes > 1:
            what += f" on {self.nnodes} nodes"
        return f"torchrun, {what}"


def _int_env(env: dict, key: str) -> int | None:
    raw = env.get(key)
    if raw is None or raw == "":
        return None
    if not re.fullmatch(r"\d+", raw.strip()):
        raise ValueError(f"{key}={raw} is not a whole number")
    return int(raw)


def wanted_count(recipe_gpus: int | None, env: dict) -> tuple[int, str]:
    """(GPUs per node, where that number comes from)."""
    gpus = _int_env(env, "GPUS")
    if gpus is not None:
        return gpus, f"GPUS={gpus}"
    nproc = _int_env(env, "NPROC_PER_NODE")
    if nproc is not None:
        return nproc, f"NPROC_PER_NODE={nproc}"
    if recipe_gpus is not None:
        return recipe_gpus, f"the recipe's '# GPUs: {recipe_gpus}' line"
    return 1, "the default for a config without a '# GPUs: N' line"


def plan_launch(
    recipe_gpus: int | None, uses_deepspeed: bool, inventory: Inventory, env: dict
) -> tuple[Plan | None, list[str]]:
    """The launch plan, or the problems (one line each) that stop one from being made."""
    try:
        count, source = wanted_count(recipe_gpus, env)
    except ValueError as e:
        return None, [f"{e}: set GPUS=N (N GPUs, 0 for the CPU)"]
    try:
        nnodes = _int_env(env, "NNODES") or 1
    except ValueError:
        nnodes = 1  # recipes.nodes says what is wrong with it
    processes = max(count, 1)
    torchrun = nnodes > 1 or processes > 1 or uses_deepspeed
    run_env = {"NPROC_PER_NODE": str(processes), "FORCE_TORCHRUN": "1" if torchrun else "0"}
    plan = Plan(count, source, nnodes, processes, torchrun, devices=[], env=run_env)
    if count == 0:
        run_env["CUDA_VISIBLE_DEVICES"] = ""
        return plan, []
    p = pool(inventory, env)
    if not inventory.found_smi and not p.user_set:
        if env.get("GPUS") or env.get("NPROC_PER_NODE"):
            # Another accelerator (or no nvidia-smi in a container): trust the count given.
            plan.devices = None
            plan.notes.append(
                f"nvidia-smi not found: trusting {source} and leaving the device selection to the launcher"
            )
            return plan, []
    have = len(p.entries)
    if have < count:
        if have == 0:
            why = inventory.note if not p.user_set else f"{p.source} hides every GPU"
            fix = "On a machine without GPUs pass GPUS=0 (and bf16=false)"
            if not inventory.found_smi:
                fix += "; on another accelerator set GPUS=N"
            return None, [f"GPUs: {count} wanted ({source}), none visible ({why}). {fix}"]
        return None, [
            f"GPUs: {count} wanted ({source}), {have} visible ({p.source}): "
            f"run with GPUS={have} (the first line then shows the global batch) or free more GPUs"
        ]
    plan.devices = p.entries[:count]
    plan.selected = p.gpus[:count]
    run_env["CUDA_VISIBLE_DEVICES"] = ",".join(plan.devices)
    if not p.user_set and "CUDA_DEVICE_ORDER" not in env:
        run_env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # CUDA indices = nvidia-smi indices
    return plan, []


def batch_line(values: dict, own: dict, recipe_gpus: int | None, plan: Plan, recipe_nodes: int = 1) -> str:
    """'N × batch b × accumulation a = G samples per optimizer step', and the recipe's own G when
    the run's differs: nodes × GPUs per node × batch × accumulation of the file, with the
    accumulation that keeps it when one does (it must divide evenly: a hint that changes the
    batch is worse than none)."""
    b = int(values.get("per_device_train_batch_size", 8))
    a = int(values.get("gradient_accumulation_steps", 1))
    ranks = plan.nnodes * plan.processes
    total = ranks * b * a
    line = f"{ranks} × batch {b} × accumulation {a} = {total} samples per optimizer step"
    if recipe_gpus:
        b0 = int(own.get("per_device_train_batch_size", 8))
        a0 = int(own.get("gradient_accumulation_steps", 1))
        nodes = max(recipe_nodes, 1)
        written = nodes * recipe_gpus * b0 * a0
        if written != total:
            gpus = f"{recipe_gpus} GPU{'s' if recipe_gpus > 1 else ''}"
            shape = f"{nodes} nodes × {gpus}" if nodes > 1 else gpus
            line += f" (the recipe: {shape} × {b0} × {a0} = {written}; {keep_hint(written, ranks, b)})"
    return line


def keep_hint(written: int, ranks: int, batch: int) -> str:
    """The accumulation that gives ``written`` samples per step on ``ranks`` × ``batch``, or, when
    none does exactly, the two nearest and what they give."""
    per_step = ranks * batch
    keep, rest = divmod(written, per_step)
    if rest == 0 and keep >= 1:
        return f"gradient_accumulation_steps={keep} keeps it"
    near = [k for k in (keep, keep + 1) if k >= 1]
    gives = ", ".join(f"{k} gives {k * per_step}" for k in near)
    return f"no gradient_accumulation_steps keeps it exactly with {ranks} × batch {batch}: {gives}"


# --- torch's CUDA build against the driver ------------------------------------------------------


def torch_build() -> tuple[str | None, str | None]:
    """(torch version, the CUDA version it was built for) read from torch/version.py, not imported."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None, None
    version_py = Path(list(spec.submodule_search_locations)[0]) / "version.py"
    try:
        text = version_py.read_text(encoding="utf-8")
    except OSError:
        return None, None
    ver = re.search(r"^__version__\s*=\s*'([^']+)'", text, re.M)
    cuda = re.search(r"^cuda\b[^=\n]*=\s*'([\d.]+)'", text, re.M)
    return (ver.group(1) if ver else None), (cuda.group(1) if cuda else None)


def driver_problem(
    selected: list[Gpu | None], torch_version: str | None, torch_cuda: str | None
) -> str | None:
    drivers = {g.driver for g in selected if g is not None and g.driver}
    if not drivers or not torch_cuda:
        return None
    driver = sorted(drivers)[0]
    major = _number(driver.split(".")[0])
    cuda_major = int(torch_cuda.split(".")[0])
    need = MIN_DRIVER.get(cuda_major)
    if major is None or need is None or major >= need:
        return None
    fix = "update the NVIDIA driver"
    if cuda_major >= 13 and major >= MIN_DRIVER[12]:
        fix = (
            f"install the CUDA 12 build of the same torch: rm -rf .venv && make venv TORCH_INDEX={CU12_INDEX} "
            "(doc/gpu-quickstart.md), or " + fix
        )
    return (
        f"driver: NVIDIA driver {driver} is older than torch {torch_version} (a CUDA {torch_cuda} build) "
        f"needs ({need} or newer), so CUDA would not start: {fix}"
    )
