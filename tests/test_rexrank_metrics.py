"""evaluate --metrics rexrank through the real metrics library (RadEval) in the metrics environment,
on an offline Hugging Face cache of random weights under the real model ids (HF_HUB_OFFLINE=1)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xrayqwen2vl.eval.rexrank_run import metrics_python
from xrayqwen2vl.synthetic.metric_models import build_cache

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
CLI = [sys.executable, "-m", "xrayqwen2vl.cli"]

PAIRS = [
    (
        "Findings: Heart size is normal. Lungs are clear. Impression: No acute disease.",
        "Findings: The heart is normal. XXXX lungs clear. Impression: Normal chest.",
    ),
    (
        "Findings: Mild cardiomegaly. Small left pleural effusion. Impression: Cardiomegaly.",
        "Findings: Cardiomegaly with a left effusion. Impression: Cardiomegaly.",
    ),
    (
        "Findings: No pneumothorax. Impression: Normal.",
        "Findings: Right pneumothorax. Impression: Pneumothorax.",
    ),
    (
        "Findings: Heart size is normal. Lungs are clear. Impression: No acute disease.",
        "Findings: Atelectasis at the left base. Impression: Atelectasis.",
    ),
    ("", "Findings: Pulmonary edema. Impression: Edema."),  # an empty prediction keeps its place
]


def _predictions(path: Path, pairs=PAIRS) -> Path:
    path.write_text("".join(json.dumps({"prompt": "x", "predict": p, "label": r}) + "\n" for p, r in pairs))
    return path


def _env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def offline_cache(tmp_path_factory):
    python = metrics_python()
    assert python.is_file(), f"{python} missing: run `make metrics-venv` (make test builds it)"
    return build_cache(tmp_path_factory.mktemp("metric-models"), tiny=True, metrics_python=python)


def test_without_the_metrics_environment_one_line_naming_the_install(tmp_path):
    preds = _predictions(tmp_path / "p.jsonl")
    proc = subprocess.run(
        [
            *CLI,
            "evaluate",
            "--predictions",
            str(preds),
            "--out",
            str(tmp_path / "out"),
            "--metrics",
            "rexrank",
        ],
        env=_env(XRAYQWEN2VL_METRICS_PYTHON=str(tmp_path / "nowhere" / "python")),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "make metrics-venv" in lines[0], proc.stderr
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_chinese_predictions_skip_the_model_metrics(tmp_path):
    preds = _predictions(
        tmp_path / "p.jsonl", [("心影大小正常。", "心影增大。"), ("双肺清晰。", "右侧气胸。")]
    )
    proc = subprocess.run(
        [
            *CLI,
            "evaluate",
            "--predictions",
            str(preds),
            "--out",
            str(tmp_path / "out"),
            "--lang",
            "zh",
            "--metrics",
            "rexrank",
            "--bootstrap",
            "20",
            "--no-html",
        ],
        env=_env(XRAYQWEN2VL_METRICS_PYTHON=str(tmp_path / "nowhere" / "python")),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    block = json.loads((tmp_path / "out" / "metrics.json").read_text())["rexrank"]
    assert "not applied to zh reports" in block["notice"]
    assert set(block["skipped"]) == {"bertscore", "sembscore", "radgraph", "ratescore"}
    assert "BERTScore" not in block["means"]
    assert proc.stdout.count("not applied to zh reports") == 1


@pytest.mark.slow
def test_evaluate_rexrank_on_the_offline_random_cache(tmp_path, offline_cache):
    preds = _predictions(tmp_path / "p.jsonl")
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            *CLI,
            "evaluate",
            "--predictions",
            str(preds),
            "--out",
            str(out),
            "--metrics",
            "rexrank",
            "--section",
            "findings",
            "--bootstrap",
            "50",
        ],
        env=_env(**offline_cache),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    block = metrics["rexrank"]
    assert block["section"] == "findings"
    for key in ("BLEU-2", "BERTScore", "SembScore", "RadGraph", "RaTEScore", "RadCliQ-v1", "1/RadCliQ-v1"):
        m = block["means"][key]
        assert m["low"] <= m["value"] <= m["high"], key
        assert key in block["constant_baseline"]
    from xrayqwen2vl.eval.rexrank import radcliq_v1

    means = {k: v["value"] for k, v in block["means"].items()}
    assert means["RadCliQ-v1"] == pytest.approx(
        radcliq_v1(means["RadGraph"], means["BERTScore"], means["SembScore"], means["BLEU-2"])
    )
    assert means["1/RadCliQ-v1"] == pytest.approx(1 / means["RadCliQ-v1"])
    assert block["versions"]["radeval"] == "2.2.1"
    assert "distilroberta-base, layer 5" in block["models"]["bertscore"]
    assert block["skipped"]["green"].startswith("needs a 7B judge")
    assert block["protocol_differences"]
    for group in ("micro-5", "macro-5", "micro-14", "macro-14"):
        assert 0 <= block["chexbert_ce"][group]["F1"] <= 1
    assert len(block["labeler_agreement"]) == 14
    rows = [json.loads(line) for line in (out / "per_sample.jsonl").read_text().splitlines()]
    assert len(rows) == len(PAIRS)
    for row in rows:
        assert {"BLEU-2", "BERTScore", "SembScore", "RadGraph", "RaTEScore", "RadCliQ-v1"} <= set(
            row["rexrank"]
        )
        assert "chexbert_prediction" in row["rexrank"]
    page = (out / "report.html").read_text()
    assert "<table id='rexrank'>" in page and "<table id='chexbert-ce'>" in page
    assert "rx-radcliq:asc" in page and 'data-rx-radgraph="' in page
    # the empty prediction: RaTEScore's no-entity score, and the studies after it stay aligned
    assert rows[-1]["rexrank"]["RaTEScore"] == 0.5
    assert rows[-1]["rexrank"]["BLEU-2"] == 0.0
    assert "CE micro-5 F1: CheXbert" in proc.stdout
    # BLEU-2 per study is ReXrank's, on the findings only
    from xrayqwen2vl.eval.rexrank import bleu2, select_section

    assert rows[0]["rexrank"]["BLEU-2"] == pytest.approx(
        bleu2(select_section(PAIRS[0][0], "findings"), select_section(PAIRS[0][1], "findings"))
    )


PARITY = """
import json, sys
import bert_score
from transformers import AutoTokenizer
from radeval.metrics.bertscore._vendor import BERTScorer
hyps, refs = json.loads(sys.argv[1])
kw = dict(model_type="distilroberta-base", num_layers=5, lang="en", rescale_with_baseline=True, idf=False)
ref = bert_score.BERTScorer(**kw)
# bert-score 0.3.13 passes add_prefix_space to encode(), which transformers 5 ignores: give the tokenizer
# the setting at load time, as bert-score's own call did under the transformers it was written for
ref._tokenizer = AutoTokenizer.from_pretrained("distilroberta-base", add_prefix_space=True)
print(json.dumps([ref.score(hyps, refs)[2].tolist(), BERTScorer(**kw).score(hyps, refs)[2].tolist()]))
"""


@pytest.mark.slow
def test_bertscore_parity_with_the_bert_score_package(offline_cache):
    hyps = [p for p, _ in PAIRS if p] + ["Left lower lobe atelectasis is seen."]
    refs = [r for p, r in PAIRS if p] + ["There is atelectasis at the left base."]
    proc = subprocess.run(
        [str(metrics_python()), "-c", PARITY, json.dumps([hyps, refs])],
        env=_env(**offline_cache),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    reference, ours = json.loads(proc.stdout.strip().splitlines()[-1])
    assert ours == pytest.approx(reference, abs=1e-6)
    assert len(set(round(x, 6) for x in ours)) > 1  # not a constant


SAME_AS_LIBRARY = """
import json, sys
from xrayqwen2vl.eval import rexrank_adapter as a
a._alias_radeval()
from radeval.metrics.radgraph_radcliq.radgraph_radcliq import RadGraphRadCliQ
from radeval.metrics.RaTEScore.scorer import RaTEScore
from radeval.metrics.f1chexbert import F1CheXbert
hyps, refs, rate_hyps, rate_refs = json.loads(sys.argv[1])
import torch
plain, windowed = RaTEScore(batch_size=3), RaTEScore(batch_size=3)
wrapped = a._window_relative_attention(windowed.model)
enc = plain.tokenizer(rate_refs, padding=True, return_tensors="pt")
with torch.no_grad():
    gap = float((plain.model(**enc).logits - windowed.model(**enc).logits).abs().max())
