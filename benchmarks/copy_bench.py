"""Benchmark the image copies ``prepare --max-pixels`` writes (``data/images.py`` ``write_copy``)
against the way they were written before (full decode, made RGB, resized, PNG at zlib's default
level 6), in the same process, on the same files.

Full-size synthetic films as MIMIC-CXR's (JPEG, 2,448-2,544 × 2,984-3,056, film grain; the film
writer of prepare_mimic_bench.py) and, as a second case, 8-bit grey PNG drawings; each copy is
timed --runs times and the medians are printed with the ratio, the copies' sizes, and how far the
new pixels are from the baseline's (mean and largest difference in grey levels):

    python benchmarks/copy_bench.py [--films 8] [--runs 5] [--max-pixels 262144]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from prepare_mimic_bench import SIZES, _film_job

from xrayqwen2vl.data.images import fit_size, to_rgb, write_copy
from xrayqwen2vl.fileio import atomic_write_bytes


def baseline_copy(src: Path, dest: Path, max_pixels: int) -> None:
    """The copy as prepare wrote it until 2026-12-06."""
    with Image.open(src) as img:
        img.load()
        out = to_rgb(img)
    size = fit_size(out.width, out.height, max_pixels)
    if size != out.size:
        out = out.resize(size, Image.BICUBIC)
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    atomic_write_bytes(dest, buf.getvalue())  # written as write_copy writes


def sources(folder: Path, films: int) -> dict[str, list[Path]]:
    jpgs = []
    for i in range(films):
        columns, rows = SIZES[i % len(SIZES)]
        path = folder / f"film{i}.jpg"
        _film_job((str(path), "frontal" if i % 3 else "lateral", columns, rows))
        jpgs.append(path)
    pngs = []
    for i, jpg in enumerate(jpgs[: max(1, films // 2)]):
        path = folder / f"film{i}.png"
        with Image.open(jpg) as img:
            img.convert("L").save(path, format="PNG")
        pngs.append(path)
    return {"JPEG film": jpgs, "grey PNG film": pngs}


def timed(fn, files: list[Path], out: Path, runs: int, max_pixels: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(runs):
        for src in files:
            dest = out / f"{src.stem}-{src.suffix[1:]}.png"
            start = time.perf_counter()
            fn(src, dest, max_pixels)
            times.append(time.perf_counter() - start)
            size += dest.stat().st_size
    return statistics.median(times), size // (runs * len(files))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--films", type=int, default=8, help="full-size JPEG films (default 8; half as many PNGs)")
    p.add_argument("--runs", type=int, default=5, help="copies of each file per figure (default 5)")
    p.add_argument("--max-pixels", type=int, default=262144, help="as prepare's (default 262144, 512²)")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="copy-bench-") as tmp:
        tmp = Path(tmp)
        (tmp / "base").mkdir()
        (tmp / "new").mkdir()
        print(
            f"{'source':<14}  {'before ms':>9}  {'now ms':>7}  {'speed-up':>8}  {'KB before':>9}  {'KB now':>6}  pixels"
        )
        for label, files in sources(tmp, a.films).items():
            before, size_before = timed(baseline_copy, files, tmp / "base", a.runs, a.max_pixels)
            now, size_now = timed(write_copy, files, tmp / "new", a.runs, a.max_pixels)
            diffs = []
            for src in files:
                name = f"{src.stem}-{src.suffix[1:]}.png"
                x = np.asarray(Image.open(tmp / "base" / name), dtype=np.int16)
                y = np.asarray(Image.open(tmp / "new" / name), dtype=np.int16)
                assert x.shape == y.shape, (name, x.shape, y.shape)
                diffs.append(np.abs(x - y))
            mean = float(np.mean([d.mean() for d in diffs]))
            largest = int(max(d.max() for d in diffs))
            print(
                f"{label:<14}  {before * 1000:>9.1f}  {now * 1000:>7.1f}  {before / now:>7.2f}x  "
                f"{size_before / 1024:>9.0f}  {size_now / 1024:>6.0f}  mean diff {mean:.2f}, largest {largest}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
