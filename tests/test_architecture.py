"""The rules of the package's layout (shared/architecture.md), read from the source's imports: the
rooms import only downwards, with no cycle between them; argparse stays in the command layer; the
optional metrics library is imported by its one adapter. A planted violation of each rule in a
copy of the layout is reported, so these checks can fail."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "src" / "xrayqwen2vl"
ROOMS = ("commands", "serve", "eval", "data", "synthetic", "recipes")
# room -> the rooms it must never import (architecture.md's rules of the house)
FORBIDDEN = {
    "data": {"serve", "eval", "commands", "recipes"},
    "synthetic": {"serve", "eval", "commands", "recipes"},
    "eval": {"serve", "commands"},
    "recipes": {"serve", "eval", "commands"},
    "serve": {"commands"},
}
ARGPARSE_ALLOWED = ("cli", "commands")
METRICS_LIBRARY = {"radeval", "RadEval"}
METRICS_ADAPTER = "eval/rexrank_adapter"


def room_of(rel: Path) -> str:
    """The room of a module (its top folder), or "ground" for the modules beside cli.py."""
    return rel.parts[0] if len(rel.parts) > 1 and rel.parts[0] in ROOMS else "ground"


def imports(package: Path) -> list[tuple[str, str]]:
    """(module path relative to the package without .py, imported module) for every import,
    relative ones resolved to ``xrayqwen2vl.…``; imports inside functions included."""
    found = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).with_suffix("")
        here = ["xrayqwen2vl", *rel.parts[:-1]]  # the module's package
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                found += [(rel.as_posix(), a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if not node.level:
                    found.append((rel.as_posix(), node.module or ""))
                    continue
                base = here[: len(here) - node.level + 1]
                if node.module:
                    found.append((rel.as_posix(), ".".join([*base, node.module])))
                else:
                    found += [(rel.as_posix(), ".".join([*base, a.name])) for a in node.names]
    return found


def problems(package: Path) -> list[str]:
    out = []
    graph: dict[str, set[str]] = defaultdict(set)
    for module, name in imports(package):
        room = room_of(Path(module))
        top = name.split(".")[0]
        if top == "argparse" and room not in ARGPARSE_ALLOWED and module != "cli":
            out.append(f"{module}: imports argparse (the command layer's)")
        if top in METRICS_LIBRARY and module != METRICS_ADAPTER:
            out.append(f"{module}: imports {top} (only {METRICS_ADAPTER} may)")
        parts = name.split(".")
        if parts[0] != "xrayqwen2vl" or len(parts) < 2:
            continue
        target = parts[1] if parts[1] in ROOMS else "ground"
        if target == room:
            continue
        graph[room].add(target)
        if room == "ground" and target != "ground" and module != "cli":
            out.append(f"{module}: the ground floor imports the {target} room")
        if target in FORBIDDEN.get(room, set()):
            out.append(f"{module}: {room}/ imports {target}/")
        if target == "commands" and module != "cli":
            out.append(f"{module}: imports commands/ (only cli.py may)")
    graph.get("ground", set()).discard("commands")  # cli.py builds the parser from commands/
    for cycle in _cycles({k: v for k, v in graph.items() if k != "ground"}):
        out.append("a cycle between rooms: " + " -> ".join(cycle))
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_package_keeps_the_rules_of_the_house():
    assert problems(PACKAGE) == []


def test_the_imports_are_read_from_every_room():
    """The reader sees what it must: each room's imports of the ground floor, the adapter's of the
    metrics library (inside a function), the command layer's of argparse."""
    seen = imports(PACKAGE)
    rooms = {room_of(Path(m)) for m, name in seen if name.startswith("xrayqwen2vl.")}
    assert rooms >= {*ROOMS, "ground"}
    assert any(m == METRICS_ADAPTER and n.split(".")[0] in METRICS_LIBRARY for m, n in seen)
    assert any(m.startswith("commands/") and n == "argparse" for m, n in seen)


PLANTED = {
    "data/planted.py": ("from ..serve import report\n", "data/planted: data/ imports serve/"),
    "synthetic/planted.py": (
        "from xrayqwen2vl.eval import nlg\n",
        "synthetic/planted: synthetic/ imports eval/",
    ),
    "eval/planted.py": ("def f():\n    from ..serve.web import main\n", "eval/planted: eval/ imports serve/"),
    "recipes/planted.py": ("from .. import eval\n", "recipes/planted: recipes/ imports eval/"),
    "serve/planted.py": ("import argparse\n", "serve/planted: imports argparse (the command layer's)"),
    "data/planted_metrics.py": ("import radeval\n", "data/planted_metrics: imports radeval"),
    "fileio_planted.py": (
        "from .data import records\n",
        "fileio_planted: the ground floor imports the data room",
    ),
    "synthetic/planted_cmd.py": (
        "from ..commands import sample_cmd\n",
        "imports commands/ (only cli.py may)",
    ),
}


@pytest.mark.parametrize("where", sorted(PLANTED))
def test_a_planted_violation_is_reported(where, tmp_path):
    copy = tmp_path / "xrayqwen2vl"
    for path in PACKAGE.rglob("*.py"):
        dest = copy / path.relative_to(PACKAGE)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    code, expected = PLANTED[where]
    (copy / where).write_text(code, encoding="utf-8")
    assert any(expected in p for p in problems(copy)), problems(copy)


def test_a_cycle_between_rooms_is_reported(tmp_path):
    copy = tmp_path / "xrayqwen2vl"
    for room in ("data", "synthetic"):
        (copy / room).mkdir(parents=True)
    (copy / "data" / "a.py").write_text("from ..synthetic import b\n")
    (copy / "synthetic" / "b.py").write_text("from ..data import a\n")
    found = problems(copy)
    assert "a cycle between rooms: data -> synthetic -> data" in found, found
