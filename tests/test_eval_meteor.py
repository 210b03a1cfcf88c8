"""METEOR never hangs evaluate: a runaway 100,000-character prediction is scored (cut for METEOR,
said in the warnings), and a METEOR process that dies or stops answering becomes a clear error
for that metric while every other figure is still computed."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from conftest import run_cli, tool

from xrayqwen2vl.cli import main
from xrayqwen2vl.eval.meteor import METEOR_MAX_TOKENS, MeteorError, MeteorProcess
from xrayqwen2vl.eval.nlg import compute_nlg

REPORT = (
    "Findings: The heart is normal in size. The lungs are clear. No pleural effusion or pneumothorax. "
    "Impression: No acute cardiopulmonary abnormality."
)
OTHERS = [
    "Findings: The heart is enlarged. There is a small left pleural effusion. Impression: Cardiomegaly.",
    "Findings: Linear atelectasis in the right lung base. Impression: Right basilar atelectasis.",
    "Findings: There is a right apical pneumothorax. Impression: Right pneumothorax.",
]


def test_a_100k_character_prediction_is_scored_not_hung(tmp_path):
    runaway = (REPORT + " ") * (100_000 // (len(REPORT) + 1) + 1)
    assert len(runaway) >= 100_000
    preds = tmp_path / "generated_predictions.jsonl"
    rows = [{"prompt": "", "predict": runaway, "label": REPORT}]
    rows += [{"prompt": "", "predict": r, "label": r} for r in OTHERS]
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "eval"
    # The real command in its own process: before the fix METEOR's JVM ran out of heap on this line
    # and the toolkit deadlocked on its lock, so the timeout turns a hang into a failure.
    proc = run_cli(
        [
            tool("xrayqwen2vl"),
            "evaluate",
            "--predictions",
            str(preds),
            "--out",
            str(out),
            "--bootstrap",
            "50",
        ],
        timeout=400,
    )
    assert "WARNING: METEOR input truncated: 1 prediction longer than" in proc.stdout
    m = json.loads((out / "metrics.json").read_text())
    assert isinstance(m["METEOR"], float) and 0 < m["METEOR"] < 1 and "METEOR_error" not in m
    truncated = [w for w in m["warnings"] if w.startswith("METEOR input truncated")]
    assert len(truncated) == 1 and "(line 1)" in truncated[0] and str(METEOR_MAX_TOKENS) in truncated[0]
    rows_out = [json.loads(x) for x in (out / "per_sample.jsonl").read_text().splitlines()]
    assert rows_out[0]["prediction"] == runaway  # stored whole; only METEOR's copy was cut
    assert rows_out[0]["bleu_counts"]["testlen"] > 10 * METEOR_MAX_TOKENS  # BLEU scored the full text
    assert 0 < rows_out[0]["scores"]["METEOR"] < 1 and rows_out[1]["scores"]["METEOR"] > 0.9
    assert (out / "report.html").stat().st_size > 100_000


def _gone(pid: int) -> bool:
    """No process (not even an unreaped zombie) has this pid any more."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_meteor_process_that_dies_is_an_error_for_meteor_only():
    meteor = MeteorProcess()
    os.kill(meteor.pid, signal.SIGKILL)  # what the JVM's out-of-memory exit looks like from outside
    r = compute_nlg(["the heart is normal ."], ["the heart is normal ."], meteor=meteor)
    assert r.corpus["METEOR"] is None and "was killed by signal 9" in r.meteor_error
    assert _gone(meteor.pid)  # reaped by the failure itself, before the caller closes it
    assert r.corpus["BLEU-1"] == pytest.approx(1.0) and r.corpus["ROUGE-L"] == pytest.approx(1.0)
    t = time.monotonic()
    meteor.close()  # the toolkit's close waited forever on the lock its failed call still held
    meteor.close()
    assert time.monotonic() - t < 10
    with pytest.raises(MeteorError, match="failed earlier"):
        meteor.compute_score({0: ["a"]}, {0: ["a"]})


def test_a_meteor_process_that_stops_answering_is_killed_after_the_timeout():
    meteor = MeteorProcess(timeout=3)
    os.kill(meteor.pid, signal.SIGSTOP)  # alive but silent: a hung JVM
    t = time.monotonic()
    r = compute_nlg(["a b c"], ["a b c"], meteor=meteor)
    assert time.monotonic() - t < 30
    assert r.corpus["METEOR"] is None and "no answer for 3 s" in r.meteor_error
    assert r.corpus["BLEU-1"] == pytest.approx(1.0)
    assert _gone(meteor.pid)  # killed and reaped by the timeout, not left for the caller's close
    meteor.close()


def test_evaluate_without_java_reports_meteor_failed_and_keeps_the_rest(tmp_path, monkeypatch, capsys):
    preds = tmp_path / "p.jsonl"
    preds.write_text(
        "".join(
            json.dumps({"prompt": "", "predict": b, "label": a}) + "\n"
            for a, b in zip(OTHERS, OTHERS[::-1], strict=True)
        )
    )
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no java on PATH
    out = tmp_path / "eval"
    assert main(["evaluate", "--predictions", str(preds), "--out", str(out), "--bootstrap", "30"]) == 0
    printed = capsys.readouterr().out
    assert "WARNING: METEOR failed, no METEOR figures: METEOR needs Java" in printed
    assert "METEOR                   error" in printed
    m = json.loads((out / "metrics.json").read_text())
    assert m["METEOR"] is None and "needs Java" in m["METEOR_error"]
    assert m["constant_baseline"]["METEOR"] is None
    assert "METEOR" not in m["bootstrap"]["intervals"] and "BLEU-4" in m["bootstrap"]["intervals"]
    assert isinstance(m["ROUGE-L"], float) and isinstance(m["clinical"]["micro-14"]["F1"], float)
    rows = [json.loads(x) for x in (out / "per_sample.jsonl").read_text().splitlines()]
    assert all(r["scores"]["METEOR"] is None for r in rows)
    # a run without METEOR still compares with one that has it, on the other metrics
    monkeypatch.undo()
    assert main(["compare", str(out), str(out), "--bootstrap", "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(x.startswith("BLEU-4") for x in lines) and not any(x.startswith("METEOR") for x in lines)


def test_a_clean_meteor_process_is_reused_and_a_failed_one_is_not(tmp_path, monkeypatch):
    """evaluate keeps a METEOR process that finished cleanly for the next evaluation in the same
    Python process (its tables take seconds to load): the same answers as a fresh one; a process that
    failed is never handed out again; without Java the one-line error comes even when one is kept."""
    from xrayqwen2vl.eval import meteor as m

    gts, res = {0: ["the heart is normal ."], 1: ["no effusion ."]}, {0: ["the heart is large ."], 1: ["a b"]}
    first = m.acquire()
    answer = first.compute_score(gts, res)
    m.release(first)
    second = m.acquire()
    assert second is first and second.compute_score(gts, res) == answer  # no second JVM, same answer
    fresh = MeteorProcess()
    assert fresh.compute_score(gts, res) == answer
    fresh.close()
    os.kill(second.pid, signal.SIGKILL)
    assert compute_nlg(["a b c"], ["a b c"], meteor=second).meteor_error
    m.release(second)
    assert _gone(second.pid)
    third = m.acquire()
    assert third is not second and third.healthy()
    m.release(third)
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(MeteorError, match="needs Java"):
        m.acquire()
    monkeypatch.undo()
    assert m.acquire() is third  # still kept for the next evaluation
    m.release(third)
