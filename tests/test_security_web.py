"""The web demo leaves nothing identifying on disk (issue 15, item 3), checked in Gradio's temp
folder (GRADIO_TEMP_DIR) of the real app on the tiny model, driven by headless Chromium: uploads
of a refused request (three files; a bad first file) are deleted at once, as are the uploads of a
served one; a file uploaded and never submitted goes at shutdown with everything else the app
wrote; a folder left by a crashed run is removed at start; other folders there are left alone."""

from __future__ import annotations

import pytest
from conftest import tool
from web_support import browser_context, clear, dicom_from_png, free_port, generate, open_app, server, upload

from xrayqwen2vl.serve.web import TEMP_PREFIX

pytestmark = pytest.mark.slow


def _files(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _dicom_copies(folder):
    return [p for p in _files(folder) if p.read_bytes()[128:132] == b"DICM"]


def test_uploads_are_deleted_when_decoded_or_refused_and_all_at_shutdown(
    tiny_model_dir, sample_dir, tmp_path
):
    base = tmp_path / "gradio"  # GRADIO_TEMP_DIR
    pngs = sorted((sample_dir / "NLMCXR_png").glob("*.png"))[:2]
    crashed = base / f"{TEMP_PREFIX}crashed" / "0f3a"
    crashed.mkdir(parents=True)
    dicom_from_png(pngs[0], crashed / "left-by-a-crash.dcm")
    (base / "other-app").mkdir()
    (base / "other-app" / "keep.txt").write_text("not ours")

    files = tmp_path / "upload"
    files.mkdir()
    frontal, lateral = files / "a-frontal.png", files / "a-lateral.png"
    frontal.write_bytes(pngs[0].read_bytes())
    lateral.write_bytes(pngs[1].read_bytes())
    dcm = dicom_from_png(pngs[0], files / "study-frontal.dcm")
    corrupt = files / "bad-frontal.png"
    corrupt.write_bytes(pngs[0].read_bytes()[:300])
    late = dicom_from_png(pngs[1], files / "never-submitted.dcm")
    names = {p.name for p in (frontal, lateral, dcm, corrupt, late)}

    def uploads_on_disk():
        return [p.name for p in _files(base) if p.name in names]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [
        tool("xrayqwen2vl"),
        "web",
        "--model",
        str(tiny_model_dir),
        "--port",
        str(port),
        "--max-new-tokens",
        "4",
    ]
    with server(args, tmp_path / "server.log", url, env={"GRADIO_TEMP_DIR": str(base)}) as proc:
        assert not (base / f"{TEMP_PREFIX}crashed").exists(), "a crashed run's folder was not removed"
        assert [p.name for p in base.glob(TEMP_PREFIX + "*")] != []
        with browser_context() as ctx:
            page = open_app(ctx, url)
            for request, message in [
                ([dcm, frontal, lateral], "3 files uploaded"),
                ([corrupt, dcm], "view 1 (frontal): corrupt or truncated PNG"),
            ]:
                clear(page)
                upload(page, request)
                status, _ = generate(page)
                assert message in status, status
                assert uploads_on_disk() == [] and _dicom_copies(base) == [], (message, _files(base))
            clear(page)
            upload(page, [frontal, lateral])
            status, report = generate(page)
            assert status.startswith("Done") and report.strip(), status
            assert uploads_on_disk() == []
            clear(page)
            upload(page, [late])  # uploaded, never submitted: on disk until shutdown
            assert uploads_on_disk() == ["never-submitted.dcm"]
            page.close()
    assert proc.returncode == 0
    assert _files(base) == [base / "other-app" / "keep.txt"], _files(base)
    assert [p.name for p in base.iterdir()] == ["other-app"]
    assert "removed 1 temp folder(s) left by an earlier run" in (tmp_path / "server.log").read_text()
