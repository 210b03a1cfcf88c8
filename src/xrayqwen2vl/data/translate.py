"""English to Chinese translation of prepared datasets through any OpenAI-compatible endpoint.

The unit of translation is one report section (the "Findings" or "Impression" text of a target,
or a whole undivided caption). Each result is appended at once to a JSONL cache
``{"source": English, "translation": Chinese}`` keyed by the source text, so a killed run loses
nothing and a rerun sends only what is missing; the same file is what
``prepare --lang zh --translations`` reads. Requests go out with a concurrency limit and are
retried with exponential backoff on connection errors, timeouts, rate limits and server errors.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from ..fileio import atomic_write_json
from .records import InputFileError
from .text import DEFAULT_PROMPTS, SECTION_NAMES, build_target, clean_section, placeholder_in

SYSTEM_PROMPT = (
    "You translate chest X-ray radiology reports from English into Simplified Chinese. "
    "Keep every statement, negation, side (left/right) and measurement; keep XXXX as it is. "
    "Reply with the translation only."
)
_FINDINGS = SECTION_NAMES["en"]["findings"] + ": "
_IMPRESSION = SECTION_NAMES["en"]["impression"] + ": "


class TranslateError(RuntimeError):
    pass


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


class Cache:
    """The JSONL translation cache; appends are flushed and synced one line at a time."""

    def __init__(self, path: Path):
        self.path = path
        self.table: dict[str, str] = {}
        self.lock = threading.Lock()
        if path.exists():
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):  # a line cut by a kill: drop it
                data = data[: data.rfind(b"\n") + 1]
                with open(path, "r+b") as f:
                    f.truncate(len(data))
            for n, line in enumerate(data.decode("utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    self.table[obj["source"]] = obj["translation"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise InputFileError(
                        f'{path}: line {n}: expected {{"source": …, "translation": …}}'
                    ) from None
        path.parent.mkdir(parents=True, exist_ok=True)

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
    import openai

    return openai.OpenAI(
        base_url=base_url,
        api_key=api_key or os.environ.get("OPENAI_API_KEY") or "none",
        timeout=timeout,
        max_retries=0,
    )


def _retryable(e: Exception) -> bool:
    import openai

    if isinstance(e, openai.APIConnectionError | openai.APITimeoutError | openai.RateLimitError):
        return True
    return isinstance(e, openai.APIStatusError) and e.status_code >= 500


def translate_one(client, model: str, text: str, retries: int, backoff: float, max_tokens: int | None) -> str:
    import openai

    for attempt in range(retries + 1):
        try:
            resp = client.chat.completions.create(
                model=model,
                messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": text}],
                temperature=0,
                **({"max_tokens": max_tokens} if max_tokens else {}),
            )
            out = clean_section(resp.choices[0].message.content or "")
            if not out:
                raise TranslateError(f"empty translation for {text[:60]!r}")
            bad = placeholder_in(out)
            if bad:
                raise TranslateError(f"translation of {text[:60]!r} contains a literal {bad}")
            return out
        except openai.APIError as e:
            if attempt == retries or not _retryable(e):
                raise TranslateError(f"{type(e).__name__}: {e}") from None
            time.sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")


def check_endpoint(client, base_url: str) -> None:
    """Fail at once, with the address, when nothing answers there."""
    import openai

    try:
        client.models.list()
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

    from .prepare import _read_json_object, dataset_info_entry

    datasets = []
    for path in inputs:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
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
    for _, data in datasets:
        for s in data:
            sources.extend(split_target(s["messages"][1]["content"]).values())
    todo = list(dict.fromkeys(x for x in sources if x not in cache.table))
    cached = len(set(sources)) - len(todo)
    failures: list[str] = []
    bar = tqdm(total=len(todo), desc="translate", unit="text", disable=not progress)
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = {pool.submit(translate, text): text for text in todo}
        for fut in as_completed(futures):
            try:
                cache.add(futures[fut], fut.result())
            except TranslateError as e:
                failures.append(str(e))
            bar.update()
    bar.close()
    if failures:
        raise TranslateError(
            f"{len(failures)} of {len(todo)} texts failed (kept {len(todo) - len(failures)} in {cache.path}; "
            f"rerun to retry them); first: {failures[0]}"
        )
    zh_prompt = prompt if prompt is not None else DEFAULT_PROMPTS["zh"]
    out_dir.mkdir(parents=True, exist_ok=True)
    info = _read_json_object(out_dir / "dataset_info.json")
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
