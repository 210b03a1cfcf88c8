#!/usr/bin/env bash
# Run by make venv before it creates .venv: is PYTHON a Python the pinned stack supports (3.11 or
# 3.12: pyproject.toml's requires-python >=3.11,<3.13), with the venv module and ensurepip that
# `python -m venv` needs? One line saying what to install when not (doc/gpu-quickstart.md §0).
# Usage: bash scripts/check-python.sh PYTHON
set -uo pipefail
py="${1:-python3.11}"
how="Ubuntu 24.04: sudo apt-get install python3.12-venv, then make venv PYTHON=python3.12; 22.04: sudo apt-get install python3.11 python3.11-venv; or uv python install 3.11, then make venv PYTHON=\"\$(uv python find 3.11)\" (doc/gpu-quickstart.md §0)"
if ! command -v "$py" >/dev/null 2>&1; then
  echo "make venv: $py not found: the stack needs Python 3.11 or 3.12 with its venv module; $how" >&2
  exit 2
fi
version="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)"
case "$version" in
  3.11 | 3.12) ;;
  *)
    echo "make venv: $py is Python ${version:-of unknown version}; the stack needs 3.11 or 3.12 (pyproject.toml: >=3.11,<3.13): $how" >&2
    exit 2
    ;;
esac
if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "make venv: $py (Python $version) has no venv module with pip (ensurepip): install python$version-venv (Debian/Ubuntu: sudo apt-get install python$version-venv), or use a uv-managed Python: uv python install $version, then make venv PYTHON=\"\$(uv python find $version)\"" >&2
  exit 2
fi
