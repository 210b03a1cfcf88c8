"""Benchmark reading MIMIC-CXR and checking its images, on a synthetic copy at full image size.

Generates once (cached under CACHE, reused across runs) a synthetic MIMIC-CXR copy in the public
layout (``synthetic/mimic.py``: reports with every section variant, metadata/split/CheXpert CSVs)
whose images are realistic full-size films: smooth chest-film content at 2,448-2,544 × 2,984-3,056
pixels with fine grain, ~1 MB JPEGs, each file different (a few drawn base films, each image a
different crop, exposure and gamma of one, encoded on its own). Then measures, each run in a fresh
process with the page cache of the collection dropped first (``posix_fadvise``, as on a machine
that has not just read the files):

- end to end with the default check: index the CSVs and the report tree, parse every report,
  check every image of every study structurally (``data/verify.py`` ``fast``), at 5k, 10k and
  20k images (the scaling: images/s should stay flat, peak RSS too);
- the opt-in full decode (``full``, JPEG draft mode) with 1 and 2 worker processes on a sample;
- the baseline, in the same process on the same files: the full decode ``data/images.py``'s
  ``check_image`` does today, one process.

    python benchmarks/prepare_mimic_bench.py --cache /tmp/mimic-bench                 # 20k images
    python benchmarks/prepare_mimic_bench.py --cache /tmp/mimic-bench-small --images 500 --scales 250,500

Goals on 2 cores: default check >= 1,000 images/s end to end, peak RSS < 2 GB, linear scaling.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from xrayqwen2vl.fileio import atomic_write_bytes, atomic_write_text
from xrayqwen2vl.synthetic.images import draw_frontal, draw_lateral
from xrayqwen2vl.synthetic.mimic import (
    JPG_DIR,
    REPORTS_DIR,
    MimicImage,
    SourceStudy,
    plan_studies,
    write_collection,
)
from xrayqwen2vl.synthetic.sample import _study

SEED = 2025
VERSION = 1  # bump when the generated files change
# (columns, rows) of the films: portrait, as MIMIC-CXR-JPG's typical 2544 x 3056.
SIZES = [(2544, 3056), (2539, 3050), (2500, 3000), (2448, 2984)]
BASE_SHAPE = (3200, 2640)  # rows, columns of a base film: room for crops of every size
JPEG_QUALITY = 90
GRAIN = 2.0  # film grain (grey levels, standard deviation), fixed per base film
BASE_FINDINGS = [
    ("frontal", {}),
    ("frontal", {"cardiomegaly": "left"}),
    ("frontal", {"pleural_effusion": "right", "support_devices": "left"}),
    ("frontal", {"opacity": "left", "atelectasis": "right"}),
    ("frontal", {"pneumothorax": "right", "nodule": "left"}),
    ("lateral", {}),
    ("lateral", {"cardiomegaly": "left", "pleural_effusion": "left"}),
    ("lateral", {"opacity": "right", "support_devices": "right"}),
]


# --- the collection ------------------------------------------------------------------------------


def _base_films() -> dict[str, list[np.ndarray]]:
    """A few smooth full-size films per view: the drawings, enlarged (smooth), with fixed grain."""
    rng = np.random.default_rng(SEED)
    films: dict[str, list[np.ndarray]] = {"frontal": [], "lateral": []}
    for view, present in BASE_FINDINGS:
        draw = draw_frontal if view == "frontal" else draw_lateral
        small = draw(present, rng, (400, 330))
        big = np.asarray(small.resize(BASE_SHAPE[::-1], Image.BICUBIC), dtype=np.float32)
        big += rng.normal(0.0, GRAIN, big.shape).astype(np.float32)
        films[view].append(np.clip(big, 0, 255).astype(np.uint8))
    return films


_FILMS: dict[str, list[np.ndarray]] | None = None


def _film_job(job: tuple[str, str, int, int]) -> int:
    """Write one film: a crop, exposure and gamma of a base film chosen by the image id."""
    global _FILMS
    if _FILMS is None:
        _FILMS = _base_films()
    path, view, columns, rows = job
    if os.path.exists(path):
        return os.path.getsize(path)
    seed = int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "big")
    rng = random.Random(seed)
    base = rng.choice(_FILMS[view])
    top = rng.randrange(base.shape[0] - rows + 1)
    left = rng.randrange(base.shape[1] - columns + 1)
    gain, gamma = rng.uniform(0.88, 1.08), rng.uniform(0.85, 1.15)
    lut = [min(255, int(255 * gain * (i / 255) ** gamma)) for i in range(256)]
    img = Image.fromarray(base[top : top + rows, left : left + columns]).point(lut)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    atomic_write_bytes(path, buf.getvalue())
    return len(buf.getvalue())


def _sources(images: int) -> list[SourceStudy]:
    """Synthetic studies (text and views as in the Open-i sample) until ``images`` images."""
    rng = random.Random(SEED)
    out, n, number = [], 0, 0
    while n < images:
        number += 1
        s = _study(number, rng)
        views = [v for _, v in s.images][: images - n]
        en = s.text["en"]
        out.append(SourceStudy(en["findings"], en["impression"], s.indication, views, list(s.present)))
        n += len(views)
    return out


def ensure_collection(cache: Path, images: int, workers: int) -> Path:
    """The synthetic copy with ``images`` full-size films under CACHE/full (generated once)."""
    root = cache / "full"
    marker = root / "collection.json"
    want = {"images": images, "seed": SEED, "version": VERSION}
    if marker.exists() and json.loads(marker.read_text()) == want:
        return root
    t = time.perf_counter()
    jobs: list[tuple[str, str, int, int]] = []

    def plan_image(image: MimicImage, path: Path) -> tuple[int, int]:
        columns, rows = SIZES[int(image.dicom_id[:8], 16) % len(SIZES)]
        jobs.append((str(path), image.view, columns, rows))
        return rows, columns

    studies = plan_studies(_sources(images), SEED)
    counts = write_collection(root, studies, plan_image, SEED)
    print(f"writing {len(jobs)} films of ~1 MB under {root} ({workers} processes) …", flush=True)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        sizes = list(pool.map(_film_job, jobs, chunksize=8))
    counts["megabytes"] = round(sum(sizes) / 1e6)
    atomic_write_text(marker, json.dumps(want))
    print(
        f"generated {counts['studies']} studies, {counts['images']} films ({counts['megabytes']} MB, "
        f"{statistics.median(sizes) / 1e6:.2f} MB median) in {time.perf_counter() - t:.0f} s",
        flush=True,
    )
    return root


def _csv_gz(path: Path) -> list[list[str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def subset(full: Path, images: int) -> Path:
    """A copy of the collection's first studies holding at most ``images`` images: its own CSVs
    and report tree (hard links), the JPEG tree shared through a symbolic link."""
    out = full.parent / f"scale-{images}"
    marker = out / "subset.json"
    if marker.exists() and json.loads(marker.read_text()) == json.loads(
        (full / "collection.json").read_text()
    ):
        return out
    if out.exists():
        shutil.rmtree(out)
    jpg = out / JPG_DIR
    jpg.mkdir(parents=True)
    (jpg / "files").symlink_to((full / JPG_DIR / "files").resolve())
    per_study: dict[str, int] = {}
    for row in _csv_gz(full / JPG_DIR / "mimic-cxr-2.0.0-metadata.csv.gz")[1:]:
        per_study[row[2]] = per_study.get(row[2], 0) + 1
    chosen, n = set(), 0
    for study, k in per_study.items():  # insertion order: the order studies were written
        if n + k > images:
            break
        chosen.add(study)
        n += k
    for name, column in (("metadata", 2), ("split", 1)):
        rows = _csv_gz(full / JPG_DIR / f"mimic-cxr-2.0.0-{name}.csv.gz")
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(
            [rows[0]] + [r for r in rows[1:] if r[column] in chosen]
        )
        (jpg / f"mimic-cxr-2.0.0-{name}.csv.gz").write_bytes(gzip.compress(buf.getvalue().encode(), mtime=0))
    for report in (full / REPORTS_DIR / "files").glob("p1?/p*/s*.txt"):
        if report.stem[1:] in chosen:
            dest = out / REPORTS_DIR / report.relative_to(full / REPORTS_DIR)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(report, dest)
    marker.write_text((full / "collection.json").read_text())
    return out


# --- one measured run (in a fresh process) -------------------------------------------------------


def drop_cache(root: Path) -> int:
    """Ask the kernel to forget the collection's cached pages (clean pages only; we sync first)."""
    os.sync()
    n = 0
    for dirpath, _, files in os.walk(root, followlinks=True):
        for name in files:
            try:
                fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                n += 1
            finally:
                os.close(fd)
    return n


