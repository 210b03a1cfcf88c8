"""Benchmark: how right and how fast the rule-based CheXpert labeler is (doc/labeler.md).

Default run, on data shipped with the repository:

- per-observation accuracy on our labelled sentence set (tests/fixtures/labeler_sentences.jsonl,
  English and Chinese), over all sentences and over the sentences where the observation is
  mentioned (expected or predicted not blank), beside a *keyword* baseline run in the same process
  (every phrase found counts as positive: no negation, no uncertainty);
- speed: reports per second labelling synthetic reports (the sample generator's), median of
  ``--repeats`` runs, with the keyword baseline's speed and the ratio.

With real data a user has (the repository ships none):

- ``--indiana-reports indiana_reports.csv`` (the Kaggle "Chest X-rays (Indiana University)"
  table: uid, MeSH, Problems, ..., findings, impression): F1 of the English labeler's positives
  against the human MeSH indexing, observation by observation, beside the goals of issue 11;
- ``--openi-en openi-en.json --openi-zh openi-zh.json`` (XrayGLM caption files,
  {"annotations": [{"image_id", "caption"}]}): agreement of the Chinese labeler on the Chinese
  captions with the English labeler on the English captions of the same images.

Usage: python benchmarks/labeler_bench.py [--sentences FILE] [--reports 4000] [--repeats 5]
       [--indiana-reports CSV] [--openi-en JSON --openi-zh JSON] [--out DIR] [--min-accuracy 0.95]
Exit status 1 when an observation's sentence-set accuracy is under --min-accuracy, 2 on bad input.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from xrayqwen2vl.eval.chexpert_labeler import (
    HEDGED,
    MENTION,
    OBSERVATIONS,
    PATHOLOGY,
    STATEMENT,
    _clauses,
    _find,
    _rules,
    label_report,
)
from xrayqwen2vl.eval.inputs import InputFileError, read_jsonl

REPO = Path(__file__).resolve().parents[1]
SENTENCES = REPO / "tests" / "fixtures" / "labeler_sentences.jsonl"

# Issue 11's goals against human indexing (F1) and between languages (agreement).
MESH_GOALS = {
    "Cardiomegaly": 0.94,
    "Pleural Effusion": 0.92,
    "Pneumothorax": 0.88,
    "Atelectasis": 0.93,
    "Edema": 0.80,
    "Pneumonia": 0.75,
}
AGREEMENT_GOALS = {"Pleural Effusion": 0.90, "Pneumothorax": 0.90, "Cardiomegaly": 0.90}

# MeSH main headings of the Indiana indexing -> CheXpert observation, the CheXpert way
# ("Pulmonary Congestion" is Edema, "Hydropneumothorax" is Pneumothorax). "normal" is No Finding.
MESH_TO_OBSERVATION = {
    "normal": "No Finding",
    "cardiomegaly": "Cardiomegaly",
    "pleural effusion": "Pleural Effusion",
    "pneumothorax": "Pneumothorax",
    "hydropneumothorax": "Pneumothorax",
    "pulmonary atelectasis": "Atelectasis",
    "atelectasis": "Atelectasis",
    "pulmonary edema": "Edema",
    "pulmonary congestion": "Edema",
    "edema": "Edema",
    "pneumonia": "Pneumonia",
    "consolidation": "Consolidation",
    "opacity": "Lung Opacity",
    "infiltrate": "Lung Opacity",
    "airspace disease": "Lung Opacity",
    "nodule": "Lung Lesion",
    "mass": "Lung Lesion",
    "lung neoplasms": "Lung Lesion",
    "fractures, bone": "Fracture",
    "catheters, indwelling": "Support Devices",
    "implanted medical device": "Support Devices",
    "medical device": "Support Devices",
    "pacemaker, artificial": "Support Devices",
    "defibrillators, implantable": "Support Devices",
    "stents": "Support Devices",
    "surgical instruments": "Support Devices",
    "sutures": "Support Devices",
    "tube, inserted": "Support Devices",
    "prostheses and implants": "Support Devices",
}
# Subheadings that make an "Edema" heading something other than lung edema.
NON_PULMONARY_EDEMA = ("soft tissue", "extremit", "arm", "leg", "neck", "face", "chest wall")


class BadInput(Exception):
    """A one-line message naming the file and the record."""


# ---------------------------------------------------------------------------------------- keyword baseline
def keyword_labels(text: str, lang: str) -> dict[str, int | None]:
    """The baseline: every phrase of an observation found is a positive; no cue is read."""
    rules = _rules(lang)
    labels: dict[str, int | None] = dict.fromkeys(OBSERVATIONS)
    for sentence in rules.sentences.split(text or ""):
        for clause in _clauses(sentence or "", rules):
            for part in clause:
                for f in _find(part, rules):
                    if f.observation in labels and f.kind in (MENTION, STATEMENT, HEDGED):
                        labels[f.observation] = 1
    if not any(labels[o] == 1 for o in PATHOLOGY):
        labels["No Finding"] = 1
    return labels


# ---------------------------------------------------------------------------------------- sentence set
def read_sentences(path: Path) -> list[dict]:
    records = []
    for n, rec in read_jsonl(path):
        unknown = set(rec.get("labels", {})) - set(OBSERVATIONS)
        if not isinstance(rec.get("text"), str) or rec.get("lang") not in ("en", "zh") or unknown:
            raise BadInput(f'{path}:{n}: need "text", "lang" (en/zh) and "labels" over the 14 observations')
        records.append(rec)
    return records


def sentence_accuracy(records: list[dict], labeler) -> dict[str, dict]:
    """Per language and observation: n, correct, mentioned, correct_mentioned, and the misses."""
    out: dict[str, dict] = {}
    for lang in ("en", "zh"):
        recs = [r for r in records if r["lang"] == lang]
        per = {o: Counter() for o in OBSERVATIONS}
        misses = []
        for r in recs:
            got = labeler(r["text"], lang)
            wrong = {}
            for o in OBSERVATIONS:
                expected = r["labels"].get(o)
                ok = got[o] == expected
                per[o]["n"] += 1
                per[o]["correct"] += ok
                if expected is not None or got[o] is not None:
                    per[o]["mentioned"] += 1
                    per[o]["correct_mentioned"] += ok
                if not ok:
                    wrong[o] = {"expected": expected, "got": got[o]}
            if wrong:
                misses.append({"id": r["id"], "text": r["text"], "wrong": wrong})
        out[lang] = {
            "sentences": len(recs),
            "per_observation": {o: dict(c) for o, c in per.items()},
            "misses": misses,
        }
    return out


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def print_sentence_table(rules_acc: dict, base_acc: dict) -> None:
    for lang, name in (("en", "English"), ("zh", "Chinese")):
        r, b = rules_acc[lang], base_acc[lang]
        if not r["sentences"]:
            continue
        print(
            f"\n{name}: {r['sentences']} sentences ({r['sentences'] - len(r['misses'])} with every label right)"
        )
        print(f"{'observation':28} {'all':>7} {'mentioned':>13} {'keyword baseline':>17}")
        for o in OBSERVATIONS:
            c, cb = r["per_observation"][o], b["per_observation"][o]
            acc = _ratio(c["correct"], c["n"])
            accm = _ratio(c.get("correct_mentioned", 0), c.get("mentioned", 0))
            base = _ratio(cb["correct"], cb["n"])
            mentioned = f"{accm:.3f} ({c.get('mentioned', 0)})" if accm is not None else "-"
            print(f"{o:28} {acc:7.3f} {mentioned:>13} {base:17.3f}")
        for miss in r["misses"]:
            print(f"  miss {miss['id']}: {miss['text']}  {miss['wrong']}")


def lowest_accuracy(acc: dict) -> float:
    return min(
        c["correct"] / c["n"] for lang in acc.values() for c in lang["per_observation"].values() if c.get("n")
    )


# ---------------------------------------------------------------------------------------- speed
def synthetic_reports(n: int, lang: str, seed: int = 3) -> list[str]:
    from xrayqwen2vl.synthetic.text import choose_findings, write_report

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        t = write_report(choose_findings(rng), rng)[lang]
        out.append(f"{t['findings']} {t['impression']}" if lang == "en" else t["findings"] + t["impression"])
    return out


def speed(reports: int, repeats: int) -> dict:
    result = {}
    for lang in ("en", "zh"):
        texts = synthetic_reports(reports, lang)
        label_report("", lang)  # compile the rules outside the timing
        runs = {}
        for name, fn in (("labeler", label_report), ("keyword baseline", keyword_labels)):
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                for t in texts:
                    fn(t, lang)
                times.append(time.perf_counter() - t0)
            runs[name] = reports / statistics.median(times)
        runs["ratio"] = runs["keyword baseline"] / runs["labeler"]
        result[lang] = runs
    return result


# ---------------------------------------------------------------------------------------- MeSH
def mesh_observations(mesh: str) -> set[str]:
    found = set()
    for term in mesh.split(";"):
        parts = [p.strip().lower() for p in term.split("/")]
        head = parts[0]
        obs = MESH_TO_OBSERVATION.get(head)
        if obs == "Edema" and head == "edema" and any(s in p for p in parts[1:] for s in NON_PULMONARY_EDEMA):
            continue
        if obs:
            found.add(obs)
    return found


def read_indiana(path: Path) -> tuple[list[tuple[str, str, set[str]]], list[dict]]:
    """(uid, report text, MeSH observations) per usable report, and the skipped ones with reasons."""
    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    try:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            missing = {"uid", "MeSH", "findings", "impression"} - set(reader.fieldnames or [])
            if missing:
                raise BadInput(
                    f"{path}: missing column(s) {', '.join(sorted(missing))} (a Kaggle indiana_reports.csv?)"
                )
            rows = list(enumerate(reader, start=2))
    except UnicodeDecodeError as e:
        raise BadInput(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    usable, skipped = [], []
    for line, row in rows:
        uid = (row.get("uid") or "").strip() or f"line {line}"
        mesh = (row.get("MeSH") or "").strip()
        text = " ".join(
            x.strip() for x in (row.get("findings") or "", row.get("impression") or "") if x.strip()
        )
        if not mesh or mesh.lower() == "no indexing":
            skipped.append({"record": uid, "line": line, "reason": "no MeSH indexing"})
        elif not text:
            skipped.append({"record": uid, "line": line, "reason": "no findings or impression text"})
        else:
            usable.append((uid, text, mesh_observations(mesh)))
    return usable, skipped


def mesh_f1(path: Path) -> dict:
    reports, skipped = read_indiana(path)
    counts = {o: Counter() for o in OBSERVATIONS}
    for _, text, human in reports:
        labels = label_report(text, "en")
        for o in OBSERVATIONS:
            pred, gold = labels[o] == 1, o in human
            counts[o]["tp" if pred and gold else "fp" if pred else "fn" if gold else "tn"] += 1
    per = {}
    for o, c in counts.items():
        p = _ratio(c["tp"], c["tp"] + c["fp"])
        r = _ratio(c["tp"], c["tp"] + c["fn"])
        f1 = 2 * c["tp"] / (2 * c["tp"] + c["fp"] + c["fn"]) if c["tp"] + c["fp"] + c["fn"] else None
        per[o] = {**{k: c[k] for k in ("tp", "fp", "fn", "tn")}, "precision": p, "recall": r, "f1": f1}
    return {"file": str(path), "reports": len(reports), "skipped": skipped, "per_observation": per}


def print_mesh(result: dict) -> None:
    print(f"\nEnglish labeler vs human MeSH indexing: {result['reports']} reports ({result['file']})")
    if result["skipped"]:
        reasons = Counter(s["reason"] for s in result["skipped"])
        print("  skipped: " + ", ".join(f"{n} {why}" for why, n in reasons.items()))
    print(f"{'observation':28} {'TP':>5} {'FP':>5} {'FN':>5} {'precision':>9} {'recall':>7} {'F1':>6}  goal")
    for o in OBSERVATIONS:
        c = result["per_observation"][o]
        if c["tp"] + c["fp"] + c["fn"] == 0 and o not in MESH_GOALS:
            continue
        goal = MESH_GOALS.get(o)
        verdict = "" if goal is None else f">= {goal:.2f} " + ("met" if (c["f1"] or 0) >= goal else "NOT met")

        def fmt(x):
            return "   -" if x is None else f"{x:.3f}"

        print(
            f"{o:28} {c['tp']:5} {c['fp']:5} {c['fn']:5} {fmt(c['precision']):>9} {fmt(c['recall']):>7} "
            f"{fmt(c['f1']):>6}  {verdict}"
        )


# ---------------------------------------------------------------------------------------- EN vs ZH
def read_captions(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise BadInput(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise BadInput(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise BadInput(
            f'{path}: expected {{"annotations": [{{"image_id", "caption"}}, ...]}} (XrayGLM caption format)'
        )
    out = {}
    for k, a in enumerate(data["annotations"]):
        where = f"{path}: annotations[{k}]"
        if not isinstance(a, dict):
            raise BadInput(f"{where}: expected an object, got {type(a).__name__}")
        for key in ("image_id", "caption"):
            if key not in a:
                raise BadInput(f'{where}: missing "{key}"')
        if not isinstance(a["caption"], str):
            raise BadInput(f'{where}: "caption" must be a string, got {type(a["caption"]).__name__}')
        image_id = str(a["image_id"])
        if image_id in out and out[image_id] != a["caption"]:
            raise BadInput(f'{where}: image_id "{image_id}" appears twice with different captions')
        out[image_id] = a["caption"]
    return out


def zh_en_agreement(en_path: Path, zh_path: Path) -> dict:
    en, zh = read_captions(en_path), read_captions(zh_path)
    common = sorted(set(en) & set(zh))
    skipped = [
        {"file": str(en_path), "record": i, "reason": "no caption in the other language"}
        for i in sorted(set(en) - set(zh))
    ]
    skipped += [
        {"file": str(zh_path), "record": i, "reason": "no caption in the other language"}
        for i in sorted(set(zh) - set(en))
    ]
    exact, positive = Counter(), Counter()
    disagreements = []
    for image_id in common:
        a, b = label_report(en[image_id], "en"), label_report(zh[image_id], "zh")
        for o in OBSERVATIONS:
            exact[o] += a[o] == b[o]
            positive[o] += (a[o] == 1) == (b[o] == 1)
        differ = {o: [a[o], b[o]] for o in OBSERVATIONS if a[o] != b[o]}
        if differ:
            disagreements.append({"image_id": image_id, "en_vs_zh": differ})
    n = len(common)
    per = {o: {"exact": _ratio(exact[o], n), "positive": _ratio(positive[o], n)} for o in OBSERVATIONS}
    return {"pairs": n, "skipped": skipped, "per_observation": per, "disagreements": disagreements}


def print_agreement(result: dict) -> None:
    print(
        f"\nChinese labeler on Chinese captions vs English labeler on English captions: {result['pairs']} images"
    )
    if result["skipped"]:
        reasons = Counter(f"{Path(s['file']).name}: {s['reason']}" for s in result["skipped"])
        print("  skipped: " + ", ".join(f"{n} {why}" for why, n in reasons.items()))
    print(f"{'observation':28} {'exact':>6} {'positive':>9}  goal (exact)")
    for o in OBSERVATIONS:
        c = result["per_observation"][o]
        goal = AGREEMENT_GOALS.get(o)
        exact = c["exact"] if c["exact"] is not None else 0.0
        verdict = "" if goal is None else f">= {goal:.2f} " + ("met" if exact >= goal else "NOT met")
        fmt = "{:6.3f}".format
        print(f"{o:28} {fmt(exact):>6} {fmt(c['positive'] or 0.0):>9}  {verdict}")


# ---------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sentences", type=Path, default=SENTENCES, help="labelled sentence set (JSONL)")
    ap.add_argument(
        "--reports", type=int, default=4000, help="synthetic reports per language for the speed run"
    )
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--indiana-reports", type=Path, help="Kaggle indiana_reports.csv: F1 against MeSH indexing"
    )
    ap.add_argument(
        "--openi-en", type=Path, help="XrayGLM openi-en.json (with --openi-zh): EN vs ZH agreement"
    )
    ap.add_argument("--openi-zh", type=Path, help="XrayGLM openi-zh.json")
    ap.add_argument("--out", type=Path, help="write results.json and skipped.jsonl here")
    ap.add_argument(
        "--min-accuracy", type=float, default=0.95, help="exit 1 when an observation is below this"
    )
    args = ap.parse_args(argv)
    if (args.openi_en is None) != (args.openi_zh is None):
        ap.error("--openi-en and --openi-zh go together")

    try:
        records = read_sentences(args.sentences)
        rules_acc = sentence_accuracy(records, label_report)
        base_acc = sentence_accuracy(records, keyword_labels)
        results: dict = {
            "sentences": {"file": str(args.sentences), "rules": rules_acc, "keyword_baseline": base_acc}
        }
        print_sentence_table(rules_acc, base_acc)
        if args.reports > 0:
            results["speed"] = speed(args.reports, args.repeats)
            print(f"\nSpeed: {args.reports} synthetic reports per language, median of {args.repeats} runs")
            for lang, r in results["speed"].items():
                print(
                    f"  {lang}: labeler {r['labeler']:,.0f} reports/s, keyword baseline "
                    f"{r['keyword baseline']:,.0f} reports/s (baseline/labeler {r['ratio']:.2f}x)"
                )
        skipped = []
        if args.indiana_reports:
            results["mesh"] = mesh_f1(args.indiana_reports)
            skipped += [{"file": str(args.indiana_reports), **s} for s in results["mesh"]["skipped"]]
            print_mesh(results["mesh"])
        if args.openi_en:
            results["agreement"] = zh_en_agreement(args.openi_en, args.openi_zh)
            skipped += results["agreement"]["skipped"]
            print_agreement(results["agreement"])
    except (BadInput, InputFileError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
        (args.out / "skipped.jsonl").write_text(
            "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in skipped)
        )
    low = lowest_accuracy(rules_acc)
    print(
        f"\nlowest per-observation accuracy on the sentence set: {low:.3f} (required {args.min_accuracy:.2f})"
    )
    return 0 if low >= args.min_accuracy else 1


if __name__ == "__main__":
    sys.exit(main())
