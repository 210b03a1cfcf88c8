"""prepare streams: the split files are written a sample at a time (the same bytes as before),
nothing is left behind when a run stops, a wrong --lang stops early at scale, and views stated
by the source are kept while the others are told apart by symmetry."""

from __future__ import annotations

import json

import pytest
from formats_helpers import make_form

from xrayqwen2vl.cli import main as cli_main
from xrayqwen2vl.data import stages
from xrayqwen2vl.data.images import ImageCheck
from xrayqwen2vl.data.records import ImageRef
from xrayqwen2vl.data.stages import Listed, _order_views
from xrayqwen2vl.fileio import AtomicJsonList, dump_json


@pytest.mark.parametrize(
    "items",
    [
        [],
        [{"id": "a", "messages": [{"role": "user", "content": "x\ny 中"}], "images": []}],
        [1, [2, [3]], {}, "s"],
    ],
)
def test_streamed_json_list_is_dump_json(tmp_path, items):
    w = AtomicJsonList(tmp_path / "x.json")
    for item in items:
        w.append(item)
    assert not (tmp_path / "x.json").exists()  # nothing in place before commit
    w.commit()
    assert (tmp_path / "x.json").read_text(encoding="utf-8") == dump_json(items)
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    d = AtomicJsonList(tmp_path / "y.json")
    d.append(1)
    d.discard()
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def _zh_form(sample_dir, tmp_path) -> list[str]:
    """prepare of the Chinese XrayGLM captions with the default --lang en."""
    form = make_form("xrayglm", sample_dir, tmp_path / "src", bad=False)
    args = ["prepare", "--format", "xrayglm", "--captions", str(form.root / "openi-zh.json")]
    return args + ["--images-dir", str(form.images_dir()), "--out", str(tmp_path / "out"), "--quiet"]


def test_a_stopped_run_leaves_nothing(sample_dir, tmp_path, capsys):
    """Chinese captions with --lang en: the run stops after reading everything, and neither the
    output folder it created nor a temporary split file is left."""
    args = _zh_form(sample_dir, tmp_path)
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "--lang en: 77 of 77 targets are written in Chinese (Han) script" in err
    assert not (tmp_path / "out").exists()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    assert cli_main(args) == 2
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_a_wrong_lang_stops_early_at_scale(sample_dir, tmp_path, capsys, monkeypatch):
    """After SCRIPT_EARLY targets (1,000 in real runs) a wrong --lang is told at once, rather
    than after every image of a large collection has been checked."""
    monkeypatch.setattr(stages, "SCRIPT_EARLY", 10)
    assert cli_main(_zh_form(sample_dir, tmp_path)) == 2
    err = capsys.readouterr().err
    assert "--lang en: 10 of the first 10 targets are written in Chinese (Han) script" in err


def _listed(view: str | None, symmetry: float) -> Listed:
    name = f"{view}-{symmetry}"
    return Listed(ImageRef(name, name, view), None, "", ImageCheck(True, "", 1, 1, "L", symmetry))


def _order(*images: Listed) -> list[tuple[str, str]]:
    return [(x.ref.id, v) for x, v in _order_views(list(images))]


def test_stated_views_are_kept_and_only_unstated_ones_guessed():
    # nothing stated: the least symmetric is the lateral (as for Open-i)
    assert _order(_listed(None, 0.2), _listed(None, 0.9), _listed(None, 0.5)) == [
        ("None-0.9", "frontal"),
        ("None-0.5", "frontal"),
        ("None-0.2", "lateral"),
    ]
    # a stated frontal and an unstated image: the unstated one is the lateral, whatever its symmetry
    assert _order(_listed(None, 0.99), _listed("frontal", 0.0)) == [
        ("frontal-0.0", "frontal"),
        ("None-0.99", "lateral"),
    ]
    # a stated lateral: the unstated images are frontal
    assert _order(_listed("lateral", 0.0), _listed(None, 0.1), _listed(None, 0.7)) == [
        ("None-0.1", "frontal"),
        ("None-0.7", "frontal"),
        ("lateral-0.0", "lateral"),
    ]
    # a stated frontal and two unstated: the less symmetric of them is the lateral
    assert _order(_listed("frontal", 0.0), _listed(None, 0.3), _listed(None, 0.8)) == [
        ("frontal-0.0", "frontal"),
        ("None-0.8", "frontal"),
        ("None-0.3", "lateral"),
    ]
    # one image alone is a frontal one
    assert _order(_listed(None, 0.1)) == [("None-0.1", "frontal")]


