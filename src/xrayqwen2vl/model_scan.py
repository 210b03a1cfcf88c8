"""What a model or adapter folder may carry before transformers or PEFT is let near it.

Users load checkpoints they did not write (shared fine-tunes, merged models passed between
labs), and a few fields of a folder's JSON make the loaders fetch or run code:

- ``_attn_implementation_internal`` (and ``_experts_implementation_internal``): in transformers
  before 5.3.0 it made ``from_pretrained`` load attention code named by the file, whatever
  ``trust_remote_code`` said (CVE-2026-4372); transformers never writes it;
- ``attn_implementation`` / ``experts_implementation`` naming a hub repository (``org/name``): a
  kernel fetched and run at load time;
- ``auto_map``: Python shipped with the model (``modeling_x.py``), run when
  ``trust_remote_code`` is on;
- pickled weights (``pytorch_model.bin``, ``*.pt``, …) and an index naming them: unpickling runs
  code; only ``*.safetensors`` weights are accepted.

One scan serves every entry point: ``xrayqwen2vl check`` (and through it ``scripts/*.sh``, the
API and webchat launchers included), ``report`` and ``web``. It reads every ``*config*.json`` at
the top of the folder (config.json, generation_config.json, tokenizer_config.json,
preprocessor_config.json, adapter_config.json, …) and walks every dict inside, nested configs
(``text_config``, ``vision_config``) and lists included. Each problem is one line naming the
file and the field, never quoting a value. The folders ``tiny-model`` and LLaMA-Factory's merge
write pass it (``tests/test_security_check.py``, ``tests/test_e2e.py``).
"""

from __future__ import annotations

import fnmatch
import json
import os
import stat
from pathlib import Path

REMOTE_CODE_ENV = "XRAYQWEN2VL_ALLOW_REMOTE_CODE"  # =1: what --allow-remote-code allows
MAX_JSON_BYTES = 32 << 20  # a tokenizer_config.json with a long chat template is well under 1 MiB
ALWAYS_REFUSED = ("_attn_implementation_internal", "_experts_implementation_internal")
KERNEL_KEYS = ("attn_implementation", "_attn_implementation", "experts_implementation")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
# Pickles the Trainer leaves beside an adapter or in a checkpoint: no inference loader reads them.
TRAINER_FILES = ("training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth")
NO_REMOTE_CODE = (
    f"xrayqwen2vl runs no code shipped with a model: use a folder without it, or, if you trust its "
    f"author, pass --allow-remote-code (scripts: {REMOTE_CODE_ENV}=1)"
)


def remote_code_allowed(flag: bool = False, env: dict | None = None) -> bool:
    """--allow-remote-code, or XRAYQWEN2VL_ALLOW_REMOTE_CODE=1 in the environment."""
    value = (os.environ if env is None else env).get(REMOTE_CODE_ENV, "")
    return flag or value.strip().lower() in ("1", "true", "yes")


def remote_code_problem(config: dict, allowed: bool) -> str | None:
    """The line for ``trust_remote_code: true`` in a config, unless remote code is allowed."""
    value = config.get("trust_remote_code")
    if allowed or value in (None, False) or str(value).strip().lower() in ("false", "0", "no", ""):
        return None
    return f"trust_remote_code: true lets the model folder run its own Python: {NO_REMOTE_CODE}"


def _read_json(path: Path):
    """A regular file's JSON (opened without blocking: a FIFO is never waited on), or the words
    for why it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        return None, f"cannot be read ({e.strerror})"
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None, "is not a regular file"
        data = f.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        return None, f"is larger than {MAX_JSON_BYTES >> 20} MiB"
    try:
        return json.loads(data), None
    except RecursionError:
        return None, "is nested too deeply to read"
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        return None, f"is not valid JSON ({type(e).__name__})"


def _fields(doc):
    """(dotted field path, key, value) for every key of every dict inside ``doc``, without
    recursion (a hostile file may nest deeply)."""
    stack = [("", doc)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                path = f"{where}.{key}" if where else str(key)
                yield path, str(key), value
                stack.append((path, value))
        elif isinstance(node, list):
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(node))


def _names_a_repository(value) -> bool:
    values = value.values() if isinstance(value, dict) else [value]
    return any(isinstance(v, str) and "/" in v for v in values)


def _json_problems(path: Path, allow_remote_code: bool) -> list[str]:
    doc, why = _read_json(path)
    if why:
        return [f"{path.name} {why}"]
    problems = []
    for field_path, key, value in _fields(doc):
        if key in ALWAYS_REFUSED:
            problems.append(
                f"{path.name} sets {field_path}, which made transformers before 5.3 load code the file names "
                "(CVE-2026-4372); transformers never writes it: refused"
            )
        elif key in KERNEL_KEYS and _names_a_repository(value):
            problems.append(
                f"{path.name} sets {field_path} to a hub repository, a kernel fetched and run at load time: "
                "refused; remove the field"
            )
        elif key == "auto_map" and value and not allow_remote_code:
            problems.append(f"{path.name} sets {field_path}, code shipped with the model: {NO_REMOTE_CODE}")
    return problems


def _pickle_problems(files: list[Path]) -> list[str]:
    problems = []
    for p in files:
        name = p.name
        if name.lower().endswith(PICKLE_SUFFIXES) and not any(
            fnmatch.fnmatch(name, t) for t in TRAINER_FILES
        ):
            problems.append(
                f"{name} is a pickled weight file (unpickling runs code): only *.safetensors weights are "
                "accepted; remove it, or convert the model to safetensors where you trust it"
            )
        elif name.endswith(".index.json"):
            doc, why = _read_json(p)
            weight_map = doc.get("weight_map") if isinstance(doc, dict) else None
            if why or not isinstance(weight_map, dict):
                continue  # the completeness check (recipes.models) words an unreadable index
            pickled = sorted({str(s) for s in weight_map.values() if not str(s).endswith(".safetensors")})
            if pickled:
                problems.append(
                    f"{name} names {len(pickled)} weight file(s) that are not safetensors "
                    f"({pickled[0][:80]}): only *.safetensors weights are accepted"
                )
    return problems


def scan_model_folder(folder: str | Path, allow_remote_code: bool = False) -> list[str]:
    """One line per problem of a model or adapter folder (none: it may be loaded), each naming
    the file and the field; ``allow_remote_code`` lets ``auto_map`` through, nothing else."""
    folder = Path(folder)
    try:
        files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError:
        return []  # a missing folder is the caller's to word
    problems = []
    for p in files:
        if fnmatch.fnmatch(p.name.lower(), "*config*.json"):
            problems += _json_problems(p, allow_remote_code)
    problems += _pickle_problems(files)
    return problems
