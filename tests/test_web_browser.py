"""The real web demo (`xrayqwen2vl web` on the tiny Qwen2-VL) driven by headless Debian Chromium
through Playwright: upload and generate, examples, language, temperature and length, bad
uploads, four pages at once, a DICOM with identifying tags that must leave no trace, and the
login page.

The tiny model is random, so what a page shows is checked against what the same model writes in
this process for the same images, prompt and length under greedy decoding (``reference``): a
view, a language or a setting that does not reach the model, or a report that goes to the wrong
page, shows as a different report. The script of a reply is not checked: a random model's is not
determined by the prompt.

Set XRAYQWEN2VL_UPDATE_SCREENSHOT=1 to write the README screenshot doc/web-demo.png as well."""

from __future__ import annotations

import io
import os
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

from xrayqwen2vl.serve.web import synthetic_examples

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
def reference(tiny_model_dir):
    """``reference(paths, lang, max_new_tokens)``: the report the page must show for those files
    at temperature 0, written by the same model in this process."""
    from xrayqwen2vl.data.text import DEFAULT_PROMPTS
    from xrayqwen2vl.serve.report import ReportWriter, build_args
    from xrayqwen2vl.serve.web import load_views

    args = build_args(None, str(tiny_model_dir), None, None, None, int(MAX_NEW_TOKENS))
    writer = ReportWriter(args, DEFAULT_PROMPTS["en"])

    def report(paths, lang: str = "en", max_new_tokens: int = int(MAX_NEW_TOKENS)) -> str:
        images = load_views([str(p) for p in paths], {})
        return writer.write(
            images, prompt=DEFAULT_PROMPTS[lang], max_new_tokens=max_new_tokens, do_sample=False
        )

    return report


def set_number(page, elem_id: str, value: str) -> None:
    page.locator(f"#{elem_id} input[type=number]").fill(value)
    page.locator(f"#{elem_id} input[type=number]").press("Enter")


def listed(page) -> list[str]:
    return page.locator("#views td.filename").evaluate_all("els => els.map(e => e.ariaLabel)")


@pytest.fixture(scope="module")
def ctx():
    with browser_context() as c:
        yield c


def test_upload_two_views_and_get_a_report(web, ctx, views, reference, tmp_path):
    page = open_app(ctx, web["url"])
    notice = page.locator("#research-notice")
    assert notice.is_visible() and "Research use only" in notice.inner_text()
    upload(page, views)
    status, report = generate(page)
    assert status.startswith("Done") and "Research use only" in status, status
    assert report == reference(views) and report, "not the model's report for these two views"
    assert page.locator("#preview img").count() == 2
    shot = tmp_path / "web-demo.png"
    page.screenshot(path=str(shot), full_page=True)
    assert Image.open(shot).size[0] == 1280
    if os.environ.get("XRAYQWEN2VL_UPDATE_SCREENSHOT") == "1":
        small = Image.open(shot).convert("RGB").quantize(colors=128)
        small.save(REPO / "doc" / "web-demo.png", optimize=True)
    page.close()


def test_example_language_length_and_temperature_reach_the_model(web, ctx, reference, tmp_path):
    """One click on an example fills in its frontal then its lateral view and the report is the
    model's answer to them; Chinese gives the answer to the Chinese prompt (chosen so that it
    differs from the English one's); the length setting gives the shorter answer; a temperature
    above 0 samples: a few runs do not all write the same report."""
    examples = synthetic_examples(tmp_path / "examples")  # the studies the server drew (same seed)
    example = next((e for e in examples if reference(e, "zh") != reference(e, "en")), None)
    assert example is not None, "every example gets the same report in both languages"
    names = [Path(p).name for p in example]
    assert reference(example, "zh", 6) != reference(example, "zh")
    page = open_app(ctx, web["url"])
    page.locator("#examples button", has_text=names[0]).first.click()
    page.locator("#views td.filename").nth(1).wait_for()
    assert listed(page) == names  # frontal first
    status, report = generate(page)
    assert status.startswith("Done") and report == reference(example), status
    page.get_by_label("Chinese").check()
    status, report = generate(page)
    assert report == reference(example, "zh"), status
    set_number(page, "max-tokens", "6")
    status, report = generate(page)
    assert report == reference(example, "zh", 6), status
    set_number(page, "temperature", "0.9")
    sampled = []
    while len(set(sampled)) < 2 and len(sampled) < 4:
        status, report = generate(page)
        assert status.startswith("Done") or "empty report" in status, status
        sampled.append(report)
    assert len(set(sampled)) == 2, f"{len(sampled)} runs at temperature 0.9 wrote one report"
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