def measure(root: Path, mode: str, workers: int, limit: int | None) -> dict:
    """Read the collection and check the images of every study; counts, seconds, peak RSS."""
    from xrayqwen2vl.data.formats.mimic import MimicCollection
    from xrayqwen2vl.data.images import check_image
    from xrayqwen2vl.data.records import Report
    from xrayqwen2vl.data.verify import verify_images

    jpg = root / JPG_DIR
    t = time.perf_counter()
    coll = MimicCollection(jpg, root / REPORTS_DIR)
    t_index = time.perf_counter() - t
    counts = {"studies": coll.total, "reports": 0, "skipped": 0, "images": 0, "bad": 0}

    def paths():
        for rec in coll.records():
            if not isinstance(rec, Report):
                counts["skipped"] += 1
                continue
            counts["reports"] += 1
            for ref in rec.images:
                if limit is not None and counts["images"] >= limit:
                    return
                counts["images"] += 1
                yield jpg / ref.relpath

    if mode == "baseline":  # today's check: a full decode per image, one process
        results = (check_image(p) for p in paths())
    else:
        results = verify_images(paths(), mode=mode, workers=workers)
    for check in results:
        counts["bad"] += not check.ok
    seconds = time.perf_counter() - t
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        **counts,
        "mode": mode,
        "workers": workers,
        "seconds": seconds,
        "index_seconds": t_index,
        "images_per_second": counts["images"] / seconds,
        "peak_rss_mb": me.ru_maxrss / 1024,  # this process (reader, threads)
        "worker_peak_rss_mb": kids.ru_maxrss / 1024,  # the largest worker process, if any
        "cpu_seconds": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
    }


