"""`xrayqwen2vl rexrank-predict`: a ReXrank submission file from a leaderboard test JSON, and the
organisers' ``inference.py`` that makes it (``serve/leaderboard.py`` does the work)."""

from __future__ import annotations

import os
import sys


def _here(path: str | None) -> str | None:
    """A path that exists from here, made absolute (the predict runs start in the repository;
    a path inside it stays relative to it); anything else as given (a hub model id, or a path of
    the repository such as configs/…)."""
    from ..serve.leaderboard import REPO

    if not path or not os.path.exists(path):
        return path
    full = os.path.abspath(path)
    inside = os.path.relpath(full, REPO)
    return full if inside.startswith("..") else inside


def _job(args):
    from ..serve.leaderboard import DEFAULT_CONFIG, LeaderboardJob, model_overrides

    if not args.model and not args.config:
        raise ValueError("give --model (a merged or base model) or --config (a predict config), or both")
    overrides = model_overrides(_here(args.model), _here(args.adapter)) + list(args.set or [])
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected key=value")
    return LeaderboardJob(
        input_json=args.input_json or "",
        output_json=args.output_json or "",
        images_dir=args.images_dir or "",
        config=_here(args.config) or DEFAULT_CONFIG,
        overrides=overrides,
        track=args.track,
        chunk_size=args.chunk_size,
        with_context=args.with_context,
        work_dir=args.work_dir,
    )


def run_rexrank_predict(args) -> int:
    from ..serve.leaderboard import predict_leaderboard, write_inference_script

    job = _job(args)
    if args.write_script:
        path = write_inference_script(args.write_script, job)
        print(
            f"wrote {path}: python {path.name} --input_json_file IN --save_json_file OUT --img_root_dir ROOT"
        )
        return 0
    missing = [f for f in ("input_json", "output_json", "images_dir") if not getattr(args, f)]
    if missing:
        raise ValueError("needs " + " and ".join("--" + f.replace("_", "-") for f in missing))
    say = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    result = predict_leaderboard(job, say)
    print(
        f"wrote {args.output_json}: {result['studies']} studies, {result['track']} track "
        f"({result['chunks']} chunks, {result['chunks_kept']} kept from an earlier run; work folder "
        f"{result['work_dir']})"
    )
    if result["empty_generations"]:
        print(f"  {result['empty_generations']} studies got an empty generation", file=sys.stderr)
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "rexrank-predict",
        help="predict a ReXrank leaderboard test JSON (the leaderboard's output format), or write its inference.py",
        description=(
            "Run the model on every study of a ReXrank test JSON through scripts/predict.sh (LLaMA-Factory's "
            "batched do_predict, the same path as predict), in chunks kept on disk so a rerun resumes, and write "
            "the input JSON with a model_prediction per study: the findings (--track findings) or "
            '"Findings: … Impression: …" (--track full). With --write-script, write the organisers\' '
            "inference.py (--input_json_file, --save_json_file, --img_root_dir) that runs this command."
        ),
    )
    p.add_argument("--input-json", help="the leaderboard's test JSON (e.g. ReXRank_MIMICCXR_test.json)")
    p.add_argument("--output-json", help="the submission file to write")
    p.add_argument("--images-dir", help="the root of the JSON's image paths (a leading '/' is read under it)")
    p.add_argument("--model", help="model folder (merged, or the base with --adapter)")
    p.add_argument("--adapter", help="LoRA adapter folder (with --model)")
    p.add_argument(
        "--config",
        help="predict config (configs/predict/*.yaml; default configs/predict/qwen2vl_7b_lora_sft.yaml with --model)",
    )
    p.add_argument(
        "--track", choices=["findings", "full"], default="full", help="leaderboard track (default full)"
    )
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override of the predict config (repeatable)"
    )
    p.add_argument("--chunk-size", type=int, default=256, help="studies per predict run (default 256)")
    p.add_argument(
        "--with-context", action="store_true", help="the studies' indication and comparison before the prompt"
    )
    p.add_argument("--work-dir", help="chunks and their predictions (default: OUTPUT_JSON.work)")
    p.add_argument("--write-script", metavar="PATH", help="write inference.py for the organisers and stop")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run_rexrank_predict)
