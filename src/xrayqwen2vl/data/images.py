"""Image checks before a sample is written, and the view guess for unlabelled images."""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..fileio import check_regular_file
from .records import InputFileError

# Real chest radiographs are up to about 4k x 4k (16 Mpx); anything far beyond is refused as a
# possible decompression bomb before its pixels are decoded.
MAX_PIXELS = 50_000_000


@dataclass
class ImageCheck:
    ok: bool
    reason: str = ""
    width: int = 0
    height: int = 0
    mode: str = ""
    symmetry: float = 0.0  # left-right mirror correlation; frontal views score high


# Folders ``ImagesFolder`` remembers before it starts again (about 450 bytes each). A study's images
# are read one after the other, so the memo earns its keep on the folders a few studies share; a
# larger one only held ReXGradient's study-own folders (six per image) longer: 9 MB more per
# 3,000 studies, up to 90 MB at the old 200,000.
DIR_MEMO = 10_000


class ImagesFolder:
    """The images folder of a run: where each listed image really is, and refusals for paths
    that leave it or cannot be resolved (never an exception for one bad path)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.abs = Path(os.path.abspath(self.path))  # as the user named it: paths in the JSON
        self.real = self.path.resolve()  # with links resolved: the containment check
        self._real = str(self.real)
        self._dirs: dict[str, str] = {}  # folder inside -> its resolved path (memo of _resolve)

    def locate(self, relpath: str) -> tuple[Path | None, str]:
        """(resolved path, "") for an image inside the folder, else (None, reason): absolute
        paths, ``..`` or links leading out, a NUL byte, a symlink loop."""
        if "\0" in relpath:
            return None, "image path contains a NUL byte"
        if os.path.isabs(relpath) or "\\" in relpath:
            return None, f"image path {relpath!r} escapes the images folder"
        try:
            p = self._resolve(relpath)
        except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop (Python < 3.13)
            why = "a symlink loop" if "loop" in str(e).lower() else (getattr(e, "strerror", None) or str(e))
            return None, f"image path {relpath!r} cannot be resolved ({why})"
        if p == self._real or not p.startswith(self._real + os.sep):
            return None, f"image path {relpath!r} escapes the images folder"
        return Path(p), ""

    def _resolve(self, relpath: str) -> str:
        """``(folder / relpath).resolve()``, one component at a time, the folders remembered: a
        component is looked at once (one lstat) and resolved in full only when it is a link or
        ``.``/``..``, so a collection of 377k images in 65k folders costs ~2 lstat per image, not
        one per component."""
        head, _, name = relpath.rpartition("/")
        base = self._dir(head) if head else self._real
        return self._step(base, name)

    def _dir(self, head: str) -> str:
        found = self._dirs.get(head)
        if found is None:
            parent, _, name = head.rpartition("/")
            found = self._step(self._dir(parent) if parent else self._real, name)
            if len(self._dirs) >= DIR_MEMO:
                self._dirs.clear()
            self._dirs[head] = found
        return found

    @staticmethod
    def _step(base: str, name: str) -> str:
        p = os.path.join(base, name)
        if name in ("", ".", "..") or os.path.islink(p):
            return str(Path(p).resolve())
        return p

    def relative(self, resolved: Path) -> str:
        """The resolved image's path inside the folder, "/"-separated, without ``..``."""
        return resolved.relative_to(self.real).as_posix()


def mirror_symmetry(img: Image.Image) -> float:
    """Correlation between a small grey copy of the image and its left-right mirror.

    A frontal chest film is close to symmetric about the spine; a lateral one is not. Used only
    to tell the views of one report apart when the source does not label them.
    """
    grey = img.convert("L") if img.mode in PASS_THROUGH_MODES else to_rgb(img).convert("L")
    factor = min(grey.width, grey.height) // 128
    if factor > 1:  # a box-filter reduction first: same picture at 64 px, a fraction of the work
        grey = grey.reduce(factor)
    a = np.asarray(grey.resize((64, 64), Image.BILINEAR), dtype=np.float32)
    b = a[:, ::-1]
    a = a - a.mean()
    b = b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def check_image(path: Path, max_pixels: int = MAX_PIXELS) -> ImageCheck:
    """Open, size-check, fully decode and measure one image; never raises."""
    try:
        check_regular_file(path, "image file", allow_empty=False, shown="")
    except InputFileError as e:  # not there, empty, a FIFO (never opened), a NUL byte in the name
        return ImageCheck(False, str(e).removeprefix(": "))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > max_pixels:
                    return ImageCheck(
                        False, f"image too large ({w}x{h} pixels > {max_pixels})", w, h, img.mode
                    )
                img.load()
                return ImageCheck(True, "", w, h, img.mode, mirror_symmetry(img))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        return ImageCheck(False, f"image too large ({e})")
    except Exception as e:  # PIL raises many types for corrupt files
        return ImageCheck(False, f"image unreadable ({type(e).__name__}: {e})")


# Modes LLaMA-Factory's own ``convert("RGB")`` handles faithfully; anything else (16-bit or
# float greyscale, palette, alpha, CMYK) gets an 8-bit RGB copy in the output folder.
PASS_THROUGH_MODES = ("RGB", "L")


def to_rgb(img: Image.Image) -> Image.Image:
    """An 8-bit RGB version of the image. 16-bit and float greyscale are scaled by their range
    (a plain ``convert`` would clip them to white); alpha is composited on black."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        scaled = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
        return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8)).convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA"):
        base = Image.new("RGB", img.size, (0, 0, 0))
        base.paste(img.convert("RGBA"), mask=img.convert("RGBA").getchannel("A"))
        return base
    return img.convert("RGB")


def fit_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """The largest size with the same aspect ratio and at most ``max_pixels`` pixels."""
    if width * height <= max_pixels:
        return width, height
    scale = (max_pixels / (width * height)) ** 0.5
    return max(1, int(width * scale)), max(1, int(height * scale))


# zlib level of the copies: on full-size films (grain included) level 3 wrote smaller files than the
# default 6 in half the time (benchmarks/copy_bench.py); the pixels are the same at every level.
PNG_COMPRESS_LEVEL = 3
# A JPEG is decoded at a reduced scale (libjpeg's DCT scaling, as Pillow's ``thumbnail`` does) to no
# less than this many times the copy's size, then resized: within a grey level of the full decode.
DRAFT_GAP = 2


def write_copy(src: Path, dest: Path, max_pixels: int | None = None) -> str:
    """Write an 8-bit RGB PNG copy of ``src`` to ``dest`` (atomically), shrunk to at most
    ``max_pixels`` pixels when given, so training does not decode full-size files each epoch.

    When shrinking: a JPEG is decoded at a reduced scale (``DRAFT_GAP``), and an 8-bit grey or RGB
    image is resized before it is made RGB (the same pixels as converting first, on a third of
    the data); other modes are made RGB first (16-bit is scaled by the full image's range)."""
    from ..fileio import atomic_write_bytes

    if dest.exists() and os.path.samefile(dest, src):
        raise ValueError(f"{dest}: the copy would replace its own source image")
    with Image.open(src) as img:
        size = fit_size(img.width, img.height, max_pixels) if max_pixels else img.size
        if size != img.size and img.format == "JPEG":
            img.draft(None, (size[0] * DRAFT_GAP, size[1] * DRAFT_GAP))
        img.load()
        out = img if img.mode in PASS_THROUGH_MODES else to_rgb(img)
        if size != out.size:
            out = out.resize(size, Image.BICUBIC)
        out = to_rgb(out)
    buf = io.BytesIO()
    out.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    atomic_write_bytes(dest, buf.getvalue())
    return str(dest)
