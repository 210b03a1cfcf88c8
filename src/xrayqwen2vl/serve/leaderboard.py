"""Predictions for the ReXrank leaderboard, through the same inference path as ``predict``.

The leaderboard gives a test JSON (study key -> image paths, references, context…) and runs the
participant's ``inference.py --input_json_file IN --save_json_file OUT --img_root_dir ROOT``; OUT
is IN with a ``model_prediction`` string added to every study: the findings alone for the
findings track, "Findings: … Impression: …" for the full-report track.

``predict_leaderboard`` does that with our model:
1. the JSON is prepared like any collection (``prepare --format rexrank``: the images checked,
   one frontal and one lateral view per study, the training prompt) into ``WORK/data``; every
   study must become a sample (a study whose images cannot be read stops the run, named);
2. the samples are cut into chunks of ``chunk_size``; each chunk is one run of
   ``scripts/predict.sh CONFIG`` (LLaMA-Factory's batched ``do_predict``, the preflight first) and
   its ``generated_predictions.jsonl`` is kept as ``WORK/predictions/chunk_NNNN.jsonl``; a rerun
   skips the chunks already done, so a stopped run resumes where it stopped;
3. the generated reports are cut to the track and written into OUT, every input study present.

``WORK`` (default: ``OUT`` + ``.work``) remembers the inputs it was made for (``job.json``): a
rerun with another input, model or config is refused rather than mixing two runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..data.formats.common import load_json
from ..data.formats.rexrank import ReXrankFile
from ..data.prepare import PrepareOptions, dataset_info_entry, prepare_dataset
from ..data.records import InputFileError
from ..fileio import atomic_write_json, atomic_write_text

REPO = Path(__file__).resolve().parents[3]
PREDICT_SCRIPT = "scripts/predict.sh"
DEFAULT_CONFIG = "configs/predict/qwen2vl_7b_lora_sft.yaml"
TRACKS = ("findings", "full")
NAME = "rexrank"
_HEADER = re.compile(r"\b(findings|impression)\s*:\s*", re.I)


@dataclass
class LeaderboardJob:
    input_json: str
    output_json: str
    images_dir: str
    config: str
    overrides: list[str] = field(default_factory=list)  # key=value for the predict config
    track: str = "full"
    chunk_size: int = 256
    with_context: bool = False
    work_dir: str | None = None

    @property
    def work(self) -> Path:
        return Path(self.work_dir) if self.work_dir else Path(f"{self.output_json}.work")


def model_overrides(model: str | None, adapter: str | None) -> list[str]:
    """``--model``/``--adapter`` as predict-config overrides: a model without an adapter is run
    in full (a merged model, or a base model)."""
    out = []
    if model:
        out.append(f"model_name_or_path={model}")
        if not adapter:
            out += ["adapter_name_or_path=null", "finetuning_type=full"]
    if adapter:
        out += [f"adapter_name_or_path={adapter}", "finetuning_type=lora"]
    return out


def sections_of(text: str) -> tuple[str, str]:
    """(findings, impression) of a generated report; text without headers counts as findings."""
    parts = _HEADER.split(text)
    if len(parts) == 1:
        return text.strip(), ""
    found = {"findings": parts[0].strip(), "impression": ""}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        found[name.lower()] = " ".join(x for x in (found.get(name.lower(), ""), body.strip()) if x)
    return found["findings"], found["impression"]


def for_track(text: str, track: str) -> str:
    """The ``model_prediction`` of a generated report: its findings (findings track; the whole
    text when it has no findings part) or "Findings: … Impression: …" with "None." for a
    missing section, as the leaderboard writes its references (full track)."""
    findings, impression = sections_of(text)
    if track == "findings":
        return findings or impression or text.strip()
    return f"Findings: {findings or 'None.'} Impression: {impression or 'None.'}"


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _check_work(job: LeaderboardJob) -> Path:
    """The work folder, made for this job (or refused when it holds another one)."""
    work = job.work
    stamp = {
        "input_sha256": _sha256(Path(job.input_json)),
        "images_dir": os.path.abspath(job.images_dir),
        "config": job.config,
        "overrides": job.overrides,
        "chunk_size": job.chunk_size,
        "with_context": job.with_context,
    }
    path = work / "job.json"
    if path.is_file():
        before = json.loads(path.read_text(encoding="utf-8"))
        if before != stamp:
            changed = ", ".join(k for k in stamp if before.get(k) != stamp[k])
            raise InputFileError(
                f"{work}: holds a run with other settings ({changed}); remove it or give another --work-dir"
            )
    else:
        work.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, stamp)
    return work


def _prepare(job: LeaderboardJob, work: Path, keys: list[str]) -> list[dict]:
    """The test JSON as samples, in input order, one per study key (else an error naming one)."""
    data = work / "data"
    test = data / f"{NAME}_test.json"
    if not test.is_file():
        options = PrepareOptions(format="rexrank", name=NAME, split="rexrank")
        records = ReXrankFile(job.input_json, with_context=job.with_context, for_prediction=True)
        manifest = prepare_dataset(
            records,
            job.images_dir,
            data,
            options,
            {"reports": job.input_json, "images_dir": job.images_dir},
            progress=False,
        )
        if manifest["skipped"]:
            first = manifest["skipped"][0]
            raise InputFileError(
                f"{job.input_json}: {len(manifest['skipped'])} studies cannot be predicted (first: "
                f"{first['id']}: {first['reason']}); check --images-dir"
            )
    samples = json.loads(test.read_text(encoding="utf-8"))
    if [x["id"] for x in samples] != keys:
        raise InputFileError(f"{test}: does not match {job.input_json} (remove {work} and rerun)")
    return samples


def _write_chunks(samples: list[dict], data: Path, size: int) -> list[tuple[str, int]]:
    chunks = []
    info_path = data / "dataset_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8"))
    for i in range(0, len(samples), size):
        name = f"chunk_{i // size:04d}"
        path = data / f"{name}.json"
        if not path.is_file():
            atomic_write_text(path, json.dumps(samples[i : i + size], ensure_ascii=False))
        info[name] = dataset_info_entry(path.name)
        chunks.append((name, len(samples[i : i + size])))
    atomic_write_json(info_path, info)
    return chunks


def _lines(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _run_chunk(job: LeaderboardJob, work: Path, name: str) -> Path:
    """One ``scripts/predict.sh`` run on a chunk; its generated_predictions.jsonl."""
    script = REPO / PREDICT_SCRIPT
    if not script.is_file():
        raise InputFileError(f"{script}: not found (rexrank-predict runs from a clone of the repository)")
    out = work / "runs" / name
    args = [
        "bash",
        str(script),
        job.config,
        f"dataset_dir={(work / 'data').resolve()}",
        f"eval_dataset={name}",
        f"output_dir={out.resolve()}",
        "overwrite_output_dir=true",
        *job.overrides,
    ]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = work / "runs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as f:
        proc = subprocess.run(args, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:] or [""]
        raise InputFileError(
            f"{PREDICT_SCRIPT} exited {proc.returncode} on {name} (log {log}): {tail[0][:300]}"
        )
    return out / "generated_predictions.jsonl"


def predict_leaderboard(job: LeaderboardJob, say: Callable[[str], None] = lambda _: None) -> dict:
    """Write ``job.output_json``; return counts. ``say`` receives one progress line per chunk."""
    if job.track not in TRACKS:
        raise ValueError(f"--track {job.track!r}: expected one of {', '.join(TRACKS)}")
    if job.chunk_size < 1:
        raise ValueError(f"--chunk-size {job.chunk_size}: at least 1")
    studies = load_json(job.input_json, "ReXrank test JSON")
    if not isinstance(studies, dict) or not studies:
        raise InputFileError(f"{job.input_json}: expected a JSON object of studies (study key -> fields)")
    work = _check_work(job)
    samples = _prepare(job, work, list(studies))
    chunks = _write_chunks(samples, work / "data", job.chunk_size)
    generated: list[str] = []
    done_before, t0 = 0, time.perf_counter()
    for k, (name, n) in enumerate(chunks, start=1):
        kept = work / "predictions" / f"{name}.jsonl"
        lines = _lines(kept)
        if len(lines) == n:
            done_before += 1
            say(f"chunk {k}/{len(chunks)}: {n} studies done in an earlier run, kept")
        else:
            start = time.perf_counter()
            lines = _lines(_run_chunk(job, work, name))
            if len(lines) != n:
                raise InputFileError(
                    f"{name}: {len(lines)} predictions for {n} studies (see {work / 'runs'})"
                )
            atomic_write_text(kept, "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
            say(
                f"chunk {k}/{len(chunks)}: {n} studies in {time.perf_counter() - start:.0f} s "
                f"({len(generated) + n}/{len(samples)} studies, {time.perf_counter() - t0:.0f} s so far)"
            )
        generated += [x["predict"] for x in lines]
    empty = 0
    for study, text in zip(studies.values(), generated, strict=True):
        prediction = for_track(text, job.track)
        empty += not text.strip()
        study["model_prediction"] = prediction
    Path(job.output_json).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(job.output_json), json.dumps(studies, indent=2, ensure_ascii=False) + "\n")
    return {
        "studies": len(studies),
        "chunks": len(chunks),
        "chunks_kept": done_before,
        "empty_generations": empty,
        "track": job.track,
        "work_dir": str(work),
    }


INFERENCE_TEMPLATE = '''#!/usr/bin/env python3
"""ReXrank entry point (written by `xrayqwen2vl rexrank-predict --write-script`).

