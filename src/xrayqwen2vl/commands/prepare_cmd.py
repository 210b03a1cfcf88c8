"""`xrayqwen2vl prepare`: any public form of the collection to LLaMA-Factory datasets."""

from __future__ import annotations

from pathlib import Path

from ..data.records import InputFileError

FORMATS = ("openi", "kaggle", "r2gen", "xrayglm")
NEEDS = {
    "openi": ("reports_dir", "images_dir"),
    "kaggle": ("reports_csv", "projections_csv", "images_dir"),
    "r2gen": ("annotation", "images_dir"),
    "xrayglm": ("captions", "images_dir"),
}


def _flag(attr: str) -> str:
    return "--" + attr.replace("_", "-")


def open_records(args):
    """(records iterator, total for the progress bar, inputs for the manifest)."""
    missing = [_flag(a) for a in NEEDS[args.format] if not getattr(args, a, None)]
    if missing:
        raise InputFileError(f"--format {args.format} needs {' and '.join(missing)}")
    inputs = {a: getattr(args, a) for a in NEEDS[args.format]}
    if args.format == "openi":
        from ..data.formats.openi import read_openi

        reports_dir = Path(args.reports_dir)
        total = len(list(reports_dir.glob("*.xml"))) if reports_dir.is_dir() else None
        return read_openi(reports_dir), total, inputs
    if args.format == "kaggle":
        from ..data.formats.kaggle import count_reports, read_kaggle

        return read_kaggle(args.reports_csv, args.projections_csv), count_reports(args.reports_csv), inputs
    if args.format == "r2gen":
        from ..data.formats.r2gen import count_entries, read_r2gen

        return read_r2gen(args.annotation), count_entries(args.annotation), inputs
    from ..data.formats.xrayglm import count_reports as count_captions
    from ..data.formats.xrayglm import read_xrayglm

    return read_xrayglm(args.captions), count_captions(args.captions), inputs


def r2gen_key(image_id: str, fmt: str) -> str | None:
    """R2Gen's study id for an image: Open-i CXR12_1_IM-1012-1001 or Kaggle
    12_IM-1012-1001.dcm.png -> CXR12_IM-1012."""
    if fmt == "openi":
        parts = image_id.split("_", 2)
        if len(parts) != 3 or not parts[0].startswith("CXR"):
            return None
        return f"{parts[0]}_{parts[2].rsplit('-', 1)[0]}"
    name = image_id.split(".", 1)[0]
    uid, _, rest = name.partition("_")
    return f"CXR{uid}_{rest.rsplit('-', 1)[0]}" if rest else None


def with_r2gen_split(records, annotation: str, fmt: str):
    """Give Open-i / Kaggle reports the split of their study in R2Gen's annotation.json, so the
    same test set as the literature can be used with all sections and all views."""
    from ..data.formats.r2gen import read_r2gen
    from ..data.records import Report

    split_of: dict[str, str] = {}
    for r in read_r2gen(annotation):
        if isinstance(r, Report):
            split_of.setdefault(r.id, r.split)  # a later duplicate id is not R2Gen's
    for rec in records:
        if isinstance(rec, Report):
            keys = {r2gen_key(ref.id, fmt) for ref in rec.images} & split_of.keys()
            rec.split = split_of[min(keys)] if keys else None
        yield rec


