"""report.html in real headless Chromium (Debian's ``chromium``, driven by Playwright): images and
tables render; at 600 studies the page filters by observation and (dis)agreement, sorts by a
per-study score, shows the collapse banner at the top, and keeps each label off its text."""

from __future__ import annotations

import json
import random

import pytest
from PIL import Image
from web_support import browser_context

from xrayqwen2vl.cli import main
from xrayqwen2vl.data.text import build_target
from xrayqwen2vl.eval.chexpert_labeler import OBSERVATIONS
from xrayqwen2vl.eval.inputs import read_dataset
from xrayqwen2vl.synthetic.text import choose_findings, write_report


def _open(ctx, path, width=1200, height=1600):
    page = ctx.new_page()
    page.set_viewport_size({"width": width, "height": height})
    page.goto(path.resolve().as_uri())
    page.wait_for_function("() => document.body.hasAttribute('data-images-total')")
    return page


@pytest.mark.slow
def test_report_renders_images_tables_and_chart(tmp_path, prepared_dir):
    test_split = prepared_dir / "demo_test.json"
    samples = read_dataset(test_split)
    predicted = [
        "Findings: The heart is enlarged. There is a left pleural effusion. Impression: Cardiomegaly."
    ]
    predicted += [s.report for s in samples[1:]]
    preds = tmp_path / "generated_predictions.jsonl"
    preds.write_text(
        "".join(
            json.dumps({"prompt": "", "predict": p, "label": s.report}) + "\n"
            for s, p in zip(samples, predicted, strict=True)
        )
    )
    out = tmp_path / "eval"
    args = ["evaluate", "--predictions", str(preds), "--out", str(out), "--images-from", str(test_split)]
    assert main([*args, "--bootstrap", "100", "--title", "browser test"]) == 0
    n_images = sum(len(s.images) for s in samples)
    assert n_images > 0
    with browser_context() as ctx:
        page = _open(ctx, out / "report.html")
        body = page.locator("body")
        # the page's own script ran after load and found every image decoded with a non-zero width
        assert body.get_attribute("data-images-total") == str(n_images)
        assert body.get_attribute("data-images-loaded") == str(n_images)
        assert body.get_attribute("data-metric-rows") == "13"
        assert page.locator("#metrics tbody tr").first.inner_text().startswith("Clinical F1 (micro-5)")
        assert page.locator("#chart rect").count() == 13  # one bar per metric row
        assert page.locator("#headline").inner_text().startswith("Headline: CE micro-5 F1")
        assert page.locator("#s0 mark.fp").count() > 0  # the false positives of the first prediction
        assert "disagreements:" in page.locator("#s0").inner_text()
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot))
    with Image.open(shot) as im:
        assert im.size == (1200, 1600)
        lo, hi = im.convert("L").getextrema()
        assert hi - lo > 100  # text and bars drawn, not a blank page
        # the bar chart's blue (#4a7ab5) is on the page
        assert any(
            abs(r - 0x4A) < 8 and abs(g - 0x7A) < 8 and abs(b - 0xB5) < 8
            for r, g, b in im.convert("RGB").getdata()
        )


VISIBLE = (
    "() => Array.from(document.querySelectorAll('#samples > .sample')).filter(e => !e.hidden).map(e => e.id)"
)


