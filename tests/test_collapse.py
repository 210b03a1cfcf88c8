"""The mode-collapse verdict on report text with real-world variety (synthetic/report_mix.py: more
than half normal studies in several phrasings, stated, negated and hedged findings): the
canonical-normal oracle and reference-shuffled reports are no collapse; the constant report, one
report for 80% of the studies and thirty reports handed out at random are. N and M in the message
are checked against what the generator put in each study, not against the labeler."""

from __future__ import annotations

import json
import random
import sys

import pytest
from conftest import REPO

from xrayqwen2vl.cli import main
from xrayqwen2vl.eval.chexpert_labeler import OBSERVATIONS
from xrayqwen2vl.eval.diversity import StudyLabels
from xrayqwen2vl.eval.evaluate import judge_texts
from xrayqwen2vl.synthetic.report_mix import realistic_references

sys.path.insert(0, str(REPO / "benchmarks"))
import collapse_calibration  # noqa: E402

N_STUDIES = 300


@pytest.fixture(scope="module")
def studies():
    return realistic_references(N_STUDIES, seed=5)


@pytest.fixture(scope="module")
def runs(studies):
    return collapse_calibration.scenarios([s.report for s in studies], [s.normal for s in studies], seed=1)


def _refs(studies):
    return [s.report for s in studies]


def test_the_corpus_has_real_world_variety(studies):
    normal = [s for s in studies if s.normal]
    assert len(normal) >= N_STUDIES // 2
    assert len({s.report for s in normal}) >= 6  # several normal phrasings
    assert sum(1 for s in studies if s.hedged) >= 10  # hedged findings
    texts = " ".join(_refs(studies))
    assert "Possible small" in texts and "No pneumothorax." in texts and "Borderline heart size." in texts


def test_canonical_normal_oracle_is_no_collapse(studies, runs):
    block = judge_texts(runs["oracle"], _refs(studies))
    # one text for every normal study: a text-count rule calls this collapse...
    assert block["predictions"]["most_frequent_count"] == sum(s.normal for s in studies)
    assert block["predictions"]["most_frequent_share"] > 0.5
    # ...but it hides nothing, and it predicts as many label sets as the references hold
    rep = block["repetition"]
    assert rep["hidden"] == 0 and not block["collapse"]["collapsed"]
    assert rep["label_sets"]["predictions"]["distinct"] == rep["label_sets"]["references"]["distinct"]


def test_shuffled_references_are_as_varied_as_the_references(studies, runs):
    block = judge_texts(runs["shuffled"], _refs(studies))
    rep = block["repetition"]
    assert rep["repeated"][0]["hidden"] > 0  # the repeated normal texts land on abnormal studies...
    assert (
        rep["hidden"] == 0 and not block["collapse"]["collapsed"]
    )  # ...no more often than the references repeat
    assert rep["label_sets"]["predictions"] == rep["label_sets"]["references"]


@pytest.mark.parametrize("run", ["constant", "collapse-80"])
def test_one_report_for_most_studies_is_collapse(studies, runs, run):
    block = judge_texts(runs[run], _refs(studies))
    predicted = runs[run]
    text = collapse_calibration.most_common(predicted)
    given = [k for k, p in enumerate(predicted) if " ".join(p.split()) == text]
    hidden = sum(1 for k in given if studies[k].findings)  # the generator's truth, not the labeler's
    assert block["collapse"]["collapsed"]
    assert block["collapse"]["reasons"][0].startswith(
        f"the same report for {len(given)} of {N_STUDIES} studies, {hidden} of which have findings it does not state"
    )
    assert block["repetition"]["hidden_share"] >= (0.75 if run == "collapse-80" else 1.0)


def test_thirty_reports_handed_out_at_random_are_collapse(studies):
    """The collapse of a model that writes 30 distinct reports: no single one dominates, together
    they hide the findings of most studies."""
    refs = _refs(studies)
    rng = random.Random(3)
    pool = rng.sample(refs, 30)
    predicted = [rng.choice(pool) for _ in refs]
    block = judge_texts(predicted, refs)
    assert block["predictions"]["most_frequent_share"] < 0.2  # the old top-share rule alone misses it
    assert block["collapse"]["collapsed"] and block["repetition"]["repeated_predictions_hiding"] > 1
    assert (
        block["repetition"]["label_sets"]["predictions"]["distinct"]
        < block["repetition"]["label_sets"]["references"]["distinct"]
    )


