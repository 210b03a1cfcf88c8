"""`xrayqwen2vl report` with hostile paths and at exit (issue 15, item 5): a FIFO named x.png is
refused at once instead of blocking (once on the command line, once at the interactive prompt),
and a streamed report returns only once LLaMA-Factory's generation thread is done, so that the
process never exits with that thread inside torch (the rc 134 abort of `report -i`)."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from PIL import Image
from security_support import tree_digest
from test_report import report  # a hang fails by its timeout

from xrayqwen2vl.data.records import InputFileError
from xrayqwen2vl.serve.dicom_io import looks_like_dicom, open_view


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "x.png"
    os.mkfifo(path)
    return path


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "frontal.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(path)
    return path


def test_fifo_named_png_is_refused_without_opening_it(fifo, tiny_model_dir, tmp_path):
    before = tree_digest(tmp_path)
    proc = report("--model", str(tiny_model_dir), str(fifo), check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"xrayqwen2vl report: error: {fifo}: not a regular file (a FIFO, socket or device); give an image file"
    ]
    assert tree_digest(tmp_path) == before
    assert not looks_like_dicom(fifo)  # returns at once, does not wait for a writer
    with pytest.raises(InputFileError, match="not a regular file"):
        open_view(fifo)
    with pytest.raises(InputFileError, match=r"not a regular file \(a folder\)"):
        open_view(tmp_path)


def test_interactive_fifo_line_then_two_reports_and_a_clean_exit(fifo, image, tiny_model_dir, tmp_path):
    before = tree_digest(tmp_path)
    stdin = f"{fifo}\n{image}\n{image}\nexit\n"
    proc = report("-i", "--model", str(tiny_model_dir), "--max-new-tokens", "8", stdin=stdin)
    assert proc.returncode == 0, proc.stderr[-3000:]  # was 134 in about half the runs here
    errors = [line for line in proc.stderr.splitlines() if line.startswith("xrayqwen2vl report: error:")]
    assert errors == [
        f"xrayqwen2vl report: error: {fifo}: not a regular file (a FIFO, socket or device); give an image file"
    ]
    assert proc.stdout.count("report> ") == 2
    assert tree_digest(tmp_path) == before


def test_stream_returns_after_the_generation_thread_ends(image, tiny_model_dir):
    from xrayqwen2vl.serve.report import ReportWriter, build_args

    writer = ReportWriter(build_args(None, str(tiny_model_dir), None, None, None, 8), "Describe.")
    for _ in range(3):  # before the fix the thread was still running after every one of them
        pieces = list(writer.stream([str(image)]))
        assert "".join(pieces).strip()
        running = [t.name for t in threading.enumerate() if t.name.endswith("(generate)")]
        assert running == [], "model.generate still running after the stream ended"
