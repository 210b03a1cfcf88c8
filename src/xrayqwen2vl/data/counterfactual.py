"""Counterfactual test splits for the image-reliance check: the same studies, the same prompts
and the same reference reports, with other images.

From a prepared split (a LLaMA-Factory ShareGPT file named in ``dataset_info.json``) write, beside
it in the same dataset folder:

- ``<split>_swapped.json``: the images permuted among the studies. Each image position is
  permuted separately (position 0, the frontal view prepare puts first, among all studies;
  position 1, the lateral, among the studies that have one; …), with a seeded random
  derangement, so no study keeps any of its own images and a frontal is replaced by another
  study's frontal. A position only one study has (say a single study with a third image) takes
  the last image of another study instead, counted in the manifest as a view mismatch.
- ``<split>_blank.json``: every image replaced by a black image of the same size
  (``<split>_blank/blank_<W>x<H>.png``, one file per size).
- their ``dataset_info.json`` entries (copies of the split's entry with the new ``file_name``),
  and ``<split>_counterfactual.json``: the seed and, per study, which study each image came from.

Nothing else changes, so predictions on these splits line up one to one with those on the split:
``llamafactory-cli train PREDICT.yaml eval_dataset=<split>_swapped output_dir=…`` predicts them,
and ``xrayqwen2vl reliance`` compares the three prediction files. Studies without images are
kept unchanged (there is nothing to swap) and counted in the manifest.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..fileio import (
    atomic_write_bytes,
    atomic_write_json,
    check_plain_name,
    check_regular_file,
    dump_json,
    quoted,
    refuse_output_over_inputs,
)
from .formats.common import load_json
from .images import MAX_PIXELS
from .records import InputFileError

SWAPPED, BLANK = "swapped", "blank"
KINDS = (SWAPPED, BLANK)


def counterfactual_name(split: str, kind: str) -> str:
    """Dataset name (and file stem) of a counterfactual split: ``openi_test`` -> ``openi_test_swapped``."""
    return f"{split}_{kind}"


def derangement(n: int, rng: np.random.Generator) -> list[int]:
    """donor[i] != i for every i (n >= 2): a random order, each taking the next one's (one cycle)."""
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 items, got {n}")
    order = rng.permutation(n)
    donor = [0] * n
    for j in range(n):
        donor[int(order[j])] = int(order[(j + 1) % n])
    return donor


def image_donors(image_counts: list[int], seed: int = 0) -> tuple[list[list[int]], int]:
    """For each study and image position, the study whose image replaces it; and how many
    positions had to take another position's image (only one study has that position).

    Position k is deranged among the studies with more than k images; a lone position takes the
    last image of another study with images (the next one in a seeded random order)."""
    rng = np.random.default_rng(seed)
    donors = [[-1] * c for c in image_counts]
    with_images = [i for i, c in enumerate(image_counts) if c > 0]
    mismatches = 0
    for k in range(max(image_counts, default=0)):
        having = [i for i, c in enumerate(image_counts) if c > k]
        if len(having) >= 2:
            for i, d in zip(having, derangement(len(having), rng), strict=True):
                donors[i][k] = having[d]
        else:
            (i,) = having
            others = [j for j in with_images if j != i]
            if not others:
                raise ValueError("only one study has images: there is no other study to take images from")
            donors[i][k] = others[int(rng.integers(len(others)))]
            mismatches += 1
    return donors, mismatches


def _read_split(dataset_dir: Path, split: str) -> tuple[dict, Path, list[dict]]:
    info_path = dataset_dir / "dataset_info.json"
    info = load_json(info_path, "dataset_info.json (run `xrayqwen2vl prepare` first)")
    entry = info.get(split) if isinstance(info, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("file_name"), str):
        known = ", ".join(quoted(k, 40) for k in sorted(info)[:20]) if isinstance(info, dict) else "none"
        raise InputFileError(f"{info_path}: no dataset {quoted(split)} with a file_name (datasets: {known})")
    path = dataset_dir / entry["file_name"]
    samples = load_json(path, f"split file (named by {info_path} for {split!r})")
    if not isinstance(samples, list) or not samples:
        raise InputFileError(f"{path}: expected a non-empty JSON list of samples")
    for k, s in enumerate(samples):
        images = s.get("images", []) if isinstance(s, dict) else None
        if not isinstance(images, list) or not all(isinstance(p, str) for p in images):
            raise InputFileError(f'{path}: entry {k}: expected an object whose "images" is a list of paths')
    return info, path, samples


def _image_size(path: Path, where: str) -> tuple[int, int]:
    try:
        check_regular_file(path, "image file")
    except InputFileError as e:
        raise InputFileError(
            f"{where}: cannot read image {path} ({str(e).removeprefix(f'{path}: ')})"
        ) from None
    try:
        with Image.open(path) as im:
            size = im.size
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise InputFileError(f"{where}: cannot read image {path} ({type(e).__name__})") from None
    if size[0] * size[1] > MAX_PIXELS:
        raise InputFileError(
            f"{where}: image {path} is {size[0]}x{size[1]} pixels, more than {MAX_PIXELS:,}; refused"
        )
    return size