def run_prepare(args) -> int:
    from ..data.prepare import PrepareOptions, load_prompts, load_translations, prepare_dataset, print_summary
    from ..data.splits import parse_ratios

    split = args.split or ("r2gen" if args.format == "r2gen" else "hash")
    if split == "r2gen" and args.format == "xrayglm":
        raise InputFileError("--split r2gen: XrayGLM ids cannot be matched to R2Gen's; use --format r2gen")
    if split == "r2gen" and args.format != "r2gen" and not args.annotation:
        raise InputFileError(
            f"--split r2gen with --format {args.format} needs --annotation (R2Gen's annotation.json), "
            "or use --format r2gen"
        )
    if args.prompt and args.prompts:
        raise InputFileError("give --prompt or --prompts, not both")
    translations = None
    if args.lang == "zh" and args.format != "xrayglm":
        if not args.translations:
            raise InputFileError(
                f"--lang zh with --format {args.format} needs --translations FILE "
                "(the cache `xrayqwen2vl translate` writes); xrayglm takes openi-zh.json directly"
            )
        translations = load_translations(args.translations)
    if args.max_pixels is not None and args.max_pixels < 28 * 28:
        raise ValueError(f"--max-pixels {args.max_pixels}: too small (at least 784)")
    options = PrepareOptions(
        format=args.format,
        name=args.name or args.format,
        lang=args.lang,
        target=args.target,
        views=args.views,
        prompt=args.prompt,
        split=split,
        ratios=parse_ratios(args.ratios),
        seed=args.seed,
        deid=args.deid,
        max_pixels=args.max_pixels,
    )
    prompts = load_prompts(args.prompts) if args.prompts else None
    records, total, inputs = open_records(args)
    if split == "r2gen" and args.format in ("openi", "kaggle"):
        records = with_r2gen_split(records, args.annotation, args.format)
        inputs["annotation"] = args.annotation
    if args.translations:
        inputs["translations"] = args.translations
    if args.prompts:
        inputs["prompts"] = args.prompts
    manifest = prepare_dataset(
        records,
        args.images_dir,
        args.out,
        options,
        inputs,
        progress=not args.quiet,
        total=total,
        translations=translations,
        prompts=prompts,
        workers=args.workers,
    )
    print_summary(manifest, args.out)
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "prepare",
        help="turn any public form of OpenI / IU X-ray into LLaMA-Factory ShareGPT train/val/test files",
        description=(
            "Parse the reports, validate every image, split by report id (a hash of the id, or R2Gen's "
            "split), and write OUT/NAME_{train,val,test}.json, dataset_info.json entries "
            "NAME_train/NAME_val/NAME_test and manifest.json (inputs, options, counts; every skipped "
            "record and unused image with its reason). Two views of one study never straddle splits."
        ),
    )
    p.add_argument(
        "--format", default="openi", choices=FORMATS, help="input form of the collection (default openi)"
    )
    g = p.add_argument_group("inputs (per format)")
    g.add_argument("--reports-dir", help="openi: folder of report XML files (ecgen-radiology)")
    g.add_argument("--reports-csv", help="kaggle: indiana_reports.csv")
    g.add_argument("--projections-csv", help="kaggle: indiana_projections.csv (Frontal/Lateral per image)")
    g.add_argument(
        "--annotation",
        help="r2gen: annotation.json with train/val/test lists (also gives openi/kaggle --split r2gen its split)",
    )
    g.add_argument("--captions", help="xrayglm: openi-en.json or openi-zh.json")
    g.add_argument(
        "--images-dir",
        help="folder of the images (openi: NLMCXR_png; kaggle: images_normalized; r2gen: images; xrayglm: the PNGs)",
    )
    p.add_argument("--out", required=True, help="output data folder (LLaMA-Factory dataset_dir)")
    p.add_argument("--name", help="dataset name prefix (default: the format name)")
    p.add_argument(
        "--lang", default="en", choices=["en", "zh"], help="language of the target text (default en)"
    )
    p.add_argument(
        "--translations",
        help="--lang zh for openi/kaggle/r2gen: translate cache (JSONL source/translation) from `xrayqwen2vl translate`",
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
        "--prompts", help="file of prompts, one per line; each report gets one by a hash of its id"
    )
    p.add_argument(
        "--split",
        choices=["hash", "r2gen"],
        help="hash of the report id (default), or r2gen: R2Gen's split from annotation.json (default for "
        "--format r2gen; openi/kaggle with --annotation: reports not in it are skipped)",
    )
    p.add_argument(
        "--ratios", default="0.7,0.1,0.2", help="hash split train,val,test shares (default 0.7,0.1,0.2)"
    )
    p.add_argument("--seed", type=int, default=0, help="salt of the split hash (default 0)")
    p.add_argument(
        "--deid",
        default="keep",
        choices=["keep", "mask"],
        help="XXXX de-identification tokens: keep (default) or mask each run as [REDACTED]",
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        help="write RGB PNG copies of the used images, shrunk to at most N pixels, under OUT/images/NAME/",
    )
    p.add_argument("--workers", type=int, help="processes that decode images (default: CPU count, at most 8)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_prepare)
