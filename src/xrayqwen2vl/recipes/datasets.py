"""Checks of the data a config reads: dataset_info.json, the dataset files, and the images of a
sample of records."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .config import names
from .report import Report

SAMPLED_RECORDS = 32


def _prepare_hint(dataset_dir: str) -> str:
    return f"prepare the data: xrayqwen2vl prepare … --out {dataset_dir} (data/README.md)"


def load_records(path: Path) -> list:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    return data if isinstance(data, list) else [data]


def sample_indices(n: int, k: int = SAMPLED_RECORDS) -> list[int]:
    """k record numbers spread evenly over n records, the first and the last included."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def tokenized_data_ready(r: Report, tokenized_path) -> bool:
    """LLaMA-Factory loads a non-empty ``tokenized_path`` with ``load_from_disk`` and ignores the
    dataset keys: then only that folder is checked (the images it names must still be readable
    on every node, at the paths they had when it was tokenised)."""
    if not tokenized_path or not Path(tokenized_path).is_dir() or not any(Path(tokenized_path).iterdir()):
        return False  # absent or empty: LLaMA-Factory tokenises the datasets and saves them there
    if not (Path(tokenized_path) / "dataset_dict.json").is_file():
        r.fail(
            f"tokenized_path: {tokenized_path} is not empty but holds no saved dataset (dataset_dict.json): "
            "empty it, or point tokenized_path= at the folder a first run saved"
        )
    return True


def check_data(r: Report) -> None:
    r.checked.append("data")
    values = r.recipe.values
    keys = ["dataset", "eval_dataset"] if r.recipe.job == "train" else ["eval_dataset"]
    if not names(values.get(keys[0])):
        r.fail(
            f"{keys[0]}: not set: name the dataset of dataset_info.json to {'train' if keys[0] == 'dataset' else 'predict'} on"
        )
        return
    if tokenized_data_ready(r, values.get("tokenized_path")):
        return
    dataset_dir = str(values.get("dataset_dir", "data"))
    media_dir = str(values.get("media_dir") or dataset_dir)
    info_path = Path(dataset_dir) / "dataset_info.json"
    if not info_path.is_file():
        where = (
            f"{dataset_dir} not found"
            if not Path(dataset_dir).is_dir()
            else f"{info_path.as_posix()} not found"
        )
        r.fail(f"dataset_dir: {where}: {_prepare_hint(dataset_dir)}")
        return
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except ValueError as e:
        r.fail(f"dataset_dir: {info_path.as_posix()} is not valid JSON ({e}): {_prepare_hint(dataset_dir)}")
        return
    loaded: dict[str, list | None] = {}
    for key in keys:
        for name in names(values.get(key)):
            entry = info.get(name)
            if not isinstance(entry, dict):
                listed = ", ".join(sorted(info)[:8]) or "nothing"
                r.fail(
                    f"{key}: {name} is not in {info_path.as_posix()} (it lists {listed}): "
                    f"{_prepare_hint(dataset_dir)} with --name {name.rsplit('_', 1)[0]}, or fix {key}="
                )
                continue
            check_dataset_file(r, key, name, entry, dataset_dir, media_dir, loaded, info)


def prepared_instead(info: dict, dataset_dir: str, name: str) -> list[str]:
    """Other datasets of dataset_info.json for the same split whose files exist (``r2gen_train``
    when ``openi_train`` is missing): what was prepared under another ``--name``."""
    if "_" not in name:
        return []
    split = name.rsplit("_", 1)[1]
    return sorted(
        other
        for other, entry in info.items()
        if other != name
        and other.endswith(f"_{split}")
        and isinstance(entry, dict)
        and entry.get("file_name")
        and (Path(dataset_dir) / entry["file_name"]).is_file()
    )


def check_dataset_file(r: Report, key, name, entry, dataset_dir, media_dir, loaded, info=None) -> None:
    file_name = entry.get("file_name")
    if not file_name:
        if not any(
            entry.get(k) for k in ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")
        ):
            r.fail(f"{key}: {name} in {dataset_dir}/dataset_info.json has no file_name")
        return
    path = Path(dataset_dir) / file_name
    shown = path.as_posix()
    if not path.exists():
        others = prepared_instead(info or {}, dataset_dir, name)
        instead = f", or train on what is there: {key}={others[0]}" if others else ""
        r.fail(f"{key}: {shown} ({name}) not found: {_prepare_hint(dataset_dir)}{instead}")
        return
    if path.is_dir():
        return  # a folder of files: LLaMA-Factory reads them all; not sampled here
    if shown not in loaded:
        try:
            loaded[shown] = load_records(path)
        except (OSError, ValueError) as e:
            r.fail(f"{key}: {shown} ({name}) does not parse: {e}: {_prepare_hint(dataset_dir)}")
            loaded[shown] = None
            return
    records = loaded[shown]
    if records is None:
        return
    if not records:
        r.fail(
            f"{key}: {shown} ({name}) has no records: prepare kept nothing? see {dataset_dir}/manifest.json"
        )
        return
    column = (entry.get("columns") or {}).get("images")
    if not column:
        return
    bad = []
    picked = sample_indices(len(records))
    for i in picked:
        rec = records[i]
        images = rec.get(column) if isinstance(rec, dict) else None
        for image in images or []:
            ref = image.get("path") if isinstance(image, dict) else image
            if not isinstance(ref, str) or ref.startswith(("http://", "https://")):
                continue
            full = Path(ref) if os.path.isabs(ref) else Path(media_dir) / ref
            if not full.is_file():
                bad.append((i, rec.get("id") if isinstance(rec, dict) else None, ref))
                break
    if bad:
        i, rid, ref = bad[0]
        which = f"record {i}" + (f" (id {rid})" if rid is not None else "")
        r.fail(
            f"{key}: {shown} {which}: image {ref} not found under {media_dir} "
            f"({len(bad)} of {len(picked)} sampled records have a missing image): the images moved since "
            f"prepare; prepare again with --out {dataset_dir}, or pass media_dir=FOLDER"
        )
