"""The web demo's upload and temp-folder rules without a browser (issue 15, item 3): every upload
of a request is deleted, served or refused; pages sharing one upload path (Gradio names uploads
by content) all get their views; the app's private temp folder and the sweep of crashed runs'
folders, which never touches a live app's folder, a link or another user's folder."""

from __future__ import annotations

import os
import re
import stat
import tempfile
import time

import numpy as np
import pytest
from PIL import Image
from security_support import tree_digest
from web_support import dicom_from_png

from xrayqwen2vl.data.records import InputFileError
from xrayqwen2vl.serve.web import TEMP_PREFIX, DecodedViews, load_views, private_temp_folder, remove_leftovers


@pytest.fixture
def uploads(tmp_path, sample_dir):
    """Gradio's upload folder with a frontal PNG, a lateral PNG and a DICOM, as Gradio stores
    them (<content hash>/<name>)."""
    folder = tmp_path / "gradio"
    pngs = sorted((sample_dir / "NLMCXR_png").glob("*.png"))[:2]
    paths = []
    for i, png in enumerate(pngs):
        (folder / f"h{i}").mkdir(parents=True)
        paths.append(folder / f"h{i}" / png.name)
        paths[-1].write_bytes(png.read_bytes())
    (folder / "h2").mkdir()
    paths.append(dicom_from_png(pngs[0], folder / "h2" / "study.dcm"))
    return folder, paths


def test_every_upload_of_a_refused_request_is_deleted(uploads, tmp_path):
    folder, (frontal, lateral, dcm) = uploads
    with pytest.raises(InputFileError, match="3 files uploaded"):
        load_views([str(dcm), str(frontal), str(lateral)], DecodedViews(), folder)
    assert not [p for p in folder.rglob("*") if p.is_file()]
    bad = folder / "h3" / "bad.png"
    bad.parent.mkdir()
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (folder / "h4").mkdir()
    keep = dicom_from_png(_png(tmp_path), folder / "h4" / "b.dcm")
    with pytest.raises(InputFileError, match=r"view 1 \(frontal\): corrupt or truncated PNG"):
        load_views([str(bad), str(keep)], DecodedViews(), folder)
    assert not bad.exists() and not keep.exists()


def _png(tmp_path):
    path = tmp_path / "small.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(path)
    return path


def test_pages_sharing_an_upload_path_all_get_their_views(uploads):
    folder, (frontal, lateral, _) = uploads
    decoded = DecodedViews()
    first = load_views([str(frontal), str(lateral)], decoded, folder)  # page 1
    assert not frontal.exists() and not lateral.exists()
    again = load_views([str(frontal), str(lateral)], decoded, folder)  # page 2, or Generate again
    assert [np.asarray(v).tolist() for v in again] == [np.asarray(v).tolist() for v in first]


def test_an_upload_evicted_from_memory_asks_for_the_file_again(uploads):
    folder, (frontal, lateral, _) = uploads
    decoded = DecodedViews(max_pixels=1)  # keeps only the newest view
    load_views([str(frontal), str(lateral)], decoded, folder)
    with pytest.raises(
        InputFileError, match=r"view 1 \(frontal\): this upload was deleted .* upload the file again"
    ):
        load_views([str(frontal)], decoded, folder)


def test_private_temp_folder_and_the_sweep_of_crashed_runs(tmp_path, monkeypatch):
    base = tmp_path / "base"
    (base / f"{TEMP_PREFIX}crashed" / "h").mkdir(parents=True)
    (base / f"{TEMP_PREFIX}crashed" / "h" / "x.dcm").write_bytes(b"PHI")
    old_starting = base / f".{TEMP_PREFIX}old"
    old_starting.mkdir()
    os.utime(old_starting, (time.time() - 3600, time.time() - 3600))
    young_starting = base / f".{TEMP_PREFIX}young"
    young_starting.mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    (base / f"{TEMP_PREFIX}link").symlink_to(victim)
    (base / "other").mkdir()
    outside = tree_digest(tmp_path, skip=(base,))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(base))
    saved_tempdir = tempfile.tempdir
    with private_temp_folder() as folder:
        assert folder.parent == base.resolve() and folder.name.startswith(TEMP_PREFIX)
        # private (0700) and named by mkdtemp's random letters, not by anything guessable
        assert stat.S_IMODE(os.lstat(folder).st_mode) == 0o700 and not folder.is_symlink()
        suffix = folder.name[len(TEMP_PREFIX) :]
        assert re.fullmatch(r"[a-z0-9_]{8}", suffix) and str(os.getpid()) not in suffix
        os.environ["GRADIO_TEMP_DIR"] = str(base)
        with private_temp_folder() as second:  # a second app beside it gets another name
            assert second.parent == base.resolve() and second.name != folder.name
            assert stat.S_IMODE(os.lstat(second).st_mode) == 0o700
        os.environ["GRADIO_TEMP_DIR"] = str(folder)  # what the second one restored
        assert os.environ["GRADIO_TEMP_DIR"] == str(folder)
        assert tempfile.gettempdir() == str(folder / "tmp")  # half-received uploads land inside
        names = sorted(p.name for p in base.iterdir())
        assert names == sorted([folder.name, f".{TEMP_PREFIX}young", f"{TEMP_PREFIX}link", "other"])
        (folder / "h").mkdir()
        (folder / "h" / "upload.dcm").write_bytes(b"PHI")
        assert remove_leftovers(base) == 0  # a live app's folder is locked: never swept
        assert (folder / "h" / "upload.dcm").exists()
    assert os.environ["GRADIO_TEMP_DIR"] == str(base) and tempfile.tempdir == saved_tempdir
    assert sorted(p.name for p in base.iterdir()) == sorted(
        [f".{TEMP_PREFIX}young", f"{TEMP_PREFIX}link", "other"]
    )
    assert tree_digest(tmp_path, skip=(base,)) == outside  # the linked folder is untouched
