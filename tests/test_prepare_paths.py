"""Issue 15, items 2 and 4: hostile or careless image paths. Copies made for --max-pixels land
under --out, named by the resolved path, and never on an input; --name cannot leave --out; one
unresolvable path (a symlink loop, a NUL byte) skips its record with a reason instead of ending
the run. Nothing outside --out changes: checked by hashing the tree around it."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from formats_helpers import load_samples, make_form, run_prepare

from xrayqwen2vl.cli import main as cli_main


def tree(root: Path, skip: Path | None = None) -> dict[str, str]:
    """Every file and link under ``root`` (but ``skip``) -> hash of its bytes or link target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        if skip is not None and (d == skip or skip in d.parents):
            continue
        for name in filenames + [n for n in dirnames if (d / n).is_symlink()]:
            p = d / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _first_entry_path(form, new_path: str) -> str:
    """Point the first train entry's first image at ``new_path``; return the old path."""
    path = form.root / "annotation.json"
    data = json.loads(path.read_text())
    old = data["train"][0]["image_path"][0]
    data["train"][0]["image_path"][0] = new_path
    path.write_text(json.dumps(data))
    return old


def test_max_pixels_copy_of_a_dotdot_path_stays_under_out(sample_dir, tmp_path):
    """A path that leaves the images folder and comes back passes the escape check; its copy
    used to be written outside --out."""
    form = make_form("r2gen", sample_dir, tmp_path / "src", bad=False)
    old = _first_entry_path(form, "")
    _first_entry_path(form, f"../../../{tmp_path.name}/src/images/{old}")
    out = tmp_path / "out"
    before = tree(tmp_path)
    m = run_prepare(form, out, "--max-pixels", "4096")["r2gen"]
    assert tree(tmp_path, skip=out) == before  # nothing outside --out, nothing new
    copies = [rel for v in load_samples(out, "r2gen").values() for x in v for rel in x["images"]]
    assert f"images/r2gen/{old}" in copies and len(copies) == m["counts"]["image_copies"]
    assert all((out / rel).resolve().is_relative_to(out.resolve()) for rel in copies)


def test_max_pixels_never_overwrites_an_input(sample_dir, tmp_path):
    """--out above the inputs, with a path whose unnormalised copy name was the input itself."""
    form = make_form("r2gen", sample_dir, tmp_path / "images", bad=False)
    old = _first_entry_path(form, "")
    _first_entry_path(form, f"../images/{old}")
    before = tree(tmp_path)
    run_prepare(form, tmp_path, "--max-pixels", "784")
    after = tree(tmp_path)
    assert {k: after[k] for k in before} == before  # every input byte-identical
    new = set(after) - set(before)
    assert f"images/r2gen/{old}" in new
    outputs = {"dataset_info.json", "manifest.json", "r2gen_train.json", "r2gen_val.json", "r2gen_test.json"}
    assert all(k.startswith("images/r2gen/") or k in outputs for k in new), new - outputs


def test_name_cannot_leave_out(sample_dir, tmp_path, capsys):
    form = make_form("openi", sample_dir, tmp_path / "src", bad=False)
    before = tree(tmp_path)
    for name in ("../x", "a/b", ".hidden", "/abs"):
        assert cli_main(form.args(tmp_path / "out", "--name", name)) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"--name {name!r}" in err
    assert tree(tmp_path) == before and not (tmp_path / "out").exists()


def test_symlink_loop_and_nul_byte_skip_their_record(sample_dir, tmp_path):
    """One bad path is one record skipped with its reason, not a traceback for the whole run."""
    form = make_form("r2gen", sample_dir, tmp_path / "src", bad=False)
    images = form.images_dir()
    os.symlink("loop_b.png", images / "loop_a.png")
    os.symlink("loop_a.png", images / "loop_b.png")
    os.symlink("selfdir", images / "selfdir")
    data = json.loads((form.root / "annotation.json").read_text())
    (images / "half").mkdir()
    (images / "half" / "0.png").write_bytes((images / data["train"][1]["image_path"][0]).read_bytes())
    bad = {
        "LOOP1": (["loop_a.png"], "symlink loop"),
        "LOOP2": (["selfdir/0.png"], "symlink loop"),
        "NUL1": (["abc\u0000/0.png"], "NUL byte"),
    }
    for sid, (paths, _) in bad.items():
        data["test"].append({"id": sid, "report": "Heart normal.", "image_path": paths, "split": "test"})
    data["test"].append({"id": "HALF", "report": "Heart normal.", "image_path": ["loop_a.png", "half/0.png"]})
    (form.root / "annotation.json").write_text(json.dumps(data))
    m = run_prepare(form, tmp_path / "out")["r2gen"]
    reasons = {s["id"]: s["reason"] for s in m["skipped"]}
    for sid, (_, words) in bad.items():
        assert reasons[sid].startswith("no readable image") and words in reasons[sid], reasons[sid]
    assert "HALF" not in reasons  # its other image keeps it
    assert any(u["report"] == "HALF" and "symlink loop" in u["reason"] for u in m["images_not_used"])
    assert m["counts"]["kept"] + m["counts"]["skipped"] == form.inputs + len(bad) + 1


def test_symlink_loop_among_the_report_files_skips_that_file(sample_dir, tmp_path):
    form = make_form("openi", sample_dir, tmp_path / "src", bad=False)
    os.symlink("9001.xml", form.root / "ecgen-radiology" / "9001.xml")
    m = run_prepare(form, tmp_path / "out")["openi"]
    reasons = {s["id"]: s["reason"] for s in m["skipped"]}
    assert reasons["9001"].startswith("cannot be read")
    assert m["counts"]["inputs"] == form.inputs + 1


def test_max_pixels_refuses_a_linked_out_images_folder(sample_dir, tmp_path, capsys):
    """OUT/images a link to a folder outside --out: refused before any copy, with the reason; not
    one file written there."""
    form = make_form("openi", sample_dir, tmp_path / "src", bad=False)
    out, outside = tmp_path / "out", tmp_path / "elsewhere"
    outside.mkdir()
    out.mkdir()
    (out / "images").symlink_to(outside)
    before = tree(tmp_path)
    assert cli_main(form.args(out, "--max-pixels", "4096")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(
        f"{out / 'images'}: a link; the image copies stay inside --out, remove it"
    )
    assert tree(tmp_path) == before and not any(outside.iterdir())


def test_max_pixels_refuses_a_link_deeper_under_out_images(sample_dir, tmp_path, capsys):
    """A link below OUT/images/NAME (where the copies of one images subfolder go) that leads
    outside --out: each copy's destination is resolved and refused, nothing written outside."""
    form = make_form("r2gen", sample_dir, tmp_path / "src", bad=False)
    old = _first_entry_path(form, "")
    sub = Path(old).parts[0]
    out, outside = tmp_path / "out", tmp_path / "elsewhere"
    outside.mkdir()
    (out / "images" / "r2gen").mkdir(parents=True)
    (out / "images" / "r2gen" / sub).symlink_to(outside)
    before = tree(tmp_path)
    assert cli_main(form.args(out, "--max-pixels", "4096")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a link leads this copy outside --out; remove it" in err[0], err
    assert tree(tmp_path) == before and not any(outside.iterdir())
