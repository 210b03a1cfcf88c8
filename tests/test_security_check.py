"""Configs and model folders that would make a run expand, fetch or execute something (issue 20,
causes 8 and 12; issue 19, item 4): a YAML alias bomb, ``trust_remote_code: true``, a config.json
(or a nested config, or another *config*.json) carrying ``_attn_implementation_internal`` or an
``auto_map``, and pickled weights. ``check``, ``report``, ``web``, ``scripts/api.sh`` and
``scripts/chat.sh`` refuse each in one line naming the field, before any library reads it."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest
from conftest import REPO, run_cli, tool
from preflight_support import clean_env

from xrayqwen2vl.cli import main

# Nine anchors of nine aliases each: 9^9 (387 million) strings once expanded.
BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{b}: &{b} [{','.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)
ALIAS_LINE = "YAML anchors and aliases (&name, *name) are not accepted in a config: write the values out"
REMOTE_CODE_ENV = "XRAYQWEN2VL_ALLOW_REMOTE_CODE"
CVE_FIELD = "which made transformers before 5.3 load code the file names (CVE-2026-4372)"


def _infer_yaml(folder, model, **extra) -> str:
    lines = [f"model_name_or_path: {model}", "template: qwen2_vl", "infer_backend: huggingface"]
    lines += [f"{k}: {json.dumps(v)}" for k, v in extra.items()]
    path = folder / "infer.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _check(cwd, *args, **env):
    return subprocess.run(
        [tool("xrayqwen2vl"), "check", *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _errors(stderr: str, command: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(f"xrayqwen2vl {command}: error: ")]


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    """A copy of the tiny model to poison."""
    return shutil.copytree(tiny_model_dir, tmp_path / "model")


def _set(folder, file, dotted, value):
    path = folder / file
    doc = json.loads(path.read_text()) if path.exists() else {}
    node = doc
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    path.write_text(json.dumps(doc))


# --- cause 8: the alias bomb ---------------------------------------------------------------------


def test_alias_bomb_is_refused_by_check_within_a_second(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BILLION_LAUGHS)
    assert len(BILLION_LAUGHS) < 400
    start = time.monotonic()
    proc = _check(tmp_path, "bomb.yaml")
    took = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"xrayqwen2vl check: error: bomb.yaml: line 1: {ALIAS_LINE}"]
    assert took < 10, took  # the process start included; was 108 s and 2.6 GB
    proc = _check(REPO, "configs/tiny/qwen2vl_tiny_lora_infer.yaml", "x=[&a [1, 2], *a]")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"xrayqwen2vl check: error: override x: line 1: {ALIAS_LINE}"]


def test_alias_bomb_and_deep_nesting_are_refused_by_report_and_counterfactual(tmp_path, capsys):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BILLION_LAUGHS)
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    for path, line in [(bomb, f"line 1: {ALIAS_LINE}"), (deep, "line 1: nested deeper than 32 levels")]:
        start = time.monotonic()
        assert main(["report", "--config", str(path), "x.png"]) == 2
        assert capsys.readouterr().err.strip().splitlines() == [f"xrayqwen2vl report: error: {path}: {line}"]
        assert time.monotonic() - start < 2
    from argparse import Namespace

    from xrayqwen2vl.commands.counterfactual_cmd import _predict_lines

    options = Namespace(predict_config=str(bomb), split="s", dataset_dir=str(tmp_path))
    with pytest.raises(ValueError) as e:
        _predict_lines(options, {"counterfactuals": {}})
    assert str(e.value) == f"{bomb}: line 1: {ALIAS_LINE}"


def test_a_bomb_among_the_other_configs_of_the_tree_does_not_hang_check(tmp_path, tiny_model_dir):
    """check reads every config of the configs/ tree (who writes which folder): a bomb there is
    skipped as unreadable, in the same time as any other file."""
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "bomb.yaml").write_text(BILLION_LAUGHS)
    _infer_yaml(configs, tiny_model_dir)
    start = time.monotonic()
    proc = _check(tmp_path, "configs/infer.yaml")
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - start < 10


# --- issue 19 item 4, cause 12: the model folder -------------------------------------------------


@pytest.mark.parametrize(
    "file,field",
    [
        ("config.json", "_attn_implementation_internal"),
        ("config.json", "text_config._attn_implementation_internal"),
        ("config.json", "vision_config._attn_implementation_internal"),
        ("config.json", "vision_config.extra.deeper._experts_implementation_internal"),
        ("tokenizer_config.json", "_attn_implementation_internal"),
        ("generation_config.json", "_attn_implementation_internal"),
    ],
)
def test_attn_implementation_internal_anywhere_is_refused_by_check_and_report(
    model_copy, tmp_path, capsys, file, field
):
    _set(model_copy, file, field, "kernels-community/evil")
    expected = f"{file} sets {field}, {CVE_FIELD}; transformers never writes it: refused"
    proc = _check(tmp_path, _infer_yaml(tmp_path, model_copy))
    assert proc.returncode == 1
    assert _errors(proc.stderr, "check") == [
        f"xrayqwen2vl check: error: model_name_or_path: {model_copy}: {expected}"
    ]
    assert main(["report", "--model", str(model_copy), "x.png"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"xrayqwen2vl report: error: {model_copy}: {expected}"
    ]


def test_auto_map_and_trust_remote_code_need_the_explicit_flag(model_copy, tmp_path, capsys):
    _set(model_copy, "config.json", "auto_map", {"AutoModel": "modeling_evil.Evil"})
    _set(model_copy, "preprocessor_config.json", "auto_map", {"AutoImageProcessor": "x.Y"})
    config = _infer_yaml(tmp_path, model_copy, trust_remote_code=True)
    proc = _check(tmp_path, config)
    assert proc.returncode == 1
    lines = [line.removeprefix("xrayqwen2vl check: error: ") for line in _errors(proc.stderr, "check")]
    assert len(lines) == 3, lines
    assert lines[0].startswith("trust_remote_code: true lets the model folder run its own Python: ")
    assert lines[1].startswith(f"model_name_or_path: {model_copy}: config.json sets auto_map, code shipped")
    assert lines[2].startswith(f"model_name_or_path: {model_copy}: preprocessor_config.json sets auto_map, ")
    assert "pass --allow-remote-code (scripts: XRAYQWEN2VL_ALLOW_REMOTE_CODE=1)" in proc.stderr
    assert _check(tmp_path, "--allow-remote-code", config).returncode == 0
    assert _check(tmp_path, config, **{REMOTE_CODE_ENV: "1"}).returncode == 0
    # report: the config's trust_remote_code first, then the folder
    assert main(["report", "--config", config, "x.png"]) == 2
    assert "trust_remote_code: true lets the model folder run its own Python" in capsys.readouterr().err
    assert main(["report", "--model", str(model_copy), "x.png"]) == 2
    assert f"{model_copy}: config.json sets auto_map, code shipped" in capsys.readouterr().err
    # with the flag it goes on to the image (x.png does not exist)
    assert main(["report", "--allow-remote-code", "--config", config, "x.png"]) == 2
    assert capsys.readouterr().err.strip() == "xrayqwen2vl report: error: x.png: image file not found"


def test_attn_field_is_refused_even_with_remote_code_allowed(model_copy):
    from xrayqwen2vl.model_scan import scan_model_folder  # new module: the rest runs on old code

    _set(model_copy, "config.json", "_attn_implementation_internal", "eager")
    _set(model_copy, "config.json", "attn_implementation", {"": "org/kernel"})
    problems = scan_model_folder(model_copy, allow_remote_code=True)
    assert len(problems) == 2 and "attn_implementation to a hub repository" in problems[0] + problems[1]


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "weights.pth", "adapter_model.bin"])
def test_pickled_weights_are_refused(model_copy, tmp_path, capsys, name):
    (model_copy / name).write_bytes(b"\x80\x04\x95\x00")  # a pickle header is enough: never opened
    line = (
        f"{name} is a pickled weight file (unpickling runs code): only *.safetensors weights are accepted; "
        "remove it, or convert the model to safetensors where you trust it"
    )
    proc = _check(tmp_path, _infer_yaml(tmp_path, model_copy))
    assert proc.returncode == 1
    assert _errors(proc.stderr, "check") == [
        f"xrayqwen2vl check: error: model_name_or_path: {model_copy}: {line}"
    ]
    assert main(["report", "--model", str(model_copy), "x.png"]) == 2
    assert capsys.readouterr().err.strip() == f"xrayqwen2vl report: error: {model_copy}: {line}"


def test_an_index_naming_pickled_shards_is_refused(model_copy):
    from xrayqwen2vl.model_scan import scan_model_folder  # new module: the rest runs on old code

    (model_copy / "pytorch_model.bin.index.json").write_text(
        json.dumps({"weight_map": {"a": "pytorch_model-00001-of-00002.bin"}})
    )
    problems = scan_model_folder(model_copy)
    assert any(
        p.startswith("pytorch_model.bin.index.json names 1 weight file(s) that are not") for p in problems
    )


def test_hostile_json_is_one_line_not_a_traceback(model_copy, tmp_path):
    from xrayqwen2vl.model_scan import scan_model_folder  # new module: the rest runs on old code

    (model_copy / "tokenizer_config.json").write_text("[" * 100_000 + "]" * 100_000)
    assert scan_model_folder(model_copy) == ["tokenizer_config.json is nested too deeply to read"]


def test_the_adapter_folder_is_scanned_too_and_trainer_pickles_pass(model_copy, tmp_path, capsys):
    from xrayqwen2vl.model_scan import scan_model_folder  # new module: the rest runs on old code

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    for name in ("training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state_0.pth"):
        (adapter / name).write_bytes(b"\x80\x04")
    assert scan_model_folder(adapter) == []
    _set(adapter, "adapter_config.json", "auto_map", {"base_model_class": "x.Y"})
    proc = _check(
        tmp_path, _infer_yaml(tmp_path, model_copy, adapter_name_or_path=str(adapter), finetuning_type="lora")
    )
    assert _errors(proc.stderr, "check") == [
        f"xrayqwen2vl check: error: adapter_name_or_path: {adapter}: adapter_config.json sets auto_map, "
        "code shipped with the model: xrayqwen2vl runs no code shipped with a model: use a folder without it, "
        "or, if you trust its author, pass --allow-remote-code (scripts: XRAYQWEN2VL_ALLOW_REMOTE_CODE=1)"
    ]


def test_the_tiny_model_we_build_passes_the_scan(tiny_model_dir):
    from xrayqwen2vl.model_scan import scan_model_folder  # new module: the rest runs on old code

    assert scan_model_folder(tiny_model_dir) == []


def test_web_api_and_chat_refuse_the_folder_before_loading(model_copy, tmp_path):
    _set(model_copy, "config.json", "vision_config._attn_implementation_internal", "x")
    expected = f"vision_config._attn_implementation_internal, {CVE_FIELD}"
    proc = run_cli(
        [tool("xrayqwen2vl"), "web", "--model", str(model_copy), "--port", "1"], check=False, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"xrayqwen2vl web: error: {model_copy}: config.json sets {expected}; transformers never writes it: refused"
    ]
    config = _infer_yaml(tmp_path, model_copy)
    for script in ("api.sh", "chat.sh"):
        proc = subprocess.run(
            ["bash", str(REPO / "scripts" / script), config],
            cwd=tmp_path,
            env=clean_env(API_PORT="1", GRADIO_SERVER_PORT="1"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 1, (script, proc.stderr)
        assert _errors(proc.stderr, "check") == [
            f"xrayqwen2vl check: error: model_name_or_path: {model_copy}: config.json sets {expected}; "
            "transformers never writes it: refused"
        ], script
