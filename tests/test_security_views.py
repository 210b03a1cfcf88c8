"""What ``report`` and ``web`` accept as a view, and what they say when they refuse one (issue 20,
causes 1, 2 and 10): one acceptance rule (PNG, JPEG or DICOM by content, whatever the name), a
DICOM dataset bounded before pydicom inflates or reads it, and messages built from the view's
number and our own reason, never from an exception's text (Pillow's name the file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from conftest import OFFLINE_ENV, tool
from PIL import Image
from web_support import deflated_dicom, write_dicom

from xrayqwen2vl.cli import main
from xrayqwen2vl.data.records import InputFileError
from xrayqwen2vl.serve import dicom_io
from xrayqwen2vl.serve.dicom_io import open_view, read_dicom
from xrayqwen2vl.serve.report import check_study_images
from xrayqwen2vl.serve.web import DecodedViews, load_views

NAME = "DOE_JANE_MRN4242"  # file names carry patient names and record numbers


def _garbage_png(folder):
    path = folder / f"{NAME}.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not the rest of a PNG" * 20)
    return path


def _garbage_jpeg(folder):
    path = folder / f"{NAME}.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(300))
    return path


def _reason(error) -> str | None:
    """The refusal's reason without the path (``ViewError.reason``)."""
    return getattr(error, "reason", None)


# --- cause 2: no file name or path in a message ---------------------------------------------------


@pytest.mark.parametrize(
    "make,reason",
    [
        (_garbage_png, "corrupt or truncated PNG (UnidentifiedImageError)"),
        (_garbage_jpeg, "corrupt or truncated JPEG (UnidentifiedImageError)"),
    ],
)
def test_an_undecodable_upload_is_named_by_its_view_only(tmp_path, make, reason):
    upload = tmp_path / "gradio" / "0a1b"
    upload.mkdir(parents=True)
    path = make(upload)
    with pytest.raises(InputFileError) as e:
        load_views([str(path)], DecodedViews(), tmp_path / "gradio")
    assert str(e.value) == f"view 1 (frontal): {reason}"
    assert not path.exists()


def test_every_refusal_has_a_reason_without_the_path(tmp_path):
    """Whatever the refusal, ``reason`` holds no part of the path: the web page shows it alone."""
    folder = tmp_path / NAME
    folder.mkdir()
    cases = [_garbage_png(folder), _garbage_jpeg(folder), folder / "missing.png", folder]
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("text")
    Image.new("L", (8, 8)).save(folder / "scan.png", format="TIFF")
    broken = write_dicom(folder / "x.dcm", np.zeros((8, 8), np.uint16)).read_bytes()
    (folder / "broken.dcm").write_bytes(broken[:-40])
    cases += [folder / n for n in ("empty.png", "notes.txt", "scan.png", "broken.dcm")]
    for path in cases:
        with pytest.raises(InputFileError) as e:
            open_view(path)
        reason = _reason(e.value)
        assert reason and NAME not in reason and str(tmp_path) not in reason, (path, reason)


# --- cause 10: one acceptance rule, by content ----------------------------------------------------


