"""The RGB copies prepare writes (``data/images.py`` ``write_copy``), against the plain way of making
them (decode in full, make RGB, resize bicubic): a shrunk JPEG is decoded at a reduced scale and
stays within a grey level of it; every other source gives exactly its pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from xrayqwen2vl.data.images import PNG_COMPRESS_LEVEL, fit_size, to_rgb, write_copy

MAX_PIXELS = 65536


def film(w: int = 1600, h: int = 1920, seed: int = 0) -> np.ndarray:
    """A smooth film-like picture with grain, 8-bit grey."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    a = 120 + 60 * np.cos((x / w - 0.5) * 6) * np.exp(-(((y / h) - 0.5) ** 2) * 4)
    a += 30 * np.sin(y / 40.0) * (np.abs(x / w - 0.5) > 0.1)
    a += np.random.default_rng(seed).normal(0, 2.0, a.shape)
    return np.clip(a, 0, 255).astype(np.uint8)


def plain_copy(src, max_pixels: int | None) -> np.ndarray:
    with Image.open(src) as img:
        img.load()
        out = to_rgb(img)
    if max_pixels:
        out = out.resize(fit_size(out.width, out.height, max_pixels), Image.BICUBIC)
    return np.asarray(out, dtype=np.int16)


def written(src, tmp_path, max_pixels: int | None) -> np.ndarray:
    dest = tmp_path / "copy.png"
    write_copy(src, dest, max_pixels)
    with Image.open(dest) as img:
        assert img.format == "PNG" and img.mode == "RGB"
        return np.asarray(img, dtype=np.int16)


def test_a_shrunk_jpeg_is_decoded_at_a_reduced_scale_within_a_grey_level(tmp_path):
    src = tmp_path / "film.jpg"
    Image.fromarray(film()).save(src, format="JPEG", quality=90)
    got, want = written(src, tmp_path, MAX_PIXELS), plain_copy(src, MAX_PIXELS)
    assert got.shape == want.shape == (*fit_size(1600, 1920, MAX_PIXELS)[::-1], 3)
    diff = np.abs(got - want)
    # not the full decode (that would be equal to the grey level), and close to it
    assert 0 < diff.mean() < 0.5, diff.mean()
    assert np.percentile(diff, 99) <= 2


def test_a_jpeg_not_shrunk_is_decoded_in_full(tmp_path):
    src = tmp_path / "small.jpg"
    Image.fromarray(film(200, 240)).save(src, format="JPEG", quality=90)
    assert np.array_equal(written(src, tmp_path, MAX_PIXELS), plain_copy(src, None))


@pytest.mark.parametrize(
    "mode", ["L", "RGB", "I;16", "P", "LA"], ids=["grey", "rgb", "16-bit", "palette", "alpha"]
)
@pytest.mark.parametrize("max_pixels", [MAX_PIXELS, None], ids=["shrunk", "full-size"])
def test_other_sources_give_exactly_the_plain_copy(mode, max_pixels, tmp_path):
    """Grey and RGB are resized before they are made RGB (the same pixels); 16-bit, palette and
    alpha are made RGB first (16-bit scaled by the whole film's range, as before)."""
    grey = film(400, 480)
    img = {
        "L": lambda: Image.fromarray(grey),
        "RGB": lambda: Image.fromarray(grey).convert("RGB"),
        "I;16": lambda: Image.fromarray(grey.astype(np.uint16) * 200),
        "P": lambda: Image.fromarray(grey).convert("RGB").convert("P"),
        "LA": lambda: Image.fromarray(grey).convert("LA"),
    }[mode]()
    src = tmp_path / "src.png"
    img.save(src, format="PNG")
    assert Image.open(src).mode == mode
    assert np.array_equal(written(src, tmp_path, max_pixels), plain_copy(src, max_pixels))


def test_the_copy_is_compressed_at_the_set_level(tmp_path):
    """The level changes the bytes, never the pixels: the file equals a save at that level."""
    import io

    src = tmp_path / "src.png"
    Image.fromarray(film(400, 480)).save(src, format="PNG")
    dest = tmp_path / "copy.png"
    write_copy(src, dest)
    buf = io.BytesIO()
    Image.fromarray(film(400, 480)).convert("RGB").save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    assert dest.read_bytes() == buf.getvalue()