chexbert = F1CheXbert(device="cpu", batch_size=3)
texts = sorted(set(hyps + refs))
vectors, labels = a._chexbert_pass(chexbert, texts, 3)
print(json.dumps({
    "deberta": [wrapped, windowed.model.config.num_hidden_layers, gap, dict(a.WINDOW_CALLS)],
    "chexbert": [
        [v.tolist() for v in vectors], labels,
        [v.tolist() for v in chexbert.get_embeddings(texts)], chexbert.get_labels(texts, mode="classification"),
    ],
    "radgraph": [a._radgraph(hyps, refs, 8, "cpu"), RadGraphRadCliQ(model_type="radgraph")(hyps, refs)[1]],
    "radgraph_encoder": dict(a.RADGRAPH_ENCODER),
    "radgraph_chunked": (setattr(a, "RADGRAPH_CHUNK", 3), a._radgraph(hyps, refs, 8, "cpu"))[1],
    "ratescore": [
        a._ratescore(rate_hyps, rate_refs, 3, "cpu"),
        RaTEScore(batch_size=3).compute_score(rate_hyps, rate_refs)[0],
        a._ratescore(rate_hyps + ["OK"], rate_refs + [rate_refs[0]], 3, "cpu"),
    ],
}))
"""


@pytest.mark.slow
def test_each_text_once_equals_the_library_pairwise(offline_cache):
    """CheXbert encodes, RadGraph and RaTEScore parse (and RaTEScore encode) each distinct text once,
    CheXbert in one pass for vectors and labels; the library does it per pair (CheXbert: twice).
    Same weights, same numbers."""
    hyps = [p for p, _ in PAIRS] + [PAIRS[0][1]]  # repeated texts, an empty one, an exact match
    refs = [r for _, r in PAIRS] + [PAIRS[0][1]]
    # RadEval's RaTEScore drops a text with no sentence and shifts the rest: compare on texts with one
    rate_hyps, rate_refs = [h for h in hyps if h], [r for h, r in zip(hyps, refs, strict=True) if h]
    proc = subprocess.run(
        [str(metrics_python()), "-c", SAME_AS_LIBRARY, json.dumps([hyps, refs, rate_hyps, rate_refs])],
        env=_env(**offline_cache),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # RaTEScore's tagger with its relative-position table cut to the reachable window: same logits
    wrapped, layers, gap, calls = result["deberta"]
    assert wrapped == layers and calls == {"windowed": layers, "full": 0} and gap < 1e-5
    vectors, labels, library_vectors, library_labels = result["chexbert"]
    assert labels == library_labels  # one encoder pass for both, batched by length: the same labels
    assert len(vectors) == len(library_vectors) == len(set(hyps + refs))
    for ours, library in zip(vectors, library_vectors, strict=True):
        assert ours == pytest.approx(library, abs=1e-5)
    ours, library = result["radgraph"]
    assert ours == library
    # every report's sentences came from the batched pass (one call per distinct text), none re-encoded
    assert result["radgraph_encoder"] == {"answered": len(set(hyps + refs)), "passed_on": 0}
    assert result["radgraph_chunked"] == library  # reports parsed 3 at a time: the same scores
    assert any(x > 0 for x in ours)  # the random model finds entities: the comparison is not 0 == 0
    ours, library, with_fragment = result["ratescore"]
    assert ours == pytest.approx(library, abs=1e-5)
    assert any(x != 0.5 for x in ours)  # entities found on both sides: real scores, not only 0.5s
    # a prediction with no sentence ("OK": under RadEval's 3 characters) keeps its place
    assert with_fragment[:-1] == pytest.approx(ours, abs=1e-6) and with_fragment[-1] == 0.5


GREEN_ANSWER = """[Explanation]:
The candidate misses the effusion and overstates the heart.

