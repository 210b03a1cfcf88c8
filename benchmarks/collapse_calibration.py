"""Calibrate the mode-collapse verdict: what it says on four runs whose answer is known.

On one test set's reference reports, four prediction sets are built and judged the way
``evaluate`` judges (``eval.evaluate.judge_texts``: the same labels, figures and decision):

- oracle: one canonical normal report (the most common reference among the normal studies) for
  every study indexed normal, the study's own reference for every other: clinically perfect,
  so it must not be called collapse;
- constant: the most common reference for every study: collapse;
- shuffled: the references handed out at random (seeded): as varied as the references themselves,
  at the level of text and of labels, so no collapse (its image blindness is for the other
  verdicts: "no better than a constant report", and ``reliance``);
- collapse-80: the canonical normal report for a random 80% of the studies, abnormal ones
  included, the own reference for the rest: collapse.

And two more: 30-reports, the collapse the issue saw in a third-party LoRA, thirty of the
references handed out at random, none of them for a large share of the studies: collapse; and
cardio-only, a model that sees cardiomegaly and nothing else (the own reference where it states
cardiomegaly, the canonical normal report everywhere else): collapse too, with a blindness below 1.

With R2Gen's IU X-ray ``annotation.json`` and the Indiana reports (the Kaggle
``indiana_reports.csv`` or the Open-i ``ecgen-radiology/`` folder: they say which studies the
MeSH indexers called normal), it runs on the real test split (590 studies):

    python benchmarks/collapse_calibration.py --annotation data/raw/iu_xray/annotation.json \\
        --indiana-reports data/raw/kaggle/indiana_reports.csv

Without them it runs on a synthetic test set with the variety of real reports
(``synthetic/report_mix.py``: 55% normal studies in eight normal phrasings, hedged, negated and
incidental findings). ``--predictions NAME=FILE`` adds a model's generated_predictions.jsonl.
Printed: per run the text-level figures (distinct predictions, most frequent share), the
label-level ones (distinct label sets predicted and in the references, the most repeated
prediction's N studies and the M of them with findings it does not state, the hidden share, what
the same predictions would hide handed out at random and the ratio: ``blindness``) and the verdict, beside the verdict of the text-count rule it replaced (most frequent >= 20% or
distinct < 50%).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

OLD_MOST_FREQUENT, OLD_DISTINCT = 0.20, 0.50  # the text-count rule this verdict replaced


def most_common(texts: list[str]) -> str:
    """The most frequent text, whitespace-normalised (ties: first seen)."""
    return Counter(" ".join(t.split()) for t in texts).most_common(1)[0][0]


def scenarios(references: list[str], normal: list[bool], seed: int = 0) -> dict[str, list[str]]:
    """The calibration runs (module description) on these references; ``normal[k]``: the
    indexers called study k normal."""
    from xrayqwen2vl.eval.chexpert_labeler import label_report

    n = len(references)
    normal_refs = [r for r, is_normal in zip(references, normal, strict=True) if is_normal]
    if not normal_refs:
        raise ValueError("no study is indexed normal: the oracle needs some")
    canonical = most_common(normal_refs)
    rng = random.Random(seed)
    shuffled = references[:]
    rng.shuffle(shuffled)
    covered = set(rng.sample(range(n), round(0.8 * n)))
    pool = rng.sample(references, min(30, n))
    return {
        "oracle": [canonical if is_normal else r for r, is_normal in zip(references, normal, strict=True)],
        "constant": [most_common(references)] * n,
        "shuffled": shuffled,
        "collapse-80": [canonical if k in covered else r for k, r in enumerate(references)],
        "30-reports": [rng.choice(pool) for _ in references],
        "cardio-only": [r if label_report(r)["Cardiomegaly"] == 1 else canonical for r in references],
    }


def figures(predictions: list[str], references: list[str], lang: str = "en") -> dict:
    """The diversity block evaluate writes, plus the old text-count rule's verdict."""
    from xrayqwen2vl.eval.evaluate import judge_texts

    block = judge_texts(predictions, references, lang)
    d = block["predictions"]
    block["old_rule_collapsed"] = bool(
        (d["most_frequent_count"] >= 2 and d["most_frequent_share"] >= OLD_MOST_FREQUENT)
        or d["distinct_share"] < OLD_DISTINCT
    )
    return block


def row(name: str, f: dict) -> str:
    d, rep = f["predictions"], f["repetition"]
    sets = rep["label_sets"]
    top = rep["repeated"][0] if rep["repeated"] else {"count": 0, "hidden": 0}
    return (
        f"{name:<13}{d['distinct']:>6} {d['most_frequent_share']:>7.1%}  {'yes' if f['old_rule_collapsed'] else 'no':<4}"
        f"{sets['predictions']['distinct']:>5}/{sets['references']['distinct']:<4}"
        f"{top['count']:>6} {top['hidden']:>5}  {rep['hidden']:>5}/{rep['studies_with_findings']:<5}"
        f"{rep['hidden_share']:>7.1%} {rep['expected_if_blind']:>7.1f} {rep['blindness']:>6.2f}  "
        f"{'COLLAPSE' if f['collapse']['collapsed'] else 'no'}"
    )