def _blank_images(samples: list[dict], split_path: Path, media_dir: Path, blank_dir: Path) -> list[list[str]]:
    """Per study, the paths (relative to media_dir) of black images sized like its own."""
    written: dict[tuple[int, int], str] = {}
    out = []
    for k, s in enumerate(samples):
        paths = []
        for p in s.get("images", []):
            size = _image_size(media_dir / p, f"{split_path}: entry {k}")
            if size not in written:
                blank = blank_dir / f"blank_{size[0]}x{size[1]}.png"
                blank_dir.mkdir(parents=True, exist_ok=True)
                Image.new("L", size, 0).save(blank, format="PNG")
                written[size] = Path(os.path.relpath(blank, media_dir)).as_posix()
            paths.append(written[size])
        out.append(paths)
    return out


def write_counterfactuals(
    dataset_dir: str | Path,
    split: str,
    seed: int = 0,
    kinds: tuple[str, ...] = KINDS,
    media_dir: str | Path | None = None,
    other_inputs: dict | None = None,
) -> dict:
    """Write the counterfactual splits of ``split`` (see the module doc); return the manifest.
    ``split`` is a key of dataset_info.json, as untrusted as the file: a plain name only, so
    every output stays in the dataset folder. ``other_inputs`` (flag: path) are the command's
    other input files, which no output may replace."""
    dataset_dir = Path(dataset_dir)
    media = Path(media_dir) if media_dir is not None else dataset_dir
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"kinds {list(kinds)}: expected some of {', '.join(KINDS)}")
    check_plain_name(split, f"--split (a dataset of {dataset_dir / 'dataset_info.json'})")
    info, split_path, samples = _read_split(dataset_dir, split)
    refuse_output_over_inputs(
        {f"DATASET_DIR/{n}": dataset_dir / n for n in output_names(split)},
        {"the split file": split_path, **(other_inputs or {})},
        {f"DATASET_DIR/{counterfactual_name(split, BLANK)}": dataset_dir / counterfactual_name(split, BLANK)},
    )
    counts = [len(s.get("images", [])) for s in samples]
    if sum(1 for c in counts if c) < 2:
        raise InputFileError(f"{split_path}: fewer than two studies with images: nothing to swap")
    ids = [str(s.get("id", k)) if isinstance(s, dict) else str(k) for k, s in enumerate(samples)]
    manifest: dict = {
        "split": split,
        "source": split_path.name,
        "studies": len(samples),
        "images": sum(counts),
        "studies_without_images": sum(1 for c in counts if c == 0),
        "seed": seed,
        "counterfactuals": {},
    }
    replaced: dict[str, list[list[str]]] = {}
    if SWAPPED in kinds:
        donors, mismatches = image_donors(counts, seed)
        replaced[SWAPPED] = [
            [samples[d]["images"][min(k, counts[d] - 1)] for k, d in enumerate(row)] for row in donors
        ]
        manifest["counterfactuals"][SWAPPED] = {
            "rule": "images permuted among studies, each image position separately (seeded derangement)",
            "view_mismatches": mismatches,
            "donors": [
                {"id": ids[i], "image_from": [ids[d] for d in row]} for i, row in enumerate(donors) if row
            ],
        }
    if BLANK in kinds:
        blank_dir = dataset_dir / counterfactual_name(split, BLANK)
        replaced[BLANK] = _blank_images(samples, split_path, media, blank_dir)
        manifest["counterfactuals"][BLANK] = {
            "rule": "every image replaced by a black image of the same size",
            "folder": blank_dir.name,
        }
    for kind, images in replaced.items():
        name = counterfactual_name(split, kind)
        out = []
        for s, paths in zip(samples, images, strict=True):
            s = copy.deepcopy(s)
            if "images" in s:
                s["images"] = paths
            out.append(s)
        file_name = f"{name}.json"
        atomic_write_bytes(dataset_dir / file_name, dump_json(out).encode("utf-8"))
        info[name] = {**copy.deepcopy(info[split]), "file_name": file_name}
        manifest["counterfactuals"][kind].update({"dataset": name, "file_name": file_name})
    atomic_write_json(dataset_dir / "dataset_info.json", info)
    atomic_write_json(dataset_dir / f"{split}_counterfactual.json", manifest)
    return manifest


def output_names(split: str) -> list[str]:
    """The files ``write_counterfactuals`` writes in the dataset folder for ``split``."""
    names = [f"{counterfactual_name(split, kind)}.json" for kind in KINDS]
    return [*names, "dataset_info.json", f"{split}_counterfactual.json"]


def predict_overrides(output_dir: str, split: str, kind: str) -> list[str]:
    """The ``key=value`` overrides that turn a predict config on ``split`` into one on its
    counterfactual: the counterfactual dataset, and an output folder beside the normal one."""
    return [f"eval_dataset={counterfactual_name(split, kind)}", f"output_dir={output_dir.rstrip('/')}_{kind}"]
