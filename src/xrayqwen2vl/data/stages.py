"""The stages of ``prepare`` (data/prepare.py chains them), in order: read the reports (and their
targets) → check the target language → take the published split, if one is used → claim each
image for one study → check the images → choose the views → split.

Each stage takes the studies one at a time and passes on those it keeps, so a collection of any
size flows through in constant memory; what a stage can only judge over the whole collection (the
language of most targets, how much of a split table matched) is settled at the end, before any
output file is committed (``refuse_wrong_language``, ``split_table_facts``). What a stage does not
keep goes to the ``Ledger`` with its reason.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .images import ImageCheck, ImagesFolder
from .records import ImageRef, InputFileError, Report, Skipped, UnusedImage
from .splits import SPLITS, PublishedSplit, hash_split
from .text import build_target, clean_section, placeholder_in, script_of
from .verify import check_in_order

if TYPE_CHECKING:
    from .prepare import PrepareOptions

# --split with a split table: the share of the table's studies that must be found in the input.
MIN_MATCHED = 0.95
SCRIPT_NAMES = {"en": "Latin", "zh": "Chinese (Han)"}


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
