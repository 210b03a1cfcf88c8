"""Read one study view from a PNG, JPEG or DICOM file into an 8-bit image the model can take.

DICOM files carry patient identifiers (name, id, birth date, study dates, institution). Only the
pixel data leaves this module: the image returned is built from the pixel array alone, error
messages name the problem and never a tag value, and pydicom's own warnings and log records
(which quote offending values) are silenced while a file is read.

The display pipeline follows the DICOM standard (PS3.3 C.11): stored values → modality LUT
(rescale slope/intercept or a Modality LUT Sequence) → VOI LUT (the first window centre/width,
or a VOI LUT Sequence) → MONOCHROME1 inverted so that air is dark → scaled to 0..255.

A file is read within bounds set before pydicom sees it: a deflated dataset (Deflated Explicit
VR Little Endian, which pydicom would inflate in full: a 300 KB file can hold 300 MiB) is
inflated here up to ``MAX_INFLATED_BYTES`` and refused beyond; in any other file, elements over
``DEFER_BYTES`` are never read unless used (only the pixel data is).

What a file is, is decided by its content, whatever its name (``image_kind``): PNG, JPEG or
DICOM, nothing else. Every refusal is a ``ViewError``: the path, and a reason in our words that
never quotes an exception's text (Pillow's name the file) or a tag value, so that the web page
and log can show the reason alone next to the view's number.

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
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.images import MAX_PIXELS, PASS_THROUGH_MODES, to_rgb
from ..data.records import InputFileError
from ..fileio import check_regular_file as _check_regular_file

DICOM_SUFFIXES = {".dcm", ".dicom"}
RASTER_SUFFIXES = {".png", ".jpg", ".jpeg"}
MAX_INFLATED_BYTES = 64 << 20  # a 4k x 4k 16-bit radiograph is 32 MiB
DEFER_BYTES = 1 << 20  # larger elements stay in the file unless used
# Formats we name when refusing them, by their first bytes (what Pillow would otherwise open).
OTHER_FORMATS = (
    (b"GIF8", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
    (b"RIFF", "WebP or other RIFF"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
)


class ViewError(InputFileError):
    """A view refused: ``str()`` is "PATH: REASON"; ``reason`` is our words alone (no path, no
    exception text, no tag), fit for a page or a log next to the view's number."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


def image_kind(path: Path) -> str:
    """ "PNG", "JPEG" or "DICOM" from the file's first bytes, whatever its name; ViewError for
    anything else (a TIFF named x.png included) and for what is not a regular, non-empty file."""
    check_regular_file(path)
    head = _head(path, 132)
    if len(head) == 132 and head[128:132] == b"DICM":
        return "DICOM"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    for magic, name in OTHER_FORMATS:
        if head.startswith(magic):
            return _refuse(path, f"a {name} image; give a PNG, JPEG or DICOM file")
    return _refuse(path, "not a PNG, JPEG or DICOM image (judged by its content, not its name)")


def _refuse(path, reason: str):
    raise ViewError(path, reason)


def _head(path: Path, n: int) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise ViewError(path, f"cannot read ({e.strerror or type(e).__name__})") from None
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ViewError(path, "not a regular file (a FIFO, socket or device); give an image file")
        return f.read(n)


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
    """The shared regular-file check (``fileio.check_regular_file``: metadata only, so a FIFO, a
    device or a folder is never opened), its reason kept apart from the path (ViewError)."""
    try:
        _check_regular_file(p, "image file", allow_empty=False, shown="")
    except InputFileError as e:
        raise ViewError(p, str(e).removeprefix(": ")) from None


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