def _write(path, predicted, references):
    path.write_text(
        "".join(
            json.dumps({"prompt": "", "predict": p, "label": r}) + "\n"
            for p, r in zip(predicted, references, strict=True)
        )
    )
    return str(path)


def test_evaluate_warns_and_fails_on_collapse_only(tmp_path, studies, runs, capsys):
    """The real command: the warning line, metrics.json's warnings and collapse block, the exit status."""
    refs = _refs(studies)[:120]
    oracle = _write(tmp_path / "oracle.jsonl", runs["oracle"][:120], refs)
    argv = ["--bootstrap", "0", "--no-html", "--fail-on-collapse"]
    assert main(["evaluate", "--predictions", oracle, "--out", str(tmp_path / "o"), *argv]) == 0
    assert "mode collapse" not in capsys.readouterr().out
    assert (
        json.loads((tmp_path / "o" / "metrics.json").read_text())["diversity"]["collapse"]["collapsed"]
        is False
    )

    constant = _write(tmp_path / "constant.jsonl", runs["constant"][:120], refs)
    assert main(["evaluate", "--predictions", constant, "--out", str(tmp_path / "c"), *argv]) == 3
    printed = capsys.readouterr().out
    hidden = sum(1 for s in studies[:120] if s.findings)
    line = f"WARNING: mode collapse: the same report for 120 of 120 studies, {hidden} of which have findings it does not state"
    assert line in printed
    m = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert (
        m["warnings"][0].startswith(line.removeprefix("WARNING: "))
        and m["diversity"]["collapse"]["collapsed"]
    )
    assert (
        f"label sets predicted 1 vs {m['diversity']['repetition']['label_sets']['references']['distinct']}"
        in printed
    )


def test_other_labels_can_judge_collapse(tmp_path, studies, runs):
    """The seam for CheXbert: labels passed in replace ours for the verdict, and are named."""
    from xrayqwen2vl.eval.evaluate import evaluate

    refs = _refs(studies)[:40]
    path = _write(tmp_path / "constant.jsonl", runs["constant"][:40], refs)
    none = {o: None for o in OBSERVATIONS}
    blind = StudyLabels("a labeler that finds nothing", [none] * 40, [none] * 40)
    m = evaluate(path, tmp_path / "e", resamples=0, html=False, collapse_labels=blind)
    assert m["diversity"]["collapse"]["labeler"] == "a labeler that finds nothing"
    assert (
        m["diversity"]["repetition"]["studies_with_findings"] == 0
        and not m["diversity"]["collapse"]["collapsed"]
    )
    with pytest.raises(ValueError, match="39 prediction and 40 reference rows for the 40 predictions"):
        evaluate(
            path,
            tmp_path / "f",
            resamples=0,
            html=False,
            collapse_labels=StudyLabels("x", [none] * 39, [none] * 40),
        )


