"""The real web demo (`xrayqwen2vl web` on the tiny Qwen2-VL) driven by headless Debian Chromium
through Playwright: upload and generate, examples, bad uploads, four pages at once, a DICOM with
identifying tags that must leave no trace, and the login page.

Set XRAYQWEN2VL_UPDATE_SCREENSHOT=1 to write the README screenshot doc/web-demo.png as well."""

from __future__ import annotations

import io
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, tool
from PIL import Image
from web_support import (
    browser_context,
    clear,
    dicom_from_png,
    free_port,
    generate,
    huge_png,
    open_app,
    phi_strings,
    server,
    upload,
)

pytestmark = pytest.mark.slow

MAX_NEW_TOKENS = "16"


@pytest.fixture(scope="module")
def views(sample_dir) -> list[Path]:
    """Frontal and lateral view of one synthetic study."""
    import csv

    with open(sample_dir / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            kinds = dict(reversed(item.split(":")) for item in row["images"].split(";"))
            if set(kinds) == {"frontal", "lateral"}:
                return [sample_dir / "NLMCXR_png" / f"{kinds[v]}.png" for v in ("frontal", "lateral")]
    raise AssertionError("no two-view study in the sample")


@pytest.fixture(scope="module")
def web(tiny_model_dir, tmp_path_factory):
    """The app on 127.0.0.1 with its own Gradio upload/cache folder and a captured log."""
    root = tmp_path_factory.mktemp("web")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [tool("xrayqwen2vl"), "web", "--model", str(tiny_model_dir), "--port", str(port)]
    args += ["--max-new-tokens", MAX_NEW_TOKENS]
    cache = root / "gradio"
    with server(args, root / "server.log", url, env={"GRADIO_TEMP_DIR": str(cache)}) as proc:
        yield {"url": url, "proc": proc, "log": root / "server.log", "cache": cache}


@pytest.fixture(scope="module")
def ctx():
    with browser_context() as c:
        yield c


def test_upload_two_views_and_get_a_report(web, ctx, views, tmp_path):
    page = open_app(ctx, web["url"])
    notice = page.locator("#research-notice")
    assert notice.is_visible() and "Research use only" in notice.inner_text()
    upload(page, views)
    status, report = generate(page)
    assert status.startswith("Done") and "Research use only" in status, status
    assert report.strip(), "empty report"
    assert page.locator("#preview img").count() == 2
    shot = tmp_path / "web-demo.png"
    page.screenshot(path=str(shot), full_page=True)
    assert Image.open(shot).size[0] == 1280
    if os.environ.get("XRAYQWEN2VL_UPDATE_SCREENSHOT") == "1":
        small = Image.open(shot).convert("RGB").quantize(colors=128)
        small.save(REPO / "doc" / "web-demo.png", optimize=True)
    page.close()


def test_example_then_chinese_with_sampling(web, ctx):
    page = open_app(ctx, web["url"])
    page.locator("#examples button").first.click()  # one click fills the upload box
    page.locator("#views td.filename").nth(1).wait_for()
    status, report = generate(page)
    assert status.startswith("Done") and report.strip()
    page.get_by_label("Chinese").check()
    page.locator("#temperature input[type=number]").fill("0.9")
    page.locator("#max-tokens input[type=number]").fill("6")
    page.locator("#max-tokens input[type=number]").press("Enter")
    status, report = generate(page)
    assert status.startswith("Done") and report.strip(), status
    page.close()


def test_bad_uploads_give_a_message_and_the_app_keeps_serving(web, ctx, views, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("these are not pixels")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(views[0].read_bytes()[:200])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    huge = huge_png(tmp_path / "huge.png")
    third = tmp_path / "another.png"
    third.write_bytes(views[0].read_bytes())
    cases = [
        ([text], "view 1 (frontal): not a PNG, JPEG or DICOM image"),
        ([corrupt], "view 1 (frontal): corrupt or truncated PNG"),
        ([views[0], empty], "view 2 (lateral): image file is empty (0 bytes)"),
        ([huge], "view 1 (frontal): image too large (8000x8000 pixels > 50000000)"),
        ([*views, third], "3 files uploaded"),
        ([], "upload one frontal view"),
    ]
    page = open_app(ctx, web["url"])
    for files, message in cases:
        clear(page)
        if files:
            upload(page, files)
        status, report = generate(page)
        listed = page.locator("#views td.filename").evaluate_all("els => els.map(e => e.ariaLabel)")
        assert "Cannot write a report" in status and message in status, (message, status, listed)
        assert report == ""
        assert str(tmp_path) not in page.content()
    assert web["proc"].poll() is None, "the server died"
    clear(page)
    upload(page, views)
    status, report = generate(page)
    assert status.startswith("Done") and report.strip()
    page.close()


def test_four_pages_at_once_all_get_their_report(web, ctx, views):
    pages = [open_app(ctx, web["url"]) for _ in range(4)]
    for i, page in enumerate(pages):
        upload(page, views[: 1 + i % 2])
    for page in pages:
        page.click("#generate")
    for page in pages:
        page.wait_for_function(
            "document.querySelector('#status').innerText.startsWith('Done')", timeout=300_000
        )
        assert page.input_value("#report textarea").strip()
    for page in pages:
        page.close()


def test_dicom_upload_leaves_no_identifying_tag_anywhere(web, ctx, views, tmp_path):
    dcm = dicom_from_png(views[0], tmp_path / "frontal.dcm")
    raw = dcm.read_bytes()
    assert all(s.encode() in raw for s in ("Quixote", "PHI-7731-XQ", "19230517"))  # the test file has PHI
    page = open_app(ctx, web["url"])
    bodies: list[bytes] = []
    responses = []
    page.on("response", lambda r: responses.append(r))
    upload(page, [dcm, views[1]])
    status, report = generate(page)
    assert status.startswith("Done") and report.strip(), status

    # The model saw the windowed, inverted pixels: the preview is the original picture again.
    src = page.locator("#preview img").first.get_attribute("src")
    shown = Image.open(io.BytesIO(page.request.get(src).body())).convert("L")
    assert np.array_equal(np.asarray(shown), np.asarray(Image.open(views[0]).convert("L")))
    # Generate again (new settings): the DICOM copy is gone from disk but its pixels are kept.
    page.locator("#max-tokens input[type=number]").fill("4")
    page.locator("#max-tokens input[type=number]").press("Enter")
    status, _ = generate(page)
    assert status.startswith("Done"), status

    for r in responses:
        try:
            bodies.append(r.body())
        except Exception:  # redirects and aborted requests have no body
            pass
    assert len(bodies) >= 5
    returned = b"\n".join(bodies) + page.content().encode() + page.inner_text("body").encode()
    written = [p for p in web["cache"].rglob("*") if p.is_file()]
    assert not [p for p in written if p.read_bytes()[128:132] == b"DICM"], "a DICOM copy stayed on disk"
    log = web["log"].read_bytes()
    for text in phi_strings():
        for where, blob in [("HTTP responses/page", returned), ("server log", log)]:
            assert text.encode() not in blob, f"{text!r} in {where}"
        for p in written:
            assert text.encode() not in p.read_bytes(), f"{text!r} in {p}"
    page.close()


def test_login_required_when_asked_and_examples_from_a_folder(tiny_model_dir, ctx, views, tmp_path):
    examples = tmp_path / "examples"
    examples.mkdir()
    (examples / "a-frontal.png").write_bytes(views[0].read_bytes())
    example_dcm = dicom_from_png(views[0], examples / "b-frontal.dcm", phi=False)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [tool("xrayqwen2vl"), "web", "--model", str(tiny_model_dir), "--port", str(port)]
    args += ["--max-new-tokens", "4", "--examples", str(examples)]
    env = {"XRAYQWEN2VL_WEB_AUTH": "reader:pw-7f3k", "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    with server(args, tmp_path / "server.log", url, env=env):
        with pytest.raises(urllib.error.HTTPError) as e:  # the app's API refuses a request without login
            urllib.request.urlopen(urllib.request.Request(url + "/gradio_api/queue/join", data=b"{}"))
        assert e.value.code in (401, 403)
        page = ctx.new_page()
        page.goto(url)
        page.locator("input[type=text]").first.fill("reader")
        page.locator("input[type=password]").fill("wrong")
        page.get_by_role("button", name="Login").click()
        page.get_by_text("Incorrect Credentials", exact=False).wait_for()
        assert page.locator("#generate").count() == 0
        page.locator("input[type=text]").first.fill("reader")  # the login form empties itself
        page.locator("input[type=password]").fill("pw-7f3k")
        page.get_by_role("button", name="Login").click()
        page.wait_for_selector("#generate")
        assert "Research use only" in page.inner_text("#research-notice")
        page.locator("#examples button", has_text="b-frontal.dcm").click()
        page.locator('#views td.filename[aria-label="b-frontal.dcm"]').wait_for()
        status, report = generate(page)
        assert status.startswith("Done") and report.strip(), status
        assert example_dcm.exists(), "an example file is not an upload: it must stay"
        page.close()
        assert "pw-7f3k" not in (tmp_path / "server.log").read_text()
