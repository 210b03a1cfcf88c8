"""`xrayqwen2vl reliance`: the drop with swapped/blank images, unchanged predictions, the verdict."""

from __future__ import annotations

import json
import random

import pytest

from xrayqwen2vl.cli import main

FINDINGS = [
    "Impression: Cardiomegaly.",
    "Impression: Left pleural effusion.",
    "Impression: Right basilar atelectasis.",
    "Impression: Cardiomegaly. Right pleural effusion.",
]
NORMAL = "Impression: No acute cardiopulmonary abnormality."


def _references(n: int = 40) -> list[str]:
    rng = random.Random(0)
    return [rng.choice(FINDINGS) if k % 2 else NORMAL for k in range(n)]


def _write(path, references, predicted):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(
            json.dumps({"prompt": "<image><image>Write the report.", "predict": p, "label": r}) + "\n"
            for r, p in zip(references, predicted, strict=True)
        )
    )
    return str(path)


def _reliance(tmp_path, true, swapped, blank=None, *extra):
    argv = ["reliance", "--true", true, "--swapped", swapped, "--out", str(tmp_path / "rel")]
    argv += ["--bootstrap", "300", "--no-html", *(["--blank", blank] if blank else []), *extra]
    return main(argv)


def test_a_model_that_reads_the_image(tmp_path, capsys):
    refs = _references()
    donor = refs[1:] + refs[:1]  # the swapped images are the next study's: it writes their findings
    true = _write(tmp_path / "true.jsonl", refs, refs)
    swapped = _write(tmp_path / "swapped.jsonl", refs, donor)
    blank = _write(tmp_path / "blank.jsonl", refs, [NORMAL] * len(refs))
    assert _reliance(tmp_path, true, swapped, blank, "--fail-on-ignored-image") == 0
    printed = capsys.readouterr().out
    assert "WARNING" not in printed and "image reliance verdict: reads the image" in printed
    result = json.loads((tmp_path / "rel" / "reliance.json").read_text())
    assert result["warnings"] == [] and result["verdict"] == "reads the image"
    for kind in ("swapped", "blank"):
        cf = result["counterfactuals"][kind]
        m = cf["metrics"]["CE-micro-5-F1"]
        assert m["true"] == pytest.approx(1.0) and m["difference"] > 0.5 and m["low"] > 0
        assert cf["metrics"]["ROUGE-L"]["difference"] > 0 and cf["verdict"] == "reads the image"
    assert result["counterfactuals"]["swapped"]["unchanged"]["count"] == sum(
        a == b for a, b in zip(refs, donor, strict=True)
    )
    assert (tmp_path / "rel" / "swapped" / "metrics.json").is_file()


def test_a_model_that_ignores_the_image_is_a_warning(tmp_path, capsys):
    refs = _references()
    prior = [FINDINGS[k % 3] if k % 4 == 1 else NORMAL for k in range(len(refs))]  # not even constant
    true = _write(tmp_path / "true.jsonl", refs, prior)
    swapped = _write(tmp_path / "swapped.jsonl", refs, prior)
    assert _reliance(tmp_path, true, swapped, None, "--fail-on-ignored-image") == 3
    printed = capsys.readouterr().out
    assert "40/40 predictions unchanged (100.0%)" in printed
    assert "WARNING: the model ignores the image: 40/40 predictions (100%) did not change" in printed
    result = json.loads((tmp_path / "rel" / "reliance.json").read_text())
    # the same normal report for 30 of the 40 studies, 20 of them with findings: collapse as well
    assert result["verdict"] == "ignores the image" and len(result["warnings"]) == 2
    assert result["warnings"][1].startswith("mode collapse on the true images: the same report for 30 of 40")
    m = result["counterfactuals"]["swapped"]["metrics"]["CE-micro-5-F1"]
    assert m["difference"] == 0 and m["low"] == m["high"] == 0


def test_predictions_that_change_without_following_the_image(tmp_path, capsys):
    """The text changes (a different normal phrasing) but the findings do not drop: a warning too."""
    refs = _references()
    true = _write(tmp_path / "true.jsonl", refs, refs)
    swapped = _write(tmp_path / "swapped.jsonl", refs, [r.replace("abnormality", "disease") for r in refs])
    assert _reliance(tmp_path, true, swapped) == 0
    printed = capsys.readouterr().out
    assert "WARNING: no evidence the model reads findings from the image" in printed
    assert (
        json.loads((tmp_path / "rel" / "reliance.json").read_text())["verdict"]
        == "no evidence of reading findings"
    )


def test_the_files_must_be_the_same_studies(tmp_path, capsys):
    refs = _references()
    true = _write(tmp_path / "true.jsonl", refs, refs)
    shorter = _write(tmp_path / "short.jsonl", refs[:-1], refs[:-1])
    assert _reliance(tmp_path, true, shorter) == 2
    assert "short.jsonl has 39 predictions" in capsys.readouterr().err
    other = _write(tmp_path / "other.jsonl", refs[1:] + refs[:1], refs)
    assert _reliance(tmp_path, true, other) == 2
    assert "other.jsonl:1: its label differs from" in capsys.readouterr().err
    assert main(["reliance", "--true", true, "--out", str(tmp_path / "x")]) == 2
    assert "give --swapped and/or --blank" in capsys.readouterr().err


REWORDED = "Impression: No acute cardiopulmonary disease."


