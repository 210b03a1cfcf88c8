"""Static checks of every YAML under configs/: LLaMA-Factory's own parsers accept it (with the tiny
model swapped in), its header names its own command, every file and dataset it names exists,
no absolute paths, and the configs of one run agree with each other."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from pathlib import Path

import pytest
from configs_support import (
    CONFIGS,
    SPEED_KEYS,
    VARIANTS,
    family_of_config,
    load,
    prepare_config_data,
    real_configs,
    rel,
    training_configs,
)
from conftest import REPO

ALL_YAML = sorted(CONFIGS.rglob("*.yaml"))
REAL = real_configs()
TRAIN = training_configs()
DEEPSPEED = sorted((CONFIGS / "deepspeed").glob("*.json"))
RUNS = [p.stem for p in TRAIN]
BASE_RUNS = [r for r in RUNS if r not in VARIANTS]


def ids(paths):
    return [rel(p) for p in paths]


def command_line(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# Command: "), f"{rel(path)}: first line must be '# Command: …'"
    return first[len("# Command: ") :]


WRAPPER_JOB = {"scripts/train.sh": "train", "scripts/predict.sh": "train", "scripts/merge.sh": "export"}


def job_of(path: Path) -> str:
    """train / export / infer, from the command the config's first line gives."""
    cmd = command_line(path)
    if "xrayqwen2vl report" in cmd:
        return "infer"
    for script, job in WRAPPER_JOB.items():
        if cmd.startswith(f"bash {script} "):
            return job
    m = re.search(r"llamafactory-cli (train|export|api|chat|webchat) ", cmd)
    assert m, f"{rel(path)}: no llamafactory-cli job in its command line: {cmd}"
    return {"train": "train", "export": "export"}.get(m.group(1), "infer")


def test_there_are_configs_for_every_job():
    folders = {p.parent.name for p in REAL}
    assert {"train_lora", "train_qlora", "merge_lora", "inference", "predict"} <= folders
    assert {
        "qwen2vl_7b_lora_sft",
        "qwen2vl_2b_lora_sft",
        "qwen2_5vl_7b_lora_sft",
        "qwen3vl_8b_lora_sft",
        "qwen2vl_7b_qlora_sft",
        "qwen2vl_7b_lora_sft_mimic",
    } <= set(RUNS)
    assert {p.name for p in DEEPSPEED} == {"ds_z2_config.json", "ds_z3_offload_config.json"}


@pytest.mark.parametrize("path", ALL_YAML, ids=ids(ALL_YAML))
def test_header_names_its_own_command_and_hardware(path):
    text = path.read_text(encoding="utf-8")
    assert rel(path) in command_line(path), f"{rel(path)}: its command line names another file"
    assert "# Hardware:" in "\n".join(text.splitlines()[:4]), f"{rel(path)}: no '# Hardware:' line at the top"
    assert "### model" in text


# A LLaMA-Factory server started by hand: 0.9.5's webchat and api listen on 0.0.0.0 with no login
# and no key. Prose that names the command (`llamafactory-cli api` in backticks) is not a command.
BARE_SERVING = re.compile(r"(?:^|[\s(])llamafactory-cli\s+(webchat|api|chat)(?:\s+[\w$.{\"'<]|\s*$)")
SERVING_DOCS = sorted(
    [REPO / "README.md", REPO / "data" / "README.md", REPO / "weights" / "README.md"]
    + list((REPO / "doc").glob("*.md"))
)


def header_lines(path: Path) -> list[str]:
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines


@pytest.mark.parametrize("path", ALL_YAML, ids=ids(ALL_YAML))
def test_header_serves_only_through_the_wrappers(path):
    """Every serving command a header gives is scripts/chat.sh, scripts/api.sh or xrayqwen2vl
    web/report, which bind 127.0.0.1 (and refuse the network without a login or a key)."""
    bare = [
        line for line in header_lines(path) if re.search(r"llamafactory-cli\s+(webchat|api|chat)\b", line)
    ]
    assert not bare, (
        f"{rel(path)}: bare LLaMA-Factory server in the header (use scripts/chat.sh or scripts/api.sh): {bare}"
    )


