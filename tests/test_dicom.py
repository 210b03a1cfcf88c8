"""DICOM input: the display pipeline (modality LUT, VOI window, MONOCHROME1 inversion, 8 bits),
clear one-line errors, and `xrayqwen2vl report` on a .dcm study with no tag in its output."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import OFFLINE_ENV, REPO, tool
from PIL import Image
from web_support import dicom_from_png, phi_strings, write_dicom

from xrayqwen2vl.cli import main
from xrayqwen2vl.data.records import InputFileError
from xrayqwen2vl.serve.dicom_io import open_view, read_dicom


@pytest.fixture(scope="module")
def frontal(sample_dir):
    return sorted((sample_dir / "NLMCXR_png").glob("*-1001.png"))[0]


def test_monochrome1_with_window_gives_back_the_picture(frontal, tmp_path):
    dcm = dicom_from_png(frontal, tmp_path / "study.dcm")
    img = read_dicom(dcm)
    assert img.mode == "L" and img.size == Image.open(frontal).size
    assert np.array_equal(np.asarray(img), np.asarray(Image.open(frontal).convert("L")))


def test_modality_lut_then_window(tmp_path):
    stored = np.arange(0, 4096, 16, dtype=np.uint16).reshape(16, 16)
    # Hounsfield-like values: v = 2*s - 1000, window 0 ± 500 → values below -500 black, above 500 white.
    path = write_dicom(tmp_path / "w.dcm", stored, slope=2, intercept=-1000, window=(0, 1000))
    got = np.asarray(read_dicom(path), dtype=np.int32)
    values = stored.astype(np.float64) * 2 - 1000
    # PS3.3 C.11.2.1.2.1: (v - (c - 0.5)) / (w - 1) + 0.5, clipped to 0..1, then 8 bits (rounded)
    want = np.rint(np.clip((values + 0.5) / 999 + 0.5, 0, 1) * 255)
    assert np.array_equal(got, want)
    assert got.min() == 0 and got.max() == 255
    # by hand at the window's edges: s=240 -> v=-520 (black), s=256 -> v=-488, s=752 -> v=504 (white)
    flat = got.ravel()
    assert flat[15] == 0 and flat[16] == round((-488 + 0.5) / 999 * 255 + 127.5) == 3 and flat[47] == 255
    # a narrower window over the same pixels: not the same picture
    narrow = write_dicom(tmp_path / "n.dcm", stored, slope=2, intercept=-1000, window=(0, 998))
    assert not np.array_equal(np.asarray(read_dicom(narrow), dtype=np.int32), got)


def test_no_window_uses_the_full_range_and_monochrome1_inverts(tmp_path):
    stored = np.tile(np.arange(100, 1124, 4, dtype=np.uint16), (8, 1))  # 100 … 1120
    mono2 = np.asarray(read_dicom(write_dicom(tmp_path / "m2.dcm", stored)), dtype=np.int32)
    mono1 = np.asarray(read_dicom(write_dicom(tmp_path / "m1.dcm", stored, "MONOCHROME1")), dtype=np.int32)
    assert mono2[0, 0] == 0 and mono2[0, -1] == 255
    assert np.array_equal(mono1, 255 - mono2)


def test_bad_dicom_files_are_one_clear_error_without_tags(tmp_path):
    fake = tmp_path / "fake.dcm"
    fake.write_bytes(b"not a dicom file at all" * 10)
    with pytest.raises(InputFileError, match="not a readable DICOM file"):
        read_dicom(fake)
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    with pytest.raises(InputFileError, match=r"empty \(0 bytes\)"):
        open_view(empty)
    frames = write_dicom(tmp_path / "frames.dcm", np.zeros((2, 8, 8), np.uint16), frames=2)
    with pytest.raises(InputFileError, match="multi-frame DICOM") as e:
        read_dicom(frames)
    truncated = tmp_path / "truncated.dcm"
    good = write_dicom(tmp_path / "good.dcm", np.zeros((64, 64), np.uint16)).read_bytes()
    truncated.write_bytes(good[: len(good) - 4000])
    with pytest.raises(InputFileError) as e:
        read_dicom(truncated)
    # read, but its pixel data cut short: the decoding is what fails, said with the syntax
    assert str(e.value) == (
        f"{truncated}: DICOM pixel data could not be decoded "
        "(Explicit VR Little Endian (1.2.840.10008.1.2.1); ValueError)"
    )
    for text in phi_strings():
        assert text not in str(e.value)


def test_dicom_found_by_content_without_a_suffix(frontal, tmp_path):
    path = dicom_from_png(frontal, tmp_path / "IM0001")
    assert open_view(path).size == Image.open(frontal).size


@pytest.mark.slow
def test_report_command_reads_dicom_and_prints_no_tag(tiny_model_dir, frontal, tmp_path):
    import os
    import subprocess

    dcm = dicom_from_png(frontal, tmp_path / "frontal.dcm")
    proc = subprocess.run(
        [tool("xrayqwen2vl"), "report", "--model", str(tiny_model_dir), "--max-new-tokens", "8", str(dcm)],
        cwd=REPO,
        env={**os.environ, **OFFLINE_ENV},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip()
    for text in phi_strings():
        assert text not in proc.stdout and text not in proc.stderr, text


def test_report_command_names_a_bad_dicom(tiny_model_dir, tmp_path, capsys):
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 40)
    assert main(["report", "--model", str(tiny_model_dir), str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"xrayqwen2vl report: error: {bad}: "), err
    assert "DICOM" in err[0]