def test_calibration_script_prints_the_four_runs(capsys):
    assert collapse_calibration.main(["--studies", "200", "--seed", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    verdicts = {
        line.split()[0]: line.split()[-1]
        for line in out
        if line.split() and line.split()[0] in ("oracle", "constant", "shuffled", "collapse-80")
    }
    assert verdicts == {"oracle": "no", "constant": "COLLAPSE", "shuffled": "no", "collapse-80": "COLLAPSE"}


def test_the_learning_check_model_is_no_collapse(tmp_path, capsys):
    """The tiny model of the learning check reads the findings it can see and writes one report per
    set of them: 58 distinct reports for 205 studies, one normal report for 77 (the rule before
    called that collapse). Its repeated reports do miss findings it cannot see (pneumothorax,
    nodules), but not blindly: no collapse warning."""
    path = REPO / "tests" / "fixtures" / "learning_check" / "greedy_predictions.jsonl"
    assert (
        main(
            [
                "evaluate",
                "--predictions",
                str(path),
                "--out",
                str(tmp_path / "e"),
                "--bootstrap",
                "0",
                "--no-html",
                "--fail-on-collapse",
            ]
        )
        == 0
    )
    assert "mode collapse" not in capsys.readouterr().out
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    d, rep = m["diversity"]["predictions"], m["diversity"]["repetition"]
    assert (d["distinct"], d["most_frequent_count"], m["n"]) == (58, 77, 205)
    assert rep["hidden"] > 0 and rep["hidden_share"] >= 0.2  # it misses findings, in repeated reports...
    assert rep["blindness"] < 0.5 and not m["diversity"]["collapse"]["collapsed"]  # ...but not blindly
    assert m["headline"]["value"] > 0.8  # and it names the five headline findings it sees


def test_the_smaller_learning_check_model_is_flagged():
    """The 400-report recipe's model reads cardiomegaly (F1 0.92) and little else: its normal report
    goes to 32 of 80 studies, and its repeated reports leave out findings of most studies that have
    them, at three quarters of the rate of chance: collapse, said as measured."""
    rows = [
        json.loads(x) for x in (REPO / "tests/fixtures/learning_check/greedy_predictions_400.jsonl").open()
    ]
    block = judge_texts([r["predict"] for r in rows], [r["label"] for r in rows])
    rep = block["repetition"]
    assert (rep["hidden"], rep["studies_with_findings"]) == (32, 55) and rep["blindness"] == pytest.approx(
        0.755, abs=0.001
    )
    assert block["collapse"]["collapsed"]
    assert block["collapse"]["reasons"][0].startswith(
        "the same report for 32 of 80 studies, 10 of which have findings it does not state"
    )


def test_calibration_reads_r2gen_and_the_indiana_mesh(tmp_path, studies, capsys):
    """The real-data path on files of the published layout: R2Gen's annotation.json (its test
    split) and the MeSH terms from indiana_reports.csv or the Open-i XMLs; a study with no MeSH
    row is left out with its reason."""
    chosen = studies[:60]
    entries = [
        {"id": f"CXR{k + 1}_IM-{k + 1:04d}", "report": s.report, "image_path": [], "split": "test"}
        for k, s in enumerate(chosen)
    ]
    train = [{"id": "CXR999_IM-0999", "report": "The lungs are clear.", "image_path": [], "split": "train"}]
    (tmp_path / "annotation.json").write_text(json.dumps({"train": train, "val": [], "test": entries}))
    rows = ["uid,MeSH,findings,impression"] + [
        f"{k + 1},{'normal' if s.normal else 'Cardiomegaly'},," for k, s in enumerate(chosen[:-1])
    ]
    (tmp_path / "indiana_reports.csv").write_text("\n".join(rows) + "\n")
    xml = tmp_path / "ecgen-radiology"
    xml.mkdir()
    for k, s in enumerate(chosen):
        terms = "<major>normal</major>" if s.normal else "<major>Cardiomegaly/mild</major>"
        (xml / f"{k + 1}.xml").write_text(
            f"<eCitation><uId id='CXR{k + 1}'/><MeSH>{terms}</MeSH></eCitation>"
        )
    for source, n in ((tmp_path / "indiana_reports.csv", 59), (xml, 60)):
        refs, normal = collapse_calibration.real_split(tmp_path / "annotation.json", source, "test")
        assert refs == [s.report for s in chosen[:n]] and normal == [s.normal for s in chosen[:n]]
    assert "left out CXR60_IM-0060: study CXR60 not in" in capsys.readouterr().err
    argv = ["--annotation", str(tmp_path / "annotation.json"), "--indiana-reports", str(xml)]
    assert collapse_calibration.main([*argv, "--json", str(tmp_path / "c.json")]) == 0
    runs = json.loads((tmp_path / "c.json").read_text())["runs"]
    assert not runs["oracle"]["collapse"]["collapsed"] and runs["constant"]["collapse"]["collapsed"]
