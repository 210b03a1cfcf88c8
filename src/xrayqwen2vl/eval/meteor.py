"""METEOR 1.5 as the COCO caption toolkit runs it, with a watchdog instead of a lock.

``pycocoevalcap``'s ``Meteor`` starts ``java -jar -Xmx2G meteor-1.5.jar - - -stdio -l en -norm``
in its package folder and talks to it line by line: ``SCORE ||| reference ||| hypothesis`` gives
a line of statistics per segment, ``EVAL ||| stats ||| stats …`` the segment scores and then
the corpus score. It holds a lock while it talks; when the JVM dies (a 100,000-character
hypothesis runs it out of its 2 GB heap in the aligner) the next read returns nothing, the
toolkit raises with the lock held, and its ``__del__`` — or anything else that takes the lock —
waits forever.

:class:`MeteorProcess` runs the same jar with the same command and the same lines (so the scores
are the toolkit's, which a test checks), but:

- the exchange runs in a worker thread; the caller waits with an *inactivity* timeout (no line
  from the JVM for ``timeout`` seconds: killed) and notices at once when the process exits;
- any failure raises :class:`MeteorError` with the reason (exit code and the JVM's last error
  line, or the timeout); ``close`` kills the process and never waits on a lock;
- the JVM's stderr goes to a temporary file, so a chatty JVM cannot block on a full pipe;
- a hypothesis or reference longer than ``max_tokens`` words is cut to its first ``max_tokens``
  words (METEOR's aligner is what runs out of memory; the other metrics score the full text):
  ``truncated`` lists which segments were cut.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

METEOR_MAX_TOKENS = 1000  # ~10x the longest IU X-ray reference; 0.13 s per worst-case segment
METEOR_TIMEOUT = 120.0  # seconds without a line from the JVM (it loads its tables in ~5-20 s)


class MeteorError(RuntimeError):
    """METEOR could not score: the message says why (no Java, process died, no answer)."""


def java_available() -> bool:
    return shutil.which("java") is not None


def toolkit_folder() -> Path:
    import pycocoevalcap.meteor.meteor as toolkit

    return Path(toolkit.__file__).resolve().parent


def meteor_command() -> list[str]:
    """The toolkit's command line (run in :func:`toolkit_folder`)."""
    return ["java", "-jar", "-Xmx2G", "meteor-1.5.jar", "-", "-", "-stdio", "-l", "en", "-norm"]


def _truncate(text: str, max_tokens: int) -> tuple[str, bool]:
    words = text.split()
    if len(words) <= max_tokens:
        return text, False
    return " ".join(words[:max_tokens]), True