@pytest.mark.slow
def test_report_of_600_studies_filters_sorts_and_flags_collapse(tmp_path):
    rng = random.Random(7)
    refs = []
    for _ in range(600):
        r = write_report(choose_findings(rng), rng)["en"]
        refs.append(build_target(r["findings"], r["impression"]))
    preds = refs[:]
    rng.shuffle(preds)
    constant = "Findings: The heart size is normal. The lungs are clear. Impression: No acute disease."
    preds[: 600 * 2 // 5] = [constant] * (600 * 2 // 5)  # 40% of the studies get one report: collapse
    path = tmp_path / "generated_predictions.jsonl"
    path.write_text(
        "".join(
            json.dumps({"prompt": "", "predict": p, "label": r}) + "\n"
            for p, r in zip(preds, refs, strict=True)
        )
    )
    out = tmp_path / "eval"
    assert main(["evaluate", "--predictions", str(path), "--out", str(out), "--bootstrap", "0"]) == 0
    rows = [json.loads(x) for x in (out / "per_sample.jsonl").read_text().splitlines()]

    def ids(keep):
        return {f"s{r['index']}" for r in rows if keep(r)}

    def kinds(r, kind, obs=None):
        return [
            d for d in r["disagreements"] if d["kind"] == kind and (obs is None or d["observation"] == obs)
        ]

    with browser_context() as ctx:
        page = _open(ctx, out / "report.html", 1280, 900)
        # the banner is the first thing under the title, and it says collapse
        banner = page.locator("#warnings")
        assert banner.is_visible() and "WARNING: mode collapse" in banner.inner_text()
        assert banner.bounding_box()["y"] < page.locator("#headline").bounding_box()["y"] < 400
        assert page.inner_text("#shown") == "600 of 600 studies shown"
        assert len(page.evaluate(VISIBLE)) == 600

        page.select_option("#f-obs", "Cardiomegaly")
        expected = ids(
            lambda r: (
                r["labels_reference"]["Cardiomegaly"] == 1 or r["labels_prediction"]["Cardiomegaly"] == 1
            )
        )
        assert 20 < len(expected) < 600 and set(page.evaluate(VISIBLE)) == expected
        assert page.inner_text("#shown") == f"{len(expected)} of 600 studies shown"

        page.select_option("#f-show", "fn")  # Cardiomegaly missed by the prediction
        expected = ids(lambda r: kinds(r, "missed", "Cardiomegaly"))
        assert expected and set(page.evaluate(VISIBLE)) == expected
        page.select_option("#f-show", "fp")
        assert set(page.evaluate(VISIBLE)) == ids(lambda r: kinds(r, "false positive", "Cardiomegaly"))

        page.select_option("#f-obs", "")
        page.select_option("#f-show", "disagree")
        expected = ids(lambda r: r["disagreements"])
        assert set(page.evaluate(VISIBLE)) == expected and 0 < len(expected) < 600
        page.select_option("#f-show", "agree")
        assert set(page.evaluate(VISIBLE)) == ids(lambda r: not r["disagreements"])

        page.select_option("#f-show", "all")
        page.select_option("#f-sort", "bleu4:asc")
        order = page.evaluate(VISIBLE)
        by_score = sorted(rows, key=lambda r: (round(r["scores"]["BLEU-4"], 6), r["index"]))
        assert order == [f"s{r['index']}" for r in by_score]
        page.select_option("#f-sort", "rougel:desc")
        best = max(rows, key=lambda r: (round(r["scores"]["ROUGE-L"], 6), -r["index"]))
        assert page.evaluate(VISIBLE)[0] == f"s{best['index']}"
        page.select_option("#f-sort", "index:asc")
        assert page.evaluate(VISIBLE) == [f"s{k}" for k in range(600)]

        # every label sits left of its text with room to spare, never running into it
        gaps = page.evaluate(
            """() => Array.from(document.querySelectorAll('.pair .lab')).slice(0, 50).map(lab => {
                   const txt = lab.nextElementSibling;
                   return [lab.textContent, txt.getBoundingClientRect().left - lab.getBoundingClientRect().right,
                           lab.scrollWidth - lab.clientWidth];
               })"""
        )
        assert {g[0] for g in gaps} == {"reference", "prediction"}
        assert all(gap >= 8 and overflow <= 0 for _, gap, overflow in gaps), gaps
        assert set(
            page.evaluate("() => Array.from(document.querySelectorAll('#f-obs option')).map(o => o.value)")
        ) == {
            "",
            *OBSERVATIONS,
        }
