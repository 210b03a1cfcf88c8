"""Image checks before a sample is written, and the view guess for unlabelled images."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

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


def resolve_inside(images_dir: Path, relpath: str) -> Path | None:
    """The image's path if it stays inside ``images_dir``, else None (absolute or ``..`` paths)."""
    if os.path.isabs(relpath) or "\\" in relpath:
        return None
    base = images_dir.resolve()
    p = (base / relpath).resolve()
    if p != base and base in p.parents:
        return p
    return None


def mirror_symmetry(img: Image.Image) -> float:
    """Correlation between a small grey copy of the image and its left-right mirror.

    A frontal chest film is close to symmetric about the spine; a lateral one is not. Used only
    to tell the views of one report apart when the source does not label them.
    """
    a = np.asarray(img.convert("L").resize((64, 64), Image.BILINEAR), dtype=np.float32)
    b = a[:, ::-1]
    a = a - a.mean()
    b = b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def check_image(path: Path, max_pixels: int = MAX_PIXELS) -> ImageCheck:
    """Open, size-check, fully decode and measure one image; never raises."""
    if not path.is_file():
        return ImageCheck(False, "image file not found")
    if path.stat().st_size == 0:
        return ImageCheck(False, "image file is empty (0 bytes)")
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