def test_a_tiff_named_png_is_refused_by_report_as_by_web(tmp_path, tiny_model_dir, capsys):
    tiff = tmp_path / "scan.png"
    Image.new("L", (32, 32), 90).save(tiff, format="TIFF")
    assert main(["report", "--model", str(tiny_model_dir), str(tiff)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"xrayqwen2vl report: error: {tiff}: a TIFF image; give a PNG, JPEG or DICOM file"
    )
    with pytest.raises(
        InputFileError, match=r"^view 1 \(frontal\): a TIFF image; give a PNG, JPEG or DICOM file$"
    ):
        load_views([str(tiff)], {})
    for fmt, name in [("BMP", "BMP"), ("GIF", "GIF"), ("WEBP", "WebP or other RIFF")]:
        other = tmp_path / f"x-{fmt}.jpg"
        Image.new("L", (16, 16)).save(other, format=fmt)
        with pytest.raises(InputFileError, match=f"a {name} image"):
            check_study_images([str(other)])


def test_the_content_decides_not_the_name(tmp_path):
    png_named_dcm = tmp_path / "view.dcm"
    Image.new("L", (16, 16), 7).save(png_named_dcm, format="PNG")
    dicom_named_png = write_dicom(tmp_path / "view.png", np.full((16, 16), 300, np.uint16), phi=False)
    jpeg_named_png = tmp_path / "jpeg.png"
    Image.new("L", (16, 16), 7).save(jpeg_named_png, format="JPEG")
    got = check_study_images([str(png_named_dcm), str(dicom_named_png)])
    assert got[0] == str(png_named_dcm) and isinstance(got[1], Image.Image)
    assert check_study_images([str(jpeg_named_png)]) == [str(jpeg_named_png)]
    with pytest.raises(InputFileError, match="not a PNG, JPEG or DICOM image"):
        check_study_images([__file__])


# --- cause 1: the DICOM deflate bomb --------------------------------------------------------------


def test_a_deflated_dataset_is_inflated_up_to_the_cap_only(tmp_path, monkeypatch):
    small = deflated_dicom(tmp_path / "small.dcm", 1000)
    assert np.asarray(read_dicom(small)).shape == (8, 8)  # deflated files still decode
    bomb = deflated_dicom(tmp_path / "bomb.dcm", 2 << 20)
    assert bomb.stat().st_size < 20_000
    monkeypatch.setattr(dicom_io, "MAX_INFLATED_BYTES", 1 << 20)
    reason = (
        "deflated DICOM dataset larger than 1 MiB once inflated; convert it to an uncompressed or "
        "JPEG 2000 DICOM, or to PNG"
    )
    tracemalloc.start()
    try:
        with pytest.raises(InputFileError) as e:
            read_dicom(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert _reason(e.value) == reason
    assert peak < 4 << 20, peak  # about the cap, not the 2 MiB element (and never its copies)
    upload = tmp_path / "gradio" / "h"
    upload.mkdir(parents=True)
    bomb.rename(upload / "b.dcm")
    with pytest.raises(InputFileError) as e:
        load_views([str(upload / "b.dcm")], DecodedViews(), tmp_path / "gradio")
    assert str(e.value) == f"view 1 (frontal): {reason}"


def test_a_large_private_element_is_never_read(tmp_path):
    path = write_dicom(tmp_path / "big.dcm", np.arange(64, dtype=np.uint16).reshape(8, 8))
    from pydicom import dcmread

    ds = dcmread(path)
    ds.add_new(0x00091010, "OB", bytes(24 << 20))
    ds.save_as(path, enforce_file_format=True)
    tracemalloc.start()
    try:
        image = read_dicom(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert image.size == (8, 8)
    assert peak < 4 << 20, peak  # was 24 MiB and more: every element was read


def test_large_pixel_data_still_decodes_plain_and_deflated(tmp_path):
    """Pixel data over the deferral size is read when used, from either kind of file."""
    stored = (np.arange(1024 * 1024) % 4096).astype(np.uint16).reshape(1024, 1024)  # 2 MiB
    plain = np.asarray(read_dicom(write_dicom(tmp_path / "plain.dcm", stored)))
    deflated = np.asarray(read_dicom(deflated_dicom(tmp_path / "deflated.dcm", 0, stored)))
    assert plain.shape == (1024, 1024) and plain.max() == 255
    assert np.array_equal(plain, deflated)


def _peak_mb(*args: str) -> tuple[int, str]:
    """Run a command in a child process of its own; its exit status, stderr and peak memory."""
    probe = (
        "import json, resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "print(json.dumps([p.returncode, p.stderr, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **OFFLINE_ENV},
    )
    rc, stderr, kib = json.loads(out.stdout)
    return rc, stderr, kib // 1024


def test_report_on_a_deflate_bomb_stays_within_the_cap(tmp_path, tiny_model_dir):
    """The issue's probe: a 300 KB file holding a 300 MiB private element took `report` to
    672 MB. Now its peak stays within a small multiple of the 64 MiB cap above that of a run
    refusing a harmless file the same way."""
    bomb = deflated_dicom(tmp_path / "bomb.dcm", 300 << 20)
    assert bomb.stat().st_size < 400_000
    harmless = write_dicom(tmp_path / "no-pixels.dcm", np.zeros((8, 8), np.uint16))
    from pydicom import dcmread

    ds = dcmread(harmless)
    del ds.PixelData
    ds.save_as(harmless, enforce_file_format=True)
    rc, err, base = _peak_mb(tool("xrayqwen2vl"), "report", "--model", str(tiny_model_dir), str(harmless))
    assert rc == 2 and "without pixel data" in err, err
    rc, err, peak = _peak_mb(tool("xrayqwen2vl"), "report", "--model", str(tiny_model_dir), str(bomb))
    assert rc == 2, err
    assert err.strip().splitlines() == [
        f"xrayqwen2vl report: error: {bomb}: deflated DICOM dataset larger than 64 MiB once inflated; "
        "convert it to an uncompressed or JPEG 2000 DICOM, or to PNG"
    ]
    assert peak - base < 3 * 64, (base, peak)  # the cap and its copies, not 300 MiB and its copies


@pytest.mark.slow
def test_the_real_web_server_names_the_view_never_the_file(tiny_model_dir, tmp_path):
    """The issue's probes through the real app in Chromium: garbage behind a PNG signature named
    after a patient, a TIFF named .png and the deflate bomb. The page and the server log give
    the view and our reason; neither the file name nor the server's folder appears anywhere."""
    from web_support import browser_context, clear, free_port, generate, open_app, server, upload

    files = tmp_path / "files"
    files.mkdir()
    garbage = _garbage_png(files)
    tiff = files / f"{NAME}_2.png"
    Image.new("L", (32, 32), 90).save(tiff, format="TIFF")
    bomb = deflated_dicom(files / f"{NAME}_3.dcm", 300 << 20)
    cases = [
        (garbage, "view 1 (frontal): corrupt or truncated PNG (UnidentifiedImageError)"),
        (tiff, "view 1 (frontal): a TIFF image; give a PNG, JPEG or DICOM file"),
        (bomb, "view 1 (frontal): deflated DICOM dataset larger than 64 MiB once inflated"),
    ]
    port, log = free_port(), tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}"
    args = [tool("xrayqwen2vl"), "web", "--model", str(tiny_model_dir), "--port", str(port)]
    with server(args + ["--max-new-tokens", "4"], log, url, env={"GRADIO_TEMP_DIR": str(tmp_path / "g")}):
        with browser_context() as ctx:
            page = open_app(ctx, url)
            for path, message in cases:
                clear(page)
                upload(page, [path])
                status, report = generate(page)
                assert message in status and report == "", (message, status)
                html = page.inner_text("#status") + page.inner_text("#report")
                assert NAME not in html and str(tmp_path / "g") not in html
    text = log.read_text()
    for _, message in cases:
        assert f"xrayqwen2vl web: refused an upload: {message}" in text
    refusals = [line for line in text.splitlines() if "refused an upload" in line]
    assert len(refusals) == 3 and not any(NAME in line or "/" in line for line in refusals), refusals
    assert NAME not in text, [line for line in text.splitlines() if NAME in line]
