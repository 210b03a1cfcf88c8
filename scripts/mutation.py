"""``make mutation``: mutation testing (mutmut) of the modules whose bugs are silent, each with its
own fast tests, and a score per module.

A bug in a split rule, a verdict, the header stripping or a negation scope does not crash: it
gives other numbers. For each module below, mutmut plants one small change at a time (an
operator, a constant, a call argument) in the functions named, runs the fast tests that reach
that function, and counts the changes the tests catch ("killed"). doc/testing.md says when to
run it, how long it takes and which survivors are equivalent (no test can tell them apart).

Each module runs in its own copy of the repository under build/mutation/<module>/ (mutmut reads
its settings from the pyproject.toml of the folder it runs in, and writes mutants/ there), so a
module's tests and scope never mix with another's. The copy is made afresh on every run.

    python scripts/mutation.py                    # every module
    python scripts/mutation.py splits normalize   # some of them (make mutation MODULES="...")
    python scripts/mutation.py --list             # the modules, their scope and their tests
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "build" / "mutation"
GOAL = 90.0  # per cent killed, per module
DOC = REPO / "doc" / "testing.md"


@dataclass(frozen=True)
class Module:
    source: str  # the file mutated, relative to the repo
    functions: tuple[str, ...]  # the functions (and Class.method) mutated; fnmatch patterns
    tests: tuple[str, ...]  # the test files (or node ids) that guard them; run with -m "not slow"


MODULES: dict[str, Module] = {
    "splits": Module(
        "src/xrayqwen2vl/data/splits.py",
        ("*",),
        ("tests/test_splits_rules.py", "tests/test_splits_leak.py"),
    ),
    "normalize": Module(
        "src/xrayqwen2vl/eval/normalize.py",
        ("*",),
        (
            "tests/test_normalize.py",
            # test_eval_nlg.py's tests that need no METEOR (a JVM start per mutant is minutes)
            "tests/test_eval_nlg.py::test_r2gen_tokenisation_hyphens_and_numbered_lists",
            "tests/test_eval_nlg.py::test_line_breaks_are_spaces_but_runs_of_spaces_are_r2gens",
            "tests/test_eval_nlg.py::test_headers_go_after_a_sentence_end_with_no_space",
            "tests/test_eval_nlg.py::test_normalisation_en_and_zh",
        ),
    ),
    "labeler": Module(
        "src/xrayqwen2vl/eval/chexpert_labeler.py",
        (
            "_cue_before",
            "_verb_of_the_phrase_before",
            "_fresh_cues",
            "_new_finding",
            "_cue_after",
            "_is_list",
            "_joined_by_or",
            "_classify",
            "_continues_negated_list",
            "_label_part",
            "_clauses",
            "_mask",
        ),
        ("tests/test_labeler.py",),
    ),
    "counterfactual": Module(
        "src/xrayqwen2vl/data/counterfactual.py",
        # the permutation; the file writing is guarded by tests on a prepared sample, whose
        # setup (seconds per mutant) would take this module past the time budget
        ("derangement", "image_donors"),
        (
            "tests/test_counterfactual.py::test_derangement_leaves_nothing_in_place_and_is_seeded",
            "tests/test_counterfactual.py::test_each_image_position_is_permuted_among_the_studies_that_have_it",
            "tests/test_counterfactual.py::test_image_donors_follow_the_seed",
        ),
    ),
    "extraction": Module(
        "src/xrayqwen2vl/data/download.py",
        ("unpack_cap", "_member_path", "_unpack", "_unpack_members", "_CappedTarInfo.*", "extract", "_mib"),
        # called directly on archives built in the test; test_download.py's resumes and retries
        # (a server per test) reach extract only on archives that unpack cleanly
        (
            "tests/test_extraction.py",
            "tests/test_security_download.py",
            "tests/test_hostile_data.py::test_an_oversized_tar_extended_header_is_refused_before_it_is_read",
            "tests/test_hostile_data.py::test_names_quoted_in_download_messages_are_cut",
        ),
    ),
    "batch_line": Module(
        "src/xrayqwen2vl/recipes/gpus.py",
        ("batch_line", "keep_hint", "Plan.*"),
        # test_preflight.py checks the line through the command in a subprocess: no mutant reaches it
        ("tests/test_batch_line.py",),
    ),
    "verdicts": Module(
        "src/xrayqwen2vl/eval/verdicts.py",
        ("*",),
        ("tests/test_verdicts.py", "tests/test_eval_clinical_diversity_bootstrap.py"),
    ),
    "reliance": Module(
        "src/xrayqwen2vl/eval/reliance.py",
        # its rules; image_reliance runs evaluate three times (seconds per mutant, 371 mutants past
        # the time budget): test_reliance.py checks it end to end, outside the mutation run
        (
            "_norm",
            "check_same_studies",
            "unchanged",
            "verdict",
            "overall_verdict",
            "warning_text",
            "_dataset_for",
            "_refuse_outputs_over_inputs",
            "summary_lines",
        ),
        (
            "tests/test_reliance_rules.py",
            "tests/test_reliance.py::test_the_overall_verdict_combines_the_counterfactuals",
        ),
    ),
}

# What the tests read from the repository besides src/ and tests/ (they run inside mutants/).
ALSO_COPY = ("configs", "data", "doc", "scripts", "benchmarks", "weights", "README.md", "Makefile", "LICENSE")


def module_name(source: str) -> str:
    """src/xrayqwen2vl/data/splits.py -> xrayqwen2vl.data.splits (mutmut's key prefix)."""
    return ".".join(Path(source).with_suffix("").parts[1:])


def patterns(module: Module) -> list[str]:
    """mutmut's names of the mutants in scope: ``pkg.mod.x_func__mutmut_N`` for a function,
    ``pkg.mod.xǁClassǁmethod__mutmut_N`` for a method."""
    prefix = module_name(module.source)
    out = []
    for f in module.functions:
        if "." in f:
            cls, meth = f.split(".", 1)
            out.append(f"{prefix}.xǁ{cls}ǁ{meth}__mutmut_*")
        elif f == "*":
            out.append(f"{prefix}.*__mutmut_*")
        else:
            out.append(f"{prefix}.x_{f}__mutmut_*")
    return out


def _tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return [f for f in listed if (REPO / f).is_file()]


def make_workdir(name: str, module: Module) -> Path:
    """A fresh copy of the repository's files (tracked and new, not ignored) with a pyproject.toml
    whose [tool.mutmut] names this module, its scope and its tests."""
    work = WORK / name
    if work.exists():
        shutil.rmtree(work)
    for rel in _tracked_files():
        dest = work / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest)
    settings = {
        "source_paths": ["src"],
        "only_mutate": [module.source],
        "also_copy": [p for p in ALSO_COPY if (work / p).exists()],
        "pytest_add_cli_args_test_selection": list(module.tests),
        "pytest_add_cli_args": ["-m", "not slow and not gpu", "-p", "no:cacheprovider", "-W", "ignore"],
        "use_git_change_detection": False,
        # a mutant's tests set their fixtures up again (seconds) where mutmut counts only the test
        # bodies; on a shared machine that setup alone would count as a time-out, i.e. a kill
        "timeout_constant": 30.0,
    }
    with (work / "pyproject.toml").open("a", encoding="utf-8") as f:
        f.write("\n[tool.mutmut]\n")
        for key, value in settings.items():
            f.write(f"{key} = {json.dumps(value, ensure_ascii=False)}\n")
    return work


