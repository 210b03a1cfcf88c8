"""Reference points for a model's numbers, written as LLaMA-Factory prediction files.

- ``most_common``: the most frequent training report (exact text after whitespace
  normalisation; ties go to the one seen first) for every test study — what a collapsed model
  writes (``evaluate`` scores the same idea on every run with the most common *reference* of
  the evaluated studies, see ``constant_baseline`` in evaluate.py);
- ``nearest_neighbour``: the report of the most similar training study by a simple image
  feature: each study's first image (prepare puts the frontal view first) in greyscale,
  downsampled to 16×16 with a box filter, centred and scaled to unit length; similarity is the
  dot product (cosine); ties go to the earlier training study.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.images import MAX_PIXELS
from ..data.records import InputFileError
from ..fileio import atomic_write_text, check_regular_file
from .inputs import DatasetSample

FEATURE_SIDE = 16
BASELINES = ("most_common", "nearest_neighbour")
_WS = re.compile(r"\s+")


def most_common_text(texts: list[str]) -> tuple[str, int]:
    """The most frequent text after whitespace normalisation (ties: the one seen first), its count."""
    counts = Counter(_WS.sub(" ", t).strip() for t in texts)
    return counts.most_common(1)[0]


def constant_description(const: dict, n: int) -> str:
    """Which reference the constant baseline writes, in words."""
    if const["count"] == 1:
        return f"the first reference (no reference repeats among the {n} studies) written for every study"
    return f"the most common reference ({const['count']} of {n} studies) written for every study"


def most_common_report(train: list[DatasetSample]) -> tuple[str, int]:
    return most_common_text([s.report for s in train])


def image_feature(path: Path, side: int = FEATURE_SIDE) -> np.ndarray:
    check_regular_file(path, "image file")  # a FIFO is never opened
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise InputFileError(
                    f"{path}: {im.width}x{im.height} pixels, more than {MAX_PIXELS:,}; refused"
                )
            small = im.convert("L").resize((side, side), Image.Resampling.BOX)
    except (OSError, Image.DecompressionBombError) as e:
        raise InputFileError(f"{path}: cannot read image ({type(e).__name__})") from None
    v = np.asarray(small, dtype=np.float64).ravel()
    v -= v.mean()
    norm = np.linalg.norm(v)
    return v / norm if norm > 0 else v


def study_features(samples: list[DatasetSample], media_dir: Path, where: Path) -> np.ndarray:
    feats = []
    for k, s in enumerate(samples):
        if not s.images:
            raise InputFileError(f"{where}: entry {k}: no image, the nearest-neighbour baseline needs one")
        feats.append(image_feature(media_dir / s.images[0]))
    return np.stack(feats)


def nearest_neighbour_reports(
    train: list[DatasetSample],
    test: list[DatasetSample],
    train_media: Path,
    test_media: Path,
    train_path,
    test_path,
) -> list[str]:
    a = study_features(train, train_media, train_path)
    b = study_features(test, test_media, test_path)
    best = np.argmax(b @ a.T, axis=1)  # argmax returns the first of equal maxima
    return [train[i].report for i in best]


def write_predictions(path: Path, test: list[DatasetSample], predicted: list[str]) -> None:
    lines = [
        json.dumps({"prompt": s.prompt, "predict": p, "label": s.report}, ensure_ascii=False) + "\n"
        for s, p in zip(test, predicted, strict=True)
    ]
    atomic_write_text(path, "".join(lines))
