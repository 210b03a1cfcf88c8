"""`xrayqwen2vl translate` against a hostile OpenAI-compatible server (issue 15, item 6): a real
HTTP server on 127.0.0.1 whose replies are HTML with status 200, ``{"choices": []}``, integer
content, malformed JSON, a 5-million-character answer and an answer with NUL characters. Each bad
reply fails its own text with one line naming the sample, the URL and the start of the reply;
the good answers, before and after the bad ones, stay in the cache; nothing outside --out changes."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from security_support import tree_digest

import xrayqwen2vl.data.prepare  # noqa: F401  imported here, not first under capsys (see below)
from xrayqwen2vl.cli import main as cli_main

# translate imports data.prepare, whose print_summary binds sys.stdout as a default argument at
# import time; imported first inside a capsys test it would keep that test's closed stream and
# break a later `prepare` run in the same process (test_download); data/prepare.py is the data lane's.

GOOD = {
    "The heart is normal in size.": "心脏大小正常。",
    "No acute disease.": "无急性病变。",
    "Lungs are clear.": "双肺清晰。",
    "Nul bytes answer.": "双肺\x00清晰\x00。",
}
BAD = {  # English text -> (content type, body), and what the error line must say
    "Html answer.": (
        "text/html",
        b"<html><body>Login</body></html>",
        "reply is not JSON ('<html><body>Login",
    ),
    "No choices.": ("application/json", b'{"choices": []}', "reply has no choices[0].message.content"),
    "Integer content.": (
        "application/json",
        json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": 5}}]}).encode(),
        "reply content is a int, not text",
    ),
    "Malformed json.": (
        "application/json",
        b'{"choices": [{"mess',
        'reply is not JSON (\'{"choices": [{"mess\')',
    ),
    "Runaway answer.": (
        "application/json",
        json.dumps({"choices": [{"index": 0, "message": {"content": "肺" * 5_000_000}}]}).encode(),
        "has 5000000 characters, more than 260 (4 times the 15 of the text + 200); refused",
    ),
}
SAMPLES = [  # (id, assistant turn); ids start with characters a careless tool might mangle
    ("s-good-1", "Findings: The heart is normal in size. Impression: No acute disease."),
    ("s-html", "Impression: Html answer."),
    ("s-empty", "Impression: No choices."),
    ("s-int", "Findings: Lungs are clear. Impression: Integer content."),
    ("s-nul", "Impression: Nul bytes answer."),
    ("s-malformed", "Impression: Malformed json."),
    ("s-runaway", "Impression: Runaway answer."),
    ("s-good-2", "Impression: Lungs are clear."),
]


class Hostile:
    """An OpenAI-style endpoint: /models answers ``models`` (bytes), completions answer from
    GOOD and BAD."""

    def __init__(self, models: bytes):
        this = self
        self.requests: list[str] = []

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, ctype: str, body: bytes):
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):  # /v1/models
                self._send("text/html" if models.startswith(b"<") else "application/json", models)

            def do_POST(self):
                text = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["messages"][-1][
                    "content"
                ]
                this.requests.append(text)
                if text in BAD:
                    self._send(*BAD[text][:2])
                    return
                reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": GOOD[text]}}]}
                self._send("application/json", json.dumps(reply, ensure_ascii=False).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture(
    params=[b"<html>please log in</html>", b'{"object": "list", "data": []}'],
    ids=["models-html", "models-json"],
)
def hostile(request):
    """The first /models answer is a login page, as a misconfigured proxy would send."""
    srv = Hostile(request.param)
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def test_bad_replies_fail_their_own_text_and_good_answers_stay_cached(hostile, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    data = [
        {
            "id": sid,
            "messages": [
                {"role": "user", "content": "<image>Write the report."},
                {"role": "assistant", "content": t},
            ],
            "images": ["x.png"],
        }
        for sid, t in SAMPLES
    ]
    inp = inputs / "few_train.json"
    inp.write_text(json.dumps(data))
    out = tmp_path / "out"
    before = tree_digest(tmp_path, skip=(out,))
    args = ["translate", "--input", str(inp), "--out", str(out), "--base-url", hostile.url, "--model", "m"]
    rc = cli_main([*args, "--quiet", "--retries", "0", "--concurrency", "2"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    failed = [line for line in lines if line.startswith("xrayqwen2vl translate: failed: ")]
    assert len(failed) == len(BAD) and len(lines) == len(BAD) + 1, err
    by_sample = {sid: line for sid, _ in SAMPLES for line in failed if f"{inp}: sample {sid}: " in line}
    for sid, t in SAMPLES:
        bad = [text for text in BAD if t.endswith(text)]
        if bad:
            assert BAD[bad[0]][2] in by_sample[sid], (sid, by_sample.get(sid))
    for sid in ("s-html", "s-empty", "s-int", "s-malformed"):
        assert f"{hostile.url}/chat/completions: " in by_sample[sid]  # the URL that answered
    assert lines[-1].startswith(
        f"xrayqwen2vl translate: error: {len(BAD)} of {len(GOOD) + len(BAD)} texts failed"
    )

    cache = [
        json.loads(line) for line in (out / "translations.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert {c["source"]: c["translation"] for c in cache} == {
        **{k: v for k, v in GOOD.items() if k != "Nul bytes answer."},
        "Nul bytes answer.": "双肺清晰。",  # NUL characters dropped
    }
    assert (out / "translations.jsonl").stat().st_size < 2000  # the runaway answer is not stored
    assert not list(out.glob("*_zh_*.json"))
    assert tree_digest(tmp_path, skip=(out,)) == before

    # A rerun sends only the texts that failed; the good ones come from the cache.
    hostile.requests.clear()
    assert cli_main([*args, "--quiet", "--retries", "0"]) == 2
    assert sorted(hostile.requests) == sorted(BAD)
