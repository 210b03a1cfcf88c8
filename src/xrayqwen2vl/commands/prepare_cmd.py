"""`xrayqwen2vl prepare`: any public form of a collection to LLaMA-Factory datasets.

The forms, their inputs and the published splits come from ``data/formats/registry.py``; this
module only turns them into flags and calls ``prepare_dataset``.
"""

from __future__ import annotations

import resource
import sys
import threading
import time
from collections.abc import Sized

from ..data.formats.registry import forms, get_form, split_choices, split_table_for, split_tables
from ..data.records import InputFileError


def _flag(attr: str) -> str:
    return "--" + attr.replace("_", "-")


def _choose_split(form, args) -> tuple[str, object]:
    """The --split to use and its split table (None when not needed). A table's input given
    without --split selects that split; given with --split hash it is refused, never ignored."""
    tables = [t for t in split_tables().values() if t.collection == form.collection]
    given = [t for t in tables if getattr(args, t.input, None) and t.input not in form.inputs]
    split = args.split or (given[0].name if given else form.default_split)
    table = split_table_for(form, split)
    unused = [t for t in given if t is not table]
    if unused:
        raise InputFileError(
            f"{_flag(unused[0].input)} is read only by --split {unused[0].name} (--format {form.name} "
            f"with --split {split} does not use it); drop it or use --split {unused[0].name}"
        )
    if table is not None and not getattr(args, table.input, None):
        raise InputFileError(
            f"--split {split} with --format {form.name} needs {_flag(table.input)} ({table.help})"
        )
    return split, table


def run_prepare(args) -> int:
    from ..data.prepare import PrepareOptions, load_prompts, load_translations, prepare_dataset, print_summary
    from ..data.splits import parse_ratios

    form = get_form(args.format)
    missing = [_flag(a) for a in form.inputs if not getattr(args, a, None)]
    if missing:
        raise InputFileError(f"--format {form.name} needs {' and '.join(missing)}")
    given = {a: getattr(args, a) for a in form.inputs}
    for f in forms().values():
        for attr in f.flags:
            if getattr(args, attr, False) and attr not in form.flags:
                raise InputFileError(f"{_flag(attr)} is read only by --format {f.name}")
    given.update({attr: bool(getattr(args, attr, False)) for attr in form.flags})
    split, table = _choose_split(form, args)
    if args.prompt and args.prompts:
        raise InputFileError("give --prompt or --prompts, not both")
    translations = None
    if form.sections_lang is not None and args.lang != form.sections_lang:
        if not args.translations:
            as_given = ", ".join(f.name for f in forms().values() if f.sections_lang is None)
            raise InputFileError(
                f"--lang {args.lang} with --format {form.name} needs --translations FILE "
                f"(the cache `xrayqwen2vl translate` writes); {as_given} take(s) text in any language"
            )
        translations = load_translations(args.translations)
    if args.max_pixels is not None and args.max_pixels < 28 * 28:
        raise ValueError(f"--max-pixels {args.max_pixels}: too small (at least 784)")
    options = PrepareOptions(
        format=form.name,
        name=args.name or form.name,
        lang=args.lang,
        target=args.target,
        views=args.views,
        prompt=args.prompt,
        split=split,
        ratios=parse_ratios(args.ratios),
        seed=args.seed,
        deid=args.deid,
        max_pixels=args.max_pixels,
        mixed_language=args.mixed_language,
        verify_images=args.verify_images,
    )
    prompts = load_prompts(args.prompts) if args.prompts else None
    inputs = dict(given)
    split_table = None
    if table is not None:
        inputs[table.input] = getattr(args, table.input)
        split_table = table.load(inputs[table.input])
    for extra in ("translations", "prompts"):
        if getattr(args, extra):
            inputs[extra] = getattr(args, extra)
    start = time.perf_counter()
    records = _read(form, given, quiet=args.quiet)
    manifest = prepare_dataset(
        records,
        args.images_dir,
        args.out,
        options,
        inputs,
        progress=not args.quiet,
        total=None if args.quiet else progress_total(form, given, records),
        translations=translations,
        prompts=prompts,
        workers=args.workers,
        split_table=split_table,
    )
    print_summary(manifest, args.out)
    if not args.quiet:
        print(_speed_line(manifest["counts"], time.perf_counter() - start), file=sys.stderr)
    return 0


# Seconds of silence after which prepare says it is still reading the inputs.
READING_NOTICE_S = 1.0


def progress_total(form, given: dict, records) -> int | None:
    """What the progress bar counts to: the reports and the records that failed to be one (an
    unusable image of a report is no record of its own here); None where a form cannot tell."""
    return len(records) if isinstance(records, Sized) else form.count(given)


def _read(form, given: dict, quiet: bool):
    """``form.read(given)``; when that takes a while (the index of MIMIC-CXR's CSVs and report
    tree), a line on stderr says what is going on before the progress bar appears."""
    if quiet:
        return form.read(given)
    notice = threading.Timer(
        READING_NOTICE_S, lambda: print(f"reading the {form.name} inputs …", file=sys.stderr, flush=True)
    )
    notice.daemon = True
    notice.start()
    try:
        return form.read(given)
    finally:
        notice.cancel()


