"""Readers for the evaluation inputs; every error names the file and the line (or entry)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..data.records import InputFileError


@dataclass
class Prediction:
    prompt: str
    predict: str
    label: str
    line: int


@dataclass
class DatasetSample:
    """One ShareGPT sample of our datasets: the report and the image paths (relative to media_dir)."""

    report: str
    images: list[str] = field(default_factory=list)
    prompt: str = ""


def _jsonl(path: Path):
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputFileError(f"{path}:{n}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise InputFileError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
            yield n, obj


def _string_field(path: Path, n: int, obj: dict, key: str) -> str:
    if key not in obj:
        raise InputFileError(f'{path}:{n}: missing "{key}"')
    value = obj[key]
    if not isinstance(value, str):
        raise InputFileError(f'{path}:{n}: "{key}" must be a string, got {type(value).__name__}')
    return value


def read_predictions(path: str | Path) -> list[Prediction]:
    """LLaMA-Factory's generated_predictions.jsonl: one object per line with prompt, predict, label."""
    path = Path(path)
    out = []
    for n, obj in _jsonl(path):
        prompt = obj.get("prompt", "")
        if not isinstance(prompt, str):
            raise InputFileError(f'{path}:{n}: "prompt" must be a string, got {type(prompt).__name__}')
        out.append(
            Prediction(
                prompt, _string_field(path, n, obj, "predict"), _string_field(path, n, obj, "label"), n
            )
        )
    if not out:
        raise InputFileError(f"{path}: no predictions (empty file)")
    return out


def read_reports(path: str | Path) -> list[tuple[str, str]]:
    """Input of ``label``: one ``{"id": …, "text": …}`` per line; ids must be unique."""
    path = Path(path)
    out, seen = [], {}
    for n, obj in _jsonl(path):
        if "id" not in obj:
            raise InputFileError(f'{path}:{n}: missing "id"')
        rid = obj["id"]
        if not isinstance(rid, (str, int)) or isinstance(rid, bool):
            raise InputFileError(f'{path}:{n}: "id" must be a string or an integer')
        rid = str(rid)
        if rid in seen:
            raise InputFileError(f'{path}:{n}: duplicate id "{rid}" (first on line {seen[rid]})')
        seen[rid] = n
        out.append((rid, _string_field(path, n, obj, "text")))
    if not out:
        raise InputFileError(f"{path}: no reports (empty file)")
    return out


def read_dataset(path: str | Path) -> list[DatasetSample]:
    """One of our ShareGPT dataset files (a JSON list of {"messages": […], "images": […]})."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputFileError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, list):
        raise InputFileError(f"{path}: expected a JSON list of samples")
    out = []
    for k, sample in enumerate(data):
        where = f"{path}: entry {k}"
        if not isinstance(sample, dict) or not isinstance(sample.get("messages"), list):
            raise InputFileError(f'{where}: expected an object with a "messages" list')
        turns = [m for m in sample["messages"] if isinstance(m, dict)]
        user = [m.get("content", "") for m in turns if m.get("role") == "user"]
        assistant = [m.get("content", "") for m in turns if m.get("role") == "assistant"]
        if not assistant or not isinstance(assistant[-1], str):
            raise InputFileError(f"{where}: no assistant turn (the reference report)")
        images = sample.get("images", [])
        if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
            raise InputFileError(f'{where}: "images" must be a list of paths')
        out.append(DatasetSample(assistant[-1], images, user[0] if user else ""))
    if not out:
        raise InputFileError(f"{path}: no samples")
    return out
