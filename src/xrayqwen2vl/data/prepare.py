"""Turn parsed reports into LLaMA-Factory ShareGPT datasets, split by report, with a manifest.

Every input record ends up either in a split or in ``manifest.json`` under ``skipped`` with its
reason; every image a kept report lists is either in its sample or under ``images_not_used``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from .. import __version__
from ..fileio import atomic_write_json, dump_json
from .images import PASS_THROUGH_MODES, ImageCheck, check_image, resolve_inside, write_copy
from .records import ImageRef, InputFileError, Report, Skipped, UnusedImage
from .splits import SPLITS, hash_split, hash_unit
from .text import DEFAULT_PROMPTS, build_target, clean_section, placeholder_in

VIEW_MODES = ("both", "frontal", "each")


@dataclass
class PrepareOptions:
    format: str = "openi"
    name: str = "openi"
    lang: str = "en"
    target: str = "both"
    views: str = "both"
    prompt: str | None = None
    split: str = "hash"
    ratios: tuple[float, float, float] = (0.7, 0.1, 0.2)
    seed: int = 0
    deid: str = "keep"
    max_pixels: int | None = None  # write resized RGB copies of the images into the output

    def prompt_text(self) -> str:
        return self.prompt if self.prompt is not None else DEFAULT_PROMPTS[self.lang]


def dataset_info_entry(file_name: str) -> dict:
    """LLaMA-Factory ``dataset_info.json`` entry for one of our ShareGPT files."""
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
        },
    }


def _order_views(report: Report, usable: list[tuple[ImageRef, float]]) -> list[tuple[ImageRef, str]]:
    """Label each usable image frontal or lateral, frontal first.

    A view the source states is used as given. Otherwise the most left-right symmetric image of
    the report is taken as frontal and, when there are several, the least symmetric as lateral;
    any others count as further frontal views.
    """
    if all(ref.view for ref, _ in usable):
        labelled = [(ref, ref.view) for ref, _ in usable]
    else:
        by_sym = sorted(range(len(usable)), key=lambda i: -usable[i][1])
        lateral = by_sym[-1] if len(usable) > 1 else None
        labelled = [(ref, "lateral" if i == lateral else "frontal") for i, (ref, _) in enumerate(usable)]
    frontal = [x for x in labelled if x[1] == "frontal"]
    lateral = [x for x in labelled if x[1] != "frontal"]
    return frontal + lateral


def _select(ordered: list[tuple[ImageRef, str]], views: str) -> tuple[list[list[ImageRef]], list[ImageRef]]:
    """Group images into samples for the view mode; return (samples, images not used)."""
    if views == "each":
        return [[ref] for ref, _ in ordered], []
    frontal = [ref for ref, v in ordered if v == "frontal"]
    lateral = [ref for ref, v in ordered if v != "frontal"]
    if views == "frontal":
        if not frontal:
            return [], [ref for ref, _ in ordered]
        chosen = [frontal[0]]
    else:
        chosen = ([frontal[0]] if frontal else []) + ([lateral[0]] if lateral else [])
        if not chosen:
            chosen = [ordered[0][0]]
    unused = [ref for ref, _ in ordered if ref not in chosen]
    return [chosen], unused


def load_translations(path: str | Path) -> dict[str, str]:
    """The translate cache (JSONL of ``{"source": en, "translation": zh}``) as a dict."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: translations file not found")
    table: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            table[obj["source"]] = obj["translation"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InputFileError(f'{path}: line {n}: expected {{"source": …, "translation": …}}') from None
    return table


def load_prompts(path: str | Path) -> list[str]:
    """One prompt per non-empty line; a literal media placeholder is refused."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: prompts file not found")
    prompts = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        bad = placeholder_in(line)
        if bad:
            raise InputFileError(f"{path}: line {n}: prompt contains a literal {bad}")
        prompts.append(line)
    if not prompts:
        raise InputFileError(f"{path}: no prompts (one per line expected)")
    return prompts


@dataclass
class _Pending:
    """A report whose text passed; its images still to be checked."""

    rec: Report
    target: str
    jobs: list[tuple[ImageRef, Path | None]]


def _check_job(path: Path | None) -> ImageCheck | None:
    return None if path is None else check_image(path)


def _check_all(paths: list[Path | None], workers: int, progress: bool) -> list[ImageCheck | None]:
    """check_image over every path, in order, in a process pool when it pays off."""
    bar = tqdm(total=len(paths), desc="images", unit="img", disable=not progress)
    if workers <= 1 or len(paths) < 64:
        out = []
        for p in paths:
            out.append(_check_job(p))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            out = []
            for r in pool.map(_check_job, paths, chunksize=32):
                out.append(r)
                bar.update()
    bar.close()
    return out


def _copy_job(args: tuple[Path, Path, int | None]) -> str:
    src, dest, max_pixels = args
    return write_copy(src, dest, max_pixels)


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def prepare_dataset(
    records: Iterable[Report | Skipped | UnusedImage],
    images_dir: str | Path,
    out_dir: str | Path,
    options: PrepareOptions,
    inputs: dict,
    progress: bool = True,
    total: int | None = None,
    translations: dict[str, str] | None = None,
    prompts: list[str] | None = None,
    workers: int | None = None,
) -> dict:
    """Validate, split and write the datasets; return the manifest (also written to disk).

    ``translations`` maps cleaned English sections to Chinese (``--lang zh`` for sources that
    have only English text); ``prompts`` replaces the single prompt, one chosen per report by a
    hash of its id. ``workers`` processes decode the images (not part of the output).
    """
    if options.views not in VIEW_MODES:
        raise ValueError(f"--views {options.views!r}: expected one of {', '.join(VIEW_MODES)}")
    if options.split not in ("hash", "r2gen"):
        raise ValueError(f"--split {options.split!r}: expected hash or r2gen")
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise InputFileError(f"{images_dir}: images folder not found")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_abs = os.path.abspath(out_dir)
    images_abs = os.path.abspath(images_dir)
    workers = default_workers() if workers is None else workers
    prompt_list = prompts or [options.prompt_text()]

    skipped: list[dict] = []
    not_used: list[dict] = []
    seen: dict[str, str] = {}
    pending: list[_Pending] = []
    n_inputs = 0

    # Pass 1: read every record and check its text.
    for rec in tqdm(records, desc="reports", unit="report", total=total, disable=not progress):
        if isinstance(rec, UnusedImage):
            not_used.append({"report": rec.report, "image": rec.image, "reason": rec.reason})
            continue
        n_inputs += 1
        if isinstance(rec, Skipped):
            skipped.append(rec.to_json())
            continue
        if rec.id in seen:
            skipped.append(
                Skipped(rec.id, rec.source, f"duplicate report id (first in {seen[rec.id]})").to_json()
            )
            continue
        seen[rec.id] = rec.source
        target, reason = _target(rec, options, translations)
        if reason:
            skipped.append(Skipped(rec.id, rec.source, reason).to_json())
            continue
        if not rec.images:
            skipped.append(Skipped(rec.id, rec.source, "no images listed").to_json())
            continue
        if options.split == "r2gen" and rec.split not in SPLITS:
            skipped.append(Skipped(rec.id, rec.source, "not in the R2Gen split (--split r2gen)").to_json())
            continue
        jobs = [(ref, resolve_inside(images_dir, ref.relpath)) for ref in rec.images]
        pending.append(_Pending(rec, target, jobs))

    # Pass 2: decode and measure every image (the slow part; in parallel, results in order).
    checks = iter(_check_all([p for item in pending for _, p in item.jobs], workers, progress))

    # Pass 3: choose views, split, assemble samples.
    samples: dict[str, list[dict]] = {s: [] for s in SPLITS}
    reports_per_split = dict.fromkeys(SPLITS, 0)
    copies: dict[str, tuple[Path, Path]] = {}  # image relpath -> (source, copy in out_dir)
    for item in pending:
        rec = item.rec
        usable: list[tuple[ImageRef, float]] = []
        needs_copy: set[str] = set()
        problems = []
        for ref, path in item.jobs:
            check = next(checks)
            if path is None:
                reason = f"image path {ref.relpath!r} escapes the images folder"
            elif check.ok:
                usable.append((ref, check.symmetry))
                if options.max_pixels or check.mode not in PASS_THROUGH_MODES:
                    needs_copy.add(ref.relpath)
                continue
            else:
                reason = check.reason
            problems.append(f"{ref.id}: {reason}")
            not_used.append({"report": rec.id, "image": ref.id, "reason": reason})
        if not usable:
            reason = "no readable image (" + "; ".join(problems) + ")"
            skipped.append(Skipped(rec.id, rec.source, reason).to_json())
            continue
        groups, unused = _select(_order_views(rec, usable), options.views)
        for ref in unused:
            not_used.append(
                {
                    "report": rec.id,
                    "image": ref.id,
                    "reason": f"not used with --views {options.views} (one frontal"
                    f"{' and one lateral' if options.views == 'both' else ''} view per study)",
                }
            )
        if not groups:
            skipped.append(Skipped(rec.id, rec.source, "no frontal view").to_json())
            continue
        split = (
            rec.split
            if (options.split == "r2gen" and rec.split)
            else hash_split(rec.id, options.seed, options.ratios)
        )
        reports_per_split[split] += 1
        prompt = (
            prompt_list[0]
            if len(prompt_list) == 1
            else prompt_list[_pick(rec.id, options.seed, len(prompt_list))]
        )
        for group in groups:
            rel = []
            for ref in group:
                if ref.relpath in needs_copy:
                    copy_rel = f"images/{options.name}/{os.path.splitext(ref.relpath)[0]}.png"
                    copies[ref.relpath] = (Path(images_abs) / ref.relpath, out_dir / copy_rel)
                    rel.append(copy_rel)
                else:
                    rel.append(
                        os.path.relpath(os.path.join(images_abs, ref.relpath), out_abs).replace(os.sep, "/")
                    )
            sample_id = rec.id if options.views != "each" else f"{rec.id}/{group[0].id}"
            samples[split].append(
                {
                    "id": sample_id,
                    "messages": [
                        {"role": "user", "content": "<image>" * len(group) + prompt},
                        {"role": "assistant", "content": item.target},
                    ],
                    "images": rel,
                }
            )

    kept = sum(reports_per_split.values())
    if kept + len(skipped) != n_inputs:  # an internal invariant: nothing may vanish
        raise AssertionError(f"kept {kept} + skipped {len(skipped)} != inputs {n_inputs}")

    # RGB / resized copies of the images that need them, for the samples only.
    copy_jobs = [(src, dest, options.max_pixels) for _, (src, dest) in sorted(copies.items())]
    if copy_jobs:
        bar = tqdm(total=len(copy_jobs), desc="copies", unit="img", disable=not progress)
        if workers <= 1 or len(copy_jobs) < 64:
            for job in copy_jobs:
                _copy_job(job)
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for _ in pool.map(_copy_job, copy_jobs, chunksize=16):
                    bar.update()
        bar.close()

    info_path = out_dir / "dataset_info.json"
    info = _read_json_object(info_path)
    for split in SPLITS:
        file_name = f"{options.name}_{split}.json"
        atomic_write_json(out_dir / file_name, samples[split])
        info[f"{options.name}_{split}"] = dataset_info_entry(file_name)
    atomic_write_json(info_path, dict(sorted(info.items())))

    manifest = {
        "package": "xrayqwen2vl",
        "package_version": __version__,
        "inputs": inputs,
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(options).items()},
        "prompt": prompt_list[0] if len(prompt_list) == 1 else prompt_list,
        "counts": {
            "inputs": n_inputs,
            "kept": kept,
            "skipped": len(skipped),
            "reports": reports_per_split,
            "samples": {s: len(samples[s]) for s in SPLITS},
            "images": {s: sum(len(x["images"]) for x in samples[s]) for s in SPLITS},
            "images_not_used": len(not_used),
            "image_copies": len(copy_jobs),
        },
        "files": {s: f"{options.name}_{s}.json" for s in SPLITS},
        "skipped": skipped,
        "images_not_used": not_used,
    }
    # One manifest.json per folder, one entry per dataset name, like dataset_info.json.
    manifests = _read_json_object(out_dir / "manifest.json")
    manifests[options.name] = manifest
    atomic_write_json(out_dir / "manifest.json", dict(sorted(manifests.items())))
    return manifest


def _pick(report_id: str, seed: int, n: int) -> int:
    return min(n - 1, int(hash_unit(f"prompt:{report_id}", seed) * n))


def _target(rec: Report, options: PrepareOptions, translations: dict[str, str] | None) -> tuple[str, str]:
    """(target text, "") or ("", reason to skip)."""
    if rec.text and not (rec.findings or rec.impression):
        text = clean_section(rec.text, options.deid)
        if options.target != "both":
            return "", f"--target {options.target}: the source has one undivided report text, no sections"
        if not text:
            return "", "empty report text"
        bad = placeholder_in(text)
        if bad:
            return "", f"report text contains a literal {bad}, which LLaMA-Factory reads as a media slot"
        return text, ""
    findings = clean_section(rec.findings, options.deid)
    impression = clean_section(rec.impression, options.deid)
    bad = placeholder_in(findings + " " + impression)
    if bad:
        return "", f"report text contains a literal {bad}, which LLaMA-Factory reads as a media slot"
    if options.lang == "zh" and translations is None:
        return "", "--lang zh: this source has English sections and no translations were given"
    if options.lang == "zh":
        wanted = {"findings": findings, "impression": impression}
        if options.target != "both":
            wanted = {options.target: wanted[options.target]}
        for key, value in wanted.items():
            if value and value not in translations:
                return (
                    "",
                    f"no Chinese translation of its {key} in the translations file (run xrayqwen2vl translate)",
                )
        findings = clean_section(translations.get(findings, "")) if findings else ""
        impression = clean_section(translations.get(impression, "")) if impression else ""
        bad = placeholder_in(findings + " " + impression)
        if bad:
            return "", f"translated text contains a literal {bad}"
    target = build_target(findings, impression, options.lang, options.target)
    if not target:
        what = {
            "both": "no findings and no impression",
            "findings": "no findings section",
            "impression": "no impression section",
        }[options.target]
        return "", what
    return target, ""


def _read_json_object(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputFileError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise InputFileError(f"{path}: expected a JSON object")
    return obj


def summary_lines(manifest: dict, out_dir: str | Path) -> list[str]:
    c = manifest["counts"]
    lines = [
        f"reports read {c['inputs']}: kept {c['kept']}, skipped {c['skipped']}",
        "split     reports  samples  images",
    ]
    for s in SPLITS:
        lines.append(f"{s:<8}  {c['reports'][s]:>7}  {c['samples'][s]:>7}  {c['images'][s]:>6}")
    lines.append(f"images not used: {c['images_not_used']} (reasons in the manifest)")
    reasons: dict[str, int] = {}
    for s in manifest["skipped"]:
        key = s["reason"].split(" (")[0]
        reasons[key] = reasons.get(key, 0) + 1
    for r, n in sorted(reasons.items(), key=lambda x: -x[1]):
        lines.append(f"  skipped {n:>5}  {r}")
    name = manifest["options"]["name"]
    lines.append(f"wrote {out_dir}/{name}_{{train,val,test}}.json, dataset_info.json, manifest.json ({name})")
    return lines


def print_summary(manifest: dict, out_dir, stream=sys.stdout) -> None:
    for line in summary_lines(manifest, out_dir):
        print(line, file=stream)


__all__ = ["PrepareOptions", "prepare_dataset", "dataset_info_entry", "print_summary", "dump_json"]