def _inflate(f, path: Path, cap: int) -> bytes:
    """The rest of ``f`` inflated (raw deflate, PS3.5 A.5), refused once it passes ``cap`` bytes:
    never more than ``cap`` + one chunk in memory, whatever the file says."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    while True:
        chunk = f.read(1 << 20)
        if not chunk:
            break
        out += inflater.decompress(chunk, cap + 1 - len(out))
        if len(out) > cap or inflater.unconsumed_tail:
            raise ViewError(
                path,
                f"deflated DICOM dataset larger than {cap >> 20} MiB once inflated; convert it to an "
                "uncompressed or JPEG 2000 DICOM, or to PNG",
            )
    try:
        out += inflater.flush()
    except zlib.error:
        raise ViewError(path, "not a readable DICOM file (corrupt deflated dataset)") from None
    return bytes(out)


def _dataset(f, path: Path):
    """The dataset of an open DICOM file, bounded before pydicom reads it (module docstring)."""
    import pydicom
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    read_preamble(f, False)
    meta = _read_file_meta_info(f)
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        # By path: pydicom reads a deferred element (the pixel data too, when large) by opening
        # the file again, which it can only do from a name (``f`` is a regular file: checked).
        return pydicom.dcmread(path, defer_size=DEFER_BYTES)
    data = DicomBytesIO(_inflate(f, path, MAX_INFLATED_BYTES))  # within the cap: read it all
    ds = read_dataset(data, is_implicit_VR=False, is_little_endian=True)
    ds.file_meta = meta
    return ds


def read_dicom(path: str | Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The displayed image of a single-frame DICOM file: 8-bit greyscale ("L") or RGB.

    Raises ``ViewError`` with a reason that names the problem, never a tag or an exception text.
    """
    p = Path(path)
    check_regular_file(p)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise ViewError(p, f"cannot read ({e.strerror or type(e).__name__})") from None
    with open(fd, "rb") as f, _quiet_pydicom():
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ViewError(p, "not a regular file (a FIFO, socket or device); give an image file")
        try:
            ds = _dataset(f, p)
        except ViewError:
            raise
        except Exception as e:  # InvalidDicomError, truncated files, bad element lengths
            raise ViewError(p, f"not a readable DICOM file ({type(e).__name__})") from None
        unit, photometric = _display_values(ds, p, max_pixels)
    if unit.ndim == 3:  # colour (RGB, or YBR already converted to RGB by pydicom)
        return Image.fromarray(np.rint(unit * 255).astype(np.uint8)).convert("RGB")
    if photometric == "MONOCHROME1":  # high values are dark: invert so air is black, bone white
        unit = 1.0 - unit
    return Image.fromarray(np.rint(unit * 255).astype(np.uint8)).convert("L")


def _display_values(ds, p: Path, max_pixels: int) -> tuple[np.ndarray, str]:
    """The pixel values of a dataset mapped to 0..1 (modality LUT, then VOI LUT or the full
    range), and its photometric interpretation."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    if "PixelData" not in ds:
        raise ViewError(p, "DICOM file without pixel data (not an image)")
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except Exception:
        raise ViewError(p, "DICOM image without valid Rows/Columns") from None
    if rows * cols > max_pixels:
        raise ViewError(p, f"image too large ({cols}x{rows} pixels > {max_pixels})")
    if frames != 1:
        raise ViewError(p, f"multi-frame DICOM ({frames} frames); give one radiograph per file")
    try:
        stored = ds.pixel_array
    except Exception as e:
        uid, syntax = transfer_syntax(ds)
        if not _decoder_available(uid):
            raise ViewError(
                p,
                f"DICOM pixel data in {syntax}, which this installation cannot decode; "
                "convert it to an uncompressed, RLE, JPEG baseline or JPEG 2000 DICOM, or to PNG",
            ) from None
        raise ViewError(p, f"DICOM pixel data could not be decoded ({syntax}; {type(e).__name__})") from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if stored.ndim == 3:
        return _to_unit(stored.astype(np.float64)), photometric
    try:
        values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
        if "WindowCenter" in ds and "WindowWidth" in ds:
            unit = _window(values, _first(ds.WindowCenter), _first(ds.WindowWidth))
        elif "VOILUTSequence" in ds:
            unit = _to_unit(np.asarray(apply_voi_lut(values, ds), dtype=np.float64))
        else:
            unit = _to_unit(values)
    except Exception as e:
        raise ViewError(p, f"DICOM LUT or window could not be applied ({type(e).__name__})") from None
    return unit, photometric


def _decode_raster(p: Path, kind: str, max_pixels: int) -> Image.Image:
    """A PNG or JPEG file decoded by that Pillow plugin alone (``formats=``: a file whose first
    bytes say PNG is never handed to another decoder)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p, formats=[kind]) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise ViewError(p, f"image too large ({w}x{h} pixels > {max_pixels})")
                img.load()
                return img.copy() if img.mode in PASS_THROUGH_MODES else to_rgb(img)
    except ViewError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ViewError(p, f"image too large (over {max_pixels} pixels)") from None
    except Exception as e:  # Pillow raises many types for corrupt files; their text names the file
        raise ViewError(p, f"corrupt or truncated {kind} ({type(e).__name__})") from None


def open_view(path: str | Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """One view as a decoded PIL image: PNG, JPEG or DICOM by content (``image_kind``).

    Raises ``ViewError``: missing, empty, not one of the three, corrupt, too large.
    """
    p = Path(path)
    kind = image_kind(p)
    if kind == "DICOM":
        return read_dicom(p, max_pixels)
    return _decode_raster(p, kind, max_pixels)