def test_verify_images_fast_and_full(sample_dir, tmp_path):
    """Kaggle states every view: no image is decoded by default, every one with --verify-images
    full, and the split files are the same either way; a PNG whose compressed pixels are damaged
    (its chunks intact) passes the default check and is caught by the full one."""
    form = make_form("kaggle", sample_dir, tmp_path / "src", bad=False)
    assert cli_main(form.args(tmp_path / "fast")) == 0
    assert cli_main(form.args(tmp_path / "full", "--verify-images", "full")) == 0
    fast, full = (
        json.loads((tmp_path / d / "manifest.json").read_text())["kaggle"] for d in ("fast", "full")
    )
    assert fast["counts"]["images_decoded"] == 0 < fast["counts"]["images_checked"]
    assert (
        full["counts"]["images_decoded"]
        == full["counts"]["images_checked"]
        == fast["counts"]["images_checked"]
    )
    for split in ("train", "val", "test"):
        assert (tmp_path / "fast" / f"kaggle_{split}.json").read_bytes() == (
            tmp_path / "full" / f"kaggle_{split}.json"
        ).read_bytes()
    png = (
        tmp_path
        / "src"
        / "images_normalized"
        / json.loads((tmp_path / "fast" / "kaggle_train.json").read_text())[0]["images"][0].rsplit("/", 1)[1]
    )
    data = bytearray(png.read_bytes())
    start = data.find(b"IDAT") + 4
    data[start + 50 : start + 90] = bytes(40)
    png.write_bytes(bytes(data))
    assert cli_main(form.args(tmp_path / "fast2")) == 0
    assert cli_main(form.args(tmp_path / "full2", "--verify-images", "full")) == 0
    fast2, full2 = (
        json.loads((tmp_path / d / "manifest.json").read_text())["kaggle"] for d in ("fast2", "full2")
    )
    assert not any(u["image"] == png.name for u in fast2["images_not_used"])
    assert [u["reason"].split(" (")[0] for u in full2["images_not_used"] if u["image"] == png.name] == [
        "image unreadable"
    ]


def test_manifest_does_not_depend_on_how_far_the_pool_reads_ahead(sample_dir, tmp_path):
    """The stages run interleaved (the image pool reads ahead of the later stages by as many
    studies as it has in flight); skipped records and unused images are still listed in input
    order, so one worker (no read-ahead) and two give byte-identical manifests."""
    form = make_form("kaggle", sample_dir, tmp_path / "src", bad=True)
    for workers in ("1", "2"):
        assert cli_main(form.args(tmp_path / workers, "--workers", workers)) == 0
    one, two = ((tmp_path / w / "manifest.json").read_text() for w in ("1", "2"))
    m = json.loads(one)["kaggle"]
    assert len(m["skipped"]) > 10 and len(m["images_not_used"]) > 10
    assert one == two


@pytest.mark.parametrize("memo", [10_000, 3], ids=["memo", "memo-cleared"])
def test_images_folder_resolves_like_path_resolve(memo, tmp_path, monkeypatch):
    """locate() resolves a component at a time and remembers folders (2 lstat per MIMIC image
    instead of one per component), at most DIR_MEMO of them; its answers are those of
    Path.resolve(), links included, also when the memo fills up and starts again."""
    from xrayqwen2vl.data import images
    from xrayqwen2vl.data.images import ImagesFolder

    monkeypatch.setattr(images, "DIR_MEMO", memo)

    root = tmp_path / "images"
    (root / "a" / "c").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "a" / "x.png").write_bytes(b"x")
    (root / "b").symlink_to("a")  # a link inside
    (root / "out").symlink_to(tmp_path / "outside")  # a folder link leading out
    (root / "a" / "up").symlink_to("../..")  # a link that climbs out
    (root / "a" / "f.png").symlink_to("x.png")  # a file link inside
    folder = ImagesFolder(root)
    cases = [
        "a/x.png",
        "b/x.png",
        "b/c/../x.png",
        "a/./x.png",
        "a/f.png",
        "out/y.png",
        "b/../../secret.png",
        "a/up/images/a/x.png",
        "a/up/secret.png",
        "missing/dir/z.png",
        "a",
    ]
    for _ in range(2):  # the second time from the remembered folders
        for rel in cases:
            path, reason = folder.locate(rel)
            want = (root / rel).resolve()
            inside = want != root.resolve() and root.resolve() in want.parents
            assert (path, bool(reason)) == ((want, False) if inside else (None, True)), rel
            assert len(folder._dirs) <= memo
