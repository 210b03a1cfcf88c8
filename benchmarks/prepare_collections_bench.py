"""Benchmark `xrayqwen2vl prepare` on the newer collections against MIMIC-CXR, same machine,
same files, same process.

Generates (once per scale, cached under CACHE/<studies>) a synthetic Open-i sample and writes it
in the public layouts of MIMIC-CXR, CheXpert Plus, ReXGradient-160K and a ReXrank test JSON
(``xrayqwen2vl sample --format …``: the same studies and drawings in each). Each measured run is
the real command in a fresh process (``xrayqwen2vl prepare --format F … --out TMP``, default image
check), with the page cache of the collection dropped before it; the figures are the ones prepare
prints on stderr (images checked, seconds, images/s, peak RSS). It prints, each the median of
--runs runs, per form and per scale (--scales: samples of that many studies, so memory can be
seen not to grow with the collection): images/s, peak RSS, and the rate against MIMIC-CXR's at
the same scale (the issue's goal: the MIMIC rate or better).

    python benchmarks/prepare_collections_bench.py --cache /tmp/collections-bench --out figures.json

What the figures mean for the real collections (rates measured here, sizes from doc/collections.md):
CheXpert Plus's 223,228 images and ReXGradient's 273,004 at the printed images/s.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prepare_mimic_bench import drop_cache  # the same cold-cache rule as the MIMIC benchmark

from xrayqwen2vl.synthetic.leaderboard import CHEXPERT_CSV, REXRANK_FILES
from xrayqwen2vl.synthetic.mimic import JPG_DIR, REPORTS_DIR

VERSION = 1
REAL_IMAGES = {"chexpert-plus": 223_228, "rexgradient": 273_004, "mimic": 377_110}
_SPEED = re.compile(r"checked (\d+) images .* in ([\d.]+) s \((\d+) images/s\); peak memory (\d+) MB")


def build(cache: Path, reports: int, image_size: int) -> Path:
    stamp = cache / "stamp.json"
    want = {"version": VERSION, "reports": reports, "image_size": image_size}
    if stamp.is_file() and json.loads(stamp.read_text()) == want:
        return cache
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    for fmt in ("mimic", "chexpert-plus", "rexgradient", "rexrank"):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "xrayqwen2vl.cli",
                "sample",
                "--out",
                str(cache),
                "--reports",
                str(reports),
            ]
            + ["--image-size", str(image_size), "--format", fmt, "--quiet"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    stamp.write_text(json.dumps(want))
    return cache


def inputs(cache: Path, fmt: str) -> list[str]:
    """The prepare arguments of the form's copy under CACHE."""
    root = cache / fmt
    return {
        "mimic": ["--images-dir", str(root / JPG_DIR), "--reports-dir", str(root / REPORTS_DIR)],
        "chexpert-plus": ["--reports", str(root / CHEXPERT_CSV), "--images-dir", str(root / "PNG")],
        "rexgradient": ["--metadata-dir", str(root / "metadata"), "--images-dir", str(root)],
        "rexrank": ["--reports", str(root / REXRANK_FILES["mimic"]), "--images-dir", str(root / "images")],
    }[fmt]


def run_once(fmt: str, args: list[str], cache: Path) -> dict:
    """One prepare in a fresh process: wall seconds (end to end, start-up included), the images it
    checked and its peak RSS (both from the line it prints on stderr)."""
    with tempfile.TemporaryDirectory() as out:
        drop_cache(cache / fmt)
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "xrayqwen2vl.cli", "prepare", "--format", fmt, *args, "--out", out],
            capture_output=True,
            text=True,
            check=True,
        )
        seconds = time.perf_counter() - start
    m = _SPEED.search(proc.stderr)
    if not m:
        raise RuntimeError(f"no speed line from prepare --format {fmt}:\n{proc.stderr[-2000:]}")
    return {"images": int(m.group(1)), "seconds": seconds, "rss_mb": int(m.group(4))}


def measure(cache: Path, fmt: str, n: int, runs: int) -> dict:
    results = [run_once(fmt, inputs(cache, fmt), cache) for _ in range(runs)]
    seconds = statistics.median(r["seconds"] for r in results)
    images = results[0]["images"]
    return {
        "studies": n,
        "images": images,
        "seconds": seconds,
        "images_per_s": round(images / seconds, 1),
        "peak_rss_mb": statistics.median(r["rss_mb"] for r in results),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", required=True, help="folder for the generated collections (reused)")
    p.add_argument("--image-size", type=int, default=512, help="image side in pixels (default 512)")
    p.add_argument("--scales", default="1000,4000", help="studies per measured run (default 1000,4000)")
    p.add_argument("--runs", type=int, default=3, help="runs per figure; the median is printed (default 3)")
    p.add_argument("--out", help="write the figures as JSON here")
    a = p.parse_args()
    scales = [int(x) for x in a.scales.split(",")]
    figures: dict[str, dict] = {}
    print(
        f"{'form':<14} {'studies':>7} {'images':>7} {'s':>7} {'images/s':>9} {'peak RSS':>9} {'vs MIMIC':>9}"
    )
    for n in scales:
        cache = build(Path(a.cache) / str(n), n, a.image_size)
        for fmt in ("mimic", "chexpert-plus", "rexgradient", "rexrank"):
            f = measure(cache, fmt, n, a.runs)
            figures[f"{fmt}@{n}"] = f
            base = figures[f"mimic@{n}"]["images_per_s"]
            print(
                f"{fmt:<14} {n:>7} {f['images']:>7} {f['seconds']:>7.2f} {f['images_per_s']:>9.0f} "
                f"{f['peak_rss_mb']:>6.0f} MB {f['images_per_s'] / base:>8.2f}x"
            )
    big = max(scales)
    for fmt, total in REAL_IMAGES.items():
        rate = figures[f"{fmt}@{big}"]["images_per_s"]
        print(f"{fmt}: {total:,} images at {rate:.0f} images/s = {total / rate / 60:.1f} minutes")
    if a.out:
        Path(a.out).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
