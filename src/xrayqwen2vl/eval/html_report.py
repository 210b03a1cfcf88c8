"""report.html: one self-contained page (CSS and script inline, images embedded as data URIs, no
network), usable for 600 studies and more.

On top: a banner with every warning of the run (mode collapse first), the headline figure beside
the constant-report baseline, the metrics table (model, 95% interval, constant report) with a bar
chart, the per-observation clinical table and the diversity figures. Then a sticky tool bar and
every study: its images, the reference and the prediction, with the mentions behind each
clinical disagreement highlighted (false positives in the prediction, missed findings in the
reference). The tool bar filters the studies by observation and by (dis)agreement and sorts them
by a per-study score; each study carries its labels and scores as data attributes for that.
"""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

from PIL import Image

from ..data.images import MAX_PIXELS
from ..data.records import InputFileError
from ..fileio import atomic_write_text, check_regular_file
from .baselines import constant_description
from .chexpert_labeler import OBSERVATIONS, find_mentions
from .nlg import NLG_KEYS

THUMB = 192

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:8px 0} td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
.note{color:#666;font-size:.9em}
#warnings{background:#fff3cd;border:2px solid #d9534f;border-radius:6px;padding:8px 14px;margin:12px 0}
#warnings strong{color:#a00} #warnings li{margin:4px 0}
#headline{font-size:1.15em;background:#eef4fb;border-left:5px solid #4a7ab5;padding:8px 12px}
#controls{position:sticky;top:0;background:#fff;border-bottom:1px solid #bbb;padding:8px 0;z-index:1;
  display:flex;flex-wrap:wrap;gap:14px;align-items:center}
