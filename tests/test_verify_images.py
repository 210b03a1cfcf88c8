"""The collection-scale image check: truncated and corrupt JPEG/PNG files caught from their
structure without a decode (fast, the default), and the opt-in full decode."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from xrayqwen2vl.data.verify import check_in_order, fast_check, full_check, verify_images


def _film(w: int = 320, h: int = 384) -> Image.Image:
    """A smooth chest-film-like picture (not noise), so the JPEG has real entropy-coded data."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    a = 120 + 60 * np.cos((x / w - 0.5) * 6) * np.exp(-(((y / h) - 0.5) ** 2) * 4)
    a += 30 * np.sin(y / 9.0) * (np.abs(x / w - 0.5) > 0.1)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def _bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return _bytes(_film(), "JPEG", quality=90)


@pytest.fixture(scope="module")
def png() -> bytes:
    return _bytes(_film(), "PNG")


def _file(tmp_path, name: str, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_fast_check_catches_a_jpeg_cut_in_half(tmp_path, jpeg):
    whole = fast_check(_file(tmp_path, "whole.jpg", jpeg))
    assert whole.ok and (whole.width, whole.height, whole.mode) == (320, 384, "L")
    half = fast_check(_file(tmp_path, "half.jpg", jpeg[: len(jpeg) // 2]))
    assert not half.ok
    assert half.reason == "image unreadable (JPEG truncated (no end-of-image marker at the end of the file))"


@pytest.mark.parametrize("keep", [0.05, 0.25, 0.5, 0.75, 0.95, 0.999])
def test_fast_check_catches_a_jpeg_cut_anywhere(tmp_path, jpeg, keep):
    assert not fast_check(_file(tmp_path, "cut.jpg", jpeg[: int(len(jpeg) * keep)])).ok


def test_fast_check_jpeg_faults(tmp_path, jpeg):
    header_cut = fast_check(_file(tmp_path, "h.jpg", jpeg[:100]))
    assert not header_cut.ok and "JPEG cut off" in header_cut.reason
    b = bytearray(jpeg)
    sof = b.find(b"\xff\xc0")
    b[sof + 4] = 12
    twelve = fast_check(_file(tmp_path, "12.jpg", bytes(b)))
    assert twelve.reason == "image unreadable (12-bit JPEG (Pillow decodes 8-bit JPEG only))"
    b = bytearray(jpeg)
    b[sof + 5 : sof + 9] = (60000).to_bytes(2, "big") + (60000).to_bytes(2, "big")  # declared 60000x60000
    bomb = fast_check(_file(tmp_path, "bomb.jpg", bytes(b)))
    assert bomb.reason.startswith("image too large (60000x60000 pixels")
    trailer = fast_check(_file(tmp_path, "t.jpg", jpeg + b"\x00" * 10 + b"vendor trailer"))
    assert trailer.ok, "data after the end-of-image marker is harmless"
    colour = fast_check(_file(tmp_path, "rgb.jpg", _bytes(_film().convert("RGB"), "JPEG")))
    assert colour.ok and colour.mode == "RGB"
    progressive = fast_check(_file(tmp_path, "p.jpg", _bytes(_film(), "JPEG", progressive=True)))
    assert progressive.ok
    progressive_cut = _bytes(_film(), "JPEG", progressive=True)
    assert not fast_check(_file(tmp_path, "pc.jpg", progressive_cut[: len(progressive_cut) // 2])).ok


def test_fast_check_png_faults(tmp_path, png):
    ok = fast_check(_file(tmp_path, "ok.png", png))
    assert ok.ok and (ok.width, ok.height, ok.mode) == (320, 384, "L")
    assert "PNG truncated" in fast_check(_file(tmp_path, "half.png", png[: len(png) // 2])).reason
    assert "no IEND" in fast_check(_file(tmp_path, "noend.png", png[:-12])).reason
    b = bytearray(png)
    b[20] ^= 0xFF  # inside IHDR: width
    assert "IHDR checksum" in fast_check(_file(tmp_path, "crc.png", bytes(b))).reason
    bomb = fast_check(_file(tmp_path, "bomb.png", _bytes(Image.new("1", (8000, 8000)), "PNG")))
    assert bomb.reason.startswith("image too large (8000x8000 pixels")
    deep = fast_check(
        _file(tmp_path, "d.png", _bytes(Image.fromarray(np.full((8, 8), 900, np.uint16)), "PNG"))
    )
    assert deep.ok and deep.mode == "I;16"  # prepare writes an 8-bit copy of such files
    rgba = fast_check(_file(tmp_path, "a.png", _bytes(_film().convert("RGBA"), "PNG")))
    assert rgba.mode == "RGBA"


def test_fast_check_other_files(tmp_path):
    assert fast_check(tmp_path / "missing.jpg").reason == "image file not found"
    assert fast_check(_file(tmp_path, "e.jpg", b"")).reason == "image file is empty (0 bytes)"
    html = fast_check(_file(tmp_path, "e.jpg", b"<html><body>403 Forbidden</body></html>"))
    assert not html.ok and "image unreadable" in html.reason
    bmp = fast_check(_file(tmp_path, "x.bmp", _bytes(_film(), "BMP")))  # decoded in full
    assert bmp.ok and bmp.width == 320


def test_full_check_sees_damage_inside_a_complete_file(tmp_path, png):
    """A PNG whose compressed pixels are damaged but whose chunk chain is intact: the structure
    check cannot see it; the full decode does."""
    start = png.find(b"IDAT") + 4
    b = bytearray(png)
    b[start + 50 : start + 90] = bytes(40)
    damaged = _file(tmp_path, "damaged.png", bytes(b))
    assert fast_check(damaged).ok
    full = full_check(damaged)
    assert not full.ok and "image unreadable" in full.reason


def test_full_check_decodes_in_draft_and_measures_symmetry(tmp_path, jpeg):
    frontal = full_check(_file(tmp_path, "f.jpg", jpeg))
    assert frontal.ok and (frontal.width, frontal.height) == (320, 384)  # the real size, not the draft's
    assert frontal.symmetry > 0.9  # the test film is left-right symmetric
    lopsided = np.asarray(_film(), dtype=np.float32)
    lopsided[:, :120] = 20
    side = full_check(_file(tmp_path, "s.jpg", _bytes(Image.fromarray(lopsided.astype(np.uint8)), "JPEG")))
    assert side.ok and side.symmetry < frontal.symmetry
    assert not full_check(_file(tmp_path, "half.jpg", jpeg[: len(jpeg) // 2])).ok


@pytest.mark.parametrize(("mode", "workers"), [("fast", 1), ("fast", 3), ("full", 2)])
def test_verify_images_in_order_with_workers(tmp_path, jpeg, mode, workers):
    paths = []
    for i in range(150):
        data = jpeg if i % 7 else jpeg[: len(jpeg) // 3]
        paths.append(_file(tmp_path, f"{i}.jpg", data) if i % 11 else None)
    results = list(verify_images(iter(paths), mode=mode, workers=workers, batch=8, in_flight=2))
    assert len(results) == len(paths)
    for i, (p, r) in enumerate(zip(paths, results, strict=True)):
        if p is None:
            assert r is None
        else:
            assert r.ok == bool(i % 7), i


def test_verify_images_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="--verify-images 'quick'"):
        list(verify_images([], mode="quick"))


@pytest.mark.parametrize("workers", [1, 2])
def test_check_in_order_mixes_fast_and_full_jobs(tmp_path, jpeg, png, workers):
    """Jobs of both modes (as prepare sends them: a decode only where the view is unknown), in
    input order; few full jobs among many fast ones still come back in their place."""
    start = png.find(b"IDAT") + 4
    damaged = bytearray(png)
    damaged[start + 50 : start + 90] = bytes(40)
    jobs, want = [], []
    for i in range(200):
        if i % 13 == 0:
            jobs.append(None)
            want.append(None)
            continue
        mode = "full" if i % 9 == 0 else "fast"
        data = bytes(damaged) if i % 5 == 0 else png if i % 2 else jpeg
        jobs.append((_file(tmp_path, f"{i}.{'png' if data[:4] == png[:4] else 'jpg'}", data), mode))
        want.append((mode, i % 5 != 0 or mode == "fast"))
    results = list(check_in_order(iter(jobs), workers=workers, batch=8, in_flight=2))
    assert len(results) == len(jobs)
    for i, (w, r) in enumerate(zip(want, results, strict=True)):
        if w is None:
            assert r is None
            continue
        mode, ok = w
        assert r.ok == ok, (i, r)
        assert (r.symmetry != 0.0) == (mode == "full" and ok), (i, mode, r.symmetry)
