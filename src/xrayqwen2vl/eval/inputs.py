"""Readers for the evaluation inputs; every error names the file and the line (or entry)."""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..data.records import InputFileError
from ..fileio import check_regular_file, loads_json


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


def decode_utf8(path: Path, n: int | None, raw: bytes) -> str:
    """``raw`` as UTF-8, else an error naming the file, the line (when known) and the column."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = n if n is not None else raw.count(b"\n", 0, e.start) + 1
        start = raw.rfind(b"\n", 0, e.start) + 1 if n is None else 0
        column = len(raw[start : e.start].decode("utf-8", "replace")) + 1
        raise InputFileError(
            f"{path}:{line}: not UTF-8 (byte 0x{raw[e.start]:02x} at column {column}); save the file as UTF-8"
        ) from None


def read_jsonl(path: Path):
    """(line number, object) for each non-blank line of a JSON-lines file."""
    check_regular_file(path, "JSON-lines file", missing="no such file")
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            line = decode_utf8(path, n, raw).rstrip("\r\n")  # the newline is not part of the record
            if not line.strip():
                continue
            try:
                obj = loads_json(line, f"{path}:{n}")
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
    return _text_only(path, n, key, value)


# A JSON escape like "\ud800" decodes to half of a UTF-16 pair, which no UTF-8 file can hold:
# found at reading, naming the line, rather than when the outputs are written.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _text_only(path: Path, n: int, key: str, value: str) -> str:
    m = _LONE_SURROGATE.search(value)
    if m:
        raise InputFileError(
            f'{path}:{n}: "{key}" holds a lone surrogate (\\u{ord(m.group()):04x} at character '
            f"{m.start() + 1}), which is not text; fix the escape"
        )
    return value


def read_predictions(path: str | Path) -> list[Prediction]:
    """LLaMA-Factory's generated_predictions.jsonl: one object per line with prompt, predict, label."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return read_leaderboard_predictions(path)
    out = []
    for n, obj in read_jsonl(path):
        prompt = obj.get("prompt", "")
        if not isinstance(prompt, str):
            raise InputFileError(f'{path}:{n}: "prompt" must be a string, got {type(prompt).__name__}')
        _text_only(path, n, "prompt", prompt)
        out.append(
            Prediction(
                prompt, _string_field(path, n, obj, "predict"), _string_field(path, n, obj, "label"), n
            )
        )
    if not out:
        raise InputFileError(f"{path}: no predictions (empty file)")
    if not any(p.predict.strip() for p in out):
        raise InputFileError(
            f'{path}: every "predict" is empty ({len(out)} lines): generation wrote nothing, nothing to evaluate'
        )
    return out


def read_leaderboard_predictions(path: Path) -> list[Prediction]:
    """A ReXrank submission file (what ``rexrank-predict`` writes: the leaderboard's test JSON
    with a ``model_prediction`` per study) as predictions: the study key as the prompt, the
    reference from the study's own sections. A prediction that reads "Findings: … Impression: …"
    is of the full-report track and is scored against both sections; else (the findings track)
    against the findings, or the impression where the study has no findings."""
    from ..data.formats.common import iter_json_object
    from ..data.formats.rexrank import reference_sections
    from ..data.text import build_target

    out = []
    for n, (key, study) in enumerate(iter_json_object(path, "ReXrank predictions"), start=1):
        if not isinstance(study, dict) or not isinstance(study.get("model_prediction"), str):
            raise InputFileError(f'{path}: study {key!r}: no "model_prediction" string')
        predict = study["model_prediction"]
        findings, impression = reference_sections(study)
        full = "impression:" in predict.lower()
        label = build_target(findings, impression) if full else findings or impression
        out.append(Prediction(key, predict, label, n))
    if not out:
        raise InputFileError(f"{path}: no studies")
    return out


def read_reports(path: str | Path) -> list[tuple[str, str]]:
    """Input of ``label``: one ``{"id": …, "text": …}`` per line; ids must be unique."""
    path = Path(path)
    out, seen = [], {}
    for n, obj in read_jsonl(path):
        if "id" not in obj:
            raise InputFileError(f'{path}:{n}: missing "id"')
        rid = obj["id"]
        if not isinstance(rid, (str, int)) or isinstance(rid, bool):
            raise InputFileError(f'{path}:{n}: "id" must be a string or an integer')
        rid = _text_only(path, n, "id", str(rid))
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
    check_regular_file(path, "dataset file", missing="no such file")
    try:
        data = loads_json(decode_utf8(path, None, path.read_bytes()), str(path))
    except json.JSONDecodeError as e:
        raise InputFileError(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
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


class OutputFolderError(ValueError):
    """The output folder cannot be created or written; raised before any work is done."""


def check_output_folder(out: str | Path) -> Path:
    """Create ``out`` if needed and prove a file can be written in it, or fail with one line."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"{out}: exists and is not a folder (--out must be a folder)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise OutputFolderError(f"{out}: cannot write there ({e.strerror or e})") from None
    return out
