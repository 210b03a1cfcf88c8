"""The learning check (benchmarks/learning_check.py): a tiny Qwen2-VL trained from scratch (the
benchmark's recipe, about a minute of training) must read findings off the synthetic images, with
no mode-collapse warning on the true images; training on images shuffled among the studies (a
smaller run) must fail the check. Figures and the levers behind the recipe: doc/evaluation.md."""

from __future__ import annotations

import dataclasses
import sys

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import learning_check  # noqa: E402

# The benchmark's recipe on 400 reports (80 test studies) instead of 1,000, for the deliberate
# break. A model trained on them reads cardiomegaly and little else: condition (e), no mode
# collapse, needs the benchmark's 1,000 reports (doc/evaluation.md, the learning check).
SMALL = dataclasses.replace(learning_check.Recipe(), reports=400, sample_seed=2)
BENCHMARK = learning_check.Recipe()

pytestmark = pytest.mark.slow


def test_tiny_model_reads_findings_from_the_images(tmp_path):
    result = learning_check.run_check(BENCHMARK, tmp_path / "lc", resamples=500)
    print("\n".join(learning_check.summary(result)))
    assert result["passed"], result["conditions"]
    # the true-image evaluation carries no mode-collapse warning (evaluate's rule)
    assert result["conditions"]["e_no_collapse"] and not result["collapse"]["collapsed"]
    assert not any(w.startswith("mode collapse") for w in result["reliance_warnings"])


def test_shuffled_training_images_fail_the_check(tmp_path):
    """The deliberate break: the pixels no longer match the reports, so the model learns the prior.
    Its reports hardly depend on the image (no drop with swapped images); beating the constant
    normal report alone does not prove image use (it writes "right pleural effusion" everywhere)."""
    broken = dataclasses.replace(SMALL, break_training=True, sampled=False, probe_studies=0)
    result = learning_check.run_check(broken, tmp_path / "lc", resamples=500)
    print("\n".join(learning_check.summary(result)))
    assert not result["passed"]
    assert not result["conditions"]["b_loses_it_with_swapped_images"]
    assert result["swapped"]["verdict"] != "reads the image"
