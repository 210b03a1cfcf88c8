"""Visual tokens per view, as the configs and doc/gpu-quickstart.md quote them, computed with the
real pipeline: LLaMA-Factory's Qwen2-VL plugin scales an image to at most image_max_pixels, then
the Qwen2-VL image processor (patch 14, 2×2 merge) turns it into a grid; tokens = grid / 4."""

from __future__ import annotations

import math
import re

import pytest
from configs_support import load, rel, training_configs
from conftest import REPO

TRAIN = training_configs()
QUOTED = {(512, 512): 324, (512, 624): 340}  # (width, height) -> tokens, as the comments say
QWEN2VL_MAX_PIXELS = 12845056
MOST = 352  # the most tokens any view of a chest film (aspect ratio 1:5 to 5:1) gets at 262144 pixels


@pytest.fixture(scope="module")
def tokens_of():
    from llamafactory.data.mm_plugin import get_mm_plugin
    from PIL import Image
    from transformers import Qwen2VLImageProcessor

    plugin = get_mm_plugin("qwen2_vl", image_token="<|image_pad|>")
    # Qwen2-VL-7B-Instruct's preprocessor_config.json values, given explicitly: in transformers
    # 5.6.0 Qwen2VLImageProcessor(max_pixels=…) (the tiny model's) changes the defaults of every
    # later instance in the process.
    processor = Qwen2VLImageProcessor(min_pixels=3136, max_pixels=QWEN2VL_MAX_PIXELS)

    def tokens(width: int, height: int, max_pixels: int, min_pixels: int = 3136) -> int:
        image = plugin._preprocess_image(
            Image.new("RGB", (width, height)), image_max_pixels=max_pixels, image_min_pixels=min_pixels
        )
        grid = processor(images=[image], return_tensors="pt")["image_grid_thw"][0].tolist()
        return math.prod(grid) // processor.merge_size**2

    return tokens


def test_the_quoted_counts(tokens_of):
    for (w, h), n in QUOTED.items():
        assert tokens_of(w, h, 262144) == n
        assert tokens_of(h, w, 262144) == n
    # Without the cap (LLaMA-Factory's default 768 × 768) 512 × 624 is not scaled down: 396, the
    # figure of data/README.md's table.
    assert tokens_of(512, 624, 768 * 768) == 396


def test_the_most_tokens_a_view_gets(tokens_of):
    """Scaling down to 262,144 pixels and rounding each side to 28 can land above 324: the most,
    over shapes from 1:5 to 5:1, is 352 (447 × 619 is one such shape)."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    def fast(w, h):  # the plugin's scaling and the processor's own resize function
        if w * h > 262144:
            f = math.sqrt(262144 / (w * h))
            w, h = int(w * f), int(h * f)
        rh, rw = smart_resize(h, w, factor=28, min_pixels=3136, max_pixels=QWEN2VL_MAX_PIXELS)
        return rh * rw // 784

    shapes = [(w, h) for w in range(300, 2600, 23) for h in range(300, 2600, 29) if 0.2 <= h / w <= 5]
    assert max(fast(w, h) for w, h in shapes) == MOST
    assert tokens_of(447, 619, 262144) == MOST == fast(447, 619)


@pytest.mark.parametrize("path", TRAIN, ids=[rel(p) for p in TRAIN])
def test_configs_quote_the_counts_and_fit_two_views(path):
    cfg = load(path)
    assert cfg["image_max_pixels"] == 262144
    text = path.read_text(encoding="utf-8")
    comment = re.sub(r"\n#\s*", " ", text)
    assert "324 visual tokens for a 512x512 view, 340 for 512x624, at most 352" in comment, rel(path)
    assert not re.search(r"\b33[46] (visual )?tokens\b|2 x 336", text), rel(path)
    assert cfg["cutoff_len"] >= 2 * (MOST + 2) + 512


def test_quickstart_quotes_the_counts():
    text = (REPO / "doc" / "gpu-quickstart.md").read_text(encoding="utf-8")
    for n in ("324", "340", "352"):
        assert n in text
    assert "334" not in text
