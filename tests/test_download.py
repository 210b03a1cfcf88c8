"""`xrayqwen2vl download` against a local HTTP server serving archives built from the sample:
a connection dropped halfway is resumed by the rerun with a Range request, sizes are checked,
and the archives unpack to the layout prepare reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from security_support import Server
from security_support import tgz as _tgz

from xrayqwen2vl.cli import main as cli_main


@pytest.fixture(scope="module")
def archives(sample_dir):
    reports = {
        f"ecgen-radiology/{p.name}": p.read_bytes() for p in (sample_dir / "ecgen-radiology").glob("*.xml")
    }
    images = {p.name: p.read_bytes() for p in (sample_dir / "NLMCXR_png").glob("*.png")}
    return {"NLMCXR_reports.tgz": _tgz(reports), "NLMCXR_png.tgz": _tgz(images)}, len(reports), len(images)


def _args(url, out, *extra):
    return ["download", "--out", str(out), "--base-url", url, "--quiet", "--backoff", "0.01", *extra]


def test_dropped_connection_is_resumed_by_rerun(archives, tmp_path, capsys):
    files, n_reports, n_images = archives
    out = tmp_path / "openi"
    with Server(files, drop={"NLMCXR_png.tgz"}) as srv:
        rc = cli_main(_args(srv.url, out, "--retries", "0"))
        err = capsys.readouterr().err
        assert rc == 2 and "connection dropped" in err and "NLMCXR_png.tgz" in err
        assert len(err.strip().splitlines()) == 1
        part = out / "NLMCXR_png.tgz.part"
        size = len(files["NLMCXR_png.tgz"])
        assert 0 < part.stat().st_size < size
        assert not (out / "NLMCXR_png").exists()
        assert (out / "ecgen-radiology").is_dir()  # the first archive finished
        got = part.stat().st_size
        assert cli_main(_args(srv.url, out)) == 0
        png_requests = [entry for entry in srv.log if entry[0] == "NLMCXR_png.tgz"]
        assert png_requests[-1][1] == f"bytes={got}-"  # asked only for the rest
        assert sum(n for _, _, n in png_requests) == size  # no byte sent twice
        assert [e for e in srv.log if e[0] == "NLMCXR_reports.tgz"][1:] == []  # not fetched again
    assert (out / "NLMCXR_png.tgz").read_bytes() == files["NLMCXR_png.tgz"]
    assert not part.exists()
    assert len(list((out / "NLMCXR_png").glob("*.png"))) == n_images
    assert len(list((out / "ecgen-radiology").glob("*.xml"))) == n_reports
    record = json.loads((out / "download.json").read_text())
    assert record["NLMCXR_png.tgz"]["size"] == size and record["NLMCXR_png.tgz"]["files"] == n_images
    # the unpacked layout is what prepare reads
    assert (
        cli_main(
            [
                "prepare",
                "--reports-dir",
                str(out / "ecgen-radiology"),
                "--images-dir",
                str(out / "NLMCXR_png"),
                "--out",
                str(tmp_path / "data"),
                "--quiet",
            ]
        )
        == 0
    )


def test_retry_within_one_run_resumes(archives, tmp_path):
    files, _, n_images = archives
    with Server(files, drop={"NLMCXR_png.tgz", "NLMCXR_reports.tgz"}) as srv:
        assert cli_main(_args(srv.url, tmp_path, "--retries", "2")) == 0
        assert sum(1 for e in srv.log if e[1]) == 2  # one resumed request per archive
    assert len(list((tmp_path / "NLMCXR_png").glob("*.png"))) == n_images


def test_server_ignoring_ranges_restarts_cleanly(archives, tmp_path):
    files, _, _ = archives
    with Server(files, drop={"NLMCXR_png.tgz"}, ranges=False) as srv:
        assert cli_main(_args(srv.url, tmp_path, "--retries", "1", "--only", "images")) == 0
    assert (tmp_path / "NLMCXR_png.tgz").read_bytes() == files["NLMCXR_png.tgz"]


def test_unreachable_and_missing_are_clear_errors(tmp_path, capsys):
    with Server({}) as srv:
        assert cli_main(_args(srv.url, tmp_path, "--retries", "0")) == 2
        assert "HTTP 404" in capsys.readouterr().err
        url = srv.url
    assert cli_main(_args(url, tmp_path, "--retries", "0", "--timeout", "2")) == 2
    assert "cannot connect" in capsys.readouterr().err


def test_archive_escaping_its_folder_is_refused(tmp_path, capsys):
    evil = _tgz({"../evil.xml": b"<x/>", "ecgen-radiology/1.xml": b"<x/>"})
    with Server({"NLMCXR_reports.tgz": evil}) as srv:
        assert cli_main(_args(srv.url, tmp_path / "o", "--only", "reports", "--retries", "0")) == 2
    assert "member '../evil.xml' would be written outside" in capsys.readouterr().err
    assert not (tmp_path / "evil.xml").exists() and not (tmp_path / "o" / "ecgen-radiology").exists()


def test_changed_archive_is_detected(archives, tmp_path, capsys):
    files, _, _ = archives
    with Server(files) as srv:
        assert cli_main(_args(srv.url, tmp_path, "--only", "reports", "--no-extract")) == 0
    path: Path = tmp_path / "NLMCXR_reports.tgz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with Server(files) as srv:
        assert cli_main(_args(srv.url, tmp_path, "--only", "reports", "--no-extract")) == 2
    assert "differs from the file recorded" in capsys.readouterr().err
