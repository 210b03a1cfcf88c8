"""Read one study view from a PNG, JPEG or DICOM file into an 8-bit image the model can take.

DICOM files carry patient identifiers (name, id, birth date, study dates, institution). Only the
pixel data leaves this module: the image returned is built from the pixel array alone, error
messages name the problem and never a tag value, and pydicom's own warnings and log records
(which quote offending values) are silenced while a file is read.

The display pipeline follows the DICOM standard (PS3.3 C.11): stored values → modality LUT
(rescale slope/intercept or a Modality LUT Sequence) → VOI LUT (the first window centre/width,
or a VOI LUT Sequence) → MONOCHROME1 inverted so that air is dark → scaled to 0..255.

Compressed pixel data decodes where pydicom has a decoder for its transfer syntax: with the
pinned packages that is RLE Lossless (pydicom), JPEG Baseline and JPEG Extended 8-bit and JPEG
2000 (Pillow). JPEG Lossless (Process 14), JPEG-LS, HTJ2K and the video syntaxes are refused
with a message naming the syntax (doc/web-demo.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.images import MAX_PIXELS, PASS_THROUGH_MODES, check_image, to_rgb
from ..data.records import InputFileError
from ..fileio import check_regular_file as _check_regular_file

DICOM_SUFFIXES = {".dcm", ".dicom"}
RASTER_SUFFIXES = {".png", ".jpg", ".jpeg"}


def looks_like_dicom(path: Path) -> bool:
    """A DICOM Part 10 file: 128-byte preamble, then ``DICM``. False for anything but a regular
    file: a FIFO or a device is opened without blocking and never read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        head = f.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def check_regular_file(p: Path) -> None:
    """The shared regular-file check (``fileio.check_regular_file``) for an image path."""
    _check_regular_file(p, "image file", allow_empty=False)


def transfer_syntax(ds) -> tuple[str | None, str]:
    """The transfer syntax UID of a dataset read from a file, and words for it: the standard's
    name and the UID, never a free-text value from the file."""
    meta = getattr(ds, "file_meta", None)  # not an element: `"file_meta" in ds` is always False
    uid = str(meta.get("TransferSyntaxUID") or "") if meta is not None else ""
    if not uid:
        return None, "no transfer syntax in the file meta information"
    if not re.fullmatch(r"[0-9.]{1,64}", uid):
        return None, "an invalid transfer syntax UID"
    from pydicom.uid import UID

    name = UID(uid).name
    return uid, (f"{name} ({uid})" if name != uid else f"unknown transfer syntax {uid}")


def _decoder_available(uid: str | None) -> bool:
    from pydicom.pixels import get_decoder

    try:
        return uid is not None and get_decoder(uid).is_available
    except (NotImplementedError, ValueError):
        return False


@contextlib.contextmanager
def _quiet_pydicom():
    """No pydicom warning or log record while reading: they quote element values (PHI)."""
    import pydicom

    logger = logging.getLogger("pydicom")
    level, propagate = logger.level, logger.propagate
    mode = pydicom.config.settings.reading_validation_mode
    logger.setLevel(logging.CRITICAL + 1)
    logger.propagate = False
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        pydicom.config.settings.reading_validation_mode = mode
        logger.setLevel(level)
        logger.propagate = propagate


def _window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """The linear VOI window of PS3.3 C.11.2.1.2.1, mapped to 0..1."""
    if width <= 1:
        return (values > center - 0.5).astype(np.float64)
    return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def _first(value) -> float:
    """Window centre/width may be multi-valued (several presets): the first is the default."""
    try:
        return float(value[0])
    except TypeError:
        return float(value)


def _to_unit(values: np.ndarray) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    return (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)


def read_dicom(path: str | Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The displayed image of a single-frame DICOM file: 8-bit greyscale ("L") or RGB.

    Raises ``InputFileError`` with a message that names the file and the problem, never a tag.
    """
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    p = Path(path)
    check_regular_file(p)
    with _quiet_pydicom():
        try:
            ds = pydicom.dcmread(p)
        except Exception as e:  # InvalidDicomError, truncated files, bad element lengths
            raise InputFileError(f"{p}: not a readable DICOM file ({type(e).__name__})") from None
        if "PixelData" not in ds:
            raise InputFileError(f"{p}: DICOM file without pixel data (not an image)")
        try:
            rows, cols = int(ds.Rows), int(ds.Columns)
            frames = int(ds.get("NumberOfFrames", 1) or 1)
        except Exception:
            raise InputFileError(f"{p}: DICOM image without valid Rows/Columns") from None
        if rows * cols > max_pixels:
            raise InputFileError(f"{p}: image too large ({cols}x{rows} pixels > {max_pixels})")
        if frames != 1:
            raise InputFileError(f"{p}: multi-frame DICOM ({frames} frames); give one radiograph per file")
        try:
            stored = ds.pixel_array
        except Exception as e:
            uid, syntax = transfer_syntax(ds)
            if not _decoder_available(uid):
                raise InputFileError(
                    f"{p}: DICOM pixel data in {syntax}, which this installation cannot decode; "
                    "convert it to an uncompressed, RLE, JPEG baseline or JPEG 2000 DICOM, or to PNG"
                ) from None
            raise InputFileError(
                f"{p}: DICOM pixel data could not be decoded ({syntax}; {type(e).__name__})"
            ) from None
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
        if stored.ndim == 3:  # colour (RGB, or YBR already converted to RGB by pydicom)
            return Image.fromarray(
                np.rint(_to_unit(stored.astype(np.float64)) * 255).astype(np.uint8)
            ).convert("RGB")
        try:
            values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
            if "WindowCenter" in ds and "WindowWidth" in ds:
                unit = _window(values, _first(ds.WindowCenter), _first(ds.WindowWidth))
            elif "VOILUTSequence" in ds:
                unit = _to_unit(np.asarray(apply_voi_lut(values, ds), dtype=np.float64))
            else:
                unit = _to_unit(values)
        except Exception as e:
            raise InputFileError(
                f"{p}: DICOM LUT or window could not be applied ({type(e).__name__})"
            ) from None
    if photometric == "MONOCHROME1":  # high values are dark: invert so air is black, bone white
        unit = 1.0 - unit
    return Image.fromarray(np.rint(unit * 255).astype(np.uint8)).convert("L")


def open_view(path: str | Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """One view as a decoded PIL image, whatever its format (PNG, JPEG or DICOM, by content).

    Raises ``InputFileError`` naming the file: missing, empty, not an image, corrupt, too large.
    """
    p = Path(path)
    check_regular_file(p)
    if looks_like_dicom(p) or p.suffix.lower() in DICOM_SUFFIXES:
        return read_dicom(p, max_pixels)
    with open(p, "rb") as f:
        head = f.read(8)
    kind = "PNG" if head.startswith(b"\x89PNG") else "JPEG" if head.startswith(b"\xff\xd8\xff") else None
    check = check_image(p, max_pixels)
    if not check.ok:
        if kind is None and check.reason.startswith("image unreadable (UnidentifiedImageError"):
            raise InputFileError(f"{p}: not a PNG, JPEG or DICOM image")
        if kind and check.reason.startswith("image unreadable"):
            raise InputFileError(f"{p}: corrupt or truncated {kind} ({check.reason})")
        raise InputFileError(f"{p}: {check.reason}")
    with Image.open(p) as img:
        if img.format not in ("PNG", "JPEG"):
            raise InputFileError(f"{p}: a {img.format} image; give a PNG, JPEG or DICOM file")
        img.load()
        return img.copy() if img.mode in PASS_THROUGH_MODES else to_rgb(img)
