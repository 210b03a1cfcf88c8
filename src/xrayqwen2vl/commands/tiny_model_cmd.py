"""`xrayqwen2vl tiny-model`: the tiny random Qwen2-VL for offline runs."""

from __future__ import annotations


def run_tiny_model(args) -> int:
    from ..synthetic.tiny_model import build_tiny_model

    out = build_tiny_model(args.out, seed=args.seed, family=args.family)
    name = "Qwen2-VL" if args.family == "qwen2_vl" else "Qwen2.5-VL"
    print(f"wrote a tiny random {name} (not a trained model) to {out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "tiny-model",
        help="build a tiny randomly initialised Qwen2-VL offline (for the CPU demo and tests)",
        description=(
            "Write a Qwen2-VL with random weights (hidden 64, 2 layers, vision depth 2), a byte-level BPE "
            "tokenizer trained on the spot with the Qwen2-VL special tokens, and the real Qwen2-VL processor "
            "classes. Loads with AutoProcessor/AutoModelForImageTextToText and trains with template qwen2_vl."
        ),
    )
    p.add_argument("--out", required=True, help="output model folder")
    p.add_argument("--seed", type=int, default=0, help="weight initialisation seed (default 0)")
    p.add_argument(
        "--family",
        default="qwen2_vl",
        choices=["qwen2_vl", "qwen2_5_vl"],
        help="architecture: Qwen2-VL (default) or Qwen2.5-VL (window-attention vision tower)",
    )
    p.set_defaults(func=run_tiny_model)
