"""A config as LLaMA-Factory will see it: the YAML merged with ``key=value`` overrides (OmegaConf,
as ``llamafactory.hparams.parser.read_args`` does), plus what only our header says."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..yamlfile import UnsafeYamlError, check_yaml_text, read_config_yaml

# The job a config is for, and the wrapper that runs it.
JOBS = ("train", "predict", "export", "infer")
SCRIPT_OF = {
    "train": "scripts/train.sh",
    "predict": "scripts/predict.sh",
    "export": "scripts/merge.sh",
    "infer": "xrayqwen2vl report --config",
}
# '# GPUs: N' (N GPUs on one node) or '# GPUs: N per node, M nodes' (a multi-node recipe). Only the
# leading comment block counts: a '# GPUs:' comment below the first YAML key is a note, not the header.
_GPUS_LINE = re.compile(r"^#\s*GPUs:\s*(\d+)\b(?:\s+per\s+node\s*,\s*(\d+)\s+nodes?\b)?", re.IGNORECASE)


class ConfigError(ValueError):
    """The config file or an override cannot be read at all (exit 2, before any check)."""


@dataclass
class Recipe:
    path: Path  # as given (relative to the current folder when the user gave it so)
    values: dict  # after overrides
    own: dict  # the file alone
    overrides: dict  # key -> value, parsed as LLaMA-Factory parses them
    header: list[str] = field(default_factory=list)  # the leading comment lines

    @property
    def name(self) -> str:
        return display(self.path)

    @property
    def job(self) -> str:
        return job_of(self.values)

    @property
    def gpus(self) -> int | None:
        """The ``# GPUs: N`` header line: the GPUs per node the recipe is written for (None: not said)."""
        m = self._gpus_line()
        return int(m.group(1)) if m else None

    @property
    def nodes(self) -> int:
        """The nodes the recipe is written for: ``# GPUs: N per node, M nodes`` gives M, else 1."""
        m = self._gpus_line()
        return int(m.group(2)) if m and m.group(2) else 1

    def _gpus_line(self) -> re.Match | None:
        for line in self.header:
            m = _GPUS_LINE.match(line.strip())
            if m:
                return m
        return None

    def get(self, key: str, default=None):
        return self.values.get(key, default)


def display(path: str | Path) -> str:
    """A path as the user should read it: relative to the current folder when inside it."""
    p = Path(path)
    try:
        return (
            Path(os.path.relpath(p.resolve(), Path.cwd().resolve())).as_posix()
            if p.is_absolute()
            else p.as_posix()
        )
    except ValueError:
        return p.as_posix()


def job_of(values: dict) -> str:
    if values.get("export_dir"):
        return "export"
    if values.get("do_train"):
        return "train"
    if values.get("do_predict"):
        return "predict"
    return "infer"


def parse_overrides(items: list[str]) -> dict:
    """``key=value`` items with LLaMA-Factory's own parser (OmegaConf.from_cli)."""
    from omegaconf import OmegaConf

    for item in items:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"override {item!r} is not key=value")
        try:  # OmegaConf reads the value as YAML: no alias may expand it
            check_yaml_text(item.partition("=")[2], f"override {item.partition('=')[0]}")
        except UnsafeYamlError as e:
            raise ConfigError(str(e)) from None
    try:
        return OmegaConf.to_container(OmegaConf.from_cli(list(items)))
    except Exception as e:  # OmegaConf's grammar errors
        raise ConfigError(f"override not understood: {e}") from e


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    from omegaconf import OmegaConf

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{display(path)}: config file not found")
    try:
        own = read_config_yaml(path, display(path)) or {}
    except UnsafeYamlError as e:
        raise ConfigError(str(e)) from None
    text = path.read_text(encoding="utf-8")
    if not isinstance(own, dict):
        raise ConfigError(f"{display(path)}: not a YAML mapping of key: value")
    over = parse_overrides(overrides or [])
    merged = OmegaConf.to_container(OmegaConf.merge(OmegaConf.create(own), OmegaConf.create(over)))
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    return Recipe(path=path, values=merged, own=own, overrides=over, header=header)


def names(value) -> list[str]:
    """A dataset key's names: ``a,b`` or a list."""
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(n).strip() for n in items if str(n).strip()]


def configs_root(config: Path) -> Path | None:
    """The ``configs/`` folder the config lives in (or ./configs for a config kept elsewhere)."""
    for parent in config.resolve().parents:
        if parent.name == "configs":
            return parent
    here = Path.cwd() / "configs"
    return here if here.is_dir() else None


def repo_root(config: Path) -> Path:
    root = configs_root(config)
    return root.parent if root is not None else Path.cwd()


@dataclass(frozen=True)
class Writer:
    """Another config and the folder it writes (output_dir of train/predict, export_dir of merge)."""

    config: Path
    job: str
    folder: str


def writers(config: Path) -> list[Writer]:
    """Every config of the tree and the folder it writes; unreadable files are skipped."""
    root = configs_root(config)
    if root is None:
        return []
    out = []
    for p in sorted(root.rglob("*.yaml")):
        try:
            values = read_config_yaml(p) or {}
        except (OSError, UnsafeYamlError):
            continue
        if not isinstance(values, dict):
            continue
        job = job_of(values)
        folder = values.get("export_dir") if job == "export" else values.get("output_dir")
        if folder and job in ("train", "predict", "export"):
            out.append(Writer(p, job, str(folder)))
    return out


def same_path(a: str | Path, b: str | Path) -> bool:
    return os.path.abspath(os.path.expanduser(str(a))) == os.path.abspath(os.path.expanduser(str(b)))


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
