"""Every command and path the README names exists: files, make targets, subcommands, configs."""

from __future__ import annotations

import re

from conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
# Paths the README names that a run produces or the user provides (downloaded weights), not
# shipped in the repository.
GENERATED_PREFIXES = (
    "saves/",
    "weights/Qwen",
    "data/manifest.json",
    "data/openi",
    "data/r2gen",
    "data/kaggle",
    "data/xrayglm",
    "data/raw",
)
TRACKED_PREFIXES = (
    "configs/",
    "scripts/",
    "src/",
    "tests/",
    "doc/",
    "data/",
    "weights/",
    "benchmarks/",
    ".ci/",
)


def _code_spans() -> list[str]:
    blocks = re.findall(r"```[a-z]*\n(.*?)```", README, flags=re.S)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", README, flags=re.S))
    return blocks + inline


def _named_paths() -> set[str]:
    paths = set()
    for span in _code_spans():
        for token in re.findall(r"[\w./\-]+", span):
            token = token.rstrip(".,")
            if token.startswith(TRACKED_PREFIXES) and not token.startswith(GENERATED_PREFIXES):
                if "*" not in token and "{" not in token:
                    paths.add(token)
    for name in ("README.md", "LICENSE", "pyproject.toml", "Makefile"):
        if name in README:
            paths.add(name)
    return paths


def test_readme_paths_exist():
    paths = _named_paths()
    assert len(paths) >= 10, paths  # the README names the layout and the configs it runs
    missing = sorted(p for p in paths if not (REPO / p).exists())
    assert not missing, f"README names files that do not exist: {missing}"


def test_readme_make_targets_exist():
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, flags=re.M))
    named = set()
    for span in _code_spans():
        named.update(re.findall(r"(?:^|\s)make ([\w-]+)", span))
    assert {"demo", "test"} <= named
    assert named <= targets, f"README names make targets the Makefile lacks: {sorted(named - targets)}"


def test_readme_subcommands_and_configs_exist():
    from xrayqwen2vl.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    commands = set(sub.choices)
    for span in _code_spans():
        for name in re.findall(r"xrayqwen2vl ([a-z][\w-]*)", span):
            assert name in commands, f"README runs `xrayqwen2vl {name}`, which does not exist"
        for job, cfg in re.findall(r"llamafactory-cli (train|export|chat|webchat|api) (\S+\.yaml)", span):
            if re.fullmatch(r"[A-Z_]+\.yaml", cfg):  # a placeholder such as CONFIG.yaml
                continue
            assert (REPO / cfg).is_file(), f"README runs llamafactory-cli {job} {cfg}: no such config"


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in README and "make test" in ci
