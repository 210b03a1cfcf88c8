"""`xrayqwen2vl translate` against the real `llamafactory-cli api` serving the tiny Qwen2-VL on
127.0.0.1 (its Chinese is gibberish: these tests check the protocol, the cache, resume after a
kill and the output layout, not the quality), plus retries against a local flaky endpoint."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import BIN, OFFLINE_ENV, REPO, run_cli, tool

from xrayqwen2vl.cli import main as cli_main
from xrayqwen2vl.data.translate import split_target


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def api(tiny_model_dir, tmp_path_factory):
    """The real OpenAI-compatible server of LLaMA-Factory on the tiny base model."""
    port = _free_port()
    log = tmp_path_factory.mktemp("api") / "api.log"
    env = {**os.environ, **OFFLINE_ENV, "API_HOST": "127.0.0.1", "API_PORT": str(port)}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    args = [
        tool("llamafactory-cli"),
        "api",
        str(REPO / "configs/tiny/qwen2vl_tiny_lora_infer.yaml"),
        f"model_name_or_path={tiny_model_dir}",
        "adapter_name_or_path=null",
    ]
    with open(log, "w") as f:
        proc = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 240
        while True:
            try:
                with urllib.request.urlopen(url + "/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise AssertionError("llamafactory-cli api did not start:\n" + log.read_text()[-3000:])
            time.sleep(1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def small_input(prepared_dir, tmp_path_factory):
    """Six English samples of the prepared sample in a folder of their own (image paths
    rewritten to stay valid there)."""
    data = json.loads((prepared_dir / "demo_train.json").read_text())[:6]
    folder = tmp_path_factory.mktemp("in")
    for s in data:
        s["images"] = [os.path.relpath(prepared_dir / p, folder) for p in s["images"]]
    path = folder / "few_train.json"
    path.write_text(json.dumps(data, ensure_ascii=False))
    texts = {t for s in data for t in split_target(s["messages"][1]["content"]).values()}
    return path, data, texts


def _cmd(url, inp, out, *extra):
    return [
        "translate",
        "--input",
        str(inp),
        "--out",
        str(out),
        "--base-url",
        url,
        "--model",
        "tiny",
        "--max-tokens",
        "8",
        "--quiet",
        *extra,
    ]


def _cache(out):
    lines = (out / "translations.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(x) for x in lines]


@pytest.fixture(scope="module")
def translated(api, small_input, tmp_path_factory):
    """One translate run of the small input (two requests in flight); its stdout."""
    inp, _, _ = small_input
    out = tmp_path_factory.mktemp("zh")
    proc = run_cli([sys.executable, "-m", "xrayqwen2vl.cli", *_cmd(api, inp, out, "--concurrency", "2")])
    return out, proc.stdout


@pytest.mark.slow
def test_translate_protocol_cache_and_output(api, small_input, translated, capsys):
    inp, data, texts = small_input
    out, stdout = translated
    assert f"{len(texts)} translated now" in stdout
    cache = _cache(out)
    assert sorted(c["source"] for c in cache) == sorted(texts)  # each text once
    name = inp.stem.removesuffix("_train") + "_zh_train"
    result = json.loads((out / f"{name}.json").read_text())
    assert len(result) == len(data)
    for en, zh in zip(data, result, strict=True):
        assert zh["id"] == en["id"]
        assert zh["messages"][0]["content"].count("<image>") == len(zh["images"]) == len(en["images"])
        assert zh["messages"][0]["content"].endswith("请根据这组胸部X光片写出放射学报告，包括所见和印象。")
        assert zh["messages"][1]["content"].startswith(("所见：", "印象："))
        assert all((out / p).is_file() for p in zh["images"])
    info = json.loads((out / "dataset_info.json").read_text())
    assert info[name]["file_name"] == f"{name}.json"
    before = (out / f"{name}.json").read_bytes()
    assert cli_main(_cmd(api, inp, out)) == 0
    assert f"{len(texts)} from the cache, 0 translated now" in capsys.readouterr().out
    assert (out / f"{name}.json").read_bytes() == before
    assert len(_cache(out)) == len(texts)


@pytest.mark.slow
def test_killed_run_resumes_without_losing_or_repeating(api, small_input, tmp_path):
    inp, data, texts = small_input
    out = tmp_path / "zh"
    env = {**os.environ, **OFFLINE_ENV}
    args = [sys.executable, "-m", "xrayqwen2vl.cli", *_cmd(api, inp, out, "--concurrency", "1")]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    cache_file = out / "translations.jsonl"
    deadline = time.time() + 120
    while not (cache_file.exists() and cache_file.read_text().count("\n") >= 2):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    first = _cache(out)
    assert 2 <= len(first) < len(texts)
    assert not list(out.glob("*_zh_*.json"))  # no half-written dataset
    proc = run_cli(args)
    m = [line for line in proc.stdout.splitlines() if line.startswith("texts ")][0]
    done_before = int(m.split(": ")[1].split(" from")[0])
    assert done_before >= len(first)
    assert f"{len(texts) - done_before} translated now" in m
    final = _cache(out)
    assert len(final) == len({c["source"] for c in final}) == len(texts)  # nothing sent twice
    assert final[: len(first)] == first  # nothing lost or rewritten


@pytest.mark.slow
def test_cache_feeds_prepare_lang_zh(small_input, translated, sample_dir):
    inp, data, texts = small_input
    out, _ = translated
    ids = {s["id"] for s in data}
    assert (
        cli_main(
            [
                "prepare",
                "--reports-dir",
                str(sample_dir / "ecgen-radiology"),
                "--images-dir",
                str(sample_dir / "NLMCXR_png"),
                "--out",
                str(out),
                "--lang",
                "zh",
                "--translations",
                str(out / "translations.jsonl"),
                "--name",
                "openi_zh",
                "--quiet",
            ]
        )
        == 0
    )
    m = json.loads((out / "manifest.json").read_text())["openi_zh"]
    assert m["counts"]["kept"] >= len(ids)
    kept = {
        x["id"]
        for s in ("train", "val", "test")
        for x in json.loads((out / f"openi_zh_{s}.json").read_text())
    }
    assert ids <= kept
    assert any("no Chinese translation" in s["reason"] for s in m["skipped"])


def test_unreachable_endpoint_is_a_clear_error(prepared_dir, tmp_path, capsys):
    url = f"http://127.0.0.1:{_free_port()}/v1"
    rc = cli_main(_cmd(url, prepared_dir / "demo_val.json", tmp_path, "--retries", "0"))
    err = capsys.readouterr().err
    assert rc == 2 and f"cannot reach the endpoint at {url}" in err and len(err.strip().splitlines()) == 1


class Flaky:
    """A local OpenAI-style endpoint answering 503 to the first ``fail`` completions."""

    def __init__(self, fail: int):
        self.fail, self.calls, self.lock = fail, 0, threading.Lock()
        this = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, obj):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._send(
                    200,
                    {
                        "object": "list",
                        "data": [{"id": "m", "object": "model", "created": 0, "owned_by": "t"}],
                    },
                )

            def do_POST(self):
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with this.lock:
                    this.calls += 1
                    failing = this.calls <= this.fail
                if failing:
                    self._send(503, {"error": {"message": "busy", "type": "server_error"}})
                    return
                text = "译文：" + req["messages"][-1]["content"][:10]
                self._send(
                    200,
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "created": 0,
                        "model": req["model"],
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": text},
                            }
                        ],
                    },
                )

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_retries_with_backoff_then_fail_clearly(prepared_dir, tmp_path, capsys):
    inp = prepared_dir / "demo_val.json"
    texts = {
        t for s in json.loads(inp.read_text()) for t in split_target(s["messages"][1]["content"]).values()
    }
    srv = Flaky(fail=3)
    try:
        assert (
            cli_main(
                _cmd(
                    srv.url, inp, tmp_path / "a", "--backoff", "0.01", "--retries", "3", "--concurrency", "1"
                )
            )
            == 0
        )
        assert srv.calls == len(texts) + 3
        srv.calls, srv.fail = 0, 10**6
        rc = cli_main(
            _cmd(srv.url, inp, tmp_path / "b", "--backoff", "0.01", "--retries", "1", "--concurrency", "3")
        )
        err = capsys.readouterr().err
        assert rc == 2 and "failed" in err and "rerun" in err
        assert srv.calls == 2 * len(texts)
        assert not list((tmp_path / "b").glob("*_zh_*.json"))
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()
