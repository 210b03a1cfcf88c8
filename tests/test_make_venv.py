"""`make venv` on a machine without a supported Python: it stops before creating anything, with
one line naming the package or the PYTHON= to use (scripts/check-python.sh, run by the real
make in a temporary VENV folder, so the project's .venv is never touched)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO


def make_venv(tmp_path: Path, python: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": path or "/usr/bin:/bin", "HOME": str(tmp_path)}
    venv = tmp_path / "venv"
    proc = subprocess.run(
        ["make", "-C", str(REPO), "venv", f"PYTHON={python}", f"VENV={venv}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert not venv.exists(), "make created the venv folder before the check"
    return proc


def fake_python(folder: Path, name: str, script: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / name
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(0o755)
    return exe


def message(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("make venv: ")]
    assert proc.returncode != 0 and len(lines) == 1, proc.stdout + proc.stderr
    return lines[0]


def test_a_python_that_is_not_there(tmp_path):
    line = message(make_venv(tmp_path, "python3.99"))
    assert line.startswith("make venv: python3.99 not found: the stack needs Python 3.11 or 3.12")
    assert "sudo apt-get install python3.12-venv, then make venv PYTHON=python3.12" in line
    assert 'uv python install 3.11, then make venv PYTHON="$(uv python find 3.11)"' in line


def test_a_python_of_another_version(tmp_path):
    fake = fake_python(tmp_path / "bin", "python3", "echo 3.10\n")
    line = message(make_venv(tmp_path, str(fake)))
    assert (
        f"make venv: {fake} is Python 3.10; the stack needs 3.11 or 3.12 (pyproject.toml: >=3.11,<3.13)"
        in line
    )


def test_a_python_without_its_venv_module(tmp_path):
    # Answers like the real interpreter, except that ensurepip is missing (Ubuntu without python3.X-venv).
    fake = fake_python(
        tmp_path / "bin",
        "python3.11",
        f'case "$*" in *ensurepip*) echo "No module named ensurepip" >&2; exit 1;; esac\nexec {sys.executable} "$@"\n',
    )
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    line = message(make_venv(tmp_path, str(fake)))
    assert line.startswith(f"make venv: {fake} (Python {version}) has no venv module with pip (ensurepip): ")
    assert f"sudo apt-get install python{version}-venv" in line


def test_the_supported_python_passes_the_check():
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "check-python.sh"), sys.executable], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