HEADER = (
    f"{'run':<13}{'texts':>6} {'top':>7}  {'old':<4}{'label sets':>10}{'N':>6} {'M':>5}  "
    f"{'hidden/with findings':>20} {'blind':>7} {'ratio':>6}  verdict"
)


# ------------------------------------------------------------------ reading the real test split


def read_normal_csv(path: Path) -> dict[str, bool]:
    """Study key -> indexed normal, from the Kaggle indiana_reports.csv (columns uid, MeSH)."""
    from xrayqwen2vl.data.formats.common import indiana_study

    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("uid", "MeSH") if c not in (reader.fieldnames or [])]
        if missing:
            raise SystemExit(f"{path}: line 1: missing column(s) {', '.join(missing)}")
        return {indiana_study(r["uid"]): (r["MeSH"] or "").strip().lower() == "normal" for r in reader}


def read_normal_xml(folder: Path) -> dict[str, bool]:
    """Study key -> indexed normal, from the Open-i report XMLs (every MeSH/major term "normal")."""
    from xrayqwen2vl.data.formats.common import indiana_study

    out = {}
    for path in sorted(folder.glob("*.xml")):
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as e:
            raise SystemExit(f"{path}: line {e.position[0]}: malformed XML") from None
        uid = root.find("uId")
        terms = [(m.text or "").strip().lower() for m in root.iterfind("MeSH/major")]
        if uid is not None and uid.get("id"):
            out[indiana_study(uid.get("id"))] = bool(terms) and all(t == "normal" for t in terms)
    if not out:
        raise SystemExit(f"{folder}: no Open-i report XML")
    return out


def real_split(annotation: Path, indiana: Path, split: str) -> tuple[list[str], list[bool]]:
    """R2Gen's references of ``split`` and whether the indexers called each study normal; every
    entry left out is printed with its reason."""
    from xrayqwen2vl.data.formats.r2gen import read_r2gen
    from xrayqwen2vl.data.records import Report

    normal_of = read_normal_xml(indiana) if indiana.is_dir() else read_normal_csv(indiana)
    refs, normal, left_out = [], [], []
    for rec in read_r2gen(annotation):
        if not isinstance(rec, Report):
            left_out.append(f"{rec.id}: {rec.reason}")
        elif rec.split == split and rec.findings.strip():
            if rec.study in normal_of:
                refs.append(rec.findings)
                normal.append(normal_of[rec.study])
            else:
                left_out.append(f"{rec.id}: study {rec.study or '?'} not in {indiana}")
    for line in left_out:
        print(f"left out {line}", file=sys.stderr)
    return refs, normal


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--annotation", type=Path, help="R2Gen's IU X-ray annotation.json")
    p.add_argument("--indiana-reports", type=Path, help="indiana_reports.csv or the ecgen-radiology/ folder")
    p.add_argument("--split", default="test", help="R2Gen split (default test)")
    p.add_argument("--studies", type=int, default=590, help="synthetic test set size (default 590)")
    p.add_argument("--seed", type=int, default=0, help="synthetic references, shuffle and 80%% draw")
    p.add_argument(
        "--predictions",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="also judge a model's generated_predictions.jsonl (its labels are the references)",
    )
    p.add_argument("--json", type=Path, help="write every figure here")
    args = p.parse_args(argv)
    if (args.annotation is None) != (args.indiana_reports is None):
        p.error("--annotation and --indiana-reports go together")
    if args.annotation:
        refs, normal = real_split(args.annotation, args.indiana_reports, args.split)
        source = f"R2Gen {args.split} split of {args.annotation} ({len(refs)} studies)"
    else:
        from xrayqwen2vl.synthetic.report_mix import realistic_references

        studies = realistic_references(args.studies, args.seed)
        refs, normal = [s.report for s in studies], [s.normal for s in studies]
        source = f"synthetic references, seed {args.seed} ({len(refs)} studies)"
    print(
        f"{source}: {sum(normal)} indexed normal ({sum(normal) / len(refs):.1%}), "
        f"{len(set(' '.join(r.split()) for r in refs))} distinct reference texts"
    )
    results = {name: figures(preds, refs) for name, preds in scenarios(refs, normal, args.seed).items()}
    for spec in args.predictions:
        name, _, path = spec.partition("=")
        rows = [json.loads(x) for x in Path(path).read_text(encoding="utf-8").splitlines() if x.strip()]
        results[name] = figures([r["predict"] for r in rows], [r["label"] for r in rows])
    print(HEADER)
    for name, f in results.items():
        print(row(name, f))
    for name, f in results.items():
        if f["collapse"]["collapsed"]:
            print(f"{name}: {'; '.join(f['collapse']['reasons'])}")
    if args.json:
        args.json.write_text(json.dumps({"source": source, "runs": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
