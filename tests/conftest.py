"""Shared fixtures: a synthetic Open-i sample, its prepared datasets, the tiny Qwen2-VL, and a
runner for the real ``llamafactory-cli``. Built once per test session under pytest's tmp dirs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# Offline and quiet for every subprocess the tests start.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "WANDB_DISABLED": "true",
    "PYTHONUNBUFFERED": "1",
}


def tool(name: str) -> str:
    """Path of a console script installed beside this Python (llamafactory-cli, xrayqwen2vl)."""
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found beside {sys.executable}")
    return found


def run_cli(
    args: list[str], cwd: Path = REPO, timeout: int = 900, check: bool = True, log: Path | None = None
):
    """Run a command with the offline environment; on failure show the end of its output. Like the
    wrappers, it puts the inference shim's boot folder on PYTHONPATH (xrayqwen2vl/lf_shim.py), so a
    llamafactory-cli started here predicts with the image positions it was trained with."""
    from xrayqwen2vl.lf_shim import launch_env

    env = launch_env({**os.environ, **OFFLINE_ENV, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"})
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if log is not None:
        log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    if check and proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-6000:]
        raise AssertionError(f"{' '.join(map(str, args))} exited {proc.returncode}:\n{tail}")
    return proc


def llamafactory(job: str, config: str | Path, *overrides: str, cwd: Path = REPO, log: Path | None = None):
    """The real ``llamafactory-cli JOB CONFIG key=value …``."""
    return run_cli([tool("llamafactory-cli"), job, str(config), *overrides], cwd=cwd, log=log)


# Heaviest test files first (from `pytest --durations`): with `make test`'s workers (pytest-xdist,
# one file per worker at a time) a long file that starts last would leave the other worker idle.
HEAVY_FIRST = [
    "test_learning_check.py",
    "test_configs_cpu_runs.py",
    "test_evaluate_cli.py",
    "test_positions.py",
    "test_reliance.py",
    "test_e2e.py",
    "test_perf_benchmarks.py",
    "test_configs_gpu_check.py",
    "test_rexrank_metrics.py",
]


def pytest_collection_modifyitems(config, items):
    rank = {name: k for k, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order otherwise


def shared_build(tmp_path_factory, name: str, build) -> Path:
    """A folder ``build(folder)`` fills once per run: per session, and once for all workers when
    pytest-xdist runs several (the first builds under a lock, the others wait and reuse it)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    from filelock import FileLock

    folder = tmp_path_factory.getbasetemp().parent / f"shared-{name}"
    with FileLock(f"{folder}.lock"):
        if not (folder / ".built").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    from xrayqwen2vl.synthetic.sample import generate_sample

    return shared_build(
        tmp_path_factory, "sample", lambda out: generate_sample(out, reports=80, seed=1, progress=False)
    )


_TINY_MODELS: dict[str, Path] = {}


def tiny_model_of(family: str, tmp_path_factory) -> Path:
    """The tiny random model of a family (qwen2_vl, qwen2_5_vl, qwen3_vl), built once per run."""
    from xrayqwen2vl.synthetic.tiny_model import build_tiny_model

    if family not in _TINY_MODELS:
        name = "tiny-qwen2vl" if family == "qwen2_vl" else f"tiny-{family}"
        root = shared_build(
            tmp_path_factory, f"tiny-{family}", lambda d: build_tiny_model(d / name, seed=0, family=family)
        )
        _TINY_MODELS[family] = root / name
    return _TINY_MODELS[family]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return tiny_model_of("qwen2_vl", tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_family_model(tmp_path_factory):
    """family -> the session's tiny model of that family (see tiny_model_of)."""
    return lambda family: tiny_model_of(family, tmp_path_factory)


def prepare_sample(raw: Path, out: Path, name: str = "demo", **options) -> dict:
    """Prepare a synthetic Open-i sample folder (ecgen-radiology/ + NLMCXR_png/); returns the manifest."""
    from xrayqwen2vl.data.formats.openi import read_openi
    from xrayqwen2vl.data.prepare import PrepareOptions, prepare_dataset

    return prepare_dataset(
        read_openi(raw / "ecgen-radiology"),
        raw / "NLMCXR_png",
        out,
        PrepareOptions(name=name, **options),
        inputs={},
        progress=False,
    )


@pytest.fixture(scope="session")
def prepared_dir(sample_dir, tmp_path_factory) -> Path:
    """The sample prepared with the default options (two views), dataset name ``demo``."""
    return shared_build(tmp_path_factory, "data", lambda out: prepare_sample(sample_dir, out, "demo"))


# The configs/tiny/ file prefix of each family that has its own tiny configs.
TINY_CONFIG_PREFIX = {"qwen2_vl": "qwen2vl_tiny", "qwen3_vl": "qwen3vl_tiny"}


@pytest.fixture(scope="session")
def tiny_lora(tiny_family_model, prepared_dir, tmp_path_factory):
    """family -> the LoRA adapter folder that configs/tiny/<family>_tiny_lora_sft.yaml trains on
    the tiny model of the family and the prepared sample (the real llamafactory-cli, one epoch),
    trained once per session; its log is train.log beside it."""
    trained: dict[str, Path] = {}

    def train(family: str) -> Path:
        if family not in trained:
            model = tiny_family_model(family)

            def build(root: Path) -> None:
                llamafactory(
                    "train",
                    REPO / "configs" / "tiny" / f"{TINY_CONFIG_PREFIX[family]}_lora_sft.yaml",
                    f"model_name_or_path={model}",
                    f"dataset_dir={prepared_dir}",
                    f"output_dir={root / 'lora'}",
                    "num_train_epochs=1",
                    log=root / "train.log",
                )

            trained[family] = shared_build(tmp_path_factory, f"lora_{family}", build) / "lora"
        return trained[family]

    return train


@pytest.fixture(scope="session")
def login_web(tiny_model_dir, sample_dir, tmp_path_factory):
    """`xrayqwen2vl web` on its default host with a login (XRAYQWEN2VL_WEB_AUTH) and an examples
    folder (a PNG, and a DICOM without identifying tags), started once for the fast login test
    (test_web.py) and the login page in the browser (test_web_browser.py)."""
    from web_support import dicom_from_png, free_port, server

    root = tmp_path_factory.mktemp("login-web")
    examples = root / "examples"
    examples.mkdir()
    png = sorted((sample_dir / "NLMCXR_png").glob("*.png"))[0]
    (examples / "example-1.png").write_bytes(png.read_bytes())
    dicom_from_png(png, examples / "example-2.dcm", phi=False)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [tool("xrayqwen2vl"), "web", "--model", str(tiny_model_dir), "--port", str(port)]
    args += ["--max-new-tokens", "4", "--examples", str(examples)]
    env = {"XRAYQWEN2VL_WEB_AUTH": "reader:pw-7f3k", "GRADIO_TEMP_DIR": str(root / "gradio")}
    with server(args, root / "server.log", url, env=env) as proc:
        yield {
            "url": url,
            "port": port,
            "pid": proc.pid,
            "log": root / "server.log",
            "user": "reader",
            "password": "pw-7f3k",
            "examples": examples,
        }
