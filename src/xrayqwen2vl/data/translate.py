"""English to Chinese translation of prepared datasets through any OpenAI-compatible endpoint.

The unit of translation is one report section (the "Findings" or "Impression" text of a target,
or a whole undivided caption). Each result is appended at once to a JSONL cache
``{"source": English, "translation": Chinese}`` keyed by the source text, so a killed run loses
nothing and a rerun sends only what is missing; the same file is what
``prepare --lang zh --translations`` reads. Requests go out with a concurrency limit and are
retried with exponential backoff on connection errors, timeouts, rate limits and server errors.

Replies are not trusted (doc/security.md): the body is parsed here, not by the client library,
so a reply that is not JSON, has no ``choices[0].message.content`` or whose content is not text
fails that one text with a one-line reason naming the URL and the start of the reply, and the
other answers are still cached. Control characters (NUL included) are dropped, and an answer
longer than ``MAX_ANSWER_RATIO`` times its source plus ``MAX_ANSWER_EXTRA`` characters (a model
repeating itself, a hostile server) is refused rather than stored.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from ..fileio import atomic_write_json, check_regular_file, loads_json, refuse_output_over_inputs
from .records import InputFileError
from .text import DEFAULT_PROMPTS, SECTION_NAMES, build_target, clean_section, placeholder_in

SYSTEM_PROMPT = (
    "You translate chest X-ray radiology reports from English into Simplified Chinese. "
    "Keep every statement, negation, side (left/right) and measurement; keep XXXX as it is. "
    "Reply with the translation only."
)
# A Chinese translation is shorter than its English source in characters; four times the source
# (plus a margin for very short texts) is far beyond any honest answer.
MAX_ANSWER_RATIO = 4
MAX_ANSWER_EXTRA = 200
# C0 controls but tab and newlines, DEL, and the C1 controls (\x9b is a terminal's CSI).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_FINDINGS = SECTION_NAMES["en"]["findings"] + ": "
_IMPRESSION = SECTION_NAMES["en"]["impression"] + ": "


class TranslateError(RuntimeError):
    """One text (or, with ``details``, a run) that could not be translated."""

    def __init__(self, message: str, details: list[str] | None = None):
        super().__init__(message)
        self.details = details or []


def split_target(text: str) -> dict[str, str]:
    """The sections of one of our English targets ("Findings: … Impression: …"), or
    ``{"text": …}`` for an undivided one (XrayGLM captions)."""
    if text.startswith(_IMPRESSION):
        return {"impression": text[len(_IMPRESSION) :]}
    if text.startswith(_FINDINGS):
        body = text[len(_FINDINGS) :]
        if " " + _IMPRESSION in body:
            findings, impression = body.split(" " + _IMPRESSION, 1)
            return {"findings": findings, "impression": impression}
        return {"findings": body}
    return {"text": text}


# How every line of a cache we write begins (``Cache.add``): a line cut by a kill is dropped only
# when it begins so, and only after every complete line has been checked.
_CACHE_LINE_START = b'{"source": '


class Cache:
    """The JSONL translation cache; appends are flushed and synced one line at a time.

    The file is validated before anything is changed: every complete line must be a
    ``{"source": …, "translation": …}`` record. The one repair, dropping a last line cut by a
    kill, is made only to a file that is such a cache, on a line that began as one of ours; any
    other file named by ``--cache`` is an error naming it and its line, and is left untouched."""

    def __init__(self, path: Path):
        self.path = path
        self.table: dict[str, str] = {}
        self.lock = threading.Lock()
        if path.exists():
            check_regular_file(path, "translation cache")
            data = path.read_bytes()
            lines = data.split(b"\n")
            cut = lines.pop()  # b"" when the file ends with a newline
            for n, line in enumerate(lines, start=1):
                self._load_line(n, line)
            if cut:
                self._repair_cut(len(lines) + 1, cut, len(data))
        path.parent.mkdir(parents=True, exist_ok=True)

    def _repair_cut(self, n: int, cut: bytes, size: int) -> None:
        """The last line has no newline. A whole record gets its newline; the start of one of
        ours (a kill mid-write) is dropped; anything else is an error and the file stays as is."""
        try:
            self._load_line(n, cut)
        except InputFileError:
            if not cut.startswith(_CACHE_LINE_START) or b"\n" in cut:
                raise
            with open(self.path, "r+b") as f:  # a line cut by a kill: drop it
                f.truncate(size - len(cut))
            return
        with open(self.path, "ab") as f:
            f.write(b"\n")

    def _load_line(self, n: int, line: bytes) -> None:
        if not line.strip():
            return
        where = f"{self.path}: line {n}"
        try:
            obj = loads_json(line.decode("utf-8"), where)
            source, translation = obj["source"], obj["translation"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            source = translation = None
        if not isinstance(source, str) or not isinstance(translation, str):
            raise InputFileError(f'{where}: expected {{"source": …, "translation": …}}')
        self.table[source] = translation

    def add(self, source: str, translation: str) -> None:
        line = json.dumps({"source": source, "translation": translation}, ensure_ascii=False) + "\n"
        with self.lock:
            if source in self.table:
                return
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            self.table[source] = translation


def make_client(base_url: str, api_key: str | None, timeout: float):
    """The endpoint's client; ``timeout`` is a deadline for each request as a whole (connect,
    send, headers and body), not only for each socket read: a server trickling a byte a second
    cannot hold a request longer (see ``_deadline_transport``)."""
    import httpx
    import openai

    return openai.OpenAI(
        base_url=base_url,
        api_key=api_key or os.environ.get("OPENAI_API_KEY") or "none",
        timeout=timeout,
        max_retries=0,
        http_client=httpx.Client(transport=_deadline_transport(timeout), timeout=timeout),
    )


# The deadline of the request this thread is making (a request runs in the thread that makes
# it, body included, as the client reads the whole body before it returns).
_request = threading.local()


def _deadline_transport(seconds: float):
    """An httpx transport whose socket reads and writes are each given at most the time left
    until the request's deadline; past it, a read or write fails as a timeout (retried like any
    timeout). httpx has no total timeout, only one per operation, hence this."""
    import httpcore
    import httpx

    def left(timeout: float | None, error) -> float | None:
        at = getattr(_request, "deadline", None)
        if at is None:
            return timeout
        remaining = at - time.monotonic()
        if remaining <= 0:
            raise error(f"no answer within the {seconds:g} s of --timeout")
        return remaining if timeout is None else min(timeout, remaining)

    class Stream(httpcore.NetworkStream):
        def __init__(self, stream):
            self.stream = stream

        def read(self, max_bytes, timeout=None):
            return self.stream.read(max_bytes, left(timeout, httpcore.ReadTimeout))

        def write(self, buffer, timeout=None):
            self.stream.write(buffer, left(timeout, httpcore.WriteTimeout))

        def close(self):
            self.stream.close()

        def start_tls(self, ssl_context, server_hostname=None, timeout=None):
            return Stream(
                self.stream.start_tls(ssl_context, server_hostname, left(timeout, httpcore.ConnectTimeout))
            )

        def get_extra_info(self, info):
            return self.stream.get_extra_info(info)

    class Backend(httpcore.SyncBackend):
        def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
            timeout = left(timeout, httpcore.ConnectTimeout)
            return Stream(super().connect_tcp(host, port, timeout, local_address, socket_options))

    class Transport(httpx.HTTPTransport):
        def __init__(self):
            super().__init__()
            self._pool = httpcore.ConnectionPool(
                ssl_context=httpx.create_ssl_context(), network_backend=Backend()
            )

        def handle_request(self, request):
            _request.deadline = time.monotonic() + seconds
            return super().handle_request(request)

    return Transport()


def _retryable(e: Exception) -> bool:
    import openai

    if isinstance(e, openai.APIConnectionError | openai.APITimeoutError | openai.RateLimitError):
        return True
    return isinstance(e, openai.APIStatusError) and e.status_code >= 500


def _snippet(text: str, n: int = 80) -> str:
    return repr(text[:n]) + ("…" if len(text) > n else "")


def _reply_content(raw, text: str) -> str:
    """``choices[0].message.content`` of a raw chat-completion reply, or TranslateError naming
    the URL and the start of what came back."""
    url, body = raw.http_request.url, raw.http_response.text
    for_text = f"for {_snippet(text, 60)}"
    try:
        obj = loads_json(body, url)
    except (ValueError, RecursionError):
        raise TranslateError(f"{url}: reply is not JSON ({_snippet(body)}) {for_text}") from None
    try:
        content = obj["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise TranslateError(
            f"{url}: reply has no choices[0].message.content ({_snippet(body)}) {for_text}"
        ) from None
    if not isinstance(content, str | None):
        raise TranslateError(f"{url}: reply content is a {type(content).__name__}, not text, {for_text}")
    return content or ""


def check_answer(text: str, answer: str) -> str:
    """The cleaned answer for ``text``, or TranslateError: empty, a placeholder, too long."""
    out = clean_section(_CONTROL.sub("", answer))
    if not out:
        raise TranslateError(f"empty translation for {_snippet(text, 60)}")
    limit = MAX_ANSWER_RATIO * len(text) + MAX_ANSWER_EXTRA
    if len(out) > limit:
        raise TranslateError(
            f"translation of {_snippet(text, 60)} has {len(out)} characters, more than {limit} "
            f"({MAX_ANSWER_RATIO} times the {len(text)} of the text + {MAX_ANSWER_EXTRA}); refused"
        )
    bad = placeholder_in(out)
    if bad:
        raise TranslateError(f"translation of {_snippet(text, 60)} contains a literal {bad}")
    return out


def translate_one(client, model: str, text: str, retries: int, backoff: float, max_tokens: int | None) -> str:
    import openai

    for attempt in range(retries + 1):
        try:
            raw = client.chat.completions.with_raw_response.create(
                model=model,
                messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": text}],
                temperature=0,
                **({"max_tokens": max_tokens} if max_tokens else {}),
            )
            return check_answer(text, _reply_content(raw, text))
        except openai.APIError as e:
            if attempt == retries or not _retryable(e):
                raise TranslateError(f"{type(e).__name__}: {e}") from None
            time.sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")


def check_endpoint(client, base_url: str) -> None:
    """Fail at once, with the address, when nothing answers there."""
    import openai

    try:
        client.models.with_raw_response.list()  # what it answers is not parsed: any answer will do
    except (openai.APIConnectionError, openai.APITimeoutError) as e:
        raise TranslateError(f"cannot reach the endpoint at {base_url} ({type(e).__name__}: {e})") from None
    except openai.APIStatusError as e:
        if e.status_code in (401, 403):
            raise TranslateError(f"{base_url}: HTTP {e.status_code}, check --api-key") from None
        # some servers have no /models route; the first translation will tell


def out_name(input_path: Path) -> str:
    """openi_train.json -> openi_zh_train.json; other.json -> other_zh.json."""
    stem = input_path.stem
    for split in ("train", "val", "test"):
        if stem.endswith("_" + split):
            return f"{stem[: -len(split) - 1]}_zh_{split}.json"
    return f"{stem}_zh.json"


def refuse_outputs_over_inputs(inputs: list[Path], out_dir: Path, cache: str | None) -> None:
    """Before the cache is opened: no file translate writes (the Chinese datasets, the
    dataset_info.json beside them, the cache it appends to) is one of the --input files, and
    the --cache is not a file it writes."""
    outputs = {f"OUT/{out_name(p)}": out_dir / out_name(p) for p in inputs}
    outputs["OUT/dataset_info.json"] = out_dir / "dataset_info.json"
    given = {f"--input {p}": p for p in inputs}
    refuse_output_over_inputs(outputs, {**given, "--cache": cache})
    refuse_output_over_inputs({"--cache": cache or out_dir / "translations.jsonl"}, given)


def translate_datasets(
    inputs: list[Path],
    out_dir: Path,
    translate: Callable[[str], str],
    cache: Cache,
    concurrency: int = 4,
    prompt: str | None = None,
    progress: bool = True,
) -> dict:
    """Translate every assistant turn of the ShareGPT files ``inputs`` and write
    ``out_dir/<name>_zh_<split>.json`` with dataset_info.json entries. Returns counts."""
    from tqdm import tqdm

    from .writers import dataset_info_entry, read_json_object

    datasets = []
    for path in inputs:
        check_regular_file(path, "dataset file")
        try:
            data = loads_json(path.read_text(encoding="utf-8"), str(path))
        except (OSError, UnicodeDecodeError) as e:
            raise InputFileError(f"{path}: cannot read ({e})") from None
        except json.JSONDecodeError as e:
            raise InputFileError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(data, list):
            raise InputFileError(f"{path}: expected a JSON list of ShareGPT samples")
        for i, s in enumerate(data):
            ok = isinstance(s, dict) and isinstance(s.get("messages"), list) and len(s["messages"]) == 2
            if not ok or s["messages"][1].get("role") != "assistant":
                raise InputFileError(f"{path}: sample {i}: expected a user turn and an assistant turn")
        datasets.append((path, data))
    sources: list[str] = []
    used_by: dict[str, list[str]] = {}  # text -> "FILE: sample ID" of each sample using it
    for path, data in datasets:
        for i, s in enumerate(data):
            for text in split_target(s["messages"][1]["content"]).values():
                sources.append(text)
                used_by.setdefault(text, []).append(f"{path}: sample {s.get('id', i)}")
    todo = list(dict.fromkeys(x for x in sources if x not in cache.table))
    cached = len(set(sources)) - len(todo)
    failures: dict[str, str] = {}  # text -> reason
    bar = tqdm(total=len(todo), desc="translate", unit="text", disable=not progress)
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = {pool.submit(translate, text): text for text in todo}
        for fut in as_completed(futures):
            try:
                cache.add(futures[fut], fut.result())
            except TranslateError as e:
                failures[futures[fut]] = str(e)
            bar.update()
    bar.close()
    if failures:
        details = []
        for text in todo:  # in input order
            if text in failures:
                users = used_by[text]
                more = f" (and {len(users) - 1} more samples)" if len(users) > 1 else ""
                details.append(f"{users[0]}{more}: {failures[text]}")
        raise TranslateError(
            f"{len(failures)} of {len(todo)} texts failed (kept {len(todo) - len(failures)} in {cache.path}; "
            f"rerun to retry them); first: {details[0]}",
            details,
        )
    zh_prompt = prompt if prompt is not None else DEFAULT_PROMPTS["zh"]
    out_dir.mkdir(parents=True, exist_ok=True)
    info = read_json_object(out_dir / "dataset_info.json")
    written = {}
    for path, data in datasets:
        out = []
        for s in data:
            parts = split_target(s["messages"][1]["content"])
            zh = {k: cache.table[v] for k, v in parts.items()}
            target = (
                zh["text"]
                if "text" in zh
                else build_target(zh.get("findings", ""), zh.get("impression", ""), "zh", "both")
            )
            n_img = s["messages"][0]["content"].count("<image>")
            images = [
                os.path.relpath(
                    os.path.join(os.path.abspath(path.parent), p), os.path.abspath(out_dir)
                ).replace(os.sep, "/")
                for p in s.get("images", [])
            ]
            out.append(
                {
                    **{k: v for k, v in s.items() if k not in ("messages", "images")},
                    "messages": [
                        {"role": "user", "content": "<image>" * n_img + zh_prompt},
                        {"role": "assistant", "content": target},
                    ],
                    "images": images,
                }
            )
        name = out_name(path)
        atomic_write_json(out_dir / name, out)
        info[Path(name).stem] = dataset_info_entry(name)
        written[name] = len(out)
    atomic_write_json(out_dir / "dataset_info.json", dict(sorted(info.items())))
    return {"texts": len(set(sources)), "cached": cached, "translated": len(todo), "files": written}