def _speed_line(counts: dict, seconds: float) -> str:
    """Time, rate and peak memory of the run (stderr: it differs from run to run)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    n = counts["images_checked"]
    return (
        f"checked {n} images ({counts['images_decoded']} decoded) of {counts['inputs']} records in "
        f"{seconds:.1f} s ({n / max(seconds, 1e-9):.0f} images/s); peak memory {own:.0f} MB"
        + (f" (+{workers:.0f} MB per worker process)" if workers else "")
    )


def _input_flags(p) -> None:
    """One flag per input any form (or split table) reads, its help naming the forms."""
    helps: dict[str, list[str]] = {}
    for form in forms().values():
        for attr, text in form.inputs.items():
            helps.setdefault(attr, []).append(f"{form.name}: {text}")
    for table in split_tables().values():
        helps.setdefault(table.input, []).append(f"--split {table.name}: {table.help}")
    g = p.add_argument_group("inputs (per format)")
    for attr, texts in helps.items():
        g.add_argument(_flag(attr), dest=attr, help="; ".join(texts))
    for form in forms().values():
        for attr, text in form.flags.items():
            g.add_argument(_flag(attr), dest=attr, action="store_true", help=text)


def _split_help(known) -> str:
    parts = ["hash: a hash of the study key (of the patient where a form groups studies by patient)"]
    for f in known.values():
        if f.published_split:
            parts.append(f"{f.published_split}: the published split --format {f.name} carries (its default)")
    for t in split_tables().values():
        parts.append(f"{t.name} with {_flag(t.input)}: {t.help} (the default when {_flag(t.input)} is given)")
    return "; ".join(parts) + ". Reports outside a published split are skipped with a reason."


def register(sub) -> None:
    known = forms()
    p = sub.add_parser(
        "prepare",
        help="turn any public form of OpenI / IU X-ray, MIMIC-CXR, CheXpert Plus, ReXGradient-160K or a "
        "ReXrank test JSON into LLaMA-Factory ShareGPT train/val/test files",
        description=(
            "Parse the reports, check every image, split by study (a hash of the study key or of the "
            "patient, or a published split), and write OUT/NAME_{train,val,test}.json, dataset_info.json entries "
            "NAME_train/NAME_val/NAME_test and manifest.json (inputs, options, the split rule, counts; "
            "every skipped record and unused image with its reason). Two views of one study never "
            "straddle splits, and a study lands in the same split whatever form it was read from."
        ),
    )
    p.add_argument(
        "--format",
        default="openi",
        choices=list(known),
        help="input form: " + "; ".join(f"{f.name}: {f.help}" for f in known.values()) + " (default openi)",
    )
    _input_flags(p)
    p.add_argument("--out", required=True, help="output data folder (LLaMA-Factory dataset_dir)")
    p.add_argument(
        "--name",
        help="dataset name prefix: letters, digits, '.', '_', '-' (default: the format name)",
    )
    p.add_argument(
        "--lang", default="en", choices=["en", "zh"], help="language of the target text (default en)"
    )
    p.add_argument(
        "--mixed-language",
        action="store_true",
        help="keep targets not written in the script of --lang (by default a wrong --lang is an error "
        "and a few stray targets are skipped)",
    )
    p.add_argument(
        "--translations",
        help="--lang zh for forms with English sections: translate cache (JSONL source/translation) "
        "from `xrayqwen2vl translate`",
    )
    p.add_argument(
        "--target",
        default="both",
        choices=["findings", "impression", "both"],
        help='target text: "Findings: … Impression: …" (both, default) or one section',
    )
    p.add_argument(
        "--views",
        default="both",
        choices=["both", "frontal", "each"],
        help="both: one sample per study with frontal+lateral (default); frontal: frontal only; "
        "each: one sample per image (the original project's layout), still split by study",
    )
    p.add_argument("--prompt", help="user prompt (default: a fixed instruction in the target language)")
    p.add_argument(
        "--prompts", help="file of prompts, one per line; each study gets one by a hash of its key"
    )
    p.add_argument("--split", choices=split_choices(), help=_split_help(known))
    p.add_argument(
        "--ratios", default="0.7,0.1,0.2", help="hash split train,val,test shares (default 0.7,0.1,0.2)"
    )
    p.add_argument("--seed", type=int, default=0, help="salt of the split hash (default 0)")
    p.add_argument(
        "--deid",
        default="keep",
        choices=["keep", "mask"],
        help="de-identification tokens (Indiana's XXXX, MIMIC-CXR's ___): keep (default) or mask "
        "each run as [REDACTED]",
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        help="write RGB PNG copies of the used images, shrunk to at most N pixels, under OUT/images/NAME/",
    )
    p.add_argument(
        "--verify-images",
        default="fast",
        choices=["fast", "full"],
        help="fast (default): read each image's structure without decoding it (header, declared "
        "size, the JPEG end-of-image marker or the PNG chunks through IEND: catches truncated and "
        "corrupt downloads), and decode only the images whose view the source does not state (to "
        "tell frontal from lateral) and those that get an RGB copy (not 8-bit grey or RGB; every "
        "image under --max-pixels); full: decode every image as well (JPEG in draft mode), in "
        "--workers processes",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="processes that decode images, each with 4 threads for the structure checks "
        "(default: CPU count, at most 8)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_prepare)