[Clinically Significant Errors]:
(a) False report of a finding in the candidate: 0.
(b) Missing a finding present in the reference: 1. Left pleural effusion
(c) Misidentification of a finding's anatomic location/position: 0.
(d) Misassessment of the severity of a finding: 1. Cardiomegaly called severe
(e) Mentioning a comparison that isn't in the reference: 0.
(f) Omitting a comparison detailing a change from a prior study: 0.

[Clinically Insignificant Errors]:
(a) False report of a finding in the candidate: 1. Old rib fracture

[Matched Findings]:
2. Cardiomegaly; clear lungs
"""

GREEN_PARSE = """
import json, sys
from xrayqwen2vl.eval.rexrank_adapter import _green_result
print(json.dumps(_green_result(json.loads(sys.argv[1]))))
"""


def test_green_answers_scored_by_the_library_parser():
    """A judge's answer in GREEN's format: matched / (matched + significant errors) = 2 / (2 + 2);
    the chat-template remnant is cleaned off; an answer without the sections is 0 and named."""
    answers = [GREEN_ANSWER, "heart heart lungs the", "<|assistant|>" + GREEN_ANSWER]
    proc = subprocess.run(
        [str(metrics_python()), "-c", GREEN_PARSE, json.dumps(answers)],
        env=_env(HF_HUB_OFFLINE="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["scores"] == [0.5, 0.0, 0.5]
    assert result["counts"][0] == [0, 1, 0, 1, 0, 0, 2] == result["counts"][2]
    assert result["unparsed"] == [1]
    assert result["categories"][-1] == "Matched Findings" and len(result["categories"]) == 7


def test_green_chat_template_renders_the_prompt_as_green_does():
    """configs/green/chat_template.jinja, rendered as transformers renders chat templates, gives the
    text RadEval's GREEN generates from (its template over a user turn and an empty assistant turn)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    template = (ROOT / "configs" / "green" / "chat_template.jinja").read_text()
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    text = env.from_string(template).render(
        messages=[{"role": "user", "content": "PROMPT"}], add_generation_prompt=True, eos_token="</s>"
    )
    assert text == "<|user|>\nPROMPT</s>\n<|assistant|>\n</s>\n<|assistant|>\n"
