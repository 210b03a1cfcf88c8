"""The serving launchers keep to this machine unless told otherwise, and then only with a login.

scripts/chat.sh (LLaMA-Factory's webchat, which has no login) serves 127.0.0.1 and refuses any
other host; scripts/api.sh (LLaMA-Factory's OpenAI-style API) serves 127.0.0.1 and needs API_KEY
for any other host. The address a server listens on is read from the kernel (/proc), not from
the server's log. `xrayqwen2vl web` is checked in test_web.py, scripts/api.sh's default address
in test_api.py (each test starts its server once)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO
from web_support import free_port, listening_addresses, server

BASH = shutil.which("bash")
CONFIG = "configs/tiny/qwen2vl_tiny_lora_infer.yaml"
SERVING_ENV = ("GRADIO_SERVER_NAME", "GRADIO_SHARE", "API_HOST", "API_KEY")


def _launch(script: str, *args: str, **env: str):
    """Run a launcher with the given serving variables (and none inherited from the caller)."""
    full = {k: v for k, v in os.environ.items() if k not in SERVING_ENV} | env
    return subprocess.run(
        [BASH, f"scripts/{script}", *args], cwd=REPO, env=full, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "gpu-node.example.org", "127.example.org"])
def test_chat_refuses_any_host_but_this_machine_in_one_line(host):
    proc = _launch("chat.sh", CONFIG, GRADIO_SERVER_NAME=host)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"scripts/chat.sh: refusing GRADIO_SERVER_NAME={host}: llamafactory-cli webchat has no login; "
        f"serve on 127.0.0.1, or use xrayqwen2vl web --host {host} --auth USER:PASSWORD"
    ]


@pytest.mark.parametrize("value", ["1", "true", "True", "y"])
def test_chat_refuses_a_public_share_link(value):
    proc = _launch("chat.sh", CONFIG, GRADIO_SHARE=value)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"scripts/chat.sh: refusing GRADIO_SHARE={value}: a public share link has no login; "
        "use xrayqwen2vl web --host HOST --auth USER:PASSWORD"
    ]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20"])
def test_api_refuses_another_host_without_a_key_in_one_line(host):
    proc = _launch("api.sh", CONFIG, API_HOST=host)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"scripts/api.sh: refusing API_HOST={host} without API_KEY: set API_KEY=A-LONG-SECRET "
        "(clients send it as Bearer token), or serve on 127.0.0.1"
    ]


@pytest.mark.parametrize(
    ("script", "env"),
    [
        ("chat.sh", {"GRADIO_SERVER_NAME": "localhost"}),
        ("chat.sh", {"GRADIO_SERVER_NAME": "127.0.0.2"}),
        ("chat.sh", {"GRADIO_SERVER_NAME": "::1"}),
        ("chat.sh", {"GRADIO_SHARE": "0"}),
        ("api.sh", {"API_HOST": "::1"}),
        ("api.sh", {"API_HOST": "0.0.0.0", "API_KEY": "sk-long-secret"}),  # a key makes it allowed
    ],
)
def test_allowed_settings_get_past_the_check(script, env):
    """Allowed: the launcher goes on to its next check, the config file (missing here)."""
    proc = _launch(script, "no-such-config.yaml", **env)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"usage: bash scripts/{script} INFER_CONFIG.yaml [key=value ...] (config file not found: no-such-config.yaml)"
    ]


def test_listening_addresses_come_from_the_kernel(tmp_path):
    """The helper reads IPv4 and IPv6 listeners of a process group, and nothing else."""
    code = (
        "import socket, sys, time\n"
        "a = socket.socket(); a.bind(('127.0.0.2', 0)); a.listen()\n"
        "b = socket.socket(socket.AF_INET6); b.bind(('::1', 0)); b.listen()\n"
        "c = socket.socket(); c.bind(('127.0.0.1', 0))  # bound, not listening\n"
        "print(a.getsockname()[1], b.getsockname()[1], flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        port4, port6 = map(int, proc.stdout.readline().split())
        assert listening_addresses(proc.pid) == {("127.0.0.2", port4), ("::1", port6)}
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_chat_serves_this_machine_only_by_default(tiny_model_dir, tmp_path):
    """scripts/chat.sh on its defaults (port aside) with the tiny model: the real webchat page,
    listening on 127.0.0.1 and nowhere else."""
    port = free_port()
    args = [BASH, str(REPO / "scripts/chat.sh"), str(REPO / CONFIG)]
    args += [f"model_name_or_path={tiny_model_dir}", "adapter_name_or_path=null"]
    env = dict.fromkeys(SERVING_ENV) | {"GRADIO_SERVER_PORT": str(port), "BROWSER": "true"}
    # webchat writes llamaboard_cache/ into the folder it runs in: the test's own
    with server(args, tmp_path / "chat.log", f"http://127.0.0.1:{port}", env=env, cwd=tmp_path) as proc:
        assert listening_addresses(proc.pid) == {("127.0.0.1", port)}
    assert "Running on local URL:  http://127.0.0.1:" in (tmp_path / "chat.log").read_text()
