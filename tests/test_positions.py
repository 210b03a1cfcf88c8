"""The LLaMA-Factory inference shim (src/xrayqwen2vl/lf_shim.py): under transformers >= 5.3 a Qwen VL
model must get, at inference, the image positions LLaMA-Factory's training collator computes.

Fast tests: the pins are ones the shim covers; it patches LLaMA-Factory in our process and, through
src/xrayqwen2vl/lf_boot, in a fresh one; the inference collator then carries mm_token_type_ids; the
preflight refuses a stack it does not cover. Slow tests: the real inference paths (batch predict in
one process through scripts/predict.sh and in two torchrun ranks, ChatModel through
``xrayqwen2vl report``) record the positions of their first generated token (benchmarks/positions.py),
which must equal the training collator's, for tiny Qwen2-VL, Qwen2.5-VL and Qwen3-VL models; and
without the shim they must not (the guard sees the bug)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib

import pytest
from conftest import REPO

from xrayqwen2vl import lf_shim

sys.path.insert(0, str(REPO / "benchmarks"))
import positions  # noqa: E402


def pinned(package: str) -> str:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d.split("==")[1] for d in deps if re.match(rf"{package}==", d)]
    return pin


def test_the_pinned_stack_is_one_the_shim_covers():
    """Moving a pin out of COVERED fails here: check the positions on the new version first."""
    for package in ("transformers", "llamafactory"):
        assert lf_shim.covers(package, pinned(package)), (package, pinned(package), lf_shim.COVERED)
        assert lf_shim.installed(package) == pinned(package)
    assert lf_shim.needs_field(pinned("transformers"))  # 5.3+: the CVE fix, and the shim is needed
    assert not lf_shim.needs_field("5.2.0")
    assert lf_shim.problem() is None


def test_versions_outside_the_covered_range():
    assert lf_shim.covers("transformers", "5.3.0") and lf_shim.covers("transformers", "5.5.4")
    assert not lf_shim.covers("transformers", "5.6.0")
    assert not lf_shim.covers("transformers", "5.2.0")
    assert not lf_shim.covers("transformers", "5.6.0rc1")
    assert not lf_shim.covers("llamafactory", "0.9.6")


def test_check_refuses_a_transformers_the_shim_does_not_cover(monkeypatch):
    from xrayqwen2vl.recipes.preflight import preflight

    versions = {"transformers": "5.6.0", "llamafactory": "0.9.5"}
    monkeypatch.setattr(lf_shim, "installed", lambda package: versions.get(package))
    report = preflight(REPO / "configs/predict/qwen2vl_7b_lora_sft.yaml", job="predict")
    (line,) = [p for p in report.problems if "inference shim" in p]
    assert line == (
        "transformers 5.6.0 is not a version the xrayqwen2vl inference shim covers (5.3.0 to 5.5.4), so Qwen "
        "VL image positions may be numbered like text at inference under transformers 5.6.0: pip install "
        "transformers==5.5.4 llamafactory==0.9.5 (the pinned stack; make venv)"
    )
    # training computes its positions itself: not refused for that
    train = preflight(REPO / "configs/train_lora/qwen2vl_7b_lora_sft.yaml", job="train")
    assert not [p for p in train.problems if "inference shim" in p]
    versions["transformers"] = "5.2.0"  # needs no field: nothing to say
    report = preflight(REPO / "configs/predict/qwen2vl_7b_lora_sft.yaml", job="predict")
    assert not [p for p in report.problems if "inference shim" in p]


def _collator_batch(tiny_model_dir, prepared_dir, with_model: bool) -> dict:
    from llamafactory.data.collator import SFTDataCollatorWith4DAttentionMask
    from llamafactory.data.template import TEMPLATES
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    tokenizer = processor.tokenizer
    sample = json.loads((prepared_dir / "demo_test.json").read_text())[0]
    images = [str(prepared_dir / p) for p in sample["images"]]
    template = TEMPLATES["qwen2_vl"]
    messages = template.mm_plugin.process_messages(
        [{"role": "user", "content": sample["messages"][0]["content"]}, {"role": "assistant", "content": ""}],
        images,
        [],
        [],
        processor,
    )
    ids, _ = template.encode_oneturn(tokenizer, messages)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir) if with_model else None
    collator = SFTDataCollatorWith4DAttentionMask(
        template=template, model=model, tokenizer=tokenizer, processor=processor, label_pad_token_id=-100
    )
    feature = {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [-100] * len(ids)}
    return collator([{**feature, "images": images, "videos": [], "audios": []}]), tokenizer


def test_the_inference_collator_carries_mm_token_type_ids(tiny_model_dir, prepared_dir):
    """In this process (install(), as serve/report.py does): the collator LLaMA-Factory predicts with
    (no model) adds the field; the training collator (with the model) computes positions as before."""
    assert lf_shim.install()
    import llamafactory.chat.hf_engine  # noqa: F401
    import llamafactory.data.collator  # noqa: F401

    assert lf_shim.patched(lf_shim.COLLATOR_MODULE) and lf_shim.patched(lf_shim.ENGINE_MODULE)
    batch, tokenizer = _collator_batch(tiny_model_dir, prepared_dir, with_model=False)
    image_id = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    types = batch["mm_token_type_ids"]
    assert types.shape == batch["input_ids"].shape
    assert types.tolist() == (batch["input_ids"] == image_id).long().tolist()
    assert int(types.sum()) == int(batch["image_grid_thw"].prod(-1).sum()) // 4  # merge 2x2
    training, _ = _collator_batch(tiny_model_dir, prepared_dir, with_model=True)
    assert "mm_token_type_ids" not in training and "position_ids" in training


def _fresh_process(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def test_the_boot_folder_patches_a_fresh_process_and_runs_the_next_sitecustomize(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "sitecustomize.py").write_text("import os\nos.environ['OTHER_SITECUSTOMIZE'] = 'ran'\n")
    env = lf_shim.launch_env({**os.environ, "PYTHONPATH": str(other)})
    assert env["PYTHONPATH"].split(os.pathsep)[:2] == [lf_shim.BOOT_DIR, str(other)]
    code = (
        "import os, sys\n"
        "import llamafactory.data.collator, llamafactory.chat.hf_engine\n"
        "from xrayqwen2vl import lf_shim\n"
        "print(lf_shim.patched(lf_shim.COLLATOR_MODULE), lf_shim.patched(lf_shim.ENGINE_MODULE), "
        "os.environ.get('OTHER_SITECUSTOMIZE'))\n"
    )
    proc = _fresh_process(code, env)
    assert proc.stdout.split() == ["True", "True", "ran"], proc.stderr[-2000:]
    proc = _fresh_process(code, {**env, lf_shim.DISABLE_ENV: "0"})
    assert proc.stdout.split() == ["False", "False", "ran"], proc.stderr[-2000:]


def test_every_wrapper_that_starts_llamafactory_sources_lf_env():
    for script in ("preflight.sh", "chat.sh", "api.sh", "demo.sh"):
        text = (REPO / "scripts" / script).read_text()
        lines = text.splitlines()
        run = r"^\s*(exec\s+|step\s.*\s)?llamafactory-cli\s"  # a line that starts it, not a message
        starts = [i for i, line in enumerate(lines) if re.search(run, line)]
        sourced = [i for i, line in enumerate(lines) if re.search(r"^\s*\. .*lf_env\.sh", line)]
        assert starts and sourced and min(sourced) < min(starts), script


# --- the real inference paths (slow) ---------------------------------------------------------------

FAMILIES = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"]


@pytest.fixture(scope="module")
def family_models(tiny_family_model):
    return {family: tiny_family_model(family) for family in FAMILIES}


def _all_same(result: dict) -> None:
    assert result["records"] >= 1 and result["rows"] >= 1, result
    assert result["same"] == result["rows"], result["first_difference"]


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_predict_through_the_wrapper_gets_the_training_positions(
    family, family_models, prepared_dir, tmp_path
):
    model = family_models[family]
    records = positions.run_predict(model, prepared_dir, "demo_test", tmp_path, wrapper=True, samples=2)
    _all_same(positions.compare(records, model))


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_predict_on_two_torchrun_ranks_gets_the_training_positions(
    family, family_models, prepared_dir, tmp_path
):
    model = family_models[family]
    records = positions.run_predict(model, prepared_dir, "demo_test", tmp_path, ranks=2, samples=4)
    result = positions.compare(records, model)
    assert result["ranks"] == ["0", "1"], result
    _all_same(result)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_chatmodel_behind_report_gets_the_training_positions(family, family_models, prepared_dir, tmp_path):
    model = family_models[family]
    sample = json.loads((prepared_dir / "demo_test.json").read_text())[0]
    records = positions.run_chat(model, [prepared_dir / p for p in sample["images"]], tmp_path)
    _all_same(positions.compare(records, model))


@pytest.mark.slow
def test_without_the_shim_the_guard_sees_text_positions(tiny_model_dir, prepared_dir, tmp_path):
    """XRAYQWEN2VL_LF_SHIM=0: what a bare llamafactory-cli does under transformers >= 5.3. Every
    image token is numbered like text, so not one sample matches the training positions."""
    records = positions.run_predict(
        tiny_model_dir, prepared_dir, "demo_test", tmp_path, shim=False, samples=2
    )
    result = positions.compare(records, tiny_model_dir)
    assert result["rows"] >= 1 and result["same"] == 0, result
    first = result["first_difference"]
    assert first["got"][0] == first["got"][1] == first["got"][2]  # text-style: the same in all three rows


def test_check_warns_when_the_shim_is_switched_off():
    from conftest import tool

    def check(**env):
        args = [tool("xrayqwen2vl"), "check", "configs/predict/qwen2vl_7b_lora_sft.yaml"]
        proc = subprocess.run(
            args, cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=120
        )
        return proc.stderr.splitlines()

    warning = (
        "xrayqwen2vl check: warning: XRAYQWEN2VL_LF_SHIM=0: the inference shim is off, so Qwen VL image tokens "
        f"are numbered like text at inference (transformers {lf_shim.installed('transformers')}); unset "
        "XRAYQWEN2VL_LF_SHIM"
    )
    assert warning in check(**{lf_shim.DISABLE_ENV: "0"})
    assert not [line for line in check() if "shim" in line]
