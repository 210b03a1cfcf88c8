"""Visual tokens per view, as the configs and doc/gpu-quickstart.md quote them, computed with the
real pipeline: LLaMA-Factory's plugin of the family scales an image to at most image_max_pixels,
then the family's image processor turns it into a grid; tokens = grid / 4 (2×2 merge). Qwen2-VL
and Qwen2.5-VL cut 14-pixel patches (28×28 pixels a token), Qwen3-VL 16-pixel ones (32×32)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pytest
from configs_support import load, rel, training_configs
from conftest import REPO

TRAIN = training_configs()


@dataclass(frozen=True)
class Family:
    plugin: str
    patch: int
    min_pixels: int  # the real checkpoints' preprocessor_config.json
    max_pixels: int
    mean: tuple | None  # None: the processor's default (OpenAI CLIP)
    quoted: dict  # (width, height) -> tokens at 262144 pixels, as the comments say
    most: int  # the most tokens any view of a chest film (aspect ratio 1:5 to 5:1) gets at 262144
    quote: str  # the sentence every training config of the family carries

    @property
    def factor(self) -> int:
        return 2 * self.patch


FAMILIES = {
    "qwen2_vl": Family(
        "qwen2_vl", 14, 3136, 12845056, None, {(512, 512): 324, (512, 624): 340}, 352,
        "324 visual tokens for a 512x512 view, 340 for 512x624, at most 352",
    ),
    "qwen3_vl": Family(
        "qwen3_vl", 16, 65536, 16777216, (0.5, 0.5, 0.5), {(512, 512): 256, (512, 624): 252}, 272,
        "256 visual tokens for a 512x512 view, 252 for 512x624, at most 272",
    ),
}  # fmt: skip
FAMILY_OF_TEMPLATE = {"qwen2_vl": "qwen2_vl", "qwen3_vl_nothink": "qwen3_vl", "qwen3_vl": "qwen3_vl"}
CHEST_SHAPES = [(w, h) for w in range(300, 2600, 23) for h in range(300, 2600, 29) if 0.2 <= h / w <= 5]


@pytest.fixture(scope="module")
def tokens_of():
    """family -> tokens(width, height, max_pixels, min_pixels) through the real pipeline."""
    from llamafactory.data.mm_plugin import get_mm_plugin
    from PIL import Image
    from transformers import Qwen2VLImageProcessor

    def counter(name: str):
        fam = FAMILIES[name]
        plugin = get_mm_plugin(fam.plugin, image_token="<|image_pad|>")
        # The real checkpoints' values, given explicitly (a fresh size dict: in transformers 5.5 and
        # 5.6 Qwen2VLImageProcessor(min_pixels=…) writes into the class default, the tiny model's).
        extra = {"image_mean": list(fam.mean), "image_std": list(fam.mean)} if fam.mean else {}
        size = {"shortest_edge": fam.min_pixels, "longest_edge": fam.max_pixels}
        processor = Qwen2VLImageProcessor(size=size, patch_size=fam.patch, merge_size=2, **extra)

        def tokens(width: int, height: int, max_pixels: int, min_pixels: int = fam.min_pixels) -> int:
            image = plugin._preprocess_image(
                Image.new("RGB", (width, height)), image_max_pixels=max_pixels, image_min_pixels=min_pixels
            )
            grid = processor(images=[image], return_tensors="pt")["image_grid_thw"][0].tolist()
            return math.prod(grid) // processor.merge_size**2

        return tokens

    return {name: counter(name) for name in FAMILIES}


def fast_tokens(fam: Family, w: int, h: int, max_pixels: int = 262144) -> int:
    """The plugin's scaling and the processor's own resize function, without images."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    if w * h > max_pixels:
        f = math.sqrt(max_pixels / (w * h))
        w, h = int(w * f), int(h * f)
    rh, rw = smart_resize(h, w, factor=fam.factor, min_pixels=fam.min_pixels, max_pixels=fam.max_pixels)
    return rh * rw // fam.factor**2


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_the_quoted_counts(name, tokens_of):
    for (w, h), n in FAMILIES[name].quoted.items():
        assert tokens_of[name](w, h, 262144) == n
        assert tokens_of[name](h, w, 262144) == n


def test_without_the_cap():
    """Without the cap (LLaMA-Factory's default 768 × 768) 512 × 624 is not scaled down: 396 tokens
    for Qwen2-VL (data/README.md's table), 320 for Qwen3-VL."""
    assert fast_tokens(FAMILIES["qwen2_vl"], 512, 624, 768 * 768) == 396
    assert fast_tokens(FAMILIES["qwen3_vl"], 512, 624, 768 * 768) == 320


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_the_most_tokens_a_view_gets(name, tokens_of):
    """Scaling down to 262,144 pixels and rounding each side to 28 (32) can land above 324 (256):
    the most, over shapes from 1:5 to 5:1, is 352 for Qwen2-VL (447 × 619 is one such shape) and
    272 for Qwen3-VL (a 1:4.5 film, 300 × 1344)."""
    fam = FAMILIES[name]
    most = max(fast_tokens(fam, w, h) for w, h in CHEST_SHAPES)
    assert most == fam.most
    w, h = next(s for s in CHEST_SHAPES if fast_tokens(fam, *s) == most)
    assert tokens_of[name](w, h, 262144) == most
    assert tokens_of[name](447, 619, 262144) == fast_tokens(fam, 447, 619)


@pytest.mark.parametrize("path", TRAIN, ids=[rel(p) for p in TRAIN])
def test_configs_quote_the_counts_and_fit_two_views(path):
    cfg = load(path)
    fam = FAMILIES[FAMILY_OF_TEMPLATE[cfg["template"]]]
    assert cfg["image_max_pixels"] == 262144
    text = path.read_text(encoding="utf-8")
    comment = re.sub(r"\n#\s*", " ", text)
    assert fam.quote in comment, rel(path)
    others = [f.quote for f in FAMILIES.values() if f is not fam]
    assert not any(q in comment for q in others), f"{rel(path)} quotes another family's counts"
    assert not re.search(r"\b33[46] (visual )?tokens\b|2 x 336", text), rel(path)
    assert cfg["cutoff_len"] >= 2 * (fam.most + 2) + 512


def test_quickstart_quotes_the_counts():
    text = (REPO / "doc" / "gpu-quickstart.md").read_text(encoding="utf-8")
    for n in ("324", "340", "352", "256", "252", "272"):
        assert n in text
    assert "334" not in text