def _swap_some(predicted, refs, lose=(), gain=()):
    """The true-image predictions with the findings of the studies in ``lose`` dropped (a normal
    report), those in ``gain`` written right, and every normal report reworded (so that far fewer
    than 90% of the predictions stay the same)."""
    out = [REWORDED if p == NORMAL else p for p in predicted]
    for k in lose:
        out[k] = REWORDED
    for k in gain:
        out[k] = refs[k]
    return out


def _headline_drop(tmp_path, kind="swapped"):
    result = json.loads((tmp_path / "rel" / "reliance.json").read_text())
    return result, result["counterfactuals"][kind]["metrics"]["CE-micro-5-F1"]


def test_a_positive_drop_whose_interval_includes_0_is_no_evidence(tmp_path, capsys):
    """Significance decides, not the sign: the headline figure drops a little with swapped images,
    but its interval includes 0, so the model has not shown it reads findings."""
    refs = _references()
    single = [k for k, r in enumerate(refs) if r in FINDINGS[:3]]  # studies with one finding each
    predicted = refs[:]
    for k in single[:2]:  # the model misses two findings on the true images...
        predicted[k] = NORMAL
    # ...and with swapped images gets those two right and misses three others: a net drop of one
    swapped = _swap_some(predicted, refs, lose=single[2:5], gain=single[:2])
    true = _write(tmp_path / "true.jsonl", refs, predicted)
    assert _reliance(tmp_path, true, _write(tmp_path / "swapped.jsonl", refs, swapped)) == 0
    result, m = _headline_drop(tmp_path)
    assert m["difference"] > 0 and m["low"] < 0 < m["high"]
    assert result["counterfactuals"]["swapped"]["verdict"] == "no evidence of reading findings"
    assert result["verdict"] == "no evidence of reading findings"
    assert "WARNING: no evidence the model reads findings from the image" in capsys.readouterr().out


def test_a_drop_whose_interval_excludes_0_reads_the_image(tmp_path):
    """A modest drop (six findings lost of twenty) whose interval excludes 0: the image is read."""
    refs = _references()
    findings = [k for k, r in enumerate(refs) if r != NORMAL]
    swapped = _swap_some(refs, refs, lose=findings[:6])
    assert (
        _reliance(
            tmp_path, _write(tmp_path / "t.jsonl", refs, refs), _write(tmp_path / "s.jsonl", refs, swapped)
        )
        == 0
    )
    result, m = _headline_drop(tmp_path)
    assert 0 < m["low"] and m["difference"] < 0.5
    assert result["counterfactuals"]["swapped"]["unchanged"]["share"] < 0.9
    assert result["verdict"] == "reads the image" and result["warnings"] == []


def test_reading_swapped_images_is_not_enough_when_blank_ones_change_nothing(tmp_path, capsys):
    """Overall, the model reads the image only when every counterfactual says so: here the swapped
    images are read, but on blank images the findings stay (only the wording changes)."""
    refs = _references()
    donor = refs[1:] + refs[:1]
    true = _write(tmp_path / "true.jsonl", refs, refs)
    swapped = _write(tmp_path / "swapped.jsonl", refs, donor)
    blank = _write(tmp_path / "blank.jsonl", refs, _swap_some(refs, refs))
    assert _reliance(tmp_path, true, swapped, blank) == 0
    result = json.loads((tmp_path / "rel" / "reliance.json").read_text())
    assert result["counterfactuals"]["swapped"]["verdict"] == "reads the image"
    assert result["counterfactuals"]["blank"]["verdict"] == "no evidence of reading findings"
    assert result["verdict"] == "no evidence of reading findings"
    assert "image reliance verdict: no evidence of reading findings" in capsys.readouterr().out
    # evaluate's collapse rule is applied to every run, and the true images show none
    assert set(result["collapse"]) == {"true", "swapped", "blank"}
    assert not result["collapse"]["true"]["collapsed"]


def test_the_overall_verdict_combines_the_counterfactuals():
    from xrayqwen2vl.eval.reliance import IGNORES, NO_EVIDENCE, READS, overall_verdict

    assert overall_verdict([READS]) == READS and overall_verdict([READS, READS]) == READS
    assert overall_verdict([READS, NO_EVIDENCE]) == NO_EVIDENCE
    assert overall_verdict([NO_EVIDENCE, READS]) == NO_EVIDENCE
    assert overall_verdict([READS, IGNORES]) == IGNORES and overall_verdict([NO_EVIDENCE, IGNORES]) == IGNORES
    assert overall_verdict([NO_EVIDENCE]) == NO_EVIDENCE
    with pytest.raises(ValueError):
        overall_verdict([])


def test_collapse_on_the_true_images_is_a_reliance_warning(tmp_path, capsys):
    refs = _references()
    constant = _write(tmp_path / "true.jsonl", refs, [NORMAL] * len(refs))
    swapped = _write(tmp_path / "swapped.jsonl", refs, [REWORDED] * len(refs))
    assert _reliance(tmp_path, constant, swapped) == 0
    printed = capsys.readouterr().out
    assert (
        "WARNING: mode collapse on the true images: the same report for 40 of 40 studies, 20 of which"
        in printed
    )
    result = json.loads((tmp_path / "rel" / "reliance.json").read_text())
    assert result["collapse"]["true"]["collapsed"] and result["collapse"]["swapped"]["collapsed"]
