"""scripts/system-deps.sh, which make demo / test-fast / test run before anything else: with the
commands it needs on PATH it passes; a missing one is installed with apt-get as root, and
otherwise make stops at once with the exact command to run.

The missing cases hide the real java and chromium behind a PATH that holds only what each case
needs: a stand-in ``id`` says root or not, and a stand-in ``apt-get`` records how it was called
(the real one cannot be exercised here: both packages are installed and other users need them)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

SCRIPT = REPO / "scripts" / "system-deps.sh"
BASH = shutil.which("bash")
MAKE = shutil.which("make")
INSTALL = "apt-get install -y --no-install-recommends default-jre-headless chromium"


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def _bin(tmp_path: Path, uid: int | None = 0, apt_rc: int | None = 0, have=()) -> Path:
    """A folder to be the whole PATH: bash, an ``id`` printing ``uid``, an ``apt-get`` that logs
    its calls to apt.log and whose install puts the packages' commands into the folder (or exits
    ``apt_rc`` when that is not 0), and the commands named in ``have``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "bash").symlink_to(BASH)
    if uid is not None:
        _executable(bin_dir / "id", f"#!/bin/sh\necho {uid}\n")
    if apt_rc is not None:
        commands = {"default-jre-headless": "java", "chromium": "chromium"}
        _executable(
            bin_dir / "apt-get",
            f"""#!{sys.executable}
import os, sys
from pathlib import Path
here = Path({str(bin_dir)!r})
with open(here.parent / "apt.log", "a") as f:
    f.write("DEBIAN_FRONTEND=%s %s\\n" % (os.environ.get("DEBIAN_FRONTEND", ""), " ".join(sys.argv[1:])))
if sys.argv[1] == "install":
    if {apt_rc}:
        sys.exit({apt_rc})
    for package, command in {commands!r}.items():
        if package in sys.argv:
            (here / command).write_text("#!/bin/sh\\n")
            (here / command).chmod(0o755)
""",
        )
    for name in have:
        _executable(bin_dir / name, "#!/bin/sh\n")
    return bin_dir


def _run(bin_dir: Path, *args: str, cmd: list[str] | None = None):
    env = {"PATH": str(bin_dir), "HOME": str(bin_dir.parent), "LANG": "C.UTF-8"}
    return subprocess.run(
        cmd or [BASH, str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


def _apt_calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "apt.log"
    return log.read_text().splitlines() if log.exists() else []


def test_commands_on_path_pass_and_nothing_is_installed(tmp_path):
    bin_dir = _bin(tmp_path, have=("java", "chromium"))
    proc = _run(bin_dir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "system packages: java chromium found\n"
    assert _apt_calls(tmp_path) == []
    (bin_dir / "chromium").unlink()  # Ubuntu's name for it does as well
    _executable(bin_dir / "chromium-browser", "#!/bin/sh\n")
    assert _run(bin_dir, "chromium").returncode == 0


def test_missing_as_non_root_stops_at_once_with_the_exact_command(tmp_path):
    proc = _run(_bin(tmp_path, uid=1000))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"scripts/system-deps.sh: java chromium not found; run: sudo apt-get update && sudo {INSTALL}; "
        "then run make again"
    ]
    assert _apt_calls(tmp_path) == []


def test_only_what_is_missing_is_named(tmp_path):
    bin_dir = _bin(tmp_path, uid=1000, have=("java",))
    proc = _run(bin_dir)
    assert proc.returncode == 1
    assert "chromium not found; run: sudo apt-get update && sudo apt-get install -y " in proc.stderr
    assert proc.stderr.rstrip().endswith("--no-install-recommends chromium; then run make again")
    assert _run(bin_dir, "java").returncode == 0  # what make demo asks for


def test_missing_without_apt_get_says_what_to_install(tmp_path):
    proc = _run(_bin(tmp_path, uid=0, apt_rc=None, have=("chromium",)))
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "scripts/system-deps.sh: java not found and no apt-get here: install java so that the command "
        "is on PATH (Debian packages: default-jre-headless), then run make again"
    ]


def test_missing_as_root_are_installed_with_apt_get(tmp_path):
    bin_dir = _bin(tmp_path, uid=0)
    proc = _run(bin_dir)
    assert proc.returncode == 0, proc.stderr
    assert _apt_calls(tmp_path) == [
        "DEBIAN_FRONTEND=noninteractive update -q",
        f"DEBIAN_FRONTEND=noninteractive {INSTALL.removeprefix('apt-get ')}",
    ]
    assert proc.stdout.splitlines() == [
        "system packages: java chromium not found; installing default-jre-headless chromium with apt-get",
        "system packages: java chromium found",
    ]
    assert (bin_dir / "java").exists() and (bin_dir / "chromium").exists()


def test_a_failed_install_stops(tmp_path):
    proc = _run(_bin(tmp_path, uid=0, apt_rc=100))
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == (
        "scripts/system-deps.sh: apt-get could not install default-jre-headless chromium; "
        "install them, then run make again"
    )


def test_make_test_stops_before_building_the_venv(tmp_path):
    """The real ``make test``: the check comes first, so a missing package stops it before the
    three minutes of setting up .venv (here a venv folder of its own, never to be made)."""
    assert MAKE, "make is not installed"
    bin_dir = _bin(tmp_path, uid=1000)
    venv = tmp_path / "venv"
    make = [MAKE, "--no-print-directory", "-C", str(REPO), f"VENV={venv}", "PYTHON=false"]
    proc = _run(bin_dir, cmd=[*make, "test"])
    assert proc.returncode != 0
    assert proc.stdout == ""
    err = proc.stderr.splitlines()
    assert err[0].startswith("scripts/system-deps.sh: java chromium not found; run: sudo apt-get update")
    assert err[1].startswith("make: *** [Makefile:") and err[1].endswith("system-deps] Error 1")
    assert len(err) == 2 and not venv.exists()
    for target in ("demo", "test-fast"):  # Java only: Chromium serves the browser tests alone
        proc = _run(bin_dir, cmd=[*make, target])
        assert proc.stderr.startswith("scripts/system-deps.sh: java not found;"), proc.stderr
        assert not venv.exists()


def test_ci_runs_only_the_readme_commands():
    lines = (REPO / ".ci" / "run").read_text().splitlines()
    commands = [
        line for line in lines if line.strip() and not line.startswith(("#", "set ", "cd ", "export "))
    ]
    assert commands == ["make quality", "make test"]
    assert os.access(REPO / ".ci" / "run", os.X_OK)
