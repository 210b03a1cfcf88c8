"""Image checks at collection scale: catch truncated and corrupt files without decoding them.

A full decode of a ~1 MB 2,500×3,000 JPEG costs ~16 ms, so decoding MIMIC-CXR's 377k images on
two cores takes over half an hour. The default check (``fast``) reads only the header and the
last bytes of each file:

- JPEG: the start-of-image marker, then the marker segments up to the start of the scan (each
  segment's declared length must fit in the file); a frame header (SOF) with the image's size,
  8-bit samples and a coding process Pillow decodes; and the end-of-image marker (FF D9) in the
  last 4 KiB (only padding may follow it). Entropy-coded data cannot contain FF D9, so a file cut
  anywhere after its header has no end-of-image marker at its end.
- PNG: the signature, an IHDR chunk with a valid CRC, size, bit depth and colour type; then the
  chain of chunk headers (each declared length must fit in the file) through at least one IDAT to
  an IEND chunk.
- both: the declared width × height within the pixel limit (a decompression bomb is refused before
  any pixel is decoded).
- other formats: a full decode (they are rare; Pillow's own checks apply).
- images that are not 8-bit grey or RGB (palette, alpha, 16-bit, CMYK): a full decode as well.
  prepare writes an RGB copy of each, which decodes it anyway; decoding it here makes an
  undecodable one a skipped image with its reason, found before any sample is written.

What ``fast`` cannot see is damage inside the compressed data of a complete file (bytes flipped
in the middle). ``full`` decodes every image as well: JPEGs in draft mode (libjpeg's DCT scaling
to 1/8 size: every entropy-coded byte is still read and decoded, the inverse transform is done at
an eighth of the size), PNGs fully; it also measures the left-right symmetry that prepare uses to
tell unlabelled views apart. ``check_in_order`` runs either over many paths (each with its own
mode), fast checks in threads and full decodes in processes, results in input order, with a
bounded number of tasks in flight so memory stays flat.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from ..fileio import open_regular_file
from .images import MAX_PIXELS, PASS_THROUGH_MODES, ImageCheck, check_image, mirror_symmetry
from .records import InputFileError

VERIFY_MODES = ("fast", "full")
JPEG_SOI = b"\xff\xd8"
JPEG_EOI = b"\xff\xd9"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TAIL = 4096  # bytes at the end searched for the end-of-image marker (trailers are rare)
# Frame headers: SOF0 baseline, SOF1 extended, SOF2 progressive (Huffman); SOF9/SOF10 the same
# with arithmetic coding (libjpeg-turbo decodes them). Lossless and hierarchical processes
# (SOF3, SOF5-7, SOF11, SOF13-15) are not decoded by Pillow.
SOF_DECODABLE = {0xC0, 0xC1, 0xC2, 0xC9, 0xCA}
SOF_OTHER = {0xC3, 0xC5, 0xC6, 0xC7, 0xCB, 0xCD, 0xCE, 0xCF}
# Markers without a length field.
STANDALONE = {0x01, *range(0xD0, 0xD8)}
JPEG_MODES = {1: "L", 3: "RGB", 4: "CMYK"}
# (colour type, bit depth) -> the mode Pillow opens the PNG in.
PNG_MODES = {
    (0, 1): "1",
    (0, 2): "L",
    (0, 4): "L",
    (0, 8): "L",
    (0, 16): "I;16",
    (2, 8): "RGB",
    (2, 16): "RGB",
    (3, 1): "P",
    (3, 2): "P",
    (3, 4): "P",
    (3, 8): "P",
    (4, 8): "LA",
    (4, 16): "LA",
    (6, 8): "RGBA",
    (6, 16): "RGBA",
}


class _Bad(Exception):
    """A structural fault; the message is the reason."""


def _size_check(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise _Bad(f"image declares a size of {width}x{height}")
    if width * height > max_pixels:
        raise _Bad(f"image too large ({width}x{height} pixels > {max_pixels})")


def _jpeg_header(fd: int, size: int) -> tuple[int, int, str, int]:
    """Walk the marker segments from SOI to SOS; (width, height, mode) from the frame header and
    the offset where the scan starts."""
    pos = 2
    frame = None
    while True:
        head = os.pread(fd, 4, pos)
        if len(head) < 2:
            raise _Bad("JPEG cut off in its header (no start of scan)")
        if head[0] != 0xFF:
            raise _Bad(f"JPEG header corrupt (no marker at byte {pos})")
        marker = head[1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in STANDALONE:
            pos += 2
            continue
        if marker in (0xD8, 0xD9):
            raise _Bad(f"JPEG header corrupt (marker FF{marker:02X} at byte {pos})")
        if len(head) < 4:
            raise _Bad("JPEG cut off in its header")
        length = struct.unpack(">H", head[2:4])[0]
        if length < 2 or pos + 2 + length > size:
            raise _Bad(f"JPEG cut off or corrupt (segment FF{marker:02X} at byte {pos} runs past the end)")
        if marker in SOF_DECODABLE or marker in SOF_OTHER:
            body = os.pread(fd, 6, pos + 4)
            precision, height, width, components = struct.unpack(">BHHB", body)
            if marker in SOF_OTHER:
                raise _Bad(f"JPEG coding process SOF{marker - 0xC0} is not one Pillow decodes")
            if precision != 8:
                raise _Bad(f"{precision}-bit JPEG (Pillow decodes 8-bit JPEG only)")
            if components not in JPEG_MODES:
                raise _Bad(f"JPEG with {components} colour components")
            frame = (width, height, JPEG_MODES[components])
        if marker == 0xDA:  # start of scan: the header is complete
            if frame is None:
                raise _Bad("JPEG without a frame header before its scan")
            return (*frame, pos + 2 + length)
        pos += 2 + length


def _jpeg_tail(fd: int, size: int, scan_start: int) -> None:
    """The end-of-image marker after the start of the scan, in the last bytes of the file
    (entropy-coded data cannot contain FF D9, so a cut file has none there)."""
    start = max(scan_start, size - TAIL)
    end = os.pread(fd, size - start, start).rfind(JPEG_EOI)
    if end < 0:
        raise _Bad("JPEG truncated (no end-of-image marker at the end of the file)")


def _png_structure(fd: int, size: int, max_pixels: int) -> tuple[int, int, str]:
    ihdr = os.pread(fd, 25, 8)
    if len(ihdr) < 25 or ihdr[4:8] != b"IHDR" or struct.unpack(">I", ihdr[:4])[0] != 13:
        raise _Bad("PNG without an IHDR chunk")
    if zlib.crc32(ihdr[4:21]) != struct.unpack(">I", ihdr[21:25])[0]:
        raise _Bad("PNG header corrupt (IHDR checksum mismatch)")
    width, height, depth, colour = struct.unpack(">IIBB", ihdr[8:18])
    mode = PNG_MODES.get((colour, depth))
    if mode is None:
        raise _Bad(f"PNG with colour type {colour} and bit depth {depth} (not a valid combination)")
    _size_check(width, height, max_pixels)
    pos, idat = 33, False
    while True:
        head = os.pread(fd, 8, pos)
        if len(head) < 8:
            raise _Bad("PNG truncated (no IEND chunk)")
        length, kind = struct.unpack(">I4s", head)
        if not kind.isalpha():
            raise _Bad(f"PNG corrupt (invalid chunk type at byte {pos})")
        if pos + 12 + length > size:
            raise _Bad(f"PNG truncated (chunk {kind.decode('ascii')} at byte {pos} runs past the end)")
        if kind == b"IDAT":
            idat = True
        if kind == b"IEND":
            if not idat:
                raise _Bad("PNG without image data (no IDAT chunk)")
            return width, height, mode
        pos += 12 + length


def _structure(path: Path, max_pixels: int) -> tuple[ImageCheck, bool]:
    """(check, whether the image was fully decoded to get it)."""
    try:
        fd = open_regular_file(path)  # a FIFO is never waited on
    except InputFileError as e:
        return ImageCheck(False, f"image {str(e).removeprefix(f'{path}: ')}"), False
    except FileNotFoundError:
        return ImageCheck(False, "image file not found"), False
    except IsADirectoryError:
        return ImageCheck(False, "image path is a folder"), False
    except OSError as e:
        return ImageCheck(False, f"image unreadable ({e.strerror})"), False
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return ImageCheck(False, "image file is empty (0 bytes)"), False
        magic = os.pread(fd, 8, 0)
        if magic.startswith(JPEG_SOI):
            width, height, mode, scan = _jpeg_header(fd, size)
            _size_check(width, height, max_pixels)
            _jpeg_tail(fd, size, scan)
        elif magic == PNG_SIGNATURE:
            width, height, mode = _png_structure(fd, size, max_pixels)
        else:
            return check_image(path, max_pixels), True
        return ImageCheck(True, "", width, height, mode), False
    except _Bad as e:
        reason = str(e)
        if not reason.startswith("image too large"):
            reason = f"image unreadable ({reason})"
        return ImageCheck(False, reason), False
    except OSError as e:
        return ImageCheck(False, f"image unreadable ({e.strerror or e})"), False
    finally:
        os.close(fd)


def fast_check(path: str | Path, max_pixels: int = MAX_PIXELS) -> ImageCheck:
    """Header and end-of-file structure of a JPEG or PNG (see the module docstring); other
    formats, and images that will need an RGB copy, get a full decode. Never raises."""
    check, decoded = _structure(Path(path), max_pixels)
    if check.ok and not decoded and check.mode not in PASS_THROUGH_MODES:
        return full_check(path, max_pixels)
    return check


def full_check(path: str | Path, max_pixels: int = MAX_PIXELS) -> ImageCheck:
    """The structure check, then a decode of every compressed byte (JPEG in draft mode) and
    the symmetry measure. Never raises."""
    path = Path(path)
    first, decoded = _structure(path, max_pixels)
    if not first.ok or decoded:
        return first
    try:
        with Image.open(path) as img:
            if img.format == "JPEG":
                img.draft(img.mode, (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()
            return ImageCheck(True, "", first.width, first.height, first.mode, mirror_symmetry(img))
    except Exception as e:  # Pillow raises many types for corrupt data
        return ImageCheck(False, f"image unreadable ({type(e).__name__}: {e})")


CHECKS = {"fast": fast_check, "full": full_check}


def _check_batch(args: tuple[str, list[str]]) -> list[ImageCheck]:
    mode, paths = args
    check = CHECKS[mode]
    return [check(p) for p in paths]


class _Batch:
    """Paths of one mode waiting to be checked together; ``future`` once submitted."""

    __slots__ = ("mode", "paths", "future", "results")

    def __init__(self, mode: str):
        self.mode = mode
        self.paths: list[str] = []
        self.future = None
        self.results: list[ImageCheck] | None = None


# How often a worker process looks whether the run that started it is still there.
PARENT_POLL_S = 0.5


def _exit_with_parent(parent: int) -> None:
    """In a worker process: exit as soon as ``parent`` (the run) is gone, however it went (a
    SIGKILL or SIGTERM leaves no time to shut the pool down, and the workers, waiting on their
    task queue for ever, would be left behind as orphans)."""
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool whose workers end with the run (see ``_exit_with_parent``)."""
    return ProcessPoolExecutor(max_workers=workers, initializer=_exit_with_parent, initargs=(os.getpid(),))


