"""Helpers for the hostile-input tests: a fingerprint of a folder tree (to show that nothing
outside a command's output folder changed), gzip'd tar archives built in memory, and a local
HTTP server for them that can drop a connection, ignore ranges or answer from the wrong offset."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def tree_digest(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """Every entry under ``root`` (links not followed) with its kind and content hash or link
    target; entries under ``skip`` are left out. Two equal digests: nothing changed there."""
    skipped = {os.path.abspath(p) for p in skip}
    out: dict[str, str] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = [d for d in dirs if os.path.join(folder, d) not in skipped]
        for name in dirs + files:
            path = os.path.join(folder, name)
            if path in skipped:
                continue
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = "link " + os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    out[rel] = f"file {oct(st.st_mode)} " + hashlib.sha256(f.read()).hexdigest()
            else:
                out[rel] = f"mode {oct(st.st_mode)}"
    return out


def tgz(members: dict[str, bytes]) -> bytes:
    """A gzip'd tar of regular files ``name -> content``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Server:
    """A local server for ``files``; ``drop`` names files whose first request is cut halfway;
    ``ranges`` False makes it ignore Range headers; ``shift`` makes it answer a Range request
    for byte N with a 206 from byte N - shift (at least 0), its Content-Range saying so."""

    def __init__(
        self,
        files: dict[str, bytes],
        drop: set[str] = frozenset(),
        ranges: bool = True,
        shift: int | None = None,
    ):
        self.files, self.drop, self.ranges, self.shift = files, set(drop), ranges, shift
        self._log: list[tuple[str, str | None, int]] = []  # (path, Range header, bytes sent)
        self.lock = threading.Condition()
        self.busy = 0  # requests whose answer is still being sent
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                rng = self.headers.get("Range")
                # logged on arrival, before anything is sent: a client that gives up on an answer and
                # asks again must not find its second request logged before its first
                with server.lock:
                    entry = len(server._log)
                    server._log.append((name, rng if name in server.files else None, 0))
                    server.busy += 1
                try:
                    self.answer(name, rng, entry)
                finally:
                    with server.lock:
                        server.busy -= 1
                        server.lock.notify_all()

            def answer(self, name, rng, entry):
                if name not in server.files:
                    self.send_error(404)
                    return
                data = server.files[name]
                start = 0
                if rng and server.ranges:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    if server.shift is not None:
                        start = max(0, start - server.shift)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if name in server.drop:
                    server.drop.discard(name)
                    half = len(body) // 2
                    self.wfile.write(body[:half])
                    self.wfile.flush()
                    self.close_connection = True
                    server._log[entry] = (name, rng, half)
                    return
                self.wfile.write(body)
                server._log[entry] = (name, rng, len(body))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/collections/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def log(self) -> list[tuple[str, str | None, int]]:
        """The requests so far, once every answer under way is sent: the client can have read the
        whole body before the handler's thread records its count (CI saw ``[0, 0]`` for ``[0, N]``)."""
        with self.lock:
            if not self.lock.wait_for(lambda: self.busy == 0, timeout=10):
                raise AssertionError(f"the test server is still answering after 10 s: {self._log}")
            return list(self._log)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