@pytest.mark.parametrize("path", REAL, ids=ids(REAL))
def test_command_line_is_a_wrapper(path):
    """A GPU config's command runs the preflight and the GPU selection first (the tiny configs are
    run by make demo and the tests as they are)."""
    cmd = command_line(path)
    wrappers = ("bash scripts/train.sh ", "bash scripts/predict.sh ", "bash scripts/merge.sh ")
    assert cmd.startswith((*wrappers, "xrayqwen2vl report --config ")), f"{rel(path)}: {cmd}"


@pytest.mark.parametrize("path", SERVING_DOCS, ids=ids(SERVING_DOCS))
def test_docs_serve_only_through_the_wrappers(path):
    bare = [
        f"line {n}: {line.strip()}"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if BARE_SERVING.search(line)
    ]
    assert not bare, f"{rel(path)}: a serving command without the wrapper: {bare}"


def test_the_serving_scan_catches_a_bare_command():
    for line in (
        "llamafactory-cli api my_model.yaml",
        "    llamafactory-cli webchat configs/inference/x.yaml",
        "API_PORT=8000 llamafactory-cli api CONFIG.yaml",
        "(or: llamafactory-cli webchat <this file>)",
        "llamafactory-cli webchat",
    ):
        assert BARE_SERVING.search(line), line
    for line in (
        "`llamafactory-cli chat` (0.9.5) cannot take images",
        "runs `llamafactory-cli webchat` on http://127.0.0.1:7860",
        "llamafactory-cli export (merge)   llamafactory-cli chat / webchat / api",
        "bash scripts/api.sh configs/inference/qwen2vl_7b_lora_sft.yaml",
    ):
        assert not BARE_SERVING.search(line), line


def _liger_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("liger_kernel") is not None


def _parse(path: Path, tiny_model_dir: Path, **extra):
    """Parse a config with LLaMA-Factory's own parser for its job; returns the parsed dataclasses."""
    from llamafactory.hparams import get_infer_args, get_train_args

    args = load(path)
    args["model_name_or_path"] = str(tiny_model_dir)
    # DeepSpeed needs a torchrun launch (the CPU runs in test_configs_cpu_runs.py use it for
    # real); transformers rejects bf16 mixed precision on a CPU unless use_cpu is set.
    args.pop("deepspeed", None)
    if args.get("enable_liger_kernel") and not _liger_installed():
        args["enable_liger_kernel"] = False  # the CPU override of configs_support.py
    job = job_of(path)
    if job == "train":
        args["use_cpu"] = True
        args.update(extra)
        return job, args, get_train_args(args)
    args.update(extra)
    return job, args, get_infer_args(args)