def test_four_pages_at_once_each_get_the_report_for_their_own_views(web, ctx, views, sample_dir, reference):
    """Four sessions, each with views whose report differs from the others', queue for the one
    model at once; each page shows the report for its own views."""
    others = [[p] for p in sorted((sample_dir / "NLMCXR_png").glob("*.png")) if p not in views]
    studies, reports = [], []
    for paths in [views, views[:1], views[1:], *others]:
        if reference(paths) not in reports:
            studies.append(paths)
            reports.append(reference(paths))
        if len(studies) == 4:
            break
    assert len(studies) == 4, "no four inputs with four different reports"
    pages = [open_app(ctx, web["url"]) for _ in studies]
    for page, paths in zip(pages, studies, strict=True):
        upload(page, paths)
    for page in pages:
        page.click("#generate")
    for page, expected in zip(pages, reports, strict=True):
        page.wait_for_function(
            "document.querySelector('#status').innerText.startsWith('Done')", timeout=300_000
        )
        assert page.input_value("#report textarea") == expected
    for page in pages:
        page.close()


def test_dicom_upload_leaves_no_identifying_tag_anywhere(web, ctx, views, reference, tmp_path):
    dcm = dicom_from_png(views[0], tmp_path / "frontal.dcm")
    raw = dcm.read_bytes()
    assert all(s.encode() in raw for s in ("Quixote", "PHI-7731-XQ", "19230517"))  # the test file has PHI
    page = open_app(ctx, web["url"])
    bodies: list[bytes] = []
    responses = []
    page.on("response", lambda r: responses.append(r))
    upload(page, [dcm, views[1]])
    status, report = generate(page)
    assert status.startswith("Done") and report == reference(views), status  # the PNG's pixels

    # The model saw the windowed, inverted pixels: the preview is the original picture again.
    src = page.locator("#preview img").first.get_attribute("src")
    shown = Image.open(io.BytesIO(page.request.get(src).body())).convert("L")
    assert np.array_equal(np.asarray(shown), np.asarray(Image.open(views[0]).convert("L")))
    # Generate again (new settings): the DICOM copy is gone from disk but its pixels are kept.
    set_number(page, "max-tokens", "4")
    status, report = generate(page)
    assert status.startswith("Done") and report == reference(views, "en", 4), status

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


def test_login_page_then_examples_from_a_folder(login_web, ctx):
    """The login page of the app started with a login (test_web.py checks the same server over
    plain HTTP), then a DICOM example from --examples, which is not an upload and must stay."""
    page = ctx.new_page()
    page.goto(login_web["url"])
    page.locator("input[type=text]").first.fill(login_web["user"])
    page.locator("input[type=password]").fill("wrong")
    page.get_by_role("button", name="Login").click()
    page.get_by_text("Incorrect Credentials", exact=False).wait_for()
    assert page.locator("#generate").count() == 0
    page.locator("input[type=text]").first.fill(login_web["user"])  # the login form empties itself
    page.locator("input[type=password]").fill(login_web["password"])
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector("#generate")
    assert "Research use only" in page.inner_text("#research-notice")
    page.locator("#examples button", has_text="example-2.dcm").click()
    page.locator('#views td.filename[aria-label="example-2.dcm"]').wait_for()
    status, report = generate(page)
    assert status.startswith("Done") and report.strip(), status
    assert (login_web["examples"] / "example-2.dcm").exists(), (
        "an example file is not an upload: it must stay"
    )
    page.close()
    assert login_web["password"] not in login_web["log"].read_text()
