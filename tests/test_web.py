"""`xrayqwen2vl web` without a browser: the login rule off the loopback interface, the checks of
an upload before the model sees it, and the synthetic examples."""

from __future__ import annotations

import csv
import http.cookiejar
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli, tool
from PIL import Image
from web_support import dicom_from_png, huge_png, listening_addresses

from xrayqwen2vl.data.images import mirror_symmetry
from xrayqwen2vl.data.records import InputFileError
from xrayqwen2vl.serve.web import folder_examples, is_loopback, load_views, parse_auth, synthetic_examples


def _web(*args: str):
    return run_cli([tool("xrayqwen2vl"), "web", *args], check=False, timeout=120)


def test_non_loopback_host_without_login_is_refused_before_loading(tiny_model_dir):
    proc = _web("--model", str(tiny_model_dir), "--host", "0.0.0.0", "--port", "1")
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert err == [
        "xrayqwen2vl web: error: --host 0.0.0.0 is reachable from other machines: give --auth "
        "USER:PASSWORD (or set XRAYQWEN2VL_WEB_AUTH=USER:PASSWORD), or serve on 127.0.0.1"
    ]


def test_malformed_login_is_refused(tiny_model_dir):
    proc = _web("--model", str(tiny_model_dir), "--host", "0.0.0.0", "--auth", "justauser")
    assert proc.returncode == 2
    assert "--auth: expected USER:PASSWORD" in proc.stderr


def _status(opener, url: str, data: dict | None = None) -> tuple[int, str]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with opener.open(url, data=body, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_login_reaches_the_real_server_on_this_machine_only(login_web):
    """The real `xrayqwen2vl web` on its default host with a login: the kernel shows it listening
    on 127.0.0.1 alone, and Gradio itself keeps the app and its queue shut until the login is
    given (were the login never handed to Gradio, /config would answer 200 at once)."""
    url = login_web["url"]
    assert listening_addresses(login_web["pid"]) == {("127.0.0.1", login_web["port"])}
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    assert _status(browser, url + "/config")[0] == 401
    assert _status(browser, url + "/gradio_api/queue/join", {})[0] in (401, 403)
    assert _status(browser, url + "/login", {"username": login_web["user"], "password": "wrong"})[0] == 400
    assert _status(browser, url + "/config")[0] == 401
    login = {"username": login_web["user"], "password": login_web["password"]}
    assert _status(browser, url + "/login", login)[0] == 200
    code, config = _status(browser, url + "/config")
    assert code == 200 and "Research use only" in config
    assert login_web["password"] not in login_web["log"].read_text()


def test_login_rules(monkeypatch):
    monkeypatch.delenv("XRAYQWEN2VL_WEB_AUTH", raising=False)
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")
    assert parse_auth(None, "127.0.0.1") is None
    assert parse_auth("ana:s3:cret", "0.0.0.0") == ("ana", "s3:cret")
    with pytest.raises(InputFileError, match="reachable from other machines"):
        parse_auth(None, "10.0.0.7")
    monkeypatch.setenv("XRAYQWEN2VL_WEB_AUTH", "ana:pw")
    assert parse_auth(None, "10.0.0.7") == ("ana", "pw")
    with pytest.raises(InputFileError, match="neither part empty"):
        parse_auth(":pw", "127.0.0.1")


@pytest.fixture
def views(sample_dir):
    pngs = sorted((sample_dir / "NLMCXR_png").glob("CXR1_*.png"))
    assert len(pngs) >= 2
    return pngs[:2]


def test_upload_checks_name_the_view_not_the_server_path(views, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(views[0].read_bytes()[:300])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    gif = tmp_path / "anim.gif"
    Image.new("L", (8, 8)).save(gif)
    cases = {
        None: "upload one frontal view",
        (str(text),): "view 1 (frontal): not a PNG, JPEG or DICOM image",
        (str(views[0]), str(corrupt)): "view 2 (lateral): corrupt or truncated PNG",
        (str(empty),): "view 1 (frontal): image file is empty (0 bytes)",
        (str(huge_png(tmp_path / "huge.png")),): "view 1 (frontal): image too large (8000x8000 pixels",
        (str(gif),): "view 1 (frontal): a GIF image; give a PNG, JPEG or DICOM file",
        (*map(str, views), str(views[0])): "3 files uploaded; one study takes one or two views",
    }
    for paths, message in cases.items():
        with pytest.raises(InputFileError) as e:
            load_views(list(paths) if paths else None, {})
        assert str(e.value).startswith(message), str(e.value)
        assert str(tmp_path) not in str(e.value)


def test_dicom_upload_is_decoded_then_deleted_and_kept_in_memory(views, tmp_path):
    (tmp_path / "gradio" / "a1b2").mkdir(parents=True)
    dcm = dicom_from_png(views[0], tmp_path / "gradio" / "a1b2" / "upload.dcm")
    decoded: dict = {}
    first = load_views([str(dcm), str(views[1])], decoded, tmp_path / "gradio")
    assert not dcm.exists(), "the uploaded DICOM must not stay on disk"
    assert np.array_equal(np.asarray(first[0]), np.asarray(Image.open(views[0]).convert("L")))
    again = load_views([str(dcm), str(views[1])], decoded, tmp_path / "gradio")  # Generate again
    assert np.array_equal(np.asarray(again[0]), np.asarray(first[0]))
    assert views[1].exists(), "PNG uploads are left alone"
    example = dicom_from_png(views[0], tmp_path / "example.dcm")  # not an upload: an example file
    load_views([str(example)], {}, tmp_path / "gradio")
    assert example.exists()


def test_synthetic_examples_are_studies_with_the_frontal_view_first(tmp_path):
    examples = synthetic_examples(tmp_path, studies=6)
    assert len(examples) == 6
    view_of = {}  # image name -> (study, view), from the labels the generator wrote
    with open(tmp_path / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            for item in row["images"].split(";"):
                name, view = item.split(":")
                view_of[f"{name}.png"] = (row["id"], view)
    for frontal, lateral in examples:
        (study, first), (other, second) = view_of[Path(frontal).name], view_of[Path(lateral).name]
        assert study == other and (first, second) == ("frontal", "lateral"), (frontal, lateral)
        assert mirror_symmetry(Image.open(frontal)) > mirror_symmetry(Image.open(lateral))
        assert Image.open(frontal).size == Image.open(lateral).size
    # The order is the views', not the file names': some study's lateral file name sorts first.
    assert any(Path(lateral).name < Path(frontal).name for frontal, lateral in examples)


def test_examples_from_a_folder(views, tmp_path):
    with pytest.raises(InputFileError, match="examples folder not found"):
        folder_examples(tmp_path / "none")
    (tmp_path / "readme.txt").write_text("not an example")
    with pytest.raises(InputFileError, match="no .png, .jpg, .jpeg or .dcm file"):
        folder_examples(tmp_path)
    for i, png in enumerate(views):
        (tmp_path / f"{i}.png").write_bytes(png.read_bytes())
    dicom_from_png(views[0], tmp_path / "2.dcm", phi=False)
    assert [Path(e[0]).name for e in folder_examples(tmp_path)] == ["0.png", "1.png", "2.dcm"]