The organisers run: python {script_name} --input_json_file IN --save_json_file OUT --img_root_dir ROOT
It runs `xrayqwen2vl rexrank-predict` with the settings below, from the repository clone it was
written in (REPO, relative to this file), and writes OUT: IN with a "model_prediction" per study.
"""

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, {repo!r}))
SETTINGS = {settings!r}


def main() -> int:
    parser = argparse.ArgumentParser(description="ReXrank inference: {track} track")
    parser.add_argument("--input_json_file", required=True, help="the leaderboard's test JSON")
    parser.add_argument("--save_json_file", required=True, help="where to write the predictions")
    parser.add_argument("--img_root_dir", required=True, help="the root of the JSON's image paths")
    args = parser.parse_args()
    cmd = [sys.executable, "-m", "xrayqwen2vl.cli", "rexrank-predict",
           "--input-json", os.path.abspath(args.input_json_file),
           "--output-json", os.path.abspath(args.save_json_file),
           "--images-dir", os.path.abspath(args.img_root_dir), *SETTINGS]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.path.join(REPO, "src"), env.get("PYTHONPATH")) if p)
    return subprocess.call(cmd, cwd=REPO, env=env)


if __name__ == "__main__":
    sys.exit(main())
'''


def write_inference_script(path: str | Path, job: LeaderboardJob) -> Path:
    """``inference.py`` with exactly the organisers' three arguments, calling rexrank-predict
    with this job's model, config, track and options."""
    path = Path(path)
    settings = ["--config", job.config, "--track", job.track, "--chunk-size", str(job.chunk_size)]
    settings += [f"--set={o}" for o in job.overrides]
    if job.with_context:
        settings.append("--with-context")
    repo = os.path.relpath(REPO, path.resolve().parent)
    text = INFERENCE_TEMPLATE.format(script_name=path.name, repo=repo, settings=settings, track=job.track)
    atomic_write_text(path, text)
    path.chmod(0o755)
    return path


__all__ = ["LeaderboardJob", "for_track", "model_overrides", "predict_leaderboard", "write_inference_script"]
