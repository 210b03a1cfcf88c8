"""`xrayqwen2vl report`: one study from the command line, the interactive mode driven through stdin,
and one-line errors naming the bad file before any model is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from configs_support import CONFIGS, openi_data, trained_adapter
from conftest import run_cli, tool
from PIL import Image

from xrayqwen2vl.cli import main
from xrayqwen2vl.data.records import InputFileError

MAIN = CONFIGS / "train_lora" / "qwen2vl_7b_lora_sft.yaml"
INFER = CONFIGS / "inference" / "qwen2vl_7b_lora_sft.yaml"
INFER_MERGED = CONFIGS / "inference" / "qwen2vl_7b_lora_sft_merged.yaml"


@pytest.fixture(scope="module")
def study(sample_dir, tmp_path_factory) -> list[Path]:
    """Frontal and lateral image of the first test study, as the prepared data lists them."""
    data = openi_data(sample_dir, tmp_path_factory)
    first = next(s for s in json.loads((data / "openi_test.json").read_text()) if len(s["images"]) == 2)
    return [(data / p).resolve() for p in first["images"]]


def report(*args: str, stdin: str | None = None, check: bool = True):
    import os
    import subprocess

    from conftest import OFFLINE_ENV, REPO

    env = {**os.environ, **OFFLINE_ENV}
    proc = subprocess.run(
        [tool("xrayqwen2vl"), "report", *args],
        cwd=REPO,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"report exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc


@pytest.mark.slow
def test_report_for_one_study_with_the_inference_config(tiny_model_dir, sample_dir, study, tmp_path_factory):
    data = openi_data(sample_dir, tmp_path_factory)
    adapter = trained_adapter(MAIN, tiny_model_dir, data, tmp_path_factory)
    proc = report(
        "--config",
        str(INFER),
        "--model",
        str(tiny_model_dir),
        "--adapter",
        str(adapter),
        "--max-new-tokens",
        "12",
        *map(str, study),
    )
    text = proc.stdout.strip()
    assert text, "no report written"
    assert "llamafactory" not in proc.stdout and "[INFO" not in proc.stdout, "logs mixed into the report"
    assert "Loaded adapter" in proc.stderr and str(adapter) in proc.stderr
    assert "Research use only" in proc.stderr


@pytest.mark.slow
def test_report_interactive_mode_through_stdin(tiny_model_dir, sample_dir, study, tmp_path_factory, tmp_path):
    data = openi_data(sample_dir, tmp_path_factory)
    adapter = trained_adapter(MAIN, tiny_model_dir, data, tmp_path_factory)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    jpeg = tmp_path / "frontal view.jpg"  # a space in the name: quoted at the prompt
    Image.open(study[0]).convert("L").save(jpeg, quality=95)
    two = " ".join(map(str, study))
    lines = [
        two,
        "",
        str(tmp_path / "missing.png"),
        f"{two} {study[0]}",
        str(corrupt),
        two,
        f"'{jpeg}'",
        "exit",
        "this line is never read",
    ]
    proc = report(
        "--model",
        str(tiny_model_dir),
        "--adapter",
        str(adapter),
        "--max-new-tokens",
        "12",
        "--lang",
        "zh",
        stdin="\n".join(lines) + "\n",
    )
    reports = [chunk.split("\n", 1)[0] for chunk in proc.stdout.split("report> ")[1:]]
    assert len(reports) == 3, proc.stdout
    assert reports[0] == reports[1], "greedy decoding: the same study must give the same report"
    errors = [line for line in proc.stderr.splitlines() if line.startswith("xrayqwen2vl report: error:")]
    assert errors == [
        f"xrayqwen2vl report: error: {tmp_path / 'missing.png'}: image file not found",
        "xrayqwen2vl report: error: 3 images given; one study takes one or two (frontal, lateral)",
        errors[2],
    ]
    assert errors[2] == f"xrayqwen2vl report: error: {corrupt}: corrupt or truncated PNG (OSError)"


@pytest.mark.slow
def test_report_with_the_merged_inference_config(tiny_model_dir, study):
    """The merged-model config (no adapter); the tiny base stands in for the merged model."""
    proc = report(
        "--config", str(INFER_MERGED), "--model", str(tiny_model_dir), "--max-new-tokens", "8", str(study[0])
    )
    assert proc.stdout.strip()
    assert "Loaded adapter" not in proc.stderr


def test_interactive_end_of_input_without_exit():
    """Ctrl-D (end of stdin) leaves cleanly; the model is loaded once, nothing is written."""
    from xrayqwen2vl.serve.report import interactive

    class NoModel:
        def stream(self, images):  # never reached: no study line is given
            raise AssertionError("no study was asked for")

    import io

    out, err = io.StringIO(), io.StringIO()
    assert interactive(NoModel(), io.StringIO("\n  \n"), out, err) == 0
    assert out.getvalue().count("images> ") == 3
    assert err.getvalue() == ""


def _error(capsys, *argv: str) -> str:
    assert main(["report", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one clear line
    return err[0]


def test_missing_image_is_one_line_naming_the_file(tiny_model_dir, tmp_path, capsys):
    missing = tmp_path / "nope.png"
    assert _error(capsys, "--model", str(tiny_model_dir), str(missing)) == (
        f"xrayqwen2vl report: error: {missing}: image file not found"
    )


def test_corrupt_and_wrong_kind_of_image(tiny_model_dir, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    assert f"{bad}: image file is empty" in _error(capsys, "--model", str(tiny_model_dir), str(bad))
    truncated = tmp_path / "truncated.jpeg"
    Image.new("L", (64, 64), 128).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:40])
    assert f"{truncated}: corrupt or truncated JPEG (OSError)" in _error(
        capsys, "--model", str(tiny_model_dir), str(truncated)
    )
    text = tmp_path / "report.txt"
    text.write_text("hello")
    assert f"{text}: not a PNG, JPEG or DICOM image" in _error(
        capsys, "--model", str(tiny_model_dir), str(text)
    )


def test_three_images_are_refused(tiny_model_dir, study, capsys):
    msg = _error(capsys, "--model", str(tiny_model_dir), *map(str, study), str(study[0]))
    assert "3 images given" in msg


def test_missing_model_adapter_or_config(tiny_model_dir, study, tmp_path, capsys):
    assert "no model" in _error(capsys, str(study[0]))
    msg = _error(capsys, "--model", str(tmp_path / "weights"), str(study[0]))
    assert f"{tmp_path / 'weights'}: model folder not found" in msg
    msg = _error(capsys, "--model", str(tiny_model_dir), "--adapter", str(tmp_path), str(study[0]))
    assert f"{tmp_path}: adapter folder not found or has no adapter_config.json" in msg
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("model_name_or_path: [unclosed\n")
    assert f"{bad_yaml}: not valid YAML" in _error(capsys, "--config", str(bad_yaml), str(study[0]))
    assert "config file not found" in _error(capsys, "--config", str(tmp_path / "none.yaml"), str(study[0]))


def test_config_base_model_without_its_weights_names_the_folder(study, capsys, monkeypatch, tmp_path):
    """The real inference config points at weights/… (relative to where it runs); without the
    weights there the error says which folder and where to read about it."""
    monkeypatch.chdir(tmp_path)
    msg = _error(capsys, "--config", str(INFER), str(study[0]))
    assert "weights/Qwen2-VL-7B-Instruct: model folder not found" in msg and "weights/README.md" in msg


def test_images_and_interactive_together_are_refused(tiny_model_dir, study, capsys):
    assert "not both" in _error(capsys, "--model", str(tiny_model_dir), "-i", str(study[0]))


def test_report_is_listed_in_the_cli_help():
    """The COMMAND table of --help: every subcommand one row, in order, and report's row whole."""
    proc = run_cli([tool("xrayqwen2vl"), "--help"])
    lines = proc.stdout.splitlines()
    table = lines[lines.index("  COMMAND") + 1 :]
    table = table[: table.index("")] if "" in table else table
    rows: dict[str, str] = {}
    for line in table:
        if line.startswith("    ") and not line.startswith("     "):  # a row: "    name   help"
            name, _, text = line.strip().partition(" ")
            rows[name] = text.strip()
        else:  # the help text wrapped onto the next line
            rows[name] += " " + line.strip()
    assert list(rows) == [
        *(
            "sample",
            "download",
            "prepare",
            "translate",
            "tiny-model",
            "check",
            "report",
            "web",
            "rexrank-predict",
        ),
        *("evaluate", "label", "baselines", "compare", "counterfactual", "reliance"),
    ]
    assert (
        rows["report"] == "write a report for one study (frontal [+ lateral] image) with a fine-tuned model"
    )


def test_model_override_keeps_the_configs_adapter_unless_none(tiny_model_dir):
    from xrayqwen2vl.serve.report import build_args, load_config

    cfg = load_config(INFER)
    # The config's adapter (saves/…) does not exist here, so the check names it: it was kept.
    with pytest.raises(InputFileError, match="saves/qwen2vl_7b/lora/sft: adapter folder not found"):
        build_args(cfg, str(tiny_model_dir), None, None, None, None)
    args = build_args(cfg, str(tiny_model_dir), "none", None, None, None)
    assert "adapter_name_or_path" not in args
    assert args["model_name_or_path"] == str(tiny_model_dir)
    assert args["image_max_pixels"] == cfg["image_max_pixels"] and args["do_sample"] is False
