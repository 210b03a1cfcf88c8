"""R2Gen's split trains as data/README.md says: prepared with its own command as `--name r2gen`,
then the configs (which read `openi_*`) with the dataset overrides the README gives. The
commands are read from data/README.md and run as written, in a checkout with the synthetic R2Gen
copy at the README's paths; the preflight (the real `xrayqwen2vl check`) must find the data."""

from __future__ import annotations

import re
import shlex
import shutil

import pytest
from conftest import REPO, run_cli, tool
from preflight_support import clean_env, errors, make_checkout, run_check

README = REPO / "data" / "README.md"


def readme_commands() -> list[list[str]]:
    """Every command of the README's bash blocks, continuation lines joined, comments dropped."""
    text = README.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.append(shlex.split(line))
    return commands


def the_command(*needles: str) -> list[str]:
    found = [c for c in readme_commands() if all(n in c for n in needles)]
    assert len(found) == 1, f"data/README.md: {len(found)} commands with {needles}"
    return found[0]


@pytest.fixture(scope="module")
def checkout(tiny_model_dir, tmp_path_factory):
    """A checkout whose data/ holds the tracked dataset_info.json and R2Gen's split prepared by the
    README's own command from the synthetic copy put where the README expects it."""
    sample = tmp_path_factory.mktemp("r2gen_sample")
    run_cli(
        [
            tool("xrayqwen2vl"),
            "sample",
            "--out",
            str(sample),
            "--reports",
            "60",
            "--format",
            "r2gen",
            "--quiet",
        ]
    )
    data = tmp_path_factory.mktemp("r2gen_data") / "data"
    data.mkdir()
    shutil.copy(REPO / "data" / "dataset_info.json", data / "dataset_info.json")
    repo = make_checkout(tmp_path_factory.mktemp("r2gen") / "repo", data, tiny_model_dir)
    prepare = [c for c in readme_commands() if "prepare" in c and " --name r2gen " in f" {' '.join(c)} "]
    assert len(prepare) == 1, "data/README.md: one prepare command with --name r2gen"
    prepare = prepare[0]
    annotation = prepare[prepare.index("--annotation") + 1]
    images = prepare[prepare.index("--images-dir") + 1]
    (repo / annotation).parent.mkdir(parents=True)
    shutil.copy(sample / "r2gen" / "annotation.json", repo / annotation)
    shutil.copytree(sample / "r2gen" / "images", repo / images)
    run_cli([tool(prepare[0]), *prepare[1:]], cwd=repo)
    assert (repo / "data" / "r2gen_train.json").is_file()
    return repo


def overrides(command: list[str]) -> list[str]:
    return [arg for arg in command if "=" in arg and not arg.startswith("-")]


def test_the_readme_r2gen_commands_find_the_data(checkout):
    cpu = clean_env(GPUS="0")
    train = the_command("bash", "scripts/train.sh", "dataset=r2gen_train")
    proc = run_check(checkout, train[2], *overrides(train), "bf16=false", env=cpu)
    assert proc.returncode == 0, proc.stderr
    assert "checked: model, code, data, deepspeed, output, packages, gpus: ok" in proc.stdout
    predict = the_command("bash", "scripts/predict.sh", "eval_dataset=r2gen_test")
    adapter = next(a.split("=", 1)[1] for a in predict if a.startswith("adapter_name_or_path="))
    assert f"output_dir={adapter}" in train, "predict must read the adapter the train command writes"
    proc = run_check(checkout, predict[2], *overrides(predict), "bf16=false", env=cpu)
    # Nothing trained here: the adapter is the one thing missing; the test split is found.
    assert [line.split(": ")[2] for line in errors(proc)] == ["adapter_name_or_path"], proc.stderr
    evaluate = the_command("evaluate", "--images-from", "data/r2gen_test.json")
    assert evaluate[evaluate.index("--predictions") + 1].startswith(
        next(a for a in predict if a.startswith("output_dir=")).split("=", 1)[1]
    )


def test_without_the_overrides_the_preflight_names_the_prepared_split(checkout):
    proc = run_check(
        checkout, "configs/train_lora/qwen2vl_7b_lora_sft.yaml", "bf16=false", env=clean_env(GPUS="0")
    )
    assert errors(proc) == [
        "xrayqwen2vl check: error: dataset: data/openi_train.json (openi_train) not found: prepare the data: "
        "xrayqwen2vl prepare … --out data (data/README.md), or train on what is there: dataset=r2gen_train",
        "xrayqwen2vl check: error: eval_dataset: data/openi_val.json (openi_val) not found: prepare the data: "
        "xrayqwen2vl prepare … --out data (data/README.md), or train on what is there: eval_dataset=r2gen_val",
    ]
