"""The registry of input forms: the command has no per-format code, so a fifth form is one module
and its name in MODULES. Exercised with a small form shaped like MIMIC-CXR (several studies per
patient, split by patient; an official split carried by the records)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
from PIL import Image

from xrayqwen2vl.cli import main as cli_main
from xrayqwen2vl.data.formats import registry
from xrayqwen2vl.data.records import ImageRef, Report, Skipped

# sha256("0:pat1") etc. by the documented rule, worked out by hand (sha256sum + bc):
# pat1 0.5537 -> train, pat10 0.7560 -> val, pat8 0.9918 -> test.
PATIENT_SPLIT = {"pat1": "train", "pat10": "val", "pat8": "test"}


def _read_toy(given):
    listing = Path(given["listing"])
    for i, e in enumerate(json.loads(listing.read_text())):
        if "study" not in e:
            yield Skipped(f"[{i}]", f"{listing.name}[{i}]", "no study id")
            continue
        yield Report(
            id=e["study"],
            source=f"{listing.name}[{i}]",
            findings=e["text"],
            images=[ImageRef(p, p) for p in e["images"]],
            study=e["study"],
            group=e["patient"],
            split=e.get("official"),
        )


@pytest.fixture
def toy_form(monkeypatch, tmp_path):
    """A module ``toycxr`` in the formats package, listed in MODULES, and data for it."""
    mod = types.ModuleType("xrayqwen2vl.data.formats.toycxr")
    mod.FORM = registry.InputForm(
        name="toycxr",
        collection="toy",
        help="a toy collection",
        inputs={"listing": "listing.json", "images_dir": "the images"},
        read=_read_toy,
        count=lambda given: len(json.loads(Path(given["listing"]).read_text())),
        key_rule="the study id; split group: the patient",
        published_split="official",
    )
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    monkeypatch.setattr(registry, "MODULES", (*registry.MODULES, "toycxr"))
    images = tmp_path / "img"
    images.mkdir()
    entries = []
    for p, patient in enumerate(PATIENT_SPLIT, start=1):
        for s in range(4):  # four studies per patient
            name = f"p{p}s{s}.png"
            Image.new("L", (32, 32), 40 * s + p).save(images / name)
            entries.append(
                {
                    "study": f"s{p}{s}",
                    "patient": patient,
                    "text": "Heart size normal.",
                    "images": [name],
                    **({"official": "test"} if s < 3 else {}),
                }
            )
    entries.append({"patient": "pat9"})
    (tmp_path / "listing.json").write_text(json.dumps(entries))
    return ["prepare", "--format", "toycxr", "--listing", str(tmp_path / "listing.json")] + [
        "--images-dir",
        str(images),
        "--quiet",
    ]


def _splits(out: Path) -> dict[str, str]:
    return {
        x["id"]: s
        for s in ("train", "val", "test")
        for x in json.loads((out / f"toycxr_{s}.json").read_text())
    }


def test_a_new_form_is_one_module(toy_form, tmp_path):
    assert cli_main([*toy_form, "--out", str(tmp_path / "h")]) == 0
    m = json.loads((tmp_path / "h" / "manifest.json").read_text())["toycxr"]
    assert m["counts"]["inputs"] == 13 and m["counts"]["kept"] == 12
    assert m["split"]["study_key"] == "the study id; split group: the patient"
    assert m["split"]["group_key"] == "set by the form"
    # every study of a patient in the patient's split, as the rule gives it by hand
    expected = {
        f"s{p}{s}": split for p, split in enumerate(PATIENT_SPLIT.values(), start=1) for s in range(4)
    }
    assert _splits(tmp_path / "h") == expected


def test_a_new_form_carries_its_official_split(toy_form, tmp_path):
    assert cli_main([*toy_form, "--split", "official", "--out", str(tmp_path / "o")]) == 0
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())["toycxr"]
    assert set(_splits(tmp_path / "o").values()) == {"test"} and m["counts"]["kept"] == 9
    assert sum(s["reason"] == "not in the official split (--split official)" for s in m["skipped"]) == 3


def test_splits_of_another_collection_are_refused(toy_form, tmp_path, capsys):
    assert cli_main([*toy_form, "--split", "r2gen", "--out", str(tmp_path / "r")]) == 2
    assert "--split r2gen is not available for --format toycxr" in capsys.readouterr().err