@pytest.mark.parametrize("path", ALL_YAML, ids=ids(ALL_YAML))
def test_parses_with_llamafactory(path, tiny_family_model, monkeypatch):
    from xrayqwen2vl.recipes.models import FAMILY_TEMPLATES

    monkeypatch.chdir(REPO)
    family = family_of_config(load(path))
    model = tiny_family_model(family)
    job, args, parsed = _parse(path, model)
    model_args = parsed[0]
    assert model_args.model_name_or_path == str(model)
    # The Instruct models' template of the family (recipes/models.py, which the preflight enforces).
    assert args["template"] == FAMILY_TEMPLATES[family][1][0], rel(path)
    if "image_max_pixels" in args:
        assert model_args.image_max_pixels == args["image_max_pixels"]
    if "quantization_bit" in args:
        assert model_args.quantization_bit == args["quantization_bit"]
    if job == "train":
        _, data_args, training_args, finetuning_args, generating_args = parsed
        assert data_args.template == args["template"]
        assert data_args.cutoff_len == args["cutoff_len"]
        if training_args.do_train:
            assert data_args.dataset == args["dataset"].split(",")
            assert data_args.val_size == 0, (
                f"{rel(path)}: validation must come from eval_dataset, not val_size"
            )
            if args["finetuning_type"] == "full":  # only the tiny learning-check config
                assert rel(path) == "configs/tiny/qwen2vl_tiny_learn_sft.yaml"
                assert finetuning_args.freeze_vision_tower is False
            else:
                assert finetuning_args.finetuning_type == "lora"
                assert finetuning_args.lora_rank == 8 and finetuning_args.lora_target == ["all"]
            assert training_args.learning_rate == args["learning_rate"]
        if training_args.do_predict:
            assert training_args.predict_with_generate
            assert generating_args.do_sample is False and generating_args.num_beams == 1
        if "eval_dataset" in args:
            assert data_args.eval_dataset == [args["eval_dataset"]]
        else:  # only the learning check, which evaluates with its own predict run
            assert rel(path) == "configs/tiny/qwen2vl_tiny_learn_sft.yaml"
    elif job == "export":
        assert model_args.export_dir == args["export_dir"]
        assert model_args.export_device == "cpu" and model_args.export_legacy_format is False
        assert model_args.quantization_bit is None, "never merge into a quantized model"
    else:
        generating_args = parsed[3]
        assert generating_args.do_sample is False


def test_parser_rejects_a_misspelt_key(tiny_model_dir, monkeypatch):
    """The parse test above would catch a typo: LLaMA-Factory refuses unknown keys."""
    monkeypatch.chdir(REPO)
    with pytest.raises(ValueError, match="lora_rnak"):
        _parse(CONFIGS / "train_lora" / "qwen2vl_7b_lora_sft.yaml", tiny_model_dir, lora_rnak=8)


def _strings(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)
    elif isinstance(obj, str):
        yield obj


def _is_absolute(s: str) -> bool:
    return os.path.isabs(s) or s.startswith("~") or bool(re.match(r"^[A-Za-z]:[\\/]", s))


@pytest.mark.parametrize("path", ALL_YAML + DEEPSPEED, ids=ids(ALL_YAML + DEEPSPEED))
def test_no_absolute_paths_in_configs(path):
    data = load(path) if path.suffix == ".yaml" else json.loads(path.read_text())
    bad = [s for s in _strings(data) if _is_absolute(s)]
    assert not bad, f"{rel(path)}: absolute paths {bad}"
    text = path.read_text(encoding="utf-8")  # comments too
    assert not re.search(r"(?<![\w.\-])/(home|root|work|tmp|mnt|data|opt|Users)/", text), rel(path)


DOCS = [
    p
    for p in [
        *sorted((REPO / "doc").glob("*.md")),
        REPO / "weights" / "README.md",
        *sorted((REPO / "scripts").glob("*.sh")),
        *sorted((REPO / "benchmarks").glob("*.sh")),
    ]
    if p.exists()
]