#controls label{font-size:.95em} #shown{color:#555;font-size:.9em}
.sample{border-top:1px solid #ddd;padding:10px 0;display:grid;grid-template-columns:auto minmax(0,1fr);gap:12px}
.sample[hidden]{display:none}
.imgs img{height:160px;margin-right:4px;border:1px solid #999;background:#000}
.pair{display:grid;grid-template-columns:max-content minmax(0,1fr);column-gap:14px;row-gap:6px}
.lab{font-weight:600;color:#555} .txt{overflow-wrap:anywhere}
.text p{margin:4px 0}
mark.fp{background:#ffc4c4} mark.fn{background:#c9dcff}
.dis{font-size:.9em;color:#a00} .ok{font-size:.9em;color:#080}
"""

_SCRIPT = """
function xqList(el, name) { var v = el.getAttribute('data-' + name); return v ? v.split('|') : []; }
function xqNum(el, key) { var v = parseFloat(el.getAttribute('data-' + key)); return isNaN(v) ? -1 : v; }
function xqMatches(el, obs, show) {
  var fp = xqList(el, 'fp'), fn = xqList(el, 'fn');
  var ref = xqList(el, 'pos-ref'), pred = xqList(el, 'pos-pred');
  if (obs) {
    var isFp = fp.indexOf(obs) >= 0, isFn = fn.indexOf(obs) >= 0;
    if (show === 'disagree') return isFp || isFn;
    if (show === 'fp') return isFp;
    if (show === 'fn') return isFn;
    if (show === 'agree') return ref.indexOf(obs) >= 0 && pred.indexOf(obs) >= 0;
    return ref.indexOf(obs) >= 0 || pred.indexOf(obs) >= 0;
  }
  if (show === 'disagree') return fp.length + fn.length > 0;
  if (show === 'fp') return fp.length > 0;
  if (show === 'fn') return fn.length > 0;
  if (show === 'agree') return fp.length + fn.length === 0;
  return true;
}
function xqApply() {
  var obs = document.getElementById('f-obs').value, show = document.getElementById('f-show').value;
  var parts = document.getElementById('f-sort').value.split(':'), key = parts[0];
  var dir = parts[1] === 'desc' ? -1 : 1;
  var box = document.getElementById('samples');
  var items = Array.prototype.slice.call(box.children), shown = 0;
  items.forEach(function (el) { el.hidden = !xqMatches(el, obs, show); if (!el.hidden) shown++; });
  items.sort(function (a, b) {
    var d = (xqNum(a, key) - xqNum(b, key)) * dir;
    return d !== 0 ? d : xqNum(a, 'index') - xqNum(b, 'index');
  });
  items.forEach(function (el) { box.appendChild(el); });
  document.getElementById('shown').textContent = shown + ' of ' + items.length + ' studies shown';
}
['f-obs', 'f-show', 'f-sort'].forEach(function (id) {
  document.getElementById(id).addEventListener('change', xqApply);
});
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images-total', imgs.length);
  document.body.setAttribute('data-images-loaded', ok);
  document.body.setAttribute('data-metric-rows', document.querySelectorAll('#metrics tbody tr').length);
});
"""

SHOW = [
    ("all", "all studies"),
    ("disagree", "a disagreement"),
    ("fp", "a false positive"),
    ("fn", "a missed finding"),
    ("agree", "labels agreeing"),
]
SORT = [
    ("index:asc", "study order"),
    ("disagreements:desc", "most disagreements first"),
    ("bleu4:asc", "BLEU-4, lowest first"),
    ("bleu4:desc", "BLEU-4, highest first"),
    ("meteor:asc", "METEOR, lowest first"),
    ("meteor:desc", "METEOR, highest first"),
    ("rougel:asc", "ROUGE-L, lowest first"),
    ("rougel:desc", "ROUGE-L, highest first"),
    ("cider:asc", "CIDEr, lowest first"),
    ("cider:desc", "CIDEr, highest first"),
]
SCORE_ATTRS = {"bleu4": "BLEU-4", "meteor": "METEOR", "rougel": "ROUGE-L", "cider": "CIDEr"}
# evaluate --metrics rexrank: per-study ReXrank scores (per_sample "rexrank"), as data attributes
REXRANK_ATTRS = {
    "rx-bleu2": "BLEU-2",
    "rx-bertscore": "BERTScore",
    "rx-sembscore": "SembScore",
    "rx-radgraph": "RadGraph",
    "rx-ratescore": "RaTEScore",
    "rx-radcliq": "RadCliQ-v1",
}


def _rexrank_attrs(per_sample: list[dict]) -> dict[str, str]:
    """The ReXrank scores every study has (none without --metrics rexrank)."""
    if not per_sample or "rexrank" not in per_sample[0]:
        return {}
    return {k: name for k, name in REXRANK_ATTRS.items() if all(name in s["rexrank"] for s in per_sample)}


def _rexrank_sort(attrs: dict[str, str]) -> list[tuple[str, str]]:
    out = []
    for key, name in attrs.items():
        out += [
            (f"{key}:asc", f"ReXrank {name}, lowest first"),
            (f"{key}:desc", f"ReXrank {name}, highest first"),
        ]
    return out


def _rexrank_table(metrics: dict) -> list[str]:
    block = metrics.get("rexrank")
    if not block:
        return []
    parts = [
        f"<h2>ReXrank metrics ({html.escape(block['section'])})</h2>",
        "<table id='rexrank'><thead><tr><th>metric</th><th>model</th><th>95% CI</th><th>constant report</th>"
        "</tr></thead><tbody>",
    ]
    for name, m in block["means"].items():
        span = f"{m['low']:.3f} – {m['high']:.3f}" if "low" in m else ""
        const = block["constant_baseline"].get(name)
        parts.append(
            f"<tr><td>{html.escape(name)}</td><td>{m['value']:.3f}</td><td>{span}</td><td>{_fmt(const)}</td></tr>"
        )
    parts.append("</tbody></table>")
    ce = block.get("chexbert_ce")
    if ce:
        cl = metrics["clinical"]
        parts.append(
            "<table id='chexbert-ce'><thead><tr><th>CE F1</th><th>CheXbert</th><th>our labeler</th></tr></thead><tbody>"
        )
        for group in ("micro-5", "macro-5", "micro-14", "macro-14"):
            parts.append(
                f"<tr><td>{group}</td><td>{_fmt(ce[group]['F1'])}</td><td>{_fmt(cl[group]['F1'])}</td></tr>"
            )
        parts.append("</tbody></table>")
    notes = [block.get("notice")] + [
        f"{k}: {v}" for k, v in block.get("skipped", {}).items() if not block.get("notice")
    ]
    for note in filter(None, notes):
        parts.append(f"<p class='note'>{html.escape(note)}</p>")
    return parts


def _thumbnail(path: Path) -> str:
    check_regular_file(path, "image file")  # a FIFO is never opened
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise InputFileError(
                    f"{path}: {im.width}x{im.height} pixels, more than {MAX_PIXELS:,}; refused"
                )
            im = im.convert("L")
            im.thumbnail((THUMB, THUMB))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=80)
    except (OSError, Image.DecompressionBombError) as e:
        raise InputFileError(f"{path}: cannot read image ({type(e).__name__})") from None
    except InputFileError:
        raise
    except ValueError as e:
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


def _select(element_id: str, label: str, options: list[tuple[str, str]]) -> str:
    opts = "".join(f'<option value="{html.escape(v)}">{html.escape(t)}</option>' for v, t in options)
    return f"<label>{label} <select id='{element_id}'>{opts}</select></label>"


def _banner(metrics: dict) -> str:
    warnings = metrics.get("warnings", [])
    if not warnings:
        return ""
    items = "".join(f"<li>WARNING: {html.escape(w)}</li>" for w in warnings)
    return f"<div id='warnings' role='alert'><strong>Read this first</strong><ul>{items}</ul></div>"


def _headline(metrics: dict) -> str:
    h = metrics["headline"]
    span = f" (95% CI {h['low']:.3f} – {h['high']:.3f})" if h["low"] is not None else ""
    best = h["best_constant"]
    claim = " and ".join(best["claims"]) or "nothing"
    return (
        f"<p id='headline'>Headline: <b>{html.escape(h['metric'])} {h['value']:.3f}</b>{span}; the constant "
        f"most-common reference report scores <b>{h['constant_baseline']:.3f}</b>, the best constant claim "
        f"({html.escape(claim)} for every study) <b>{best['F1']:.3f}</b>."
        f"<br><span class='note'>{html.escape(h['why'])}.</span></p>"
    )


def _metric_rows(metrics: dict) -> list[tuple[str, float | None, dict | None, float | None]]:
    """(name, model value, interval, constant value), the headline first."""
    ci = metrics.get("bootstrap", {}).get("intervals", {})
    cl, const = metrics["clinical"], metrics["constant_baseline"]
    rows = []
    for group in ("micro-5", "macro-5"):
        rows.append(
            (
                f"Clinical F1 ({group})",
                cl[group]["F1"],
                ci.get(f"CE-{group}-F1"),
                const["clinical"][group]["F1"],
            )
        )
    for part in ("precision", "recall", "F1"):
        rows.append(
            (
                f"Clinical {part} (micro-14)",
                cl["micro-14"][part],
                ci.get(f"CE-micro-14-{part}"),
                const["clinical"]["micro-14"][part],
            )
        )
    rows.append(
        (
            "Clinical F1 (macro-14)",
            cl["macro-14"]["F1"],
            ci.get("CE-macro-14-F1"),
            const["clinical"]["macro-14"]["F1"],
        )
    )
    rows += [(k, metrics[k], ci.get(k), const[k]) for k in NLG_KEYS]
    return rows


def _summary(metrics: dict, lang: str) -> list[str]:
    cl = metrics["clinical"]
    parts = [
        f"<p class='note'>{metrics['n']} reports, language {lang}. Research use only: generated reports are "
        "not diagnoses. Text normalisation: "
        f"{html.escape(metrics['normalisation'])}; {html.escape(metrics['section_headers'])}. Clinical "
        f"convention: {html.escape(cl['convention'])}.</p>",
        "<h2>Metrics</h2><table id='metrics'><thead><tr><th>metric</th><th>model</th><th>95% CI</th>"
        "<th>constant report</th></tr></thead><tbody>",
    ]
    rows = _metric_rows(metrics)
    for name, value, interval, constant in rows:
        span = f"{interval['low']:.3f} – {interval['high']:.3f}" if interval else ""
        shown = "error" if value is None else f"{value:.3f}"
        parts.append(
            f"<tr><td>{html.escape(name)}</td><td>{shown}</td><td>{span}</td><td>{_fmt(constant)}</td></tr>"
        )
    parts.append("</tbody></table>")
    const = metrics["constant_baseline"]
    parts.append(
        f"<p class='note'>constant report: {html.escape(constant_description(const, metrics['n']))}: "
        f"<q>{html.escape(const['report'])}</q></p>"
    )
    parts.append(_bar_chart([(name, value) for name, value, _, _ in rows if value is not None]))
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
    keys = (
        "distinct",
        "distinct_share",
        "most_frequent_count",
        "most_frequent_share",
        "distinct-1",
        "distinct-2",
    )
    rows = [(key, d[key], r[key]) for key in (*keys, "mean_length")]
    rep, th = metrics["diversity"]["repetition"], metrics["diversity"]["collapse"]["thresholds"]
    sets = rep["label_sets"]
    rows += [
        (f"label sets: {k}", sets["predictions"][k], sets["references"][k])
        for k in ("distinct", "most_frequent_share")
    ]
    for key, a, b in rows:
        fa, fb = (f"{a}", f"{b}") if isinstance(a, int) else (f"{a:.3f}", f"{b:.3f}")
        parts.append(f"<tr><td>{key}</td><td>{fa}</td><td>{fb}</td></tr>")
    parts.append("</tbody></table>")
    parts.append(f"<p>Most frequent prediction: <q>{html.escape(d['most_frequent'])}</q></p>")
    parts.append(
        f"<p id='repetition'>Repeated predictions: {rep['repeated_predictions']}, written for "
        f"{rep['studies_given_a_repeated_prediction']} studies; they leave out stated findings of {rep['hidden']} "
        f"of the {rep['studies_with_findings']} studies whose references state any ({rep['hidden_share']:.1%}), "
        f"{rep['blindness']:.0%} of what they would leave out if handed out at random. Mode collapse from "
        f"{th['hidden_share']:.0%} and {th['blindness']:.0%}.</p>"
    )
    return parts


def _sample(s: dict, lang: str, media_dir: Path | None, rexrank: dict[str, str] | None = None) -> str:
    rexrank = rexrank or {}
    fp = [x["observation"] for x in s["disagreements"] if x["kind"] == "false positive"]
    fn = [x["observation"] for x in s["disagreements"] if x["kind"] == "missed"]
    pos_ref = [o for o in OBSERVATIONS if s["labels_reference"].get(o) == 1]
    pos_pred = [o for o in OBSERVATIONS if s["labels_prediction"].get(o) == 1]
    imgs = []
    for rel in s["images"]:
        src = _thumbnail(Path(media_dir) / rel) if media_dir is not None else html.escape(rel)
        imgs.append(f'<img src="{src}" alt="{html.escape(rel)}">')
    dis = "; ".join(f"{x['observation']} ({x['kind']})" for x in s["disagreements"])
    sc = s["scores"]
    attrs = {
        "index": s["index"],
        "disagreements": len(s["disagreements"]),
        "fp": "|".join(fp),
        "fn": "|".join(fn),
        "pos-ref": "|".join(pos_ref),
        "pos-pred": "|".join(pos_pred),
        **{k: "" if sc[name] is None else f"{sc[name]:.6f}" for k, name in SCORE_ATTRS.items()},
        **{k: f"{s['rexrank'][name]:.6f}" for k, name in rexrank.items()},
    }
    data = " ".join(f'data-{k}="{html.escape(str(v))}"' for k, v in attrs.items())
    scores = " · ".join(
        [f"{name} {_fmt(sc[name])}" for name in SCORE_ATTRS.values()]
        + [f"{name} {_fmt(s['rexrank'][name])}" for name in rexrank.values()]
    )
    return (
        f"<div class='sample' id='s{s['index']}' {data}><div class='imgs'>{''.join(imgs)}</div><div class='text'>"
        "<div class='pair'>"
        f"<span class='lab'>reference</span><span class='txt'>{_highlight(s['reference'], set(fn), 'fn', lang)}</span>"
        f"<span class='lab'>prediction</span><span class='txt'>{_highlight(s['prediction'], set(fp), 'fp', lang)}</span>"
        "</div>"
        + (
            f"<p class='dis'>disagreements: {html.escape(dis)}</p>"
            if dis
            else "<p class='ok'>clinical labels agree</p>"
        )
        + f"<p class='note'>#{s['index']} (line {s['line']}) · {scores}</p></div></div>"
    )


def write_report(
    path: Path, metrics: dict, per_sample: list[dict], lang: str, media_dir: Path | None, title: str
) -> None:
    rexrank = _rexrank_attrs(per_sample)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Evaluation: {html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Evaluation: {html.escape(title)}</h1>",
        _banner(metrics),
        _headline(metrics),
        *_summary(metrics, lang),
        *_rexrank_table(metrics),
        "<h2>Studies</h2><p class='note'><mark class='fp'>red</mark>: stated in the prediction, "
        "not in the reference; <mark class='fn'>blue</mark>: in the reference, missed.</p>",
        "<div id='controls'>",
        _select("f-obs", "Observation", [("", "any")] + [(o, o) for o in OBSERVATIONS]),
        _select("f-show", "Studies with", SHOW),
        _select("f-sort", "Sort by", SORT + _rexrank_sort(rexrank)),
        f"<span id='shown'>{len(per_sample)} of {len(per_sample)} studies shown</span></div>",
        "<div id='samples'>",
        *(_sample(s, lang, media_dir, rexrank) for s in per_sample),
        "</div>",
        f"<script>{_SCRIPT}</script></body></html>\n",
    ]
    atomic_write_text(path, "".join(parts))
