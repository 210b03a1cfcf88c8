"""Write the synthetic Open-i sample in the other public forms of the collection.

The sample (``sample.py``) is in the raw Open-i layout; these converters rewrite it as
- ``kaggle``: ``indiana_reports.csv``, ``indiana_projections.csv``, ``images_normalized/``;
- ``r2gen``: ``annotation.json`` (train/val/test lists) and ``images/<id>/{0,1}.png``;
- ``xrayglm``: ``openi-en.json``, ``openi-zh.json`` and ``images/<report>_<k>.png``;
- ``mimic``: the studies dressed as a copy of MIMIC-CXR (``mimic.py``: the MIMIC-CXR-JPG root,
  the report files, and R2Gen's MIMIC-CXR annotation of them);
- ``chexpert-plus``, ``rexgradient``, ``rexrank``: the studies as CheXpert Plus, ReXGradient-160K
  and a ReXrank leaderboard test JSON (``leaderboard.py``);
each with the same file names, columns and id conventions as the public copies, so the readers
and the tests run on data of the same shape. Deterministic for a given sample.
"""

from __future__ import annotations

import csv
import io
import json
import random
import shutil
from pathlib import Path

from ..fileio import atomic_write_text, dump_json
from .leaderboard import write_chexpert_plus, write_rexgradient, write_rexrank
from .mimic import write_mimic
from .studies import sample_studies

SYNTHETIC_FORMATS = ("kaggle", "r2gen", "xrayglm", "mimic", "chexpert-plus", "rexgradient", "rexrank")


