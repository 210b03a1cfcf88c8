"""`xrayqwen2vl translate`: English datasets to Chinese through an OpenAI-compatible endpoint."""

from __future__ import annotations

import sys
from pathlib import Path

MAX_DETAIL_LINES = 50


def run_translate(args) -> int:
    from ..data.translate import (
        Cache,
        TranslateError,
        check_endpoint,
        make_client,
        refuse_outputs_over_inputs,
        translate_datasets,
        translate_one,
    )

    out = Path(args.out)
    refuse_outputs_over_inputs([Path(p) for p in args.input], out, args.cache)
    cache = Cache(Path(args.cache) if args.cache else out / "translations.jsonl")
    client = make_client(args.base_url, args.api_key, args.timeout)
    try:
        check_endpoint(client, args.base_url)
        result = translate_datasets(
            [Path(p) for p in args.input],
            out,
            lambda text: translate_one(client, args.model, text, args.retries, args.backoff, args.max_tokens),
            cache,
            concurrency=args.concurrency,
            prompt=args.prompt,
            progress=not args.quiet,
        )
    except TranslateError as e:
        for line in e.details[:MAX_DETAIL_LINES]:  # one line per failed text, naming its sample
            print(f"xrayqwen2vl translate: failed: {line}", file=sys.stderr)
        if len(e.details) > MAX_DETAIL_LINES:
            print(f"xrayqwen2vl translate: … and {len(e.details) - MAX_DETAIL_LINES} more", file=sys.stderr)
        raise ValueError(str(e)) from None
    print(
        f"texts {result['texts']}: {result['cached']} from the cache, {result['translated']} translated now "
        f"(cache: {cache.path})"
    )
    for name, n in result["files"].items():
        print(f"wrote {out}/{name} ({n} samples), dataset_info.json entry {Path(name).stem}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "translate",
        help="translate prepared English datasets into Chinese through an OpenAI-compatible endpoint",
        description=(
            "Translate the assistant turns (section by section) of prepared ShareGPT files with any "
            "OpenAI-compatible chat endpoint (vLLM, llamafactory-cli api, a hosted API). Results go to a "
            "JSONL cache keyed by the English text as they arrive, so a killed run resumes without losing "
            "or repeating work; the cache is also what `prepare --lang zh --translations` reads. Writes "
            "OUT/<name>_zh_<split>.json with dataset_info.json entries. Machine translation of medical "
            "text needs checking by a reader of both languages before use."
        ),
    )
    p.add_argument(
        "--input", action="append", required=True, help="prepared English ShareGPT file (repeatable)"
    )
    p.add_argument("--out", required=True, help="output folder (a LLaMA-Factory dataset_dir)")
    p.add_argument("--base-url", required=True, help="endpoint, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--model", required=True, help="model name the endpoint serves")
    p.add_argument(
        "--api-key", default=None, help="API key (default: the OPENAI_API_KEY variable, else none)"
    )
    p.add_argument("--cache", help="translation cache (default OUT/translations.jsonl)")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight at once (default 4)")
    p.add_argument("--retries", type=int, default=5, help="retries per text on transient errors (default 5)")
    p.add_argument(
        "--backoff", type=float, default=1.0, help="seconds before the first retry, doubling (default 1)"
    )
    p.add_argument("--timeout", type=float, default=120, help="seconds per request (default 120)")
    p.add_argument("--max-tokens", type=int, help="cap on the tokens of one translation")
    p.add_argument("--prompt", help="user prompt of the Chinese samples (default: the fixed Chinese prompt)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_translate)