def run_measure(root: Path, mode: str, workers: int, limit: int | None, cold: bool) -> dict:
    if cold:
        drop_cache(root)
    cmd = [sys.executable, __file__, "--measure", str(root), "--mode", mode, "--workers", str(workers)]
    if limit:
        cmd += ["--limit", str(limit)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"measurement failed:\n{proc.stdout}{proc.stderr}")
    result = json.loads(proc.stdout.splitlines()[-1])
    result["cold"] = cold
    result["load_average"] = os.getloadavg()[0]
    return result


def median_run(
    root: Path, mode: str, workers: int, runs: int, limit: int | None = None, cold: bool = True
) -> dict:
    results = [run_measure(root, mode, workers, limit, cold) for _ in range(runs)]
    best = sorted(results, key=lambda r: r["seconds"])[len(results) // 2]
    best["runs_seconds"] = [round(r["seconds"], 3) for r in results]
    return best


def _line(label: str, r: dict) -> str:
    workers = f" (+{r['worker_peak_rss_mb']:.0f} MB per worker)" if r["worker_peak_rss_mb"] else ""
    return (
        f"{label:<34} {r['images']:>6} images  {r['seconds']:7.2f} s  {r['images_per_second']:8.0f} images/s  "
        f"peak RSS {r['peak_rss_mb']:5.0f} MB{workers}  (runs {r['runs_seconds']}, load {r['load_average']:.1f})"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", help="folder for the generated collection (reused across runs)")
    ap.add_argument("--images", type=int, default=20000, help="films in the collection (default 20000)")
    ap.add_argument(
        "--scales", default="5000,10000,20000", help="collection sizes to time (default 5000,10000,20000)"
    )
    ap.add_argument("--runs", type=int, default=3, help="runs per figure; the median is reported (default 3)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes/threads (default 2)")
    ap.add_argument(
        "--full-images", type=int, default=1000, help="images in the full-decode timings (default 1000)"
    )
    ap.add_argument("--warm", action="store_true", help="also time the default check with a warm page cache")
    ap.add_argument("--out", help="write the figures as JSON here")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="fast", help=argparse.SUPPRESS)
    ap.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.measure:  # one run, in this fresh process
        print(json.dumps(measure(Path(args.measure), args.mode, args.workers, args.limit)))
        return 0
    if not args.cache:
        ap.error("--cache is required")
    cache = Path(args.cache)
    scales = sorted(int(x) for x in args.scales.split(","))
    if scales[-1] > args.images:
        ap.error(f"--scales {args.scales}: larger than --images {args.images}")
    full = ensure_collection(cache, args.images, max(1, args.workers))
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; cold page cache in every run")
    result: dict = {"cpus": os.cpu_count(), "scales": {}, "full_decode": {}}

    print(f"\ndefault check (fast), end to end: index + reports + every image, {args.workers} threads")
    for n in scales:
        root = full if n == args.images else subset(full, n)
        r = median_run(root, "fast", args.workers, args.runs)
        result["scales"][n] = r
        print(_line(f"  {n} images", r))
    big = result["scales"][scales[-1]]
    if args.warm:
        r = median_run(full, "fast", args.workers, args.runs, cold=False)
        result["warm"] = r
        print(_line("  warm page cache", r))
    first = result["scales"][scales[0]]
    growth = (big["seconds"] / first["seconds"]) / (big["images"] / first["images"])
    print(
        f"  scaling {scales[0]} -> {scales[-1]}: time x{big['seconds'] / first['seconds']:.2f} for images "
        f"x{big['images'] / first['images']:.2f} (1.00 = linear: {growth:.2f}); peak RSS "
        f"{first['peak_rss_mb']:.0f} -> {big['peak_rss_mb']:.0f} MB"
    )

    n_full = min(args.full_images, big["images"])
    print(f"\nfull decode (draft mode) on the first {n_full} images, and the baseline (today's check)")
    base = median_run(full, "baseline", 1, args.runs, limit=n_full)
    print(_line("  baseline: full decode, 1 process", base))
    for w in sorted({1, args.workers}):
        r = median_run(full, "full", w, args.runs, limit=n_full)
        result["full_decode"][w] = r
        print(_line(f"  --verify-images full, {w} worker(s)", r))
    result["baseline"] = base
    full1 = result["full_decode"][1]
    fullw = result["full_decode"][max(result["full_decode"])]
    print(
        f"\nfast vs baseline: x{big['images_per_second'] / base['images_per_second']:.0f}; "
        f"full decode {args.workers} vs 1 worker(s): x{fullw['images_per_second'] / full1['images_per_second']:.2f}"
    )
    print(
        f"377,110 images (MIMIC-CXR-JPG) at these rates: default check "
        f"{377110 / big['images_per_second'] / 60:.1f} min, full decode with {args.workers} workers "
        f"{377110 / fullw['images_per_second'] / 60:.0f} min"
    )
    goals = {
        "default check >= 1,000 images/s": big["images_per_second"] >= 1000,
        "peak RSS < 2 GB": max(r["peak_rss_mb"] for r in result["scales"].values()) < 2048,
        "linear scaling (within 15%)": growth < 1.15,
    }
    for goal, met in goals.items():
        print(f"goal: {goal}: {'met' if met else 'NOT met'}")
    result["goals"] = goals
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
