"""Helpers for the format tests: each public form of the sample, with bad records injected in
that form's own syntax, and the expected outcome of every injected record."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from xrayqwen2vl.cli import main as cli_main
from xrayqwen2vl.synthetic.formats import write_format

FORMATS = ("openi", "kaggle", "r2gen", "xrayglm")

# Images that must make their (single-image) report skipped, and the reason's key words.
BAD_IMAGES = {
    "corrupt": "image unreadable",
    "truncated": "image unreadable",
    "empty": "empty (0 bytes)",
    "bomb": "image too large",
    "missing": "image file not found",
    "escape": "escapes the images folder",
    "absolute": "escapes the images folder",
}
# Valid images in modes LLaMA-Factory would mishandle: kept, with an RGB copy in the output.
ODD_IMAGES = ("deep16", "rgba", "palette")


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def write_special_image(kind: str, path: Path, real_png: Path) -> None:
    """The file for one special image kind at ``path`` (nothing for "missing")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    real = real_png.read_bytes()
    if kind == "corrupt":
        path.write_bytes(real[:64] + bytes(range(256)) * 8)
    elif kind == "truncated":
        path.write_bytes(real[: len(real) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "bomb":  # 8000 x 8000 = 64 Mpx in a few kB
        path.write_bytes(png_bytes(Image.new("1", (8000, 8000))))
    elif kind == "deep16":  # 16-bit greyscale, values above 255 (a plain convert would be white)
        a = (np.asarray(Image.open(real_png).convert("L"), dtype=np.uint16) * 200).astype(np.uint16)
        path.write_bytes(png_bytes(Image.fromarray(a)))
    elif kind == "rgba":
        path.write_bytes(png_bytes(Image.open(real_png).convert("RGBA")))
    elif kind == "palette":
        path.write_bytes(png_bytes(Image.open(real_png).convert("RGB").convert("P")))
    elif kind not in ("missing", "escape", "absolute"):
        raise ValueError(kind)


def _csv_rows(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, encoding="utf-8", newline="") as f:
        r = csv.DictReader(f)
        return list(r.fieldnames), list(r)


def _csv_text(fields, rows) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


class Form:
    """One format's files under ``root``, the CLI arguments that read them, and what the
    injected records must become: ``expect_skip`` id -> reason key words, ``expect_kept`` ids,
    ``expect_unused`` (report, image) pairs, and ``inputs``: how many records prepare must see."""

    def __init__(self, fmt: str, root: Path):
        self.fmt, self.root = fmt, root
        self.expect_skip: dict[str, str] = {}
        self.expect_kept: set[str] = set()
        self.expect_unused: set[tuple[str, str]] = set()
        self.expect_notes: dict[str, str] = {}  # id -> note kind, for records kept with a note
        self.inputs = 0
        self.images_listed = 0  # images named by readable records, for image accounting

    def given(self) -> dict[str, str]:
        """The form's inputs as the registry's readers take them (dest -> path)."""
        r = self.root
        files = {
            "openi": {"reports_dir": r / "ecgen-radiology", "images_dir": r / "NLMCXR_png"},
            "kaggle": {
                "reports_csv": r / "indiana_reports.csv",
                "projections_csv": r / "indiana_projections.csv",
                "images_dir": r / "images_normalized",
            },
            "r2gen": {"annotation": r / "annotation.json", "images_dir": r / "images"},
            "xrayglm": {"captions": r / "openi-en.json", "images_dir": r / "images"},
        }[self.fmt]
        return {k: str(v) for k, v in files.items()}

    def args(self, out: Path, *extra: str) -> list[str]:
        a = [x for k, v in self.given().items() for x in ("--" + k.replace("_", "-"), v)]
        return ["prepare", "--format", self.fmt, *a, "--out", str(out), "--quiet", *extra]

    def images_dir(self) -> Path:
        return Path(self.given()["images_dir"])


def make_form(fmt: str, sample_dir: Path, root: Path, bad: bool = True) -> Form:
    """Write the sample in ``fmt`` under ``root``; with ``bad``, inject one record per kind of
    problem (bad images, escaping paths, odd image modes, duplicate id, undecodable text, a
    literal <image>, empty text) in that format's own syntax."""
    form = Form(fmt, root)
    if fmt == "openi":
        shutil.copytree(sample_dir / "ecgen-radiology", root / "ecgen-radiology")
        shutil.copytree(sample_dir / "NLMCXR_png", root / "NLMCXR_png")
    else:
        write_format(fmt, sample_dir, root)
    real_png = sorted((sample_dir / "NLMCXR_png").glob("*.png"))[0]
    (root.parent / "outside").mkdir(exist_ok=True)
    for name in ("secret.png", "secret_1.png"):  # real files outside, so only the path check stops them
        shutil.copyfile(real_png, root.parent / "outside" / name)
    {"openi": _openi, "kaggle": _kaggle, "r2gen": _r2gen, "xrayglm": _xrayglm}[fmt](form, real_png, bad)
    return form


def _image_kinds():
    return list(BAD_IMAGES) + list(ODD_IMAGES)


# ---------------------------------------------------------------- openi
def _openi_xml(uid: str, findings: str, image_ids: list[str]) -> str:
    images = "".join(f'<parentImage id="{i}"><figureId>F1</figureId></parentImage>' for i in image_ids)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<eCitation><uId id="'
        + uid
        + '"/><MedlineCitation><Article><Abstract>'
        + f'<AbstractText Label="FINDINGS">{findings}</AbstractText>'
        + '<AbstractText Label="IMPRESSION">Stable.</AbstractText>'
        + f"</Abstract></Article></MedlineCitation>{images}</eCitation>\n"
    )


def _openi(form: Form, real_png: Path, bad: bool) -> None:
    xml_dir = form.root / "ecgen-radiology"
    files = sorted(xml_dir.glob("*.xml"))
    form.inputs = len(files)
    if not bad:
        return
    n = 5000
    for kind in _image_kinds():
        n += 1
        image_id = {
            "escape": "../../outside/secret",
            "absolute": str(form.root.parent / "outside" / "secret"),
        }.get(kind, f"BAD{kind}")
        write_special_image(kind, form.images_dir() / f"{image_id}.png", real_png)
        (xml_dir / f"{n}.xml").write_text(_openi_xml(f"CXR{n}", f"Finding {kind}.", [image_id]))
        _expect_image(form, f"CXR{n}", image_id, kind)
    first = files[0]
    text = first.read_text(encoding="utf-8")
    uid = text.split('<uId id="')[1].split('"')[0]
    (xml_dir / "6001.xml").write_text(text)  # the same uId again
    form.expect_skip[uid] = "duplicate report id"
    (xml_dir / "6002.xml").write_bytes(
        _openi_xml("CXR6002", "Heart \xff size", []).encode("utf-8").replace(b"\xc3\xbf", b"\xff")
    )
    form.expect_skip["6002"] = "not well-formed"  # undecodable bytes: the XML parser names the line
    (xml_dir / "6003.xml").write_text(_openi_xml("CXR6003", "See &lt;image&gt; here.", ["BADrgba"]))
    form.expect_skip["CXR6003"] = "literal <image>"
    (xml_dir / "6004.xml").write_text(_openi_xml("CXR6004", "", ["BADrgba"]).replace("Stable.", " "))
    form.expect_skip["CXR6004"] = "no findings and no impression"
    form.inputs += len(_image_kinds()) + 4


def _expect_image(form: Form, report_id: str, image_id: str, kind: str) -> None:
    if kind in BAD_IMAGES:
        form.expect_skip[report_id] = BAD_IMAGES[kind]
        form.expect_unused.add((report_id, image_id))
    else:
        form.expect_kept.add(report_id)


# ---------------------------------------------------------------- kaggle
def _kaggle(form: Form, real_png: Path, bad: bool) -> None:
    rep_path, proj_path = form.root / "indiana_reports.csv", form.root / "indiana_projections.csv"
    fields, reports = _csv_rows(rep_path)
    pfields, projections = _csv_rows(proj_path)
    form.inputs = len(reports)
    if not bad:
        return
    blank = dict.fromkeys(fields, "")
    n = 5000
    for kind in _image_kinds():
        n += 1
        filename = {
            "escape": "../../outside/secret.png",
            "absolute": str(form.root.parent / "outside" / "secret.png"),
        }.get(kind, f"{n}_IM-{kind}.dcm.png")
        write_special_image(kind, form.images_dir() / filename, real_png)
        reports.append({**blank, "uid": str(n), "findings": f"Finding {kind}.", "impression": "Stable."})
        projections.append({"uid": str(n), "filename": filename, "projection": "Frontal"})
        _expect_image(form, str(n), filename, kind)
    reports.append({**reports[0], "findings": "Another text."})
    form.expect_skip[reports[0]["uid"]] = "duplicate report id"
    reports.append({**blank, "uid": "6003", "findings": "See <image> here.", "impression": "x"})
    form.expect_skip["6003"] = "literal <image>"
    reports.append({**blank, "uid": "6004"})
    form.expect_skip["6004"] = "no findings and no impression"
    reports.append({**blank, "uid": "6005", "findings": "No images for me."})
    form.expect_skip["6005"] = "no images listed"
    reports.append({**blank, "uid": "6002", "findings": "Heart MARK size.", "impression": "x"})
    form.expect_skip["6002"] = "undecodable text in findings"
    projections.append({"uid": "6002", "filename": projections[0]["filename"], "projection": "Frontal"})
    projections.append({"uid": "9999", "filename": "orphan.png", "projection": "Lateral"})
    form.expect_unused.add(("9999", "orphan.png"))
    form.inputs += len(_image_kinds()) + 5
    rep_path.write_bytes(_csv_text(fields, reports).encode("utf-8").replace(b"MARK", b"\xff\xfe"))
    proj_path.write_text(_csv_text(pfields, projections), encoding="utf-8")


# ---------------------------------------------------------------- r2gen
def _r2gen(form: Form, real_png: Path, bad: bool) -> None:
    path = form.root / "annotation.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    form.inputs = sum(len(v) for v in data.values())
    if not bad:
        return
    n = 5000
    for kind in _image_kinds():
        n += 1
        sid = f"BAD{kind}"
        rel = {
            "escape": "../../outside/secret.png",
            "absolute": str(form.root.parent / "outside" / "secret.png"),
        }.get(kind, f"{sid}/0.png")
        write_special_image(kind, form.images_dir() / rel, real_png)
        data["test"].append({"id": sid, "report": f"Finding {kind}.", "image_path": [rel], "split": "test"})
        _expect_image(form, sid, rel, kind)
    dup = data["train"][0]
    data["val"].append({**dup, "split": "val"})
    form.expect_skip[dup["id"]] = "duplicate report id"
    ok_paths = data["train"][1]["image_path"]
    data["train"].append({"id": "U1", "report": "Heart MARK size.", "image_path": ok_paths, "split": "train"})
    form.expect_skip["U1"] = "undecodable text in report"
    data["train"].append(
        {"id": "I1", "report": "See <image> here.", "image_path": ok_paths, "split": "train"}
    )
    form.expect_skip["I1"] = "literal <image>"
    data["train"].append({"id": "E1", "report": "  ", "image_path": ok_paths, "split": "train"})
    form.expect_skip["E1"] = "no findings and no impression"
    data["train"].append({"id": "S1", "report": "Fine.", "image_path": ok_paths, "split": "test"})
    form.expect_skip["S1"] = "sits under"
    data["train"].append(["not", "an", "object"])
    form.expect_skip[f"train[{len(data['train']) - 1}]"] = "not a JSON object"
    form.inputs += len(_image_kinds()) + 6
    path.write_bytes(json.dumps(data, ensure_ascii=False).encode("utf-8").replace(b"MARK", b"\xff\xfe"))


# ---------------------------------------------------------------- xrayglm
def _xrayglm(form: Form, real_png: Path, bad: bool) -> None:
    path = form.root / "openi-en.json"
    anns = json.loads(path.read_text(encoding="utf-8"))["annotations"]
    form.inputs = len({a["image_id"].rsplit("_", 1)[0] for a in anns})
    if not bad:
        return
    for kind in _image_kinds():
        image_id = {
            "escape": "../../outside/secret_1",
            "absolute": str(form.root.parent / "outside" / "secret_1"),
        }.get(kind, f"BAD{kind}_1")
        write_special_image(kind, form.images_dir() / f"{image_id}.png", real_png)
        anns.append({"image_id": image_id, "caption": f"Finding {kind}."})
        _expect_image(form, image_id.rsplit("_", 1)[0], image_id, kind)
    first = anns[0]["image_id"].rsplit("_", 1)[0]
    anns.append({"image_id": f"{first}_1", "caption": anns[0]["caption"]})  # the same image twice
    form.expect_skip[first] = "image_id appears twice"
    anns += [{"image_id": "DIFF_1", "caption": "One text."}, {"image_id": "DIFF_2", "caption": "Another."}]
    form.expect_kept.add("DIFF")  # kept with the first entry's caption, the variant noted
    form.expect_notes["DIFF"] = "images carry different captions"
    anns.append({"image_id": "U_1", "caption": "Heart MARK size."})
    form.expect_skip["U_1"] = "undecodable text in caption"
    anns.append({"image_id": "I_1", "caption": "See <image> here."})
    form.expect_skip["I"] = "literal <image>"
    anns.append({"image_id": "E_1", "caption": " "})
    form.expect_skip["E"] = "empty report text"
    anns.append({"image_id": "nounderscore", "caption": "x"})
    form.expect_skip[f"annotations[{len(anns) - 1}]"] = "image_id missing"
    for name in ("DIFF_1", "DIFF_2", "I_1", "E_1"):
        shutil.copyfile(real_png, form.images_dir() / f"{name}.png")
    form.inputs += len(_image_kinds()) + 5  # the duplicate joins an existing report
    path.write_bytes(
        json.dumps({"annotations": anns}, ensure_ascii=False).encode("utf-8").replace(b"MARK", b"\xff\xfe")
    )


def run_prepare(form: Form, out: Path, *extra: str, capsys=None) -> dict:
    rc = cli_main(form.args(out, *extra))
    assert rc == 0
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def load_samples(out: Path, name: str) -> dict[str, list[dict]]:
    return {
        s: json.loads((out / f"{name}_{s}.json").read_text(encoding="utf-8"))
        for s in ("train", "val", "test")
    }


def study_key(fmt: str, report_id: str) -> str:
    """The Indiana report number "CXR<n>" of a report id in ``fmt``, by the documented rule
    (written out here, not taken from the code under test); other ids are their own key."""
    import re

    pattern = {
        "openi": r"CXR(\d+)",
        "kaggle": r"(\d+)",
        "xrayglm": r"(?:CXR)?(\d+)",
        "r2gen": r"CXR(\d+)_(?:\d+_)?IM-\d+(?:-\d+)?",
    }[fmt]
    m = re.fullmatch(pattern, report_id)
    return f"CXR{int(m.group(1))}" if m else report_id


def report_id(sample: dict, views: str) -> str:
    return sample["id"].split("/")[0] if views == "each" else sample["id"]


def assert_summary(stdout: str, out: Path, name: str, inputs: int) -> None:
    """The summary `prepare` prints, line by line, against what it wrote: the reports read, the
    split table (reports, samples, images per split, counted in the written files) and the
    closing line naming the files."""
    import re

    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))[name]
    kept, skipped = manifest["counts"]["kept"], manifest["counts"]["skipped"]
    lines = stdout.splitlines()
    assert lines[0] == f"reports read {inputs}: kept {kept}, skipped {skipped}" and kept + skipped == inputs
    assert lines[1].split() == ["split", "reports", "samples", "images"]
    samples = load_samples(out, name)
    for row, s in zip(lines[2:5], ("train", "val", "test"), strict=True):
        ids = {re.sub(r"/.*", "", x["id"]) for x in samples[s]}
        assert row.split() == [
            s,
            str(len(ids)),
            str(len(samples[s])),
            str(sum(len(x["images"]) for x in samples[s])),
        ]
    assert sum(len({x["id"] for x in v}) for v in samples.values()) == kept
    assert (
        lines[-1] == f"wrote {out}/{name}_{{train,val,test}}.json, dataset_info.json, manifest.json ({name})"
    )