class _Pools:
    """One pool per mode, started when first needed: ``fast`` jobs wait on reads, so threads
    overlap them (several per worker); ``full`` jobs decode, so they go to worker processes."""

    def __init__(self, workers: int):
        self.workers = workers
        self.pools: dict[str, Executor] = {}

    def submit(self, b: _Batch) -> None:
        pool = self.pools.get(b.mode)
        if pool is None:
            if b.mode == "fast":
                pool = ThreadPoolExecutor(max_workers=min(32, FAST_THREADS_PER_WORKER * self.workers))
            else:
                pool = worker_pool(self.workers)
            self.pools[b.mode] = pool
        b.future = pool.submit(_check_batch, (b.mode, b.paths))

    def close(self) -> None:
        for pool in self.pools.values():
            pool.shutdown(wait=True, cancel_futures=True)


FAST_THREADS_PER_WORKER = 4
# Jobs per batch sent to a decoding process: a full check takes ~11 ms on a full-size film, so
# small batches keep the processes evenly loaded (and a few decodes among many fast checks are
# spread over them, not queued on one).
FULL_BATCH = 4


def check_in_order(
    jobs: Iterable[tuple[str | Path, str] | None], workers: int = 1, batch: int = 64, in_flight: int = 4
) -> Iterator[ImageCheck | None]:
    """The check of every ``(path, mode)`` job (mode ``fast`` or ``full``), yielded in input
    order; None for a None job.

    Jobs are consumed lazily and grouped by mode into batches (``batch`` fast checks, at most
    FULL_BATCH decodes); at most 2 x ``in_flight`` batches per
    worker are outstanding (a half-filled batch is sent early when the oldest result waits on
    it), so a collection of any size runs in constant memory and the reader of the jobs keeps
    working while earlier images are checked. ``workers`` <= 1 checks in this process."""
    if workers <= 1:
        for job in jobs:
            yield None if job is None else CHECKS[_mode(job[1])](job[0])
        return
    pools = _Pools(workers)
    filling: dict[str, _Batch] = {}
    order: deque[tuple[_Batch | None, int]] = deque()
    outstanding = 0  # batches submitted and not yet yielded in full
    limit = 2 * in_flight * workers  # fast batches for the threads, full ones for the processes

    def send(b: _Batch) -> None:
        nonlocal outstanding
        if filling.get(b.mode) is b:
            del filling[b.mode]
        pools.submit(b)
        outstanding += 1

    def ready(final: bool) -> Iterator[ImageCheck | None]:
        nonlocal outstanding
        while order:
            b, i = order[0]
            if b is not None:
                must_wait = final or outstanding >= limit
                if b.future is None:
                    if not must_wait:
                        return
                    send(b)
                if b.results is None:
                    if not must_wait and not b.future.done():
                        return
                    b.results = b.future.result()
                if i == len(b.paths) - 1:
                    outstanding -= 1
            order.popleft()
            yield None if b is None else b.results[i]

    try:
        for job in jobs:
            if job is None:
                order.append((None, 0))
            else:
                mode = _mode(job[1])
                b = filling.get(mode)
                if b is None:
                    b = filling[mode] = _Batch(mode)
                order.append((b, len(b.paths)))
                b.paths.append(str(job[0]))
                if len(b.paths) >= (batch if mode == "fast" else min(batch, FULL_BATCH)):
                    send(b)
            yield from ready(final=False)
        yield from ready(final=True)
    finally:
        pools.close()


def _mode(mode: str) -> str:
    if mode not in CHECKS:
        raise ValueError(f"--verify-images {mode!r}: expected one of {', '.join(VERIFY_MODES)}")
    return mode


def verify_images(
    paths: Iterable[str | Path | None],
    mode: str = "fast",
    workers: int = 1,
    batch: int = 64,
    in_flight: int = 4,
) -> Iterator[ImageCheck | None]:
    """``fast_check`` or ``full_check`` of every path, yielded in input order (None for None);
    see ``check_in_order``."""
    _mode(mode)
    jobs = (None if p is None else (p, mode) for p in paths)
    return check_in_order(jobs, workers, batch, in_flight)