def results(work: Path, module: Module) -> dict[str, str]:
    """Mutant name -> status (killed, survived, timeout, no tests, …) for the mutants in scope."""
    from mutmut.stats import status_by_exit_code

    meta = work / "mutants" / (module.source + ".meta")
    if not meta.exists():
        return {}
    codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
    wanted = patterns(module)
    return {
        key: status_by_exit_code[code]
        for key, code in codes.items()
        if any(fnmatch.fnmatchcase(key, p) for p in wanted)
    }


def documented_equivalents() -> set[str]:
    """Mutant names listed in doc/testing.md (a `name` in backquotes): equivalent, or left with a reason."""
    if not DOC.exists():
        return set()
    return set(re.findall(r"`(xrayqwen2vl\.[^`\s]+__mutmut_\d+)`", DOC.read_text(encoding="utf-8")))


def run_module(name: str, module: Module, workers: int) -> tuple[float, list[str]]:
    """Run mutmut on one module; print its score line; return (score, survivors)."""
    start = time.monotonic()
    work = make_workdir(name, module)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MUTANT_UNDER_TEST")}
    # Subprocesses the tests start (the xrayqwen2vl command) import this copy's unmutated source,
    # not the installed package: a mutated one, run outside mutants/, cannot find mutmut's
    # settings. mutmut takes this entry off its own sys.path and puts mutants/src first.
    env["PYTHONPATH"] = str(work / "src")
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    mutmut = Path(sys.executable).parent / "mutmut"
    log = work / "mutmut.log"
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.run(
            [str(mutmut), "run", "--max-children", str(workers), *patterns(module)],
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    status = results(work, module)
    elapsed = time.monotonic() - start
    if proc.returncode != 0 or not status:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        print(f"{name}: mutmut exited {proc.returncode} after {elapsed:.0f} s; the end of {log}:\n{tail}")
        return 0.0, []
    counts: dict[str, int] = {}
    for s in status.values():
        counts[s] = counts.get(s, 0) + 1
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    score = 100.0 * killed / len(status)
    survivors = sorted(k for k, s in status.items() if s not in ("killed", "timeout"))
    others = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()) if s not in ("killed",))
    print(
        f"{name:<15} {score:5.1f}% killed  ({killed} of {len(status)} mutants"
        f"{'; ' + others if others else ''})  in {elapsed:.0f} s",
        flush=True,
    )
    return score, survivors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"some of: {', '.join(MODULES)} (default: all)")
    parser.add_argument("--list", action="store_true", help="print the modules, their scope and tests")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="mutants run at once")
    args = parser.parse_args(argv)
    names = [m for part in args.modules for m in part.replace(",", " ").split()] or list(MODULES)
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}: expected some of {', '.join(MODULES)}")
    if args.list:
        for n in names:
            m = MODULES[n]
            print(f"{n}: {m.source} [{', '.join(m.functions)}] tested by {' '.join(m.tests)}")
        return 0
    equivalent = documented_equivalents()
    failed = False
    all_survivors: list[tuple[str, str]] = []
    for n in names:
        score, survivors = run_module(n, MODULES[n], args.workers)
        failed |= score < GOAL
        all_survivors += [(n, s) for s in survivors]
    if all_survivors:
        print("\nsurvivors (show one: cd build/mutation/MODULE && mutmut show NAME):")
        for n, s in all_survivors:
            known = "listed in doc/testing.md" if s in equivalent else "NOT in doc/testing.md"
            print(f"  {n:<15} {s}  ({known})")
        failed |= any(s not in equivalent for _, s in all_survivors)
    print(f"\ngoal: >= {GOAL:.0f}% killed per module, every survivor listed in doc/testing.md")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
