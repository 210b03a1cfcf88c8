"""Turn parsed reports into LLaMA-Factory ShareGPT datasets, split by report, with a manifest.

Every input record ends up either in a split or in ``manifest.json`` under ``skipped`` with its
reason; every image a kept report lists is either in its sample or under ``images_not_used``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from . import __version__
from .fileio import atomic_write_json, dump_json
from .images import check_image, resolve_inside
from .records import ImageRef, InputFileError, Report, Skipped
from .splits import SPLITS, hash_split
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


def prepare_dataset(
    records: Iterable[Report | Skipped],
    images_dir: str | Path,
    out_dir: str | Path,
    options: PrepareOptions,
    inputs: dict,
    progress: bool = True,
    total: int | None = None,
) -> dict:
    """Validate, split and write the datasets; return the manifest (also written to disk)."""
    if options.views not in VIEW_MODES:
        raise ValueError(f"--views {options.views!r}: expected one of {', '.join(VIEW_MODES)}")
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise InputFileError(f"{images_dir}: images folder not found")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_abs = os.path.abspath(out_dir)
    prompt = options.prompt_text()

    samples: dict[str, list[dict]] = {s: [] for s in SPLITS}
    reports_per_split = dict.fromkeys(SPLITS, 0)
    skipped: list[dict] = []
    not_used: list[dict] = []
    seen: dict[str, str] = {}
    n_inputs = 0

    for rec in tqdm(records, desc="prepare", unit="report", total=total, disable=not progress):
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
        findings = clean_section(rec.findings, options.deid)
        impression = clean_section(rec.impression, options.deid)
        bad = placeholder_in(findings + " " + impression)
        if bad:
            reason = f"report text contains a literal {bad}, which LLaMA-Factory reads as a media slot"
            skipped.append(Skipped(rec.id, rec.source, reason).to_json())
            continue
        target = build_target(findings, impression, options.lang, options.target)
        if not target:
            what = {
                "both": "no findings and no impression",
                "findings": "no findings section",
                "impression": "no impression section",
            }[options.target]
            skipped.append(Skipped(rec.id, rec.source, what).to_json())
            continue
        if not rec.images:
            skipped.append(Skipped(rec.id, rec.source, "no images listed").to_json())
            continue
        usable: list[tuple[ImageRef, float]] = []
        problems = []
        for ref in rec.images:
            path = resolve_inside(images_dir, ref.relpath)
            if path is None:
                reason = f"image path {ref.relpath!r} escapes the images folder"
            else:
                check = check_image(path)
                if check.ok:
                    usable.append((ref, check.symmetry))
                    continue
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
        for group in groups:
            rel = [
                os.path.relpath(os.path.join(os.path.abspath(images_dir), ref.relpath), out_abs).replace(
                    os.sep, "/"
                )
                for ref in group
            ]
            sample_id = rec.id if options.views != "each" else f"{rec.id}/{group[0].id}"
            samples[split].append(
                {
                    "id": sample_id,
                    "messages": [
                        {"role": "user", "content": "<image>" * len(group) + prompt},
                        {"role": "assistant", "content": target},
                    ],
                    "images": rel,
                }
            )

    kept = sum(reports_per_split.values())
    if kept + len(skipped) != n_inputs:  # an internal invariant: nothing may vanish
        raise AssertionError(f"kept {kept} + skipped {len(skipped)} != inputs {n_inputs}")

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
        "prompt": prompt,
        "counts": {
            "inputs": n_inputs,
            "kept": kept,
            "skipped": len(skipped),
            "reports": reports_per_split,
            "samples": {s: len(samples[s]) for s in SPLITS},
            "images": {s: sum(len(x["images"]) for x in samples[s]) for s in SPLITS},
            "images_not_used": len(not_used),
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