class MeteorProcess:
    """The METEOR jar, started at once (it loads its paraphrase tables for seconds: start it
    first and do other work meanwhile). Use as a context manager or call :meth:`close`."""

    def __init__(self, timeout: float = METEOR_TIMEOUT, max_tokens: int = METEOR_MAX_TOKENS):
        if not java_available():
            raise MeteorError(
                "METEOR needs Java (the COCO toolkit runs meteor-1.5.jar): install a JRE, e.g. "
                "apt-get install default-jre-headless"
            )
        self.timeout = timeout
        self.max_tokens = max_tokens
        self.truncated: dict[str, list[int]] = {"hypotheses": [], "references": []}
        self._failure: str | None = None
        self._stderr = tempfile.TemporaryFile()
        env = dict(os.environ)  # the JVM reads and writes UTF-8 (Chinese tokens) whatever the locale
        env["JAVA_TOOL_OPTIONS"] = (env.get("JAVA_TOOL_OPTIONS", "") + " -Dfile.encoding=UTF-8").strip()
        try:
            self._proc = subprocess.Popen(
                meteor_command(),
                cwd=toolkit_folder(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=env,
            )
        except OSError as e:
            self._stderr.close()
            raise MeteorError(f"cannot start METEOR's Java process: {e}") from None
        self._last_activity = time.monotonic()

    @property
    def pid(self) -> int:
        return self._proc.pid

    # -- the line protocol, run in the worker thread --------------------------------------
    def _send(self, line: str) -> None:
        self._proc.stdin.write((line + "\n").encode("utf-8"))
        self._proc.stdin.flush()
        self._last_activity = time.monotonic()

    def _receive(self) -> str:
        raw = self._proc.stdout.readline()
        if not raw:
            raise EOFError
        self._last_activity = time.monotonic()
        return raw.decode("utf-8").strip()

    def _number(self) -> float:
        line = self._receive()
        try:
            return float(line)
        except ValueError:
            raise MeteorError(f"METEOR answered {line[:80]!r} where a score was expected") from None

    def _exchange(self, pairs: list[tuple[str, str]]) -> tuple[float, list[float]]:
        stats = []
        for hyp, ref in pairs:
            self._send(f"SCORE ||| {ref} ||| {hyp}")
            stats.append(self._receive())
        self._send("EVAL ||| " + " ||| ".join(stats))
        scores = [self._number() for _ in pairs]
        return self._number(), scores

    # -- the caller's side -----------------------------------------------------------------
    def _stderr_tail(self) -> str:
        try:
            self._stderr.seek(0)
            lines = [x.strip() for x in self._stderr.read().decode("utf-8", "replace").splitlines()]
        except (OSError, ValueError):
            return ""
        errors = [x for x in lines if x and not x.startswith(("Picked up", "at "))]
        return errors[-1][:300] if errors else ""

    def _fail(self, reason: str) -> MeteorError:
        self._failure = reason
        self.close()
        return MeteorError(reason)

    def compute_score(self, gts: dict, res: dict) -> tuple[float, list[float]]:
        """The toolkit's ``Meteor.compute_score``: one reference and one hypothesis per key."""
        if self._failure:
            raise MeteorError(f"METEOR is not running (it failed earlier: {self._failure})")
        if gts.keys() != res.keys():
            raise ValueError("references and hypotheses must have the same keys")
        pairs = []
        self.truncated = {"hypotheses": [], "references": []}
        for k, key in enumerate(gts):
            if len(res[key]) != 1 or len(gts[key]) != 1:
                raise ValueError("one hypothesis and one reference per segment")
            # as the toolkit: '|||' removed and double spaces halved in the hypothesis; line breaks
            # and '|||' would break the protocol on either side
            hyp = res[key][0].replace("\n", " ").replace("|||", "").replace("  ", " ")
            ref = gts[key][0].replace("\n", " ").replace("|||", "")
            hyp, cut_h = _truncate(hyp, self.max_tokens)
            ref, cut_r = _truncate(ref, self.max_tokens)
            if cut_h:
                self.truncated["hypotheses"].append(k)
            if cut_r:
                self.truncated["references"].append(k)
            pairs.append((hyp, ref))

        outcome: dict = {}

        def work():
            try:
                outcome["value"] = self._exchange(pairs)
            except BaseException as e:  # noqa: BLE001 - reported to the caller below
                outcome["error"] = e

        self._last_activity = time.monotonic()
        worker = threading.Thread(target=work, name="meteor-exchange", daemon=True)
        worker.start()
        while True:
            worker.join(0.2)
            if not worker.is_alive():
                break
            if time.monotonic() - self._last_activity > self.timeout:
                raise self._fail(
                    f"METEOR's Java process gave no answer for {self.timeout:.0f} s (hung): killed"
                )
        if "value" in outcome:
            return outcome["value"]
        error = outcome.get("error")
        if isinstance(error, MeteorError):
            raise self._fail(str(error))
        code = self._proc.poll()
        if code is None:
            try:
                code = self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                code = None
        detail = self._stderr_tail()
        if code is None:
            state = f"stopped answering ({error!r})"
        elif code < 0:
            state = f"was killed by signal {-code}"
        else:
            state = f"exited with code {code}"
        raise self._fail(f"METEOR's Java process {state}" + (f": {detail}" if detail else ""))

    def healthy(self) -> bool:
        """Running, and no exchange has failed: fit to score again."""
        return self._failure is None and self._proc.poll() is None

    def close(self) -> None:
        """Stop the JVM (kill, then reap); safe to call twice, never blocks on a lock."""
        proc = self._proc
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
            pass
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except (OSError, ValueError):
                pass
        self._stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# A started JVM spends ~6 s of CPU loading METEOR's paraphrase tables before its first answer, and
# the answers do not depend on what it scored before (each EVAL is computed from the statistics it
# is sent). So a process that finished an evaluation cleanly is kept for the next one in the same
# Python process (``reliance`` scores three prediction files; the test workers score hundreds), and
# closed when Python exits. A process that failed is never kept (``_fail`` has killed it).
_IDLE: list[MeteorProcess] = []
_IDLE_LOCK = threading.Lock()


def acquire(timeout: float = METEOR_TIMEOUT) -> MeteorProcess:
    """A running METEOR process: one an earlier evaluation in this process left, else a new one."""
    if not java_available():
        MeteorProcess(timeout=timeout)  # raises the one-line "needs Java" error
    with _IDLE_LOCK:
        while _IDLE:
            meteor = _IDLE.pop()
            if meteor.healthy():
                meteor.timeout = timeout
                return meteor
            meteor.close()
    return MeteorProcess(timeout=timeout)


def release(meteor: MeteorProcess, reuse: bool = True) -> None:
    """Give back what :func:`acquire` gave: kept for the next evaluation if it is healthy and the
    caller finished cleanly (``reuse``), otherwise stopped."""
    if reuse and meteor.healthy():
        with _IDLE_LOCK:
            _IDLE.append(meteor)
    else:
        meteor.close()


@atexit.register
def _close_idle() -> None:
    with _IDLE_LOCK:
        while _IDLE:
            _IDLE.pop().close()
