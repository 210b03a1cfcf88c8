"""Benchmark `xrayqwen2vl prepare --format mimic` end to end on a synthetic MIMIC-CXR copy of
realistic full-size JPEGs.

The figures of the issue (on the 2-core machine, otherwise idle), in one command:

    python benchmarks/prepare_mimic_bench.py --cache saves/mimic-bench --out saves/mimic-bench/figures.json

The first run writes the collection under CACHE/full (20,000 films, ~20 GB: allow ~21 GB of free
disk and 5-15 minutes on two cores) and reuses it on later runs. It is the public layout
(``synthetic/mimic.py``: reports with every section variant, ``___``, odd and empty
ViewPositions, the metadata/split/CheXpert CSVs) with smooth chest-film content at
2,448-2,544 x 2,984-3,056 pixels with fine grain, ~1 MB per JPEG, each file different (a few drawn
base films, each image its own crop, exposure and gamma of one, encoded on its own).

Each measured run is the real command, ``xrayqwen2vl prepare --format mimic --images-dir
JPG_ROOT --reports-dir REPORTS_ROOT --out TMP --quiet`` (through the formats registry: index the
CSVs and the report tree, parse every report, check every image, choose the views, split, write
the three JSON files and the manifest), in a fresh process, after the page cache of the collection
is dropped (``posix_fadvise``, as on a machine that has not just read the files). It prints, each
the median of --runs runs:

- the default check (``--verify-images fast``) at 5,000, 10,000 and 20,000 images: images/s end
  to end, peak RSS of prepare and of its largest worker; the scaling 5k -> 20k (time should grow
  with the images, memory should not);
- ``--verify-images full`` (every image decoded, JPEG draft mode) with 1 and 2 workers, on the
  first --full-images images (default 1,000), and the ratio 2 vs 1 worker;
- the baseline, on the same files: the full decode prepare used before (``data/images.py``
  ``check_image`` of every image, one process), and the default check's speed-up over it;
- the goals: default check >= 1,000 images/s, peak RSS < 2 GB, linear scaling; and what these
  rates mean for MIMIC-CXR-JPG's 377,110 images.

A quick check of the benchmark itself (300 films, generated in about a minute):

    python benchmarks/prepare_mimic_bench.py --cache /tmp/mimic-bench-small --images 300 --scales 100,300 --full-images 100 --runs 1
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
import tempfile
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
    """A copy of the collection's first studies holding at most ``images`` images: its own CSVs,
    report tree and JPEG tree, all hard links to the full copy's files (no new bytes on disk;
    prepare refuses symbolic links that lead out of the images folder)."""
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
    per_study: dict[str, list[list[str]]] = {}
    for row in _csv_gz(full / JPG_DIR / "mimic-cxr-2.0.0-metadata.csv.gz")[1:]:
        per_study.setdefault(row[2], []).append(row)
    chosen, n = set(), 0
    for study, rows in per_study.items():  # insertion order: the order studies were written
        if n + len(rows) > images:
            break
        chosen.add(study)
        n += len(rows)
        for dicom, subject, _ in (r[:3] for r in rows):
            rel = f"files/p{subject[:2]}/p{subject}/s{study}/{dicom}.jpg"
            if (full / JPG_DIR / rel).exists():
                (jpg / rel).parent.mkdir(parents=True, exist_ok=True)
                os.link(full / JPG_DIR / rel, jpg / rel)
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


def measure(root: Path, mode: str, workers: int) -> dict:
    """One run of ``xrayqwen2vl prepare --format mimic`` on the copy at ``root`` (or, for mode
    ``baseline``, the full decode of every image the copy's metadata lists, one process): counts,
    seconds, peak RSS."""
    from xrayqwen2vl.cli import main as cli_main

    jpg = root / JPG_DIR
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mimic-bench-out-") as out:
        if mode == "baseline":
            from xrayqwen2vl.data.images import check_image

            rows = _csv_gz(jpg / "mimic-cxr-2.0.0-metadata.csv.gz")[1:]
            paths = [jpg / f"files/p{s[:2]}/p{s}/s{st}/{d}.jpg" for d, s, st in (r[:3] for r in rows)]
            checks = [check_image(p) for p in paths]
            counts = {"images_checked": len(checks), "images_decoded": len(checks), "inputs": 0, "kept": 0}
        else:
            args = ["prepare", "--format", "mimic", "--images-dir", str(jpg)]
            args += ["--reports-dir", str(root / REPORTS_DIR), "--out", out, "--quiet"]
            args += ["--verify-images", mode, "--workers", str(workers)]
            if cli_main(args) != 0:
                raise SystemExit(f"prepare failed on {root}")
            counts = json.loads((Path(out) / "manifest.json").read_text())["mimic"]["counts"]
        seconds = time.perf_counter() - t
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    images = counts["images_checked"]
    return {
        "images": images,
        "images_decoded": counts["images_decoded"],
        "records": counts["inputs"],
        "kept": counts["kept"],
        "mode": mode,
        "workers": workers,
        "seconds": seconds,
        "images_per_second": images / seconds,
        "peak_rss_mb": me.ru_maxrss / 1024,  # prepare: reader, stages, threads
        "worker_peak_rss_mb": kids.ru_maxrss / 1024,  # the largest worker process, if any
        "cpu_seconds": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
    }


def run_measure(root: Path, mode: str, workers: int, cold: bool) -> dict:
    if cold:
        drop_cache(root)
    cmd = [sys.executable, __file__, "--measure", str(root), "--mode", mode, "--workers", str(workers)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"measurement failed:\n{proc.stdout}{proc.stderr}")
    result = json.loads(proc.stdout.splitlines()[-1])
    result["cold"] = cold
    result["load_average"] = os.getloadavg()[0]
    return result


def median_run(root: Path, mode: str, workers: int, runs: int, cold: bool = True) -> dict:
    results = [run_measure(root, mode, workers, cold) for _ in range(runs)]
    best = sorted(results, key=lambda r: r["seconds"])[len(results) // 2]
    best["runs_seconds"] = [round(r["seconds"], 3) for r in results]
    return best


def _line(label: str, r: dict) -> str:
    workers = f" (+{r['worker_peak_rss_mb']:.0f} MB per worker)" if r["worker_peak_rss_mb"] else ""
    return (
        f"{label:<38} {r['images']:>6} images ({r['images_decoded']} decoded)  {r['seconds']:7.2f} s  "
        f"{r['images_per_second']:6.0f} images/s  "
        f"peak RSS {r['peak_rss_mb']:5.0f} MB{workers}  (runs {r['runs_seconds']}, load {r['load_average']:.1f})"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", help="folder for the generated collection (reused across runs)")
    ap.add_argument("--images", type=int, default=20000, help="films in the collection (default 20000)")
    ap.add_argument(
        "--scales", default="5000,10000,20000", help="collection sizes to time (default 5000,10000,20000)"
    )
    ap.add_argument("--runs", type=int, default=3, help="runs per figure; the median is reported (default 3)")
    ap.add_argument(
        "--workers",
        type=int,
        default=2,
        help="prepare --workers: decoding processes, each with 4 threads for the structure checks (default 2)",
    )
    ap.add_argument(
        "--full-images", type=int, default=1000, help="images in the full-decode timings (default 1000)"
    )
    ap.add_argument("--warm", action="store_true", help="also time the default check with a warm page cache")
    ap.add_argument("--out", help="write the figures as JSON here")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="fast", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.measure:  # one run, in this fresh process
        print(json.dumps(measure(Path(args.measure), args.mode, args.workers)))
        return 0
    if not args.cache:
        ap.error("--cache is required")
    cache = Path(args.cache)
    scales = sorted(int(x) for x in args.scales.split(","))
    if scales[-1] > args.images or args.full_images > args.images:
        ap.error(
            f"--scales {args.scales} / --full-images {args.full_images}: larger than --images {args.images}"
        )
    full = ensure_collection(cache, args.images, max(1, args.workers))
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; cold page cache in every run")
    result: dict = {"cpus": os.cpu_count(), "scales": {}, "full_decode": {}}

    def copy_of(n: int) -> Path:
        return full if n == args.images else subset(full, n)

    print(
        f"\nxrayqwen2vl prepare --format mimic (default check, --verify-images fast), end to end, "
        f"--workers {args.workers}"
    )
    for n in scales:
        r = median_run(copy_of(n), "fast", args.workers, args.runs)
        result["scales"][n] = r
        print(_line(f"  {n} images", r))
    big = result["scales"][scales[-1]]
    if args.warm:
        r = median_run(full, "fast", args.workers, args.runs, cold=False)
        result["warm"] = r
        print(_line("  warm page cache", r))
    first = result["scales"][scales[0]]
    growth = (big["seconds"] / first["seconds"]) / (big["images"] / first["images"])
    per_image_kb = (
        (big["peak_rss_mb"] - first["peak_rss_mb"]) * 1024 / max(1, big["images"] - first["images"])
    )
    rss_377k = big["peak_rss_mb"] + per_image_kb * (377110 - big["images"]) / 1024
    print(
        f"  scaling {scales[0]} -> {scales[-1]}: time x{big['seconds'] / first['seconds']:.2f} for images "
        f"x{big['images'] / first['images']:.2f} (1.00 = linear: {growth:.2f}); peak RSS "
        f"{first['peak_rss_mb']:.0f} -> {big['peak_rss_mb']:.0f} MB ({per_image_kb:.2f} kB per image: "
        f"~{rss_377k:.0f} MB at 377,110 images)"
    )

    sample = copy_of(args.full_images)
    print(
        f"\n--verify-images full (every image decoded, JPEG draft mode) and the baseline, {args.full_images} images"
    )
    base = median_run(sample, "baseline", 1, args.runs)
    print(_line("  baseline: check_image, 1 process", base))
    for w in sorted({1, args.workers}):
        r = median_run(sample, "full", w, args.runs)
        result["full_decode"][w] = r
        print(_line(f"  --verify-images full --workers {w}", r))
    result["baseline"] = base
    full1 = result["full_decode"][1]
    fullw = result["full_decode"][max(result["full_decode"])]
    print(
        f"\ndefault check vs baseline: x{big['images_per_second'] / base['images_per_second']:.1f}; "
        f"full decode {args.workers} vs 1 worker(s): x{fullw['images_per_second'] / full1['images_per_second']:.2f}"
    )
    print(
        f"377,110 images (MIMIC-CXR-JPG) at these rates: default check "
        f"{377110 / big['images_per_second'] / 60:.1f} min, full decode with {args.workers} workers "
        f"{377110 / fullw['images_per_second'] / 60:.0f} min"
    )
    result["rss_kb_per_image"] = per_image_kb
    goals = {
        "default check >= 1,000 images/s": big["images_per_second"] >= 1000,
        "peak RSS < 2 GB": max(r["peak_rss_mb"] for r in result["scales"].values()) < 2048
        and rss_377k < 2048,
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
