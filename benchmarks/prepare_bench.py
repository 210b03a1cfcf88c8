"""Benchmark `prepare` on a full-size synthetic Open-i collection.

Generates (once, cached under CACHE) 3,955 reports and 7,470 greyscale PNGs of realistic size
(512-1024 px wide, taller than wide, with film grain), in the raw Open-i layout, then times
``prepare`` (XML parsing, full decode and check of every image, view ordering, split, writing)
with the parallel image checks, median of --runs runs, and once with a single process as the
baseline, in the same process and on the same files.

    python benchmarks/prepare_bench.py --cache /tmp/openi-bench            # median of 3 + baseline
    python benchmarks/prepare_bench.py --cache /tmp/openi-bench --baseline-runs 0
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from xrayqwen2vl.data.formats.openi import read_openi
from xrayqwen2vl.data.prepare import PrepareOptions, default_workers, prepare_dataset
from xrayqwen2vl.fileio import atomic_write_bytes
from xrayqwen2vl.synthetic.images import draw_frontal, draw_lateral
from xrayqwen2vl.synthetic.sample import _study, image_ids, report_xml

REPORTS = 3955
IMAGES = 7470
SEED = 2024
NAMING = 2  # the real Open-i naming mix (CXR<n>_IM-<a>-<b>, a few CXR<n>_<k>_IM-…); 1: CXR<n>_1_IM-…


def _studies():
    """3,955 studies whose image counts add up to exactly 7,470, as in the public collection."""
    rng = random.Random(SEED)
    studies = [_study(n, rng) for n in range(1, REPORTS + 1)]
    n = sum(len(s.images) for s in studies)
    i = 0
    while n != IMAGES:  # adjust one-image / three-image studies until the total matches
        s = studies[i % REPORTS]
        if n > IMAGES and len(s.images) > 1:
            s.images.pop()
            n -= 1
        elif n < IMAGES and len(s.images) == 1:
            s.images.append((image_ids(s.number, 2)[1], "lateral"))
            n += 1
        i += 1
    return studies


def _write_study(args) -> int:
    study, png_dir, xml_dir = args
    atomic_write_bytes(Path(xml_dir) / f"{study.number}.xml", report_xml(study))
    rng = np.random.default_rng([SEED, study.number])
    for image_id, view in study.images:
        w = int(rng.integers(512, 1025))
        h = int(w * rng.uniform(1.0, 1.25))
        small = (draw_frontal if view == "frontal" else draw_lateral)(study.present, rng, (256, 256))
        big = np.asarray(small.resize((w, h), Image.BICUBIC), dtype=np.float32)
        big += rng.normal(0.0, 4.0, big.shape).astype(np.float32)  # grain, so PNGs compress like films
        img = Image.fromarray(np.clip(big, 0, 255).astype(np.uint8))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        atomic_write_bytes(Path(png_dir) / f"{image_id}.png", buf.getvalue())
    return len(study.images)


def ensure_collection(cache: Path, workers: int) -> Path:
    marker = cache / "collection.json"
    wanted = {"reports": REPORTS, "images": IMAGES, "seed": SEED, "naming": NAMING}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return cache
    xml_dir, png_dir = cache / "ecgen-radiology", cache / "NLMCXR_png"
    xml_dir.mkdir(parents=True, exist_ok=True)
    png_dir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    jobs = [(s, str(png_dir), str(xml_dir)) for s in _studies()]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        n = sum(pool.map(_write_study, jobs, chunksize=16))
    assert n == IMAGES, n
    marker.write_text(json.dumps(wanted))
    print(
        f"generated {REPORTS} reports, {n} images in {time.perf_counter() - t:.0f} s under {cache}",
        flush=True,
    )
    return cache


def _cpu() -> float:
    """CPU seconds used so far by this process and its finished children (the pool workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_prepare(cache: Path, out: Path, workers: int) -> tuple[float, dict, float]:
    t, c = time.perf_counter(), _cpu()
    manifest = prepare_dataset(
        read_openi(cache / "ecgen-radiology"),
        cache / "NLMCXR_png",
        out,
        PrepareOptions(name="bench"),
        inputs={},
        progress=False,
        workers=workers,
    )
    return time.perf_counter() - t, manifest, _cpu() - c


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", required=True, help="folder for the generated collection (reused)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs of the parallel prepare (default 3)")
    ap.add_argument("--baseline-runs", type=int, default=1, help="timed single-process runs (default 1)")
    ap.add_argument("--workers", type=int, default=default_workers(), help="image-check processes")
    args = ap.parse_args(argv)
    cache = ensure_collection(Path(args.cache), args.workers)
    out = Path(args.cache) / "prepared"
    times, cpus = [], []
    for i in range(args.runs):
        dt, m, cpu = run_prepare(cache, out, args.workers)
        times.append(dt)
        cpus.append(cpu)
        load = os.getloadavg()[0]
        print(
            f"run {i + 1}: {dt:.1f} s wall, {cpu:.1f} CPU-s ({args.workers} workers, load average {load:.1f})",
            flush=True,
        )
    c = m["counts"]
    images = sum(c["images"].values()) + c["images_not_used"]  # every image was decoded
    med = statistics.median(times)
    print(
        f"prepare: {c['inputs']} reports, {images} images decoded and checked; kept {c['kept']}, skipped {c['skipped']}"
    )
    print(
        f"median of {len(times)}: {med:.1f} s, {images / med:.0f} images/s ({args.workers} workers, {os.cpu_count()} CPUs)"
    )
    if args.baseline_runs:
        base = statistics.median(run_prepare(cache, out, 1)[0] for _ in range(args.baseline_runs))
        print(
            f"baseline, one process: {base:.1f} s, {images / base:.0f} images/s; speed-up {base / med:.2f}x"
        )
    print("goal: under 60 s:", "met" if med < 60 else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
