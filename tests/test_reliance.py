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
    assert result["verdict"] == "ignores the image" and len(result["warnings"]) == 1
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
