"""A lockout for the web demo's login: guessing the password costs time.

Gradio answers ``POST /login`` at once, right or wrong, so a script could try passwords as fast as
the network carries them. This ASGI middleware sits in front of that route and counts the failed
logins of each client address in a row: the first ``free_failures`` cost nothing, and each one
after locks the address out for ``base_lock_s`` seconds, doubling with each further failure, up to
``max_lock_s``. A locked address gets HTTP 429 with ``Retry-After`` and its password is not
checked at all, right or wrong; a successful login clears its count. Defaults: 3 free failures,
then 2, 4, 8 … seconds, at most 5 minutes (30 guesses take over an hour instead of a second).

The address is the TCP peer's: behind a reverse proxy every client is the proxy, so the lockout
then holds for everyone at once (proxy headers, which a client can forge, are not trusted).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

FREE_FAILURES = 3
BASE_LOCK_S = 2.0
MAX_LOCK_S = 300.0
MAX_CLIENTS = 10_000  # addresses remembered; the oldest are forgotten first


class LoginLimiter:
    """Per-address failure counts and lock times (``clock``: seconds, monotonic)."""

    def __init__(
        self,
        free_failures: int = FREE_FAILURES,
        base_lock_s: float = BASE_LOCK_S,
        max_lock_s: float = MAX_LOCK_S,
        clock: Callable[[], float] = time.monotonic,
        on_lock: Callable[[int, float], None] | None = None,
    ):
        self.free_failures, self.base_lock_s, self.max_lock_s = free_failures, base_lock_s, max_lock_s
        self.clock, self.on_lock = clock, on_lock
        self._state: OrderedDict[str, tuple[int, float]] = OrderedDict()  # address -> (failures, until)
        self._lock = threading.Lock()

    def wait_s(self, client: str) -> float:
        """Seconds ``client`` must still wait before a login of theirs is checked (0: none)."""
        with self._lock:
            _, until = self._state.get(client, (0, 0.0))
        return max(0.0, until - self.clock())

    def record(self, client: str, success: bool) -> None:
        with self._lock:
            if success:
                self._state.pop(client, None)
                return
            failures = self._state.get(client, (0, 0.0))[0] + 1
            over = failures - self.free_failures
            lock_s = min(self.base_lock_s * 2 ** (over - 1), self.max_lock_s) if over > 0 else 0.0
            self._state[client] = (failures, self.clock() + lock_s)
            self._state.move_to_end(client)
            while len(self._state) > MAX_CLIENTS:
                self._state.popitem(last=False)
        if lock_s and self.on_lock:
            self.on_lock(failures, lock_s)


class LoginLimitMiddleware:
    """ASGI middleware applying a ``LoginLimiter`` to ``POST /login`` (Gradio's login route)."""

    def __init__(self, app, limiter: LoginLimiter):
        self.app, self.limiter = app, limiter

    async def __call__(self, scope, receive, send):
        if not (
            scope["type"] == "http"
            and scope.get("method") == "POST"
            and scope.get("path", "").rstrip("/").endswith("/login")
        ):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown",))[0]
        wait = self.limiter.wait_s(client)
        if wait > 0:
            await _too_many(send, math.ceil(wait))
            return
        status = {}

        async def watch(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        code = status.get("code")
        if code == 200 or code == 400:  # Gradio: 200 logged in, 400 wrong user or password
            self.limiter.record(client, success=code == 200)


async def _too_many(send, seconds: int) -> None:
    body = json.dumps({"detail": f"Too many failed logins: try again in {seconds} s."}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(seconds).encode()),
    ]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})
