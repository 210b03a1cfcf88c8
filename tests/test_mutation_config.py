"""`make mutation`'s scope stays true to the code: every module file, function and test file it
names exists, and its mutant-name patterns match mutmut's names (the run itself is not a test:
doc/testing.md)."""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.fixture(scope="module")
def mutation():
    spec = importlib.util.spec_from_file_location("mutation_script", REPO / "scripts" / "mutation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _functions(path) -> set[str]:
    """Top-level functions and Class.method names of a source file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names |= {f"{node.name}.{n.name}" for n in node.body if isinstance(n, ast.FunctionDef)}
    return names


def test_every_module_names_existing_code_and_tests(mutation):
    assert set(mutation.MODULES) == {
        *("splits", "verdicts", "reliance", "normalize", "labeler"),
        *("batch_line", "extraction", "counterfactual"),
    }
    for name, m in mutation.MODULES.items():
        source = REPO / m.source
        assert source.is_file(), (name, m.source)
        defined = _functions(source)
        for pattern in m.functions:
            assert fnmatch.filter(defined, pattern), (name, pattern)
        for test in m.tests:
            assert (REPO / test.split("::")[0]).is_file(), (name, test)


def test_patterns_match_mutmuts_names(mutation):
    m = mutation.Module("src/xrayqwen2vl/eval/x.py", ("f", "Cls.*"), ())
    pats = mutation.patterns(m)
    assert fnmatch.fnmatchcase("xrayqwen2vl.eval.x.x_f__mutmut_3", pats[0])
    assert not fnmatch.fnmatchcase("xrayqwen2vl.eval.x.x_f2__mutmut_3", pats[0])
    assert fnmatch.fnmatchcase("xrayqwen2vl.eval.x.xǁClsǁadd__mutmut_12", pats[1])
    everything = mutation.patterns(mutation.Module("src/xrayqwen2vl/eval/x.py", ("*",), ()))
    assert fnmatch.fnmatchcase("xrayqwen2vl.eval.x.x_g__mutmut_1", everything[0])
    assert not fnmatch.fnmatchcase("xrayqwen2vl.eval.xy.x_g__mutmut_1", everything[0])


def test_list_and_unknown_module():
    script = str(REPO / "scripts" / "mutation.py")
    listed = subprocess.run([sys.executable, script, "--list", "splits"], capture_output=True, text=True)
    assert listed.returncode == 0
    assert listed.stdout.splitlines() == [
        "splits: src/xrayqwen2vl/data/splits.py [*] tested by tests/test_splits_rules.py tests/test_splits_leak.py"
    ]
    bad = subprocess.run([sys.executable, script, "nosuch"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown module(s) nosuch" in bad.stderr
