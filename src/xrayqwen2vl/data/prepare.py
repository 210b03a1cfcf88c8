"""Turn parsed reports into LLaMA-Factory ShareGPT datasets, split by study, with a manifest.

The stages (data/stages.py), in order: read the reports (and their targets) → check the target
language → take the published split, if one is used → claim each image for one study → check the
images → choose the views → split; then write (data/writers.py). This module holds the options,
chains the stages (``stream_studies``), writes through the writers (``write_samples``) and builds
the manifest and the summary. The studies stream through one at a time, so memory stays flat as the
collection grows (MIMIC-CXR's 377k images in one command). Every input record ends up either in a
split or in ``manifest.json`` under ``skipped`` with its reason; every image a kept report lists is
either in its sample or under ``images_not_used``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from .. import __version__
from ..fileio import (
    check_plain_name,
    check_regular_file,
    dump_json,
    loads_json,
    make_output_folder,
    refuse_output_over_inputs,
)
from .formats.registry import get_form
from .images import ImagesFolder
from .records import InputFileError, Report, Skipped, UnusedImage
from .splits import HASH_RULE, SPLITS, PublishedSplit
from .stages import (
    Ledger,
    SplitRecord,
    Study,
    assign_splits,
    check_images,
    check_language,
    choose_views,
    claim_images,
    read_reports,
    refuse_wrong_language,
    split_table_facts,
    take_published_split,
)
from .text import DEFAULT_PROMPTS, placeholder_in
from .verify import VERIFY_MODES
from .writers import ImageCopies, SampleWriter, dataset_info_entry, input_files, output_paths, write_outputs

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
    verify_images: str = "fast"  # fast: structure of each file (+ decode where views are guessed); full
    mixed_language: bool = False  # keep targets whose script is not that of --lang

    def prompt_text(self) -> str:
        return self.prompt if self.prompt is not None else DEFAULT_PROMPTS[self.lang]


def check_options(options: PrepareOptions) -> None:
    if options.verify_images not in VERIFY_MODES:
        raise ValueError(
            f"--verify-images {options.verify_images!r}: expected one of {', '.join(VERIFY_MODES)}"
        )
    if options.views not in VIEW_MODES:
        raise ValueError(f"--views {options.views!r}: expected one of {', '.join(VIEW_MODES)}")
    check_plain_name(options.name, "--name")


def load_translations(path: str | Path) -> dict[str, str]:
    """The translate cache (JSONL of ``{"source": en, "translation": zh}``) as a dict."""
    path = Path(path)
    check_regular_file(path, "translations file")
    table: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = loads_json(line, f"{path}: line {n}")
            table[obj["source"]] = obj["translation"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InputFileError(f'{path}: line {n}: expected {{"source": …, "translation": …}}') from None
    return table


def load_prompts(path: str | Path) -> list[str]:
    """One prompt per non-empty line; a literal media placeholder is refused."""
    path = Path(path)
    check_regular_file(path, "prompts file")
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


# ---------------------------------------------------------------- writing


def split_facts(options: PrepareOptions, record: SplitRecord, published: dict) -> dict:
    """How the split was made, for the manifest: the key rule of the form and the split rule."""
    form = get_form(options.format)
    facts = {"split": options.split, "study_key": form.key_rule}
    facts["reports_keyed_by_their_id"] = record.keyed_by_id
    if options.split == "hash":
        facts["rule"] = HASH_RULE
        facts["group_key"] = "set by the form" if record.grouped else "the study key"
    else:
        facts["rule"] = f"the {options.split} split of each study, as published"
        facts.update(published)
    conflicts = [{"group": g, "splits": sorted(v)} for g, v in record.conflicts.items()]
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

    The records stream through the stages one study at a time (the image checks run in a pool
    meanwhile), so memory does not grow with the collection's text or samples; the progress bar
    counts the reports (and records that failed to be one) against ``total`` and shows the time
    left. ``translations`` maps cleaned English sections to Chinese (``--lang zh`` for sources
    that have only English text); ``prompts`` replaces the single prompt, one chosen per study by a hash of its key;
    ``split_table`` gives a published split to records that do not carry it (``options.split``
    names it). ``workers`` processes decode images (and four threads per worker read the
    structure of the others); they change nothing in the output.
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
    files, folders = output_paths(Path(out_dir), options.name)
    refuse_output_over_inputs(files, inputs, folders)
    use_table = split_table is not None and options.split != "hash"
    run = Run(
        options,
        ImagesFolder(images_dir),
        default_workers() if workers is None else workers,
        translations,
        split_table,
        Ledger(keys_read=set() if use_table else None),
    )
    prompt_list = prompts or [options.prompt_text()]
    bar = tqdm(desc="reports", unit="report", total=total, disable=not progress, smoothing=0.1)
    try:
        kept, writer, n_copies = write_samples(
            stream_studies(_counted(records, bar), run), run, Path(out_dir), prompt_list, inputs, progress
        )
    finally:
        bar.close()
    ledger = run.ledger
    manifest = {
        "package": "xrayqwen2vl",
        "package_version": __version__,
        "inputs": inputs,
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(options).items()},
        "prompt": prompt_list[0] if len(prompt_list) == 1 else prompt_list,
        "split": split_facts(options, run.record, run.published),
        "counts": _counts(ledger, kept, writer, n_copies),
        "files": {s: f"{options.name}_{s}.json" for s in SPLITS},
        "skipped": Ledger.in_order(ledger.skipped),
        "images_not_used": Ledger.in_order(ledger.not_used),
        "notes": ledger.notes,
    }
    write_outputs(Path(out_dir), options.name, manifest)
    return manifest


def _counted(records: Iterable, bar) -> Iterator:
    """The records, the reports and skipped records counted on the bar: what ``total`` counts (an
    image the reader could not use for its report is a record of its own, not a report)."""
    for rec in records:
        if not isinstance(rec, UnusedImage):
            bar.update()
        yield rec


@dataclass
class Run:
    """What the stages of one prepare run share."""

    options: PrepareOptions
    folder: ImagesFolder
    workers: int
    translations: dict[str, str] | None
    split_table: PublishedSplit | None
    ledger: Ledger
    record: SplitRecord = field(default_factory=SplitRecord)
    published: dict = field(default_factory=dict)  # the split table's facts, once settled


def stream_studies(records: Iterable, run: Run) -> Iterator[Study]:
    """Stages 1-7, chained: the studies that become samples, one at a time, with their split."""
    options, ledger = run.options, run.ledger
    studies = read_reports(records, ledger, options, run.translations)
    studies = check_language(studies, ledger, options)
    studies = take_published_split(studies, ledger, options, run.split_table)
    studies = claim_images(studies, run.folder)
    # Every image gets a copy under --max-pixels: decode each now, so one that cannot be decoded
    # is a skipped image with its reason, not a failed copy after its sample was written.
    verify = "full" if options.max_pixels else options.verify_images
    studies = check_images(studies, ledger, verify, run.workers)
    studies = choose_views(studies, ledger, options.views)
    return assign_splits(studies, options, run.record)


def write_samples(
    studies: Iterable[Study], run: Run, out_dir: Path, prompts: list[str], inputs: dict, progress: bool
) -> tuple[int, SampleWriter, int]:
    """Stage 8: every study's samples into the split files, then what could only be judged at
    the end (the language of most targets, the split table's match, the accounting), the image
    copies, and the split files put in place. A run that stops leaves nothing behind (an output
    folder it created is removed when empty). Returns (studies kept, the writer, copies made)."""
    options, ledger = run.options, run.ledger
    created = make_output_folder(out_dir)
    writer = None
    try:
        copies = ImageCopies(out_dir, options.name, run.folder, input_files(inputs))
        writer = SampleWriter(out_dir, options, prompts, run.folder, copies)
        kept = 0
        for s in studies:
            writer.add(s)
            kept += 1
        refuse_wrong_language(ledger, options)
        run.published = split_table_facts(ledger, options, run.split_table)
        if kept + len(ledger.skipped) != ledger.inputs:  # an internal invariant: nothing may vanish
            raise AssertionError(f"kept {kept} + skipped {len(ledger.skipped)} != inputs {ledger.inputs}")
        n_copies = copies.write(options.max_pixels, run.workers, progress)
        writer.commit()
    except BaseException:
        if writer is not None:
            writer.discard()
            copies.discard()
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    return kept, writer, n_copies


def _counts(ledger: Ledger, kept: int, writer: SampleWriter, n_copies: int) -> dict:
    notes: dict[str, int] = {}
    for n in ledger.notes:
        kind = n["note"].split(" (")[0]
        notes[kind] = notes.get(kind, 0) + 1
    return {
        "inputs": ledger.inputs,
        "kept": kept,
        "skipped": len(ledger.skipped),
        "reports": writer.reports,
        "samples": writer.samples,
        "images": writer.images,
        "images_not_used": len(ledger.not_used),
        "images_checked": ledger.images_checked,
        "images_decoded": ledger.images_decoded,
        "image_copies": n_copies,
        "notes": dict(sorted(notes.items())),
    }


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