def _csv(rows: list[dict], fields: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_kaggle(sample_dir: str | Path, out: str | Path) -> dict:
    sample_dir, out = Path(sample_dir), Path(out)
    img_dir = out / "images_normalized"
    img_dir.mkdir(parents=True, exist_ok=True)
    reports, projections = [], []
    for s in sample_studies(sample_dir):
        uid = str(s["number"])
        sec = s["sections"]
        reports.append(
            {
                "uid": uid,
                "MeSH": s["mesh"],
                "Problems": s["mesh"],
                "image": "Xray Chest PA and Lateral",
                "indication": sec.get("INDICATION", ""),
                "comparison": sec.get("COMPARISON", ""),
                "findings": sec.get("FINDINGS", ""),
                "impression": sec.get("IMPRESSION", ""),
            }
        )
        for image_id, view in s["images"]:
            # CXR2_IM-0652-1001 -> 2_IM-0652-1001.dcm.png, CXR1_1_IM-0001-4001 -> 1_IM-0001-4001.dcm.png
            filename = f"{uid}_IM-{image_id.split('_IM-', 1)[1]}.dcm.png"
            shutil.copyfile(sample_dir / "NLMCXR_png" / f"{image_id}.png", img_dir / filename)
            projections.append({"uid": uid, "filename": filename, "projection": view.capitalize()})
    fields = ["uid", "MeSH", "Problems", "image", "indication", "comparison", "findings", "impression"]
    atomic_write_text(out / "indiana_reports.csv", _csv(reports, fields))
    atomic_write_text(out / "indiana_projections.csv", _csv(projections, ["uid", "filename", "projection"]))
    return {"reports": len(reports), "images": len(projections)}


def r2gen_id(image_ids: list[str], pair: tuple[str, str]) -> str:
    """R2Gen's study id, from the Open-i ids of a study's images and the two R2Gen kept: the
    series of the pair (CXR2_IM-0652, CXR1_1_IM-0001), or for a study with more images one of
    the pair's image ids in full (CXR11_IM-0468-4001)."""
    if len(image_ids) > 2:
        return pair[0]
    return pair[0].rsplit("-", 1)[0]


def write_r2gen(sample_dir: str | Path, out: str | Path, seed: int = 0) -> dict:
    """Studies with a FINDINGS section and a frontal and a lateral image, as in R2Gen: two
    images each (frontal as 0.png, the first frontal and the lateral of larger studies), split
    70/10/20 by a seeded shuffle."""
    sample_dir, out = Path(sample_dir), Path(out)
    entries = []
    for s in sample_studies(sample_dir):
        findings = " ".join(s["sections"].get("FINDINGS", "").split())
        frontal = [i for i, v in s["images"] if v == "frontal"]
        lateral = [i for i, v in s["images"] if v == "lateral"]
        if not findings or not frontal or not lateral:
            continue
        pair = (frontal[0], lateral[0])
        sid = r2gen_id([i for i, _ in s["images"]], pair)
        (out / "images" / sid).mkdir(parents=True, exist_ok=True)
        paths = []
        for k, image_id in enumerate(pair):
            shutil.copyfile(sample_dir / "NLMCXR_png" / f"{image_id}.png", out / "images" / sid / f"{k}.png")
            paths.append(f"{sid}/{k}.png")
        entries.append({"id": sid, "report": findings, "image_path": paths})
    order = list(range(len(entries)))
    random.Random(seed).shuffle(order)
    n_train, n_val = round(0.7 * len(order)), round(0.1 * len(order))
    split_of = {}
    for rank, i in enumerate(order):
        split_of[i] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
    data = {"train": [], "val": [], "test": []}
    for i, e in enumerate(entries):
        data[split_of[i]].append({**e, "split": split_of[i]})
    atomic_write_text(out / "annotation.json", json.dumps(data, ensure_ascii=False) + "\n")
    return {k: len(v) for k, v in data.items()}


# Share of studies whose later images carry another machine translation of the Chinese caption,
# as in openi-zh.json (the real file differs for about one study in ten).
ZH_VARIANT_SHARE = 0.1


def zh_variant(caption: str) -> str:
    """A second translation of the same Chinese report: other wording, same meaning."""
    for a, b in (("未见", "无"), ("。", "；")):
        if a in caption:
            return caption.replace(a, b, 1)
    return caption + "。"


def write_xrayglm(sample_dir: str | Path, out: str | Path) -> dict:
    """``openi-en.json`` and ``openi-zh.json``: one entry per image of every report with text."""
    sample_dir, out = Path(sample_dir), Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    en, zh = [], []
    for s in sample_studies(sample_dir):
        sec = s["sections"]
        caption_en = " ".join(" ".join([sec.get("FINDINGS", ""), sec.get("IMPRESSION", "")]).split())
        caption_zh = s["zh"]["findings"] + s["zh"]["impression"]
        if not caption_en:
            continue
        varies = random.Random(f"zh-variant:{s['number']}").random() < ZH_VARIANT_SHARE
        for k, (image_id, _view) in enumerate(s["images"], start=1):
            glm_id = f"{s['uid']}_{k}"
            shutil.copyfile(sample_dir / "NLMCXR_png" / f"{image_id}.png", out / "images" / f"{glm_id}.png")
            en.append({"image_id": glm_id, "caption": caption_en})
            zh.append(
                {"image_id": glm_id, "caption": zh_variant(caption_zh) if varies and k > 1 else caption_zh}
            )
    atomic_write_text(out / "openi-en.json", dump_json({"annotations": en}))
    atomic_write_text(out / "openi-zh.json", dump_json({"annotations": zh}))
    return {"images": len(en), "reports": len({e["image_id"].rsplit("_", 1)[0] for e in en})}


def write_format(fmt: str, sample_dir: str | Path, out: str | Path) -> dict:
    writers = {
        "kaggle": write_kaggle,
        "r2gen": write_r2gen,
        "xrayglm": write_xrayglm,
        "mimic": write_mimic,
        "chexpert-plus": write_chexpert_plus,
        "rexgradient": write_rexgradient,
        "rexrank": write_rexrank,
    }
    if fmt not in writers:
        raise ValueError(f"unknown format {fmt!r}: expected one of {', '.join(SYNTHETIC_FORMATS)}")
    return writers[fmt](sample_dir, out)