@pytest.mark.parametrize("path", DOCS, ids=ids(DOCS))
def test_no_absolute_paths_in_docs_and_scripts(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    text = "\n".join(lines[1:] if lines and lines[0].startswith("#!") else lines)  # a shebang is fine
    hits = re.findall(r"(?<![\w.\-$}])/(?:home|root|work|tmp|mnt|data|opt|Users|usr)/\S*", text)
    assert not hits, f"{rel(path)}: absolute paths {hits}"


def test_docs_exist():
    assert (REPO / "doc" / "gpu-quickstart.md").is_file()
    assert (REPO / "weights" / "README.md").is_file()


@pytest.mark.parametrize("path", REAL, ids=ids(REAL))
def test_files_and_datasets_named_exist(path):
    cfg = load(path)
    if "deepspeed" in cfg:
        ds = REPO / cfg["deepspeed"]
        assert ds.is_file(), f"{rel(path)}: deepspeed file {cfg['deepspeed']} not found"
        json.loads(ds.read_text())
    if "dataset_dir" in cfg:
        assert cfg["dataset_dir"] == "data", f"{rel(path)}: dataset_dir must be data (where prepare writes)"
        info = json.loads((REPO / "data" / "dataset_info.json").read_text())
        for key in ("dataset", "eval_dataset"):
            for name in str(cfg.get(key, "") or "").split(","):
                if name:
                    assert name in info, f"{rel(path)}: {key} {name} is not in data/dataset_info.json"
    model = cfg["model_name_or_path"]
    if model.startswith("weights/"):
        listed = (REPO / "weights" / "README.md").read_text()
        assert f"`{model}`" in listed, f"{rel(path)}: {model} is not listed in weights/README.md"
    else:
        exports = {load(p).get("export_dir") for p in (CONFIGS / "merge_lora").glob("*.yaml")}
        assert model in exports, (
            f"{rel(path)}: {model} is neither under weights/ nor written by a merge config"
        )
    for key in ("output_dir", "export_dir", "adapter_name_or_path"):
        if key in cfg:
            assert str(cfg[key]).startswith("saves/"), (
                f"{rel(path)}: {key} must be under saves/ (git-ignored)"
            )


def _train_config_for(run: str) -> Path:
    found = [p for p in TRAIN if p.stem == run]
    assert found, f"no training config for run {run}"
    return found[0]


DERIVED = [p for p in REAL if p.parent.name in ("merge_lora", "inference", "predict")]


@pytest.mark.parametrize("path", DERIVED, ids=ids(DERIVED))
def test_derived_configs_match_their_training_run(path):
    """merge/inference/predict config NAME[_merged] belongs to the training run NAME: same base
    model, adapter = its output_dir, same image size and template, same quantization when loading
    the adapter on the base, none when merging."""
    run = path.stem.removesuffix("_merged")
    train = load(_train_config_for(run))
    cfg = load(path)
    assert cfg.get("template", train["template"]) == train["template"]
    if path.stem.endswith("_merged"):
        merge = load(CONFIGS / "merge_lora" / f"{run}.yaml")
        assert cfg["model_name_or_path"] == merge["export_dir"]
        assert "adapter_name_or_path" not in cfg
    else:
        assert cfg["model_name_or_path"] == train["model_name_or_path"]
        assert cfg["adapter_name_or_path"] == train["output_dir"]
    if path.parent.name != "merge_lora":
        assert cfg["image_max_pixels"] == train["image_max_pixels"]
        assert cfg.get("image_min_pixels") == train.get("image_min_pixels")
        if not path.stem.endswith("_merged"):
            assert cfg.get("quantization_bit") == train.get("quantization_bit")
    if path.parent.name == "predict":
        assert cfg["cutoff_len"] == train["cutoff_len"]
        assert cfg["eval_dataset"] == train["eval_dataset"].removesuffix("_val") + "_test"
        assert cfg["output_dir"].endswith("/predict")


@pytest.mark.skipif(_liger_installed(), reason="liger-kernel is installed here: nothing to refuse")
def test_liger_without_the_package_is_refused(tiny_model_dir, monkeypatch):
    """Why the CPU runs pass enable_liger_kernel=false: LLaMA-Factory's parser makes liger-kernel
    mandatory once the key is on (hparams/parser.py, _check_extra_dependencies)."""
    from llamafactory.hparams import get_train_args

    monkeypatch.chdir(REPO)
    args = load(CONFIGS / "train_lora" / "qwen2vl_7b_lora_sft_fast.yaml")
    args.pop("deepspeed")
    args.update(model_name_or_path=str(tiny_model_dir), use_cpu=True, bf16=False)
    with pytest.raises(Exception, match="liger"):
        get_train_args(args)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_fast_variant_changes_only_speed_settings(variant):
    """A variant trains the same run: same keys and values but SPEED_KEYS, the same samples per
    optimizer step, and a folder of its own (never the run's adapter folder)."""
    base_run, folder = VARIANTS[variant]
    fast = load(CONFIGS / "train_lora" / f"{variant}.yaml")
    base = load(_train_config_for(base_run))
    differing = {k for k in set(fast) | set(base) if fast.get(k) != base.get(k)}
    assert differing - {"output_dir"} <= SPEED_KEYS, f"{variant} changes {sorted(differing - SPEED_KEYS)}"
    assert differing - {"output_dir"}, f"{variant} is identical to {base_run}"

    def per_step(c):
        return c["per_device_train_batch_size"] * c["gradient_accumulation_steps"]

    assert per_step(fast) == per_step(base)
    assert fast["output_dir"] == folder != base["output_dir"]
    header = (CONFIGS / "train_lora" / f"{variant}.yaml").read_text(encoding="utf-8").split("### model")[0]
    for key in differing:
        assert key in header, f"{key} is not explained in the header"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_fast_variant_header_gives_merge_predict_and_report_for_its_folder(variant):
    """The header's commands are the base run's configs pointed at the variant's adapter, each
    writing a folder that no config writes."""
    base_run, folder = VARIANTS[variant]
    header = (CONFIGS / "train_lora" / f"{variant}.yaml").read_text(encoding="utf-8").split("### model")[0]
    text = re.sub(r"\\\n#\s*", " ", header)  # join the continued lines
    commands = re.findall(r"#\s+(bash scripts/\S+ \S+.*|xrayqwen2vl report .*)", text)
    assert len(commands) == 3, commands
    writers = {load(p).get("export_dir") or load(p).get("output_dir") for p in REAL}
    for cmd in commands:
        words = cmd.split()
        config = next(w for w in words if w.startswith("configs/"))
        assert Path(config).stem == base_run and (REPO / config).is_file(), cmd
        assert f"adapter_name_or_path={folder}" in words or f"--adapter {folder}" in cmd, cmd
        outputs = [w.split("=", 1)[1] for w in words if w.startswith(("export_dir=", "output_dir="))]
        assert all(o not in writers for o in outputs), cmd
        if "report" not in cmd:
            assert outputs, f"{cmd}: would write the base run's folder"


@pytest.mark.parametrize("run", BASE_RUNS)
def test_every_run_has_merge_inference_and_predict_configs(run):
    for path in (
        CONFIGS / "merge_lora" / f"{run}.yaml",
        CONFIGS / "inference" / f"{run}.yaml",
        CONFIGS / "inference" / f"{run}_merged.yaml",
        CONFIGS / "predict" / f"{run}.yaml",
    ):
        assert path.is_file(), f"missing {rel(path)}"


# Qwen2-VL: one visual token per 28x28 pixels after the 2x2 merge, plus vision start/end tokens.
PIXELS_PER_TOKEN = 28 * 28
TEXT_BUDGET = 512  # prompt (~30 tokens) + the longest OpenI findings+impression, with room


@pytest.mark.parametrize("path", TRAIN, ids=ids(TRAIN))
def test_cutoff_len_never_truncates_two_views(path):
    cfg = load(path)
    per_view = math.ceil(cfg["image_max_pixels"] / PIXELS_PER_TOKEN) + 2
    assert cfg["cutoff_len"] >= 2 * per_view + TEXT_BUDGET, (
        f"{rel(path)}: cutoff_len {cfg['cutoff_len']} could cut the image tokens of two views"
    )
    assert "val_size" not in cfg, f"{rel(path)}: a random val_size would split the views of a study"
    collections = [name.removesuffix("_train") for name in cfg["dataset"].split(",")]
    assert set(collections) <= {"openi", "mimic", "chexpert-plus", "rexgradient"}
    assert cfg["eval_dataset"] in [f"{c}_val" for c in collections]


def test_original_recipe_kept_in_the_7b_config():
    cfg = load(CONFIGS / "train_lora" / "qwen2vl_7b_lora_sft.yaml")
    assert cfg["deepspeed"] == "configs/deepspeed/ds_z2_config.json"
    recipe = {
        "lora_rank": 8,
        "lora_target": "all",
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 8,
        "learning_rate": 1.0e-4,
        "num_train_epochs": 3.0,
        "lr_scheduler_type": "cosine",
        "warmup_ratio": 0.1,
        "bf16": True,
    }
    assert {k: cfg[k] for k in recipe} == recipe


@pytest.mark.parametrize("path", DEEPSPEED, ids=ids(DEEPSPEED))
def test_deepspeed_json(path):
    cfg = json.loads(path.read_text())
    stage = cfg["zero_optimization"]["stage"]
    assert stage == (2 if "z2" in path.name else 3)
    # Batch sizes and precision come from the LLaMA-Factory config, so one JSON fits every run.
    for key in ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps"):
        assert cfg[key] == "auto"
    assert cfg["bf16"]["enabled"] == "auto"
    if "offload" in path.name:
        assert cfg["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
        assert cfg["zero_optimization"]["offload_param"]["device"] == "cpu"
        assert cfg["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True


def test_dataset_info_is_what_prepare_writes(sample_dir, tmp_path):
    """data/dataset_info.json is tracked; running prepare into data/ must leave it unchanged."""
    out = prepare_config_data(sample_dir, tmp_path / "data")
    assert (out / "dataset_info.json").read_bytes() == (REPO / "data" / "dataset_info.json").read_bytes()


@pytest.mark.parametrize("script", sorted((REPO / "scripts").glob("*.sh")), ids=lambda p: p.name)
def test_scripts_are_valid_bash(script):
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_quickstart_names_only_existing_configs_and_scripts():
    text = (REPO / "doc" / "gpu-quickstart.md").read_text(encoding="utf-8")
    named = set(re.findall(r"(?:configs|scripts)/[\w./-]+\.(?:yaml|json|sh)", text))
    assert len(named) >= 10
    missing = sorted(n for n in named if not (REPO / n).is_file())
    assert not missing, f"doc/gpu-quickstart.md names missing files: {missing}"
    # train -> merge -> report -> predict -> evaluate, in this order
    steps = [
        "scripts/train.sh",
        "scripts/merge.sh",
        "xrayqwen2vl report",
        "scripts/predict.sh",
        "xrayqwen2vl evaluate",
    ]
    positions = [text.index(s) for s in steps]
    assert positions == sorted(positions)


GPU_JOBS = [p for p in REAL if p.parent.name in ("train_lora", "train_qlora", "predict")]


@pytest.mark.parametrize("path", GPU_JOBS, ids=ids(GPU_JOBS))
def test_gpus_line_gives_the_count_the_hardware_line_names(path):
    """The wrappers give a run the GPUs of its '# GPUs: N' line (recipes/gpus.py); it must be the
    count the header's hardware line is written for, and the samples per step it states must be
    nodes × N × batch × accumulation."""
    from xrayqwen2vl.recipes.config import load_recipe

    recipe = load_recipe(path)
    text = "\n".join(recipe.header)
    hardware = re.search(r"# Hardware: (\w+)", text).group(1)
    assert recipe.gpus == ({"one": 1}.get(hardware) or int(hardware)), (
        f"{rel(path)}: GPUs {recipe.gpus} vs Hardware: {hardware}"
    )
    if path.parent.name != "predict":
        cfg = recipe.values
        total = (
            recipe.nodes
            * recipe.gpus
            * cfg["per_device_train_batch_size"]
            * cfg["gradient_accumulation_steps"]
        )
        assert f"{total} samples per step" in text.replace("\n# ", " "), (
            f"{rel(path)}: {total} per step not stated"
        )
