"""Every format, with bad records of every kind injected in its own syntax: each record ends up
in a split or in the manifest with the right reason, and kept + skipped = inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from formats_helpers import FORMATS, ODD_IMAGES, load_samples, make_form, run_prepare
from PIL import Image

from xrayqwen2vl.cli import main as cli_main
from xrayqwen2vl.data.formats.registry import get_form


@pytest.fixture(scope="module", params=FORMATS)
def prepared_bad(request, sample_dir, tmp_path_factory):
    fmt = request.param
    base = tmp_path_factory.mktemp(f"bad_{fmt}")
    form = make_form(fmt, sample_dir, base / "src")
    manifest = run_prepare(form, base / "out")[fmt]
    return form, base / "out", manifest


def test_every_record_accounted_for(prepared_bad):
    form, out, m = prepared_bad
    c = m["counts"]
    assert c["inputs"] == form.inputs
    assert c["kept"] + c["skipped"] == form.inputs
    assert c["kept"] == sum(c["reports"].values())
    assert len(m["skipped"]) == c["skipped"]
    samples = load_samples(out, form.fmt)
    kept_ids = {s["id"] for split in samples.values() for s in split}
    assert len(kept_ids) == c["kept"]
    # only a duplicate may share its id with a kept report
    skipped_ids = {s["id"] for s in m["skipped"] if not s["reason"].startswith("duplicate report id")}
    assert not kept_ids & skipped_ids


def test_the_progress_bar_counts_to_the_records_read(prepared_bad):
    """The bar's total is the count of records prepare reads, bad ones included (a total below
    it turns the bar into a bare counter, one above it stops short of 100%)."""
    from xrayqwen2vl.commands.prepare_cmd import progress_total

    form, _, m = prepared_bad
    fmt = get_form(form.fmt)
    assert progress_total(fmt, form.given(), fmt.read(form.given())) == m["counts"]["inputs"] == form.inputs


def test_injected_records_have_their_reason(prepared_bad):
    form, out, m = prepared_bad
    reasons: dict[str, list[str]] = {}
    for s in m["skipped"]:
        reasons.setdefault(s["id"], []).append(s["reason"])
        assert s["source"], s
    for rid, words in form.expect_skip.items():
        assert rid in reasons, f"{rid} not skipped; skipped: {sorted(reasons)}"
        assert any(words in r for r in reasons[rid]), (rid, words, reasons[rid])
    unused = {(u["report"], u["image"]) for u in m["images_not_used"]}
    assert form.expect_unused <= unused, form.expect_unused - unused
    samples = load_samples(out, form.fmt)
    kept_ids = {s["id"] for split in samples.values() for s in split}
    assert form.expect_kept <= kept_ids
    notes = {(n["id"], n["note"].split(" (")[0]) for n in m["notes"]}
    assert set(form.expect_notes.items()) <= notes
    assert sum(m["counts"]["notes"].values()) == len(m["notes"])


def test_images_resolve_inside_and_odd_modes_become_rgb(prepared_bad):
    form, out, m = prepared_bad
    images_root = form.images_dir().resolve()
    copies = 0
    for split in load_samples(out, form.fmt).values():
        for s in split:
            assert s["messages"][0]["content"].count("<image>") == len(s["images"]) >= 1
            assert "<image>" not in s["messages"][1]["content"]
            for rel in s["images"]:
                path = (out / rel).resolve()
                assert path.is_file()
                inside_src = images_root in path.parents
                inside_out = out.resolve() in path.parents
                assert inside_src or inside_out, rel
                if inside_out:
                    copies += 1
                    with Image.open(path) as img:
                        assert img.mode == "RGB"
                        a = np.asarray(img)
                    assert 0 < a.mean() < 250  # a scaled picture, not a clipped white one
    assert copies == len(ODD_IMAGES) == m["counts"]["image_copies"]


def test_image_accounting(prepared_bad):
    """Every image a readable, kept report lists is in its sample or under images_not_used."""
    form, out, m = prepared_bad
    used = sum(m["counts"]["images"].values())
    not_used_of_kept = [u for u in m["images_not_used"] if u["report"] not in {s["id"] for s in m["skipped"]}]
    listed = _images_listed_by_kept(form, out)
    assert used + len([u for u in not_used_of_kept if not u["reason"].startswith("uid ")]) == listed


def _images_listed_by_kept(form, out) -> int:
    samples = load_samples(out, form.fmt)
    kept = {s["id"] for split in samples.values() for s in split}
    recs = get_form(form.fmt).read(form.given())
    seen, n = set(), 0
    for r in recs:
        if hasattr(r, "images") and r.id in kept and r.id not in seen:
            seen.add(r.id)
            n += len(r.images)
    return n


def test_rerun_is_byte_identical(prepared_bad, tmp_path):
    form, out, _ = prepared_bad
    again = tmp_path / "again"
    run_prepare(form, again)
    for f in sorted(out.rglob("*")):
        if f.is_file():
            rel = f.relative_to(out)
            if rel.suffix == ".json" and rel.name != "manifest.json" and rel.name != "dataset_info.json":
                a = json.loads(f.read_text())
                b = json.loads((again / rel).read_text())
                # the image paths differ only by the output folder's place
                for split_a, split_b in ((a, b),):
                    assert [s["messages"] for s in split_a] == [s["messages"] for s in split_b]
            else:
                assert f.read_bytes() == (again / rel).read_bytes() or rel.name == "manifest.json"
    # Same folder, second run: every byte the same.
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    run_prepare(form, out)
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert before == after


MALFORMED = {
    "kaggle": ("indiana_reports.csv", lambda t: t + '7000,a,b,c,d,e,f,g,h,"extra"\n', "line"),
    "r2gen": ("annotation.json", lambda t: t.rstrip() + "\n]\n", "line 2"),
    "xrayglm": ("openi-en.json", lambda t: '{"images": []}', "annotations"),
    "openi": None,
}


@pytest.mark.parametrize("fmt", ["kaggle", "r2gen", "xrayglm"])
def test_malformed_input_file_is_one_line_error(fmt, sample_dir, tmp_path, capsys):
    form = make_form(fmt, sample_dir, tmp_path / "src", bad=False)
    name, spoil, words = MALFORMED[fmt]
    path = form.root / name
    path.write_text(spoil(path.read_text(encoding="utf-8")), encoding="utf-8")
    rc = cli_main(form.args(tmp_path / "out"))
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1, err
    assert name in err and words in err, err
    assert not (tmp_path / "out" / f"{fmt}_train.json").exists()


def test_missing_projection_column_names_file_and_line(sample_dir, tmp_path, capsys):
    form = make_form("kaggle", sample_dir, tmp_path / "src", bad=False)
    p = form.root / "indiana_projections.csv"
    p.write_text(p.read_text().replace("projection", "view", 1))
    assert cli_main(form.args(tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip()
    assert "indiana_projections.csv: line 1: missing column(s) projection" in err


def test_clean_forms_keep_everything_readable(sample_dir, tmp_path):
    """Without injected problems the only skips are the sample's empty reports."""
    for fmt in FORMATS:
        form = make_form(fmt, sample_dir, tmp_path / fmt / "src", bad=False)
        m = run_prepare(form, tmp_path / fmt / "out")[fmt]
        c = m["counts"]
        assert c["inputs"] == form.inputs and c["kept"] + c["skipped"] == form.inputs
        assert all(s["reason"] == "no findings and no impression" for s in m["skipped"]), m["skipped"]


def test_paths_are_relative_to_dataset_dir(prepared_bad):
    form, out, _ = prepared_bad
    for split in load_samples(out, form.fmt).values():
        for s in split:
            assert all(not Path(p).is_absolute() for p in s["images"])
