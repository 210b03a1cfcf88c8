"""report.html opened in headless Chromium (Debian's ``chromium``): the metrics table, the chart
and every embedded image render; a screenshot is left in the test's temporary folder."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from PIL import Image

from xrayqwen2vl.cli import main
from xrayqwen2vl.eval.inputs import read_dataset


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError(
        "headless Chromium is required for this test: apt-get install chromium (.ci/run does)"
    )


def _headless(*args: str, cwd) -> subprocess.CompletedProcess:
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={cwd / 'chromium-profile'}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=cwd)


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path, prepared_dir):
    test_split = prepared_dir / "demo_test.json"
    samples = read_dataset(test_split)
    preds = tmp_path / "generated_predictions.jsonl"
    predicted = [
        "Findings: The heart is enlarged. There is a left pleural effusion. Impression: Cardiomegaly."
    ]
    predicted += [s.report for s in samples[1:]]
    preds.write_text(
        "".join(
            json.dumps({"prompt": "", "predict": p, "label": s.report}) + "\n"
            for s, p in zip(samples, predicted, strict=True)
        )
    )
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--predictions",
                str(preds),
                "--out",
                str(out),
                "--images-from",
                str(test_split),
                "--bootstrap",
                "100",
                "--title",
                "browser test",
            ]
        )
        == 0
    )
    page = (out / "report.html").resolve().as_uri()

    dom = _headless("--virtual-time-budget=10000", "--dump-dom", page, cwd=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    body = re.search(r"<body([^>]*)>", html).group(1)
    attrs = dict(re.findall(r'data-([a-z-]+)="(\d+)"', body))
    n_images = sum(len(s.images) for s in samples)
    assert n_images > 0
    # the page's own script ran after load and found every image decoded with a non-zero width
    assert attrs == {"images-total": str(n_images), "images-loaded": str(n_images), "metric-rows": "13"}
    assert re.search(r"<td>BLEU-4</td><td>[01]\.\d{3}</td>", html)
    assert html.count("<rect ") == 13  # one bar per metric row
    assert 'mark class="fp"' in html  # the false positives of the first prediction are highlighted
    assert "disagreements:" in html

    shot = tmp_path / "report.png"
    res = _headless("--window-size=1200,1600", f"--screenshot={shot}", page, cwd=tmp_path)
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    with Image.open(shot) as im:
        assert im.size == (1200, 1600)
        gray = im.convert("L")
        lo, hi = gray.getextrema()
        assert hi - lo > 100  # text and bars drawn, not a blank page
        # the bar chart's blue (#4a7ab5) is on the page
        assert any(
            abs(r - 0x4A) < 8 and abs(g - 0x7A) < 8 and abs(b - 0xB5) < 8
            for r, g, b in im.convert("RGB").getdata()
        )
