"""Turn parsed reports into LLaMA-Factory ShareGPT datasets, split by study, with a manifest.

The stages, in order: read the reports (and their targets) → check the target language → take
the published split, if one is used → claim each image for one study → check the images →
choose the views → split → write. Every input record ends up either in a split or in
``manifest.json`` under ``skipped`` with its reason; every image a kept report lists is either in
its sample or under ``images_not_used``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from .. import __version__
from ..fileio import atomic_write_json, dump_json
from .formats.registry import get_form
from .images import PASS_THROUGH_MODES, ImageCheck, ImagesFolder, check_image, write_copy
from .records import ImageRef, InputFileError, Report, Skipped, UnusedImage
from .splits import HASH_RULE, SPLITS, PublishedSplit, hash_split, hash_unit
from .text import DEFAULT_PROMPTS, build_target, clean_section, placeholder_in, script_of

VIEW_MODES = ("both", "frontal", "each")
# A dataset name becomes file names inside --out: no separators, no leading dot.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# --split with a split table: the share of the table's studies that must be found in the input.
MIN_MATCHED = 0.95
SCRIPT_NAMES = {"en": "Latin", "zh": "Chinese (Han)"}


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
    mixed_language: bool = False  # keep targets whose script is not that of --lang

    def prompt_text(self) -> str:
        return self.prompt if self.prompt is not None else DEFAULT_PROMPTS[self.lang]


def check_options(options: PrepareOptions) -> None:
    if options.views not in VIEW_MODES:
        raise ValueError(f"--views {options.views!r}: expected one of {', '.join(VIEW_MODES)}")
    if not NAME_PATTERN.fullmatch(options.name):
        raise InputFileError(
            f"--name {options.name!r}: use letters, digits, '.', '_' and '-' (not first): "
            "it names files inside --out"
        )


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


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


# ---------------------------------------------------------------- what the stages carry


@dataclass
class Ledger:
    """Everything that did not become (part of) a sample, and why; notes taken on the way."""

    inputs: int = 0  # records read (reports, and records that failed to be one)
    skipped: list[dict] = field(default_factory=list)
    not_used: list[dict] = field(default_factory=list)
    notes: list[dict] = field(default_factory=list)
    keys_read: set[str] = field(default_factory=set)  # study keys of every report read

    def skip(self, rec: Report, reason: str) -> None:
        self.skipped.append(Skipped(rec.id, rec.source, reason).to_json())

    def unused(self, report: str, image: str, reason: str) -> None:
        self.not_used.append({"report": report, "image": image, "reason": reason})


@dataclass
class Listed:
    """One image a study lists: where it really is (None when it cannot be used) or why not."""

    ref: ImageRef
    path: Path | None
    reason: str = ""
    check: ImageCheck | None = None


@dataclass
class Study:
    """A report whose text passed, on its way through the stages."""

    rec: Report
    target: str
    images: list[Listed] = field(default_factory=list)
    samples: list[list[Listed]] = field(default_factory=list)  # after choose_views
    split: str = ""  # after assign_splits


# ---------------------------------------------------------------- the stages


def read_reports(records, ledger: Ledger, options, translations, bar) -> list[Study]:
    """Stage 1: every record read; the reports whose text makes a target, once per id."""
    studies: list[Study] = []
    seen: dict[str, str] = {}
    for rec in bar(records):
        if isinstance(rec, UnusedImage):
            ledger.unused(rec.report, rec.image, rec.reason)
            continue
        ledger.inputs += 1
        if isinstance(rec, Skipped):
            ledger.skipped.append(rec.to_json())
            continue
        ledger.keys_read.add(rec.study_key)
        if rec.id in seen:
            ledger.skip(rec, f"duplicate report id (first in {seen[rec.id]})")
            continue
        seen[rec.id] = rec.source
        target, reason = _target(rec, options, translations)
        if reason:
            ledger.skip(rec, reason)
        elif not rec.images:
            ledger.skip(rec, "no images listed")
        else:
            ledger.notes += [{"id": rec.id, "source": rec.source, "note": n} for n in rec.notes]
            studies.append(Study(rec, target))
    return studies


def check_language(studies: list[Study], ledger: Ledger, options: PrepareOptions) -> list[Study]:
    """Stage 2: targets in the script of --lang. A wrong --lang (most targets in the other
    script) stops the run; a few stray targets are skipped with a reason."""
    if options.mixed_language:
        return studies
    scripts = [script_of(s.target) for s in studies]
    wrong = [s for s, script in zip(studies, scripts, strict=True) if script not in (None, options.lang)]
    if not wrong:
        return studies
    written = SCRIPT_NAMES["zh" if options.lang == "en" else "en"]
    checked = sum(script is not None for script in scripts)
    if 2 * len(wrong) > checked:
        other = "zh" if options.lang == "en" else "en"
        raise InputFileError(
            f"--lang {options.lang}: {len(wrong)} of {checked} targets are written in {written} script "
            f"(first: {wrong[0].rec.id} in {wrong[0].rec.source}); use --lang {other}, "
            "or --mixed-language to keep them as they are"
        )
    for s in wrong:
        ledger.skip(s.rec, f"target written in {written} script, not that of --lang {options.lang}")
    wrong_ids = {id(s) for s in wrong}
    return [s for s in studies if id(s) not in wrong_ids]


def take_published_split(
    studies: list[Study], ledger: Ledger, options: PrepareOptions, table: PublishedSplit | None
) -> tuple[list[Study], dict]:
    """Stage 3: with a published split, the studies in it, with their split (from the records
    themselves, or from ``table`` by study key); returns them and the facts for the manifest."""
    if options.split == "hash":
        return studies, {}
    facts: dict = {}
    if table is not None:
        matched = [k for k in table.split_of if k in ledger.keys_read]
        if not matched or len(matched) < MIN_MATCHED * len(table.split_of):
            missing = [table.label[k] for k in table.split_of if k not in ledger.keys_read][:2]
            raise InputFileError(
                f"{table.source}: --split {table.name}: only {len(matched)} of its {len(table.split_of)} "
                f"studies match a report of --format {options.format} (by study key; unmatched: "
                f"{', '.join(missing)}); is this the annotation of this collection?"
            )
        for s in studies:
            s.rec.split = table.split_of.get(s.rec.study_key)
        facts = {"source": table.source, "studies": len(table.split_of), "matched": len(matched)}
        if table.conflicts:
            facts["listed_under_two_splits"] = table.conflicts
    kept = []
    for s in studies:
        if s.rec.split in SPLITS:
            kept.append(s)
        else:
            ledger.skip(s.rec, f"not in the {options.split} split (--split {options.split})")
    return kept, facts


def claim_images(studies: list[Study], folder: ImagesFolder) -> None:
    """Stage 4: where each listed image is; an image listed by two studies goes with the first
    (one image, one split) and is recorded as not used for the other."""
    owner: dict[Path, str] = {}
    for s in studies:
        for ref in s.rec.images:
            path, reason = folder.locate(ref.relpath)
            if path is not None and path in owner:
                first = owner[path]
                reason = (
                    "listed twice in this report"
                    if first == s.rec.id
                    else f"also listed under report {first}"
                )
                path = None
            if path is not None:
                owner[path] = s.rec.id
            s.images.append(Listed(ref, path, reason))


def _check_job(path: Path) -> ImageCheck:
    return check_image(path)


def check_images(studies: list[Study], workers: int, progress: bool) -> None:
    """Stage 5: decode and measure every claimed image once (the slow part; in a process pool
    when it pays off, results in order)."""
    items = [x for s in studies for x in s.images if x.path is not None]
    bar = tqdm(total=len(items), desc="images", unit="img", disable=not progress)
    paths = [x.path for x in items]
    if workers <= 1 or len(paths) < 64:
        results = []
        for p in paths:
            results.append(check_image(p))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = []
            for r in pool.map(_check_job, paths, chunksize=32):
                results.append(r)
                bar.update()
    bar.close()
    for x, r in zip(items, results, strict=True):
        x.check = r
        if not r.ok:
            x.reason = r.reason


def choose_views(studies: list[Study], ledger: Ledger, views: str) -> list[Study]:
    """Stage 6: the usable images of each study, frontal first, grouped into samples for the
    view mode; the studies left with a sample."""
    kept = []
    for s in studies:
        usable = []
        for x in s.images:
            if x.check is not None and x.check.ok:
                usable.append(x)
            else:
                ledger.unused(s.rec.id, x.ref.id, x.reason)
        if not usable:
            problems = "; ".join(f"{x.ref.id}: {x.reason}" for x in s.images)
            ledger.skip(s.rec, f"no readable image ({problems})")
            continue
        s.samples, unused = _select(_order_views(usable), views)
        for x in unused:
            ledger.unused(
                s.rec.id,
                x.ref.id,
                f"not used with --views {views} (one frontal"
                f"{' and one lateral' if views == 'both' else ''} view per study)",
            )
        if s.samples:
            kept.append(s)
        else:
            ledger.skip(s.rec, "no frontal view")
    return kept


def assign_splits(studies: list[Study], options: PrepareOptions) -> list[dict]:
    """Stage 7: each study's split: the published one, or a hash of its split group. Returns
    the groups a published split puts in more than one split (reported, not changed)."""
    where: dict[str, set[str]] = {}
    published = options.split != "hash"
    for s in studies:
        s.split = s.rec.split if published else hash_split(s.rec.group_key, options.seed, options.ratios)
        where.setdefault(s.rec.group_key, set()).add(s.split)
    return [{"group": g, "splits": sorted(v)} for g, v in where.items() if len(v) > 1]


def _order_views(usable: list[Listed]) -> list[tuple[Listed, str]]:
    """Label each usable image frontal or lateral, frontal first.

    A view the source states is used as given. Otherwise the most left-right symmetric image of
    the report is taken as frontal and, when there are several, the least symmetric as lateral;
    any others count as further frontal views.
    """
    if all(x.ref.view for x in usable):
        labelled = [(x, x.ref.view) for x in usable]
    else:
        by_sym = sorted(range(len(usable)), key=lambda i: -usable[i].check.symmetry)
        lateral = by_sym[-1] if len(usable) > 1 else None
        labelled = [(x, "lateral" if i == lateral else "frontal") for i, x in enumerate(usable)]
    frontal = [x for x in labelled if x[1] == "frontal"]
    lateral = [x for x in labelled if x[1] != "frontal"]
    return frontal + lateral


def _select(ordered: list[tuple[Listed, str]], views: str) -> tuple[list[list[Listed]], list[Listed]]:
    """Group images into samples for the view mode; return (samples, images not used)."""
    if views == "each":
        return [[x] for x, _ in ordered], []
    frontal = [x for x, v in ordered if v == "frontal"]
    lateral = [x for x, v in ordered if v != "frontal"]
    if views == "frontal":
        if not frontal:
            return [], [x for x, _ in ordered]
        chosen = [frontal[0]]
    else:
        chosen = ([frontal[0]] if frontal else []) + ([lateral[0]] if lateral else [])
        if not chosen:
            chosen = [ordered[0][0]]
    unused = [x for x, _ in ordered if all(x is not c for c in chosen)]
    return [chosen], unused


# ---------------------------------------------------------------- writing


class ImageCopies:
    """RGB / resized copies of the used images that need one, under OUT/images/NAME/, named by
    the image's resolved path inside the images folder: a copy can never land outside --out,
    inside the images folder, or on an input file."""

    def __init__(self, out_dir: Path, name: str, folder: ImagesFolder, inputs: set[Path]):
        self.out_dir = out_dir
        self.prefix = f"images/{name}"
        self.folder = folder
        self.inputs = inputs  # resolved input files no copy may be written to
        self.copy_of: dict[Path, str] = {}  # source -> copy, relative to out_dir
        self.source_of: dict[str, Path] = {}  # copy -> source

    def add(self, src: Path) -> str:
        if src in self.copy_of:
            return self.copy_of[src]
        inside = self.folder.relative(src)
        copy = f"{self.prefix}/{Path(inside).with_suffix('.png').as_posix()}"
        if copy in self.source_of:  # a.png and a.jpg: both kept, the second with a tag
            copy = f"{copy[:-4]}-{hashlib.sha256(inside.encode()).hexdigest()[:8]}.png"
        dest = (self.out_dir / copy).resolve()
        if self.out_dir.resolve() not in dest.parents:
            raise InputFileError(f"{self.out_dir / copy}: a link leads this copy outside --out; remove it")
        if dest in self.inputs or self.folder.real in dest.parents:
            raise InputFileError(
                f"{dest}: the copy of {src} would be written into the inputs; choose an --out outside them"
            )
        self.copy_of[src] = copy
        self.source_of[copy] = src
        return copy

    def write(self, max_pixels: int | None, workers: int, progress: bool) -> int:
        jobs = [(src, self.out_dir / copy, max_pixels) for copy, src in sorted(self.source_of.items())]
        bar = tqdm(total=len(jobs), desc="copies", unit="img", disable=not progress or not jobs)
        if workers <= 1 or len(jobs) < 64:
            for job in jobs:
                _copy_job(job)
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for _ in pool.map(_copy_job, jobs, chunksize=16):
                    bar.update()
        bar.close()
        return len(jobs)


def _copy_job(args: tuple[Path, Path, int | None]) -> str:
    src, dest, max_pixels = args
    return write_copy(src, dest, max_pixels)


def build_samples(
    studies: list[Study],
    options: PrepareOptions,
    prompts: list[str],
    folder: ImagesFolder,
    copies: ImageCopies,
) -> dict[str, list[dict]]:
    """The ShareGPT samples of every split, in reading order; image paths relative to --out."""
    out_abs = os.path.abspath(copies.out_dir)
    samples: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for s in studies:
        key = s.rec.study_key
        prompt = prompts[0] if len(prompts) == 1 else prompts[_pick(key, options.seed, len(prompts))]
        for group in s.samples:
            rel = []
            for x in group:
                if options.max_pixels or x.check.mode not in PASS_THROUGH_MODES:
                    rel.append(copies.add(x.path))
                else:
                    path = folder.abs / folder.relative(x.path)
                    rel.append(os.path.relpath(path, out_abs).replace(os.sep, "/"))
            samples[s.split].append(
                {
                    "id": s.rec.id if options.views != "each" else f"{s.rec.id}/{group[0].ref.id}",
                    "messages": [
                        {"role": "user", "content": "<image>" * len(group) + prompt},
                        {"role": "assistant", "content": s.target},
                    ],
                    "images": rel,
                }
            )
    return samples


def split_facts(options: PrepareOptions, studies: list[Study], published: dict, conflicts: list) -> dict:
    """How the split was made, for the manifest: the key rule of the form and the split rule."""
    form = get_form(options.format)
    facts = {"split": options.split, "study_key": form.key_rule}
    facts["reports_keyed_by_their_id"] = sum(not s.rec.study for s in studies)
    if options.split == "hash":
        facts["rule"] = HASH_RULE
        facts["group_key"] = "the study key" if all(not s.rec.group for s in studies) else "set by the form"
    else:
        facts["rule"] = f"the {options.split} split of each study, as published"
        facts.update(published)
    if conflicts:
        facts["groups_in_two_splits"] = conflicts
    return facts


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
    split_table: PublishedSplit | None = None,
) -> dict:
    """Validate, split and write the datasets; return the manifest (also written to disk).

    ``translations`` maps cleaned English sections to Chinese (``--lang zh`` for sources that
    have only English text); ``prompts`` replaces the single prompt, one chosen per study by a
    hash of its key; ``split_table`` gives a published split to records that do not carry it
    (``options.split`` names it). ``workers`` processes decode the images (not part of the output).
    """
    check_options(options)
    carried = get_form(options.format).published_split
    if options.split != "hash" and split_table is None and options.split != carried:
        raise ValueError(
            f"--split {options.split}: --format {options.format} records do not carry it; give its file"
        )
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise InputFileError(f"{images_dir}: images folder not found")
    folder = ImagesFolder(images_dir)
    out_dir = Path(out_dir)
    workers = default_workers() if workers is None else workers
    prompt_list = prompts or [options.prompt_text()]
    ledger = Ledger()

    def bar(it):
        return tqdm(it, desc="reports", unit="report", total=total, disable=not progress)

    studies = read_reports(records, ledger, options, translations, bar)
    studies = check_language(studies, ledger, options)
    studies, published = take_published_split(studies, ledger, options, split_table)
    claim_images(studies, folder)
    check_images(studies, workers, progress)
    studies = choose_views(studies, ledger, options.views)
    conflicts = assign_splits(studies, options)
    if len(studies) + len(ledger.skipped) != ledger.inputs:  # an internal invariant: nothing may vanish
        raise AssertionError(f"kept {len(studies)} + skipped {len(ledger.skipped)} != inputs {ledger.inputs}")

    out_dir.mkdir(parents=True, exist_ok=True)
    copies = ImageCopies(out_dir, options.name, folder, _input_files(inputs))
    samples = build_samples(studies, options, prompt_list, folder, copies)
    n_copies = copies.write(options.max_pixels, workers, progress)
    manifest = {
        "package": "xrayqwen2vl",
        "package_version": __version__,
        "inputs": inputs,
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(options).items()},
        "prompt": prompt_list[0] if len(prompt_list) == 1 else prompt_list,
        "split": split_facts(options, studies, published, conflicts),
        "counts": _counts(ledger, studies, samples, n_copies),
        "files": {s: f"{options.name}_{s}.json" for s in SPLITS},
        "skipped": ledger.skipped,
        "images_not_used": ledger.not_used,
        "notes": ledger.notes,
    }
    write_outputs(out_dir, options.name, samples, manifest)
    return manifest


def _input_files(inputs: dict) -> set[Path]:
    found = set()
    for value in inputs.values():
        try:
            p = Path(value).resolve()
        except (OSError, RuntimeError, TypeError, ValueError):
            continue
        if p.is_file():
            found.add(p)
    return found


def _counts(ledger: Ledger, studies: list[Study], samples: dict[str, list[dict]], n_copies: int) -> dict:
    notes: dict[str, int] = {}
    for n in ledger.notes:
        kind = n["note"].split(" (")[0]
        notes[kind] = notes.get(kind, 0) + 1
    return {
        "inputs": ledger.inputs,
        "kept": len(studies),
        "skipped": len(ledger.skipped),
        "reports": {s: sum(1 for x in studies if x.split == s) for s in SPLITS},
        "samples": {s: len(samples[s]) for s in SPLITS},
        "images": {s: sum(len(x["images"]) for x in samples[s]) for s in SPLITS},
        "images_not_used": len(ledger.not_used),
        "image_copies": n_copies,
        "notes": dict(sorted(notes.items())),
    }


def write_outputs(out_dir: Path, name: str, samples: dict[str, list[dict]], manifest: dict) -> None:
    """Stage 8: the split files, their dataset_info.json entries and the manifest entry (one
    manifest.json per folder, one entry per dataset name, like dataset_info.json)."""
    info_path = out_dir / "dataset_info.json"
    info = _read_json_object(info_path)
    for split in SPLITS:
        file_name = f"{name}_{split}.json"
        atomic_write_json(out_dir / file_name, samples[split])
        info[f"{name}_{split}"] = dataset_info_entry(file_name)
    atomic_write_json(info_path, dict(sorted(info.items())))
    manifests = _read_json_object(out_dir / "manifest.json")
    manifests[name] = manifest
    atomic_write_json(out_dir / "manifest.json", dict(sorted(manifests.items())))


def _pick(key: str, seed: int, n: int) -> int:
    return min(n - 1, int(hash_unit(f"prompt:{key}", seed) * n))


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
    split = manifest["split"]
    if "matched" in split:
        lines.append(
            f"--split {split['split']}: {split['matched']} of the {split['studies']} studies of "
            f"{split['source']} matched"
        )
    lines.append(f"images not used: {c['images_not_used']} (reasons in the manifest)")
    reasons: dict[str, int] = {}
    for s in manifest["skipped"]:
        key = s["reason"].split(" (")[0]
        reasons[key] = reasons.get(key, 0) + 1
    for r, n in sorted(reasons.items(), key=lambda x: -x[1]):
        lines.append(f"  skipped {n:>5}  {r}")
    for note, n in c["notes"].items():
        lines.append(f"  noted   {n:>5}  {note} (kept; listed under notes in the manifest)")
    name = manifest["options"]["name"]
    lines.append(f"wrote {out_dir}/{name}_{{train,val,test}}.json, dataset_info.json, manifest.json ({name})")
    return lines


def print_summary(manifest: dict, out_dir, stream=None) -> None:
    for line in summary_lines(manifest, out_dir):
        print(line, file=stream)


__all__ = ["PrepareOptions", "prepare_dataset", "dataset_info_entry", "print_summary", "dump_json"]
