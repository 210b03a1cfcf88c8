#!/usr/bin/env bash
# The system packages the demo and the tests need besides .venv (make demo, make test-fast and
# make test run this first):
#   java      Java for METEOR: the COCO caption toolkit runs meteor-1.5.jar (Debian: default-jre-headless)
#   chromium  Debian's Chromium for the browser tests: Playwright drives it and cannot download a
#             browser offline (Debian: chromium)
# Usage: bash scripts/system-deps.sh [java] [chromium]   (none given: both)
# A command of that name on PATH is enough (chromium-browser does for chromium). When one is
# missing: as root with apt-get it installs the package; otherwise it stops at once and prints
# the command to run.
set -euo pipefail

package_for() {
  case "$1" in
    java) echo default-jre-headless ;;
    chromium) echo chromium ;;
    *) return 1 ;;
  esac
}

found() {
  if [ "$1" = chromium ]; then
    command -v chromium >/dev/null || command -v chromium-browser >/dev/null
  else
    command -v "$1" >/dev/null
  fi
}

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(java chromium)
missing=()
packages=()
for cmd in "${wanted[@]}"; do
  if ! pkg=$(package_for "$cmd"); then
    echo "scripts/system-deps.sh: unknown requirement '$cmd' (known: java, chromium)" >&2
    exit 2
  fi
  if ! found "$cmd"; then
    missing+=("$cmd")
    packages+=("$pkg")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: ${wanted[*]} found"
  exit 0
fi

install=(apt-get install -y --no-install-recommends "${packages[@]}")
if ! command -v apt-get >/dev/null; then
  echo "scripts/system-deps.sh: ${missing[*]} not found and no apt-get here: install ${missing[*]} so that the command is on PATH (Debian packages: ${packages[*]}), then run make again" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "scripts/system-deps.sh: ${missing[*]} not found; run: sudo apt-get update && sudo ${install[*]}; then run make again" >&2
  exit 1
fi
echo "system packages: ${missing[*]} not found; installing ${packages[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -q || ! "${install[@]}"; then
  echo "scripts/system-deps.sh: apt-get could not install ${packages[*]}; install them, then run make again" >&2
  exit 1
fi
for cmd in "${missing[@]}"; do
  if ! found "$cmd"; then
    echo "scripts/system-deps.sh: installed $(package_for "$cmd") but '$cmd' is still not on PATH" >&2
    exit 1
  fi
done
echo "system packages: ${wanted[*]} found"
