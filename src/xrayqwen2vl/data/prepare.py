"""Turn parsed reports into LLaMA-Factory ShareGPT datasets, split by study, with a manifest.

The stages, in order: read the reports (and their targets) → check the target language → take
the published split, if one is used → claim each image for one study → check the images →
choose the views → split → write. The studies stream through them one at a time, so memory stays
flat as the collection grows (MIMIC-CXR's 377k images in one command). Every input record ends up either in a split or in
``manifest.json`` under ``skipped`` with its reason; every image a kept report lists is either in
its sample or under ``images_not_used``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from .. import __version__
from ..fileio import (
    AtomicJsonList,
    atomic_write_json,
    check_plain_name,
    check_regular_file,
    dump_json,
    loads_json,
    make_output_folder,
    refuse_output_over_inputs,
)
from .formats.registry import get_form
from .images import PASS_THROUGH_MODES, ImageCheck, ImagesFolder, write_copy
from .records import ImageRef, InputFileError, Report, Skipped, UnusedImage
from .splits import HASH_RULE, SPLITS, PublishedSplit, hash_split, hash_unit
from .text import DEFAULT_PROMPTS, build_target, clean_section, placeholder_in, script_of
from .verify import VERIFY_MODES, check_in_order, worker_pool

VIEW_MODES = ("both", "frontal", "each")
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


# ---------------------------------------------------------------- what the stages carry


@dataclass
class Ledger:
    """Everything that did not become (part of) a sample, and why; notes and counts taken on
    the way. Its lists grow with the problems found, not with the collection."""

    inputs: int = 0  # records read (reports, and records that failed to be one)
    read: int = 0  # every record the reader gave, unused images included: its place in the input
    # (place in the input, entry): the stages run interleaved, so entries are put back in input
    # order at the end (``in_order``) and the manifest is the same from run to run.
    skipped: list[tuple[int, dict]] = field(default_factory=list)
    not_used: list[tuple[int, dict]] = field(default_factory=list)
    notes: list[dict] = field(default_factory=list)
    keys_read: set[str] | None = None  # study keys of every report read (kept for a split table)
    script_checked: int = 0  # targets whose script was told (the language check)
    script_wrong: list[Report] = field(default_factory=list)  # the first target in the wrong script
    script_wrong_count: int = 0
    images_checked: int = 0
    images_decoded: int = 0

    def skip(self, rec: Report, reason: str, at: int) -> None:
        self.skipped.append((at, Skipped(rec.id, rec.source, reason).to_json()))

    def unused(self, report: str, image: str, reason: str, at: int) -> None:
        self.not_used.append((at, {"report": report, "image": image, "reason": reason}))

    @staticmethod
    def in_order(entries: list[tuple[int, dict]]) -> list[dict]:
        """The entries by place in the input (a stable sort: one record's in stage order)."""
        return [entry for _, entry in sorted(entries, key=lambda e: e[0])]


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
    at: int  # place of its record in the input
    images: list[Listed] = field(default_factory=list)
    samples: list[list[Listed]] = field(default_factory=list)  # after choose_views
    split: str = ""  # after assign_splits


# ---------------------------------------------------------------- the stages
#
# Each stage takes the studies one at a time and passes on those it keeps, so a collection of any
# size flows through in constant memory; what a stage can only judge over the whole collection
# (the language of most targets, how much of a split table matched) is settled at the end, before
# any output file is committed.


def read_reports(records, ledger: Ledger, options, translations) -> Iterator[Study]:
    """Stage 1: every record read; the reports whose text makes a target, once per id."""
    seen: dict[str, str] = {}
    for rec in records:
        at = ledger.read
        ledger.read += 1
        if isinstance(rec, UnusedImage):
            ledger.unused(rec.report, rec.image, rec.reason, at)
            continue
        ledger.inputs += 1
        if isinstance(rec, Skipped):
            ledger.skipped.append((at, rec.to_json()))
            continue
        if ledger.keys_read is not None:
            ledger.keys_read.add(rec.study_key)
        if rec.id in seen:
            ledger.skip(rec, f"duplicate report id (first in {seen[rec.id]})", at)
            continue
        seen[rec.id] = rec.source
        target, reason = _target(rec, options, translations)
        if reason:
            ledger.skip(rec, reason, at)
        elif not rec.images:
            ledger.skip(rec, "no images listed", at)
        else:
            ledger.notes += [{"id": rec.id, "source": rec.source, "note": n} for n in rec.notes]
            yield Study(rec, target, at)


# A wrong --lang is told from this many targets already, rather than after the whole collection.
SCRIPT_EARLY = 1000


def check_language(studies: Iterable[Study], ledger: Ledger, options: PrepareOptions) -> Iterator[Study]:
    """Stage 2: targets in the script of --lang. A few stray targets are skipped with a reason;
    a wrong --lang (most targets in the other script) stops the run (``refuse_wrong_language``,
    at the end, or as soon as SCRIPT_EARLY targets say so)."""
    if options.mixed_language:
        yield from studies
        return
    written = SCRIPT_NAMES["zh" if options.lang == "en" else "en"]
    for s in studies:
        script = script_of(s.target)
        ledger.script_checked += script is not None
        if script in (None, options.lang):
            yield s
            continue
        ledger.script_wrong_count += 1
        if not ledger.script_wrong:
            ledger.script_wrong.append(s.rec)
        ledger.skip(s.rec, f"target written in {written} script, not that of --lang {options.lang}", s.at)
        if ledger.script_checked >= SCRIPT_EARLY:
            refuse_wrong_language(ledger, options, early=True)


def refuse_wrong_language(ledger: Ledger, options: PrepareOptions, early: bool = False) -> None:
    wrong, checked = ledger.script_wrong_count, ledger.script_checked
    if options.mixed_language or 2 * wrong <= checked:
        return
    first = ledger.script_wrong[0]
    written = SCRIPT_NAMES["zh" if options.lang == "en" else "en"]
    other = "zh" if options.lang == "en" else "en"
    of = f"the first {checked}" if early else f"{checked}"
    raise InputFileError(
        f"--lang {options.lang}: {wrong} of {of} targets are written in {written} script "
        f"(first: {first.id} in {first.source}); use --lang {other}, "
        "or --mixed-language to keep them as they are"
    )


def take_published_split(
    studies: Iterable[Study], ledger: Ledger, options: PrepareOptions, table: PublishedSplit | None
) -> Iterator[Study]:
    """Stage 3: with a published split, the studies in it, with their split (from the records
    themselves, or from ``table`` by study key); ``split_table_facts`` checks the match at the end."""
    if options.split == "hash":
        yield from studies
        return
    for s in studies:
        if table is not None:
            s.rec.split = table.split_of.get(s.rec.study_key)
        if s.rec.split in SPLITS:
            yield s
        else:
            ledger.skip(s.rec, f"not in the {options.split} split (--split {options.split})", s.at)


def split_table_facts(ledger: Ledger, options: PrepareOptions, table: PublishedSplit | None) -> dict:
    """How much of a split table the reports matched (for the manifest); too little is an error."""
    if table is None or options.split == "hash":
        return {}
    matched = [k for k in table.split_of if k in ledger.keys_read]
    if not matched or len(matched) < MIN_MATCHED * len(table.split_of):
        missing = [table.label[k] for k in table.split_of if k not in ledger.keys_read][:2]
        raise InputFileError(
            f"{table.source}: --split {table.name}: only {len(matched)} of its {len(table.split_of)} "
            f"studies match a report of --format {options.format} (by study key; unmatched: "
            f"{', '.join(missing)}); is this the annotation of this collection?"
        )
    facts = {"source": table.source, "studies": len(table.split_of), "matched": len(matched)}
    if table.conflicts:
        facts["listed_under_two_splits"] = table.conflicts
    return facts


def claim_images(studies: Iterable[Study], folder: ImagesFolder) -> Iterator[Study]:
    """Stage 4: where each listed image is; an image listed by two studies goes with the first
    (one image, one split) and is recorded as not used for the other."""
    owner: dict[str, str] = {}
    for s in studies:
        for ref in s.rec.images:
            path, reason = folder.locate(ref.relpath)
            key = str(path) if path is not None else ""
            if path is not None and key in owner:
                first = owner[key]
                reason = (
                    "listed twice in this report"
                    if first == s.rec.id
                    else f"also listed under report {first}"
                )
                path = None
            if path is not None:
                owner[key] = s.rec.id
            s.images.append(Listed(ref, path, reason))
        yield s


def check_images(studies: Iterable[Study], ledger: Ledger, verify: str, workers: int) -> Iterator[Study]:
    """Stage 5: check every claimed image once (``data/verify.py``), in a pool, while the earlier
    stages read on. ``fast`` reads each file's structure without decoding it; an image whose view
    the source does not state is decoded as well (the symmetry measure that tells the views apart),
    and with ``full`` every image is."""
    pending: deque[Study] = deque()

    def jobs():
        for s in studies:
            pending.append(s)
            for x in s.images:
                if x.path is not None:
                    decode = verify == "full" or not x.ref.view
                    ledger.images_decoded += decode
                    yield x.path, "full" if decode else "fast"

    def complete(s: Study) -> bool:
        return all(x.path is None or x.check is not None for x in s.images)

    for result in check_in_order(jobs(), workers):
        while complete(pending[0]):
            yield pending.popleft()
        x = next(x for x in pending[0].images if x.path is not None and x.check is None)
        x.check = result
        ledger.images_checked += 1
        if not result.ok:
            x.reason = result.reason
    while pending:
        yield pending.popleft()


def choose_views(studies: Iterable[Study], ledger: Ledger, views: str) -> Iterator[Study]:
    """Stage 6: the usable images of each study, frontal first, grouped into samples for the
    view mode; the studies left with a sample."""
    for s in studies:
        usable = []
        for x in s.images:
            if x.check is not None and x.check.ok:
                usable.append(x)
            else:
                ledger.unused(s.rec.id, x.ref.id, x.reason, s.at)
        if not usable:
            problems = "; ".join(f"{x.ref.id}: {x.reason}" for x in s.images)
            ledger.skip(s.rec, f"no readable image ({problems})", s.at)
            continue
        s.samples, unused = _select(_order_views(usable), views)
        for x in unused:
            ledger.unused(
                s.rec.id,
                x.ref.id,
                f"not used with --views {views} (one frontal"
                f"{' and one lateral' if views == 'both' else ''} view per study)",
                s.at,
            )
        if s.samples:
            yield s
        else:
            ledger.skip(s.rec, "no frontal view", s.at)


@dataclass
class SplitRecord:
    """What the split stage saw, for the manifest."""

    groups: dict[str, str] = field(default_factory=dict)  # published split: group -> first split
    conflicts: dict[str, set[str]] = field(default_factory=dict)  # groups in two splits
    grouped: bool = False  # some report had a split group other than its study key
    keyed_by_id: int = 0  # reports whose id carries no study key


def assign_splits(studies: Iterable[Study], options: PrepareOptions, record: SplitRecord) -> Iterator[Study]:
    """Stage 7: each study's split: the published one, or a hash of its split group. Groups a
    published split puts in more than one split are recorded (reported, not changed)."""
    published = options.split != "hash"
    for s in studies:
        group = s.rec.group_key
        record.grouped |= bool(s.rec.group)
        record.keyed_by_id += not s.rec.study
        if published:
            s.split = s.rec.split
            first = record.groups.setdefault(group, s.split)
            if first != s.split:
                record.conflicts.setdefault(group, {first}).add(s.split)
        else:
            s.split = hash_split(group, options.seed, options.ratios)
        yield s


def _order_views(usable: list[Listed]) -> list[tuple[Listed, str]]:
    """Label each usable image frontal or lateral, frontal first.

    A view the source states is used as given. The images whose view it does not state are told
    apart by their left-right symmetry: when no image is a stated lateral and the study has more
    than one image, the least symmetric of them is taken as the lateral; the others count as
    frontal views (so, with no view stated at all, the most symmetric image is a frontal one).
    """
    unknown = [x for x in usable if not x.ref.view]
    lateral_guess = None
    if unknown and len(usable) > 1 and not any(x.ref.view == "lateral" for x in usable):
        lateral_guess = sorted(unknown, key=lambda x: -x.check.symmetry)[-1]
    labelled = []
    for x in usable:
        view = x.ref.view or ("lateral" if x is lateral_guess else "frontal")
        labelled.append((x, view))
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
        self.created: list[Path] = []  # copies this run wrote where there was none: undone on failure
        self.dest_of: dict[str, Path] = {}  # copy -> its resolved destination, written there

    def refuse_linked_folders(self) -> None:
        """OUT/images or OUT/images/NAME a link (to anywhere): refused before the first copy."""
        for folder in (self.out_dir / "images", self.out_dir / self.prefix):
            if folder.is_symlink():
                raise InputFileError(f"{folder}: a link; the image copies stay inside --out, remove it")

    def add(self, src: Path) -> str:
        if src in self.copy_of:
            return self.copy_of[src]
        if not self.copy_of:
            self.refuse_linked_folders()
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
        self.dest_of[copy] = dest
        return copy

    def write(self, max_pixels: int | None, workers: int, progress: bool) -> int:
        """Write the copies, each to the resolved destination ``add`` checked. Their images were
        decoded by the check stage, so a copy failing here is rare (memory, a file changed
        meanwhile); it stops the run with one line naming the image, and ``discard`` then removes
        every copy this run made."""
        jobs = [(src, self.dest_of[copy], max_pixels) for copy, src in sorted(self.source_of.items())]
        bar = tqdm(total=len(jobs), desc="copies", unit="img", disable=not progress or not jobs)
        failed = None
        try:
            if workers <= 1 or len(jobs) < 64:
                results = map(_copy_job, jobs)
            else:
                pool = worker_pool(workers)
                results = pool.map(_copy_job, jobs, chunksize=16)
            for (src, dest, _), (created, error) in zip(jobs, results, strict=False):
                if created:
                    self.created.append(dest)
                if error and failed is None:
                    failed = f"{src}: cannot write its RGB copy ({error}); the run is stopped"
                bar.update()
        finally:
            if workers > 1 and len(jobs) >= 64:
                pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
        if failed:
            raise InputFileError(failed)
        return len(jobs)

    def discard(self) -> None:
        """Remove the copies this run created, and the folders left empty by that."""
        for dest in self.created:
            dest.unlink(missing_ok=True)
        top = self.out_dir / "images"
        for dest in self.created:
            folder = dest.parent
            while folder != top and top in folder.parents:
                try:
                    folder.rmdir()
                except OSError:
                    break
                folder = folder.parent
        with contextlib.suppress(OSError):
            top.rmdir()


def _copy_job(args: tuple[Path, Path, int | None]) -> tuple[bool, str | None]:
    """(whether the copy is new, None) or (whether written, the reason it failed)."""
    src, dest, max_pixels = args
    new = not dest.exists()
    try:
        write_copy(src, dest, max_pixels)
    except Exception as e:  # Pillow raises many types for data it cannot decode
        return False, f"{type(e).__name__}: {str(e)[:200]}"
    return new, None


class SampleWriter:
    """Stage 8: the ShareGPT samples of each study, appended to its split's file as the study
    comes (in reading order); image paths relative to --out. Nothing is in place until
    ``commit``."""

    def __init__(
        self, out_dir: Path, options: PrepareOptions, prompts: list[str], folder: ImagesFolder, copies
    ):
        self.options, self.prompts, self.folder, self.copies = options, prompts, folder, copies
        self.out_abs = os.path.abspath(out_dir)
        self.files: dict[str, AtomicJsonList] = {}
        for s in SPLITS:
            self.files[s] = AtomicJsonList(out_dir / f"{options.name}_{s}.json")
        self.reports = dict.fromkeys(SPLITS, 0)
        self.samples = dict.fromkeys(SPLITS, 0)
        self.images = dict.fromkeys(SPLITS, 0)

    def add(self, s: Study) -> None:
        options, prompts = self.options, self.prompts
        key = s.rec.study_key
        prompt = prompts[0] if len(prompts) == 1 else prompts[_pick(key, options.seed, len(prompts))]
        if s.rec.context:
            prompt = f"{s.rec.context}\n{prompt}"
        self.reports[s.split] += 1
        for group in s.samples:
            rel = []
            for x in group:
                if options.max_pixels or x.check.mode not in PASS_THROUGH_MODES:
                    rel.append(self.copies.add(x.path))
                else:
                    path = self.folder.abs / self.folder.relative(x.path)
                    rel.append(os.path.relpath(path, self.out_abs).replace(os.sep, "/"))
            self.files[s.split].append(
                {
                    "id": s.rec.id if options.views != "each" else f"{s.rec.id}/{group[0].ref.id}",
                    "messages": [
                        {"role": "user", "content": "<image>" * len(group) + prompt},
                        {"role": "assistant", "content": s.target},
                    ],
                    "images": rel,
                }
            )
            self.samples[s.split] += 1
            self.images[s.split] += len(rel)

    def commit(self) -> None:
        for f in self.files.values():
            f.commit()

    def discard(self) -> None:
        for f in self.files.values():
            f.discard()


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
    counts records against ``total`` and shows the time left. ``translations`` maps cleaned
    English sections to Chinese (``--lang zh`` for sources that have only English text);
    ``prompts`` replaces the single prompt, one chosen per study by a hash of its key;
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
    bar = tqdm(records, desc="reports", unit="report", total=total, disable=not progress, smoothing=0.1)
    try:
        kept, writer, n_copies = write_samples(
            stream_studies(bar, run), run, Path(out_dir), prompt_list, inputs, progress
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
        copies = ImageCopies(out_dir, options.name, run.folder, _input_files(inputs))
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


def output_paths(out_dir: Path, name: str) -> tuple[dict[str, Path], dict[str, Path]]:
    """What a prepare run writes, for the output guard: its files, and the folder of its image
    copies."""
    files = {f"OUT/{name}_{s}.json": out_dir / f"{name}_{s}.json" for s in SPLITS}
    files["OUT/dataset_info.json"] = out_dir / "dataset_info.json"
    files["OUT/manifest.json"] = out_dir / "manifest.json"
    return files, {f"OUT/images/{name}": out_dir / "images" / name}


def write_outputs(out_dir: Path, name: str, manifest: dict) -> None:
    """After the split files: their dataset_info.json entries and the manifest entry (one
    manifest.json per folder, one entry per dataset name, like dataset_info.json)."""
    info_path = out_dir / "dataset_info.json"
    info = _read_json_object(info_path)
    for split in SPLITS:
        info[f"{name}_{split}"] = dataset_info_entry(f"{name}_{split}.json")
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
        obj = loads_json(path.read_text(encoding="utf-8"), str(path))
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
