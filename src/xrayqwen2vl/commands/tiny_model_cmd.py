"""`xrayqwen2vl tiny-model`: a tiny random Qwen2-VL, Qwen2.5-VL or Qwen3-VL for offline runs."""

from __future__ import annotations


def run_tiny_model(args) -> int:
    from ..synthetic.tiny_model import FAMILIES, build_tiny_model

    out = build_tiny_model(args.out, seed=args.seed, family=args.family)
    family = FAMILIES[args.family]
    print(
        f"wrote a tiny random {family.title} (not a trained model) to {out}; LLaMA-Factory template {family.template}"
    )
    return 0


def register(sub) -> None:
    from ..synthetic.tiny_model import FAMILIES

    p = sub.add_parser(
        "tiny-model",
        help="build a tiny randomly initialised Qwen2-VL (or Qwen2.5-VL, Qwen3-VL) offline, for the CPU demo and tests",
        description=(
            "Write a Qwen VL model with random weights (hidden 64, 2 layers, vision depth 2), a byte-level BPE "
            "tokenizer trained on the spot with the Qwen special tokens, and the real processor classes of its "
            "family. Loads with AutoProcessor/AutoModelForImageTextToText and trains with the family's "
            "LLaMA-Factory template: qwen2_vl for Qwen2-VL and Qwen2.5-VL, qwen3_vl_nothink for Qwen3-VL."
        ),
    )
    p.add_argument("--out", required=True, help="output model folder")
    p.add_argument("--seed", type=int, default=0, help="weight initialisation seed (default 0)")
    p.add_argument(
        "--family",
        default="qwen2_vl",
        choices=list(FAMILIES),
        help="architecture: Qwen2-VL (default), Qwen2.5-VL (window-attention vision tower) or Qwen3-VL "
        "(patch 16, DeepStack)",
    )
    p.set_defaults(func=run_tiny_model)
