"""Compressed DICOM (issue 15, item 8): which transfer syntaxes decode with the pinned packages,
checked on real files built here (JPEG baseline and JPEG 2000 encoded by Pillow, RLE by pydicom),
and a refusal that names the syntax for those that do not (JPEG lossless, JPEG-LS, HTJ2K)
without quoting any other value of the file."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.encaps import encapsulate
from pydicom.uid import (
    HTJ2KLossless,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)
from web_support import dicom_from_png, phi_strings, write_dicom

from xrayqwen2vl.data.records import InputFileError
from xrayqwen2vl.serve.dicom_io import read_dicom


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    """A smooth 8-bit greyscale picture (JPEG keeps it close) with some texture."""
    y, x = np.mgrid[0:96, 0:128]
    return np.clip(40 + x + 0.6 * y + 10 * np.sin(x / 5.0), 0, 255).astype(np.uint8)


def _encapsulated(tmp_path, name: str, picture: np.ndarray, syntax, fragment: bytes):
    """An 8-bit MONOCHROME2 DX file with identifying tags whose pixel data is ``fragment``; its
    window (centre 128, width 256) shows each stored value as itself."""
    path = write_dicom(tmp_path / name, picture.astype(np.uint16), bits_stored=8, window=(128, 256))
    ds = dcmread(path)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([fragment])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def _pillow(picture: np.ndarray, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, fmt, **options)
    return buf.getvalue()


def test_jpeg_baseline_decodes(tmp_path, picture):
    path = _encapsulated(
        tmp_path, "jpeg.dcm", picture, JPEGBaseline8Bit, _pillow(picture, "JPEG", quality=95)
    )
    got = np.asarray(read_dicom(path), dtype=np.int32)
    assert got.shape == picture.shape
    assert np.abs(got - picture).mean() < 2  # lossy, but the same picture


def test_jpeg_2000_lossless_decodes_exactly(tmp_path, picture):
    j2k = _pillow(picture, "JPEG2000", irreversible=False, no_jp2=True)
    path = _encapsulated(tmp_path, "j2k.dcm", picture, JPEG2000Lossless, j2k)
    assert np.array_equal(np.asarray(read_dicom(path)), picture)


def test_rle_lossless_decodes_exactly(tmp_path, sample_dir):
    png = sorted((sample_dir / "NLMCXR_png").glob("*.png"))[0]
    path = dicom_from_png(png, tmp_path / "rle.dcm")
    ds = dcmread(path)
    ds.compress(RLELossless)
    ds.save_as(path, enforce_file_format=True)
    assert dcmread(path).file_meta.TransferSyntaxUID == RLELossless
    assert np.array_equal(np.asarray(read_dicom(path)), np.asarray(Image.open(png).convert("L")))


@pytest.mark.parametrize("syntax", [JPEGLosslessSV1, JPEGLSLossless, HTJ2KLossless], ids=lambda u: u.name)
def test_syntax_without_a_decoder_is_named_in_the_refusal(tmp_path, picture, syntax):
    path = _encapsulated(tmp_path, "c.dcm", picture, syntax, b"\xff\xd8\xff\xc3" + bytes(64))
    with pytest.raises(InputFileError) as e:
        read_dicom(path)
    message = str(e.value)
    assert message == (
        f"{path}: DICOM pixel data in {syntax.name} ({syntax}), which this installation cannot decode; "
        "convert it to an uncompressed, RLE, JPEG baseline or JPEG 2000 DICOM, or to PNG"
    )
    for text in phi_strings():
        assert text not in message


def test_corrupt_jpeg_names_the_syntax(tmp_path, picture):
    """A syntax that decodes here, with broken data: not a missing decoder, a corrupt file."""
    path = _encapsulated(tmp_path, "bad.dcm", picture, JPEGBaseline8Bit, b"\xff\xd8\xff\xe0" + bytes(40))
    with pytest.raises(
        InputFileError, match=r"could not be decoded \(JPEG Baseline \(Process 1\) \(1\.2\.840"
    ):
        read_dicom(path)
