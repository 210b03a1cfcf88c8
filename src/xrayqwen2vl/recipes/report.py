"""What a preflight found: one line per problem, the checks it ran, and the launch plan."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from .config import Recipe
from .gpus import Plan

EXTRA = {
    "deepspeed": "pip install -e '.[deepspeed]' (deepspeed==0.16.9; make venv installs it)",
    "liger": "pip install -e '.[liger]' (liger-kernel==0.8.5)",
    "qlora": "pip install -e '.[qlora]' (bitsandbytes==0.50.2)",
}


@dataclass
class Report:
    recipe: Recipe
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    plan: Plan | None = None
    deepspeed: dict | None = None  # the parsed DeepSpeed JSON
    summary: str = ""

    def fail(self, line: str) -> None:
        self.problems.append(line)

    def warn(self, line: str) -> None:
        self.warnings.append(line)


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
