"""report.html: one self-contained page (CSS inline, images embedded as data URIs, no network).

On top: the metrics table with bootstrap intervals, a bar chart (inline SVG), the
per-observation clinical table and the diversity figures. Then every sample: its images, the
reference and the prediction, with the mentions behind each clinical disagreement highlighted
(false positives in the prediction, missed findings in the reference).
"""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

from PIL import Image

from ..data.records import InputFileError
from ..fileio import atomic_write_text
from .chexpert_labeler import OBSERVATIONS, find_mentions
from .nlg import NLG_KEYS

THUMB = 192

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:8px 0} td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
.note{color:#666;font-size:.9em}
.sample{border-top:1px solid #ddd;padding:10px 0;display:grid;grid-template-columns:auto 1fr;gap:12px}
.imgs img{height:160px;margin-right:4px;border:1px solid #999;background:#000}
.text p{margin:4px 0} .lab{font-weight:600;color:#555;display:inline-block;width:90px}
mark.fp{background:#ffc4c4} mark.fn{background:#c9dcff}
.dis{font-size:.9em;color:#a00} .ok{font-size:.9em;color:#080}
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images-total', imgs.length);
  document.body.setAttribute('data-images-loaded', ok);
  document.body.setAttribute('data-metric-rows', document.querySelectorAll('#metrics tbody tr').length);
});
"""


def _thumbnail(path: Path) -> str:
    try:
        with Image.open(path) as im:
            im = im.convert("L")
            im.thumbnail((THUMB, THUMB))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=80)
    except (OSError, ValueError) as e:
        raise InputFileError(f"{path}: cannot read image ({e})") from None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _highlight(text: str, observations: set[str], css: str, lang: str) -> str:
    """Escape ``text`` and wrap the mentions of ``observations`` in <mark class=css>."""
    spans = []
    for m in find_mentions(text, lang):
        if m.observation in observations:
            spans += [(x.start(), x.end()) for x in re.finditer(re.escape(m.text), text)]
    spans.sort()
    out, pos = [], 0
    for start, end in spans:
        if start < pos:
            continue
        out.append(html.escape(text[pos:start]))
        out.append(f'<mark class="{css}">{html.escape(text[start:end])}</mark>')
        pos = end
    out.append(html.escape(text[pos:]))
    return "".join(out)


def _bar_chart(values: list[tuple[str, float]]) -> str:
    width, bar_h, label_w = 580, 18, 200
    top = max([1.0] + [v for _, v in values])
    rows = []
    for i, (name, v) in enumerate(values):
        y = i * (bar_h + 6)
        w = max(0.0, v) / top * (width - label_w - 60)
        rows.append(
            f'<text x="0" y="{y + 13}" font-size="12">{html.escape(name)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="#4a7ab5"></rect>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 13}" font-size="12">{v:.3f}</text>'
        )
    height = len(values) * (bar_h + 6)
    return (
        f'<svg id="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="metrics bar chart">{"".join(rows)}</svg>'
    )


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.3f}"


def write_report(
    path: Path, metrics: dict, per_sample: list[dict], lang: str, media_dir: Path | None, title: str
) -> None:
    ci = metrics.get("bootstrap", {}).get("intervals", {})
    cl = metrics["clinical"]
    rows = [(k, metrics[k], ci.get(k)) for k in NLG_KEYS]
    for group in ("micro-14", "macro-14", "micro-5", "macro-5"):
        key = f"CE-{group}-F1"
        rows.append((f"Clinical F1 ({group})", cl[group]["F1"], ci.get(key)))
    rows.insert(
        7, ("Clinical precision (micro-14)", cl["micro-14"]["precision"], ci.get("CE-micro-14-precision"))
    )
    rows.insert(8, ("Clinical recall (micro-14)", cl["micro-14"]["recall"], ci.get("CE-micro-14-recall")))
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Evaluation: {html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Evaluation: {html.escape(title)}</h1>",
        f"<p class='note'>{metrics['n']} reports, language {lang}. Research use only: generated reports are "
        "not diagnoses. Text normalisation: "
        f"{html.escape(metrics['normalisation'])}. Clinical convention: {html.escape(cl['convention'])}.</p>",
        "<h2>Metrics</h2><table id='metrics'><thead><tr><th>metric</th><th>value</th><th>95% CI</th></tr>"
        "</thead><tbody>",
    ]
    for name, value, interval in rows:
        span = f"{interval['low']:.3f} – {interval['high']:.3f}" if interval else ""
        parts.append(f"<tr><td>{html.escape(name)}</td><td>{value:.3f}</td><td>{span}</td></tr>")
    parts.append("</tbody></table>")
    parts.append(_bar_chart([(name, value) for name, value, _ in rows]))

    parts.append(
        "<h2>Clinical efficacy per observation</h2><table id='observations'><thead><tr><th>observation</th>"
        "<th>precision</th><th>recall</th><th>F1</th><th>TP</th><th>FP</th><th>FN</th><th>in references</th>"
        "</tr></thead><tbody>"
    )
    for obs in OBSERVATIONS:
        o = cl["per_observation"][obs]
        parts.append(
            f"<tr><td>{obs}</td><td>{_fmt(o['precision'])}</td><td>{_fmt(o['recall'])}</td><td>{_fmt(o['F1'])}</td>"
            f"<td>{o['TP']}</td><td>{o['FP']}</td><td>{o['FN']}</td><td>{o['reference_positives']}</td></tr>"
        )
    parts.append("</tbody></table>")

    d, r = metrics["diversity"]["predictions"], metrics["diversity"]["references"]
    parts.append(
        "<h2>Diversity</h2><table id='diversity'><thead><tr><th></th><th>predictions</th>"
        "<th>references</th></tr></thead><tbody>"
    )
    for key in (
        "distinct",
        "distinct_share",
        "most_frequent_count",
        "most_frequent_share",
        "distinct-1",
        "distinct-2",
        "mean_length",
    ):
        a, b = d[key], r[key]
        fa, fb = (f"{a}", f"{b}") if isinstance(a, int) else (f"{a:.3f}", f"{b:.3f}")
        parts.append(f"<tr><td>{key}</td><td>{fa}</td><td>{fb}</td></tr>")
    parts.append("</tbody></table>")
    parts.append(f"<p>Most frequent prediction: <q>{html.escape(d['most_frequent'])}</q></p>")

    parts.append(
        "<h2>Samples</h2><p class='note'><mark class='fp'>red</mark>: stated in the prediction, "
        "not in the reference; <mark class='fn'>blue</mark>: in the reference, missed.</p>"
    )
    for s in per_sample:
        fp = {x["observation"] for x in s["disagreements"] if x["kind"] == "false positive"}
        fn = {x["observation"] for x in s["disagreements"] if x["kind"] == "missed"}
        imgs = []
        for rel in s["images"]:
            src = _thumbnail(Path(media_dir) / rel) if media_dir is not None else html.escape(rel)
            imgs.append(f'<img src="{src}" alt="{html.escape(rel)}">')
        dis = "; ".join(f"{x['observation']} ({x['kind']})" for x in s["disagreements"])
        sc = s["scores"]
        parts.append(
            f"<div class='sample' id='s{s['index']}'><div class='imgs'>{''.join(imgs)}</div><div class='text'>"
            f"<p><span class='lab'>reference</span>{_highlight(s['reference'], fn, 'fn', lang)}</p>"
            f"<p><span class='lab'>prediction</span>{_highlight(s['prediction'], fp, 'fp', lang)}</p>"
            + (
                f"<p class='dis'>disagreements: {html.escape(dis)}</p>"
                if dis
                else "<p class='ok'>clinical labels agree</p>"
            )
            + f"<p class='note'>#{s['index']} · BLEU-4 {sc['BLEU-4']:.3f} · METEOR {sc['METEOR']:.3f} · "
            f"ROUGE-L {sc['ROUGE-L']:.3f} · CIDEr {sc['CIDEr']:.3f}</p></div></div>"
        )
    parts.append(f"<script>{_SCRIPT}</script></body></html>\n")
    atomic_write_text(path, "".join(parts))
