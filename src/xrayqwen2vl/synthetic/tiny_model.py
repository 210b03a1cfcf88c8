"""Build a tiny, randomly initialised Qwen2-VL offline.

No pretrained weights can be downloaded in CI, so the demo and the tests use a model that has
the real Qwen2-VL architecture, processor classes and special tokens, but tiny dimensions and a
byte-level BPE tokenizer trained on the spot. It loads with ``AutoProcessor`` and
``AutoModelForImageTextToText`` like the real checkpoints, and LLaMA-Factory trains it with
``template: qwen2_vl``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

# The Qwen2-VL control tokens, in the order the real tokenizer numbers them.
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Our own Jinja chat template producing the ChatML layout that LLaMA-Factory's ``qwen2_vl``
# template trains on: each image becomes <|vision_start|><|image_pad|><|vision_end|>.
CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "{% for m in messages %}"
    "<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for part in m['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' or 'video' in part %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in part %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Text the tokenizer is trained on besides the synthetic reports: prompts, section names and the
# characters a Chinese report uses, so both languages tokenise into more than raw bytes.
_EXTRA_CORPUS = [
    "You are a helpful assistant.",
    "Findings: Impression: Comparison: Indication:",
    "Write the radiology report for this chest X-ray.",
    "Describe the findings and the impression of this chest radiograph.",
    "请根据这张胸部X光片写出放射学报告。所见：印象：",
    "心脏大小正常。双肺清晰。未见胸腔积液或气胸。心影增大。肺不张。结节。骨折。支持装置。",
    "纵隔轮廓正常。无急性心肺异常。右侧左侧上叶下叶少量中量大量可能考虑。",
]


@dataclass(frozen=True)
class TinySize:
    """Dimensions of the tiny model (defaults: about 0.6M parameters, trains on 2 CPU cores)."""

    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    vision_depth: int = 2
    vision_embed_dim: int = 64
    vision_num_heads: int = 4
    vocab_target: int = 2048
    head_init_std: float = 0.3


def build_corpus() -> list[str]:
    """Sentences the tokenizer is trained on: the synthetic report vocabulary in both languages."""
    from .text import corpus_sentences

    return corpus_sentences() + _EXTRA_CORPUS


def train_tokenizer(out_dir: Path, vocab_size: int):
    """Train a byte-level BPE tokenizer and wrap it as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = build_corpus()
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        model_max_length=32768,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    fast.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[1:]})
    fast.add_special_tokens({"pad_token": "<|endoftext|>"})
    fast.chat_template = CHAT_TEMPLATE
    return fast


FAMILIES = ("qwen2_vl", "qwen2_5_vl")


def special_token_ids(tokenizer) -> dict[str, int]:
    return {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}


def mrope_section(hidden_size: int, num_attention_heads: int) -> list[int]:
    """Multimodal RoPE splits half the head dimension into temporal, height and width sections
    (Qwen2-VL-7B: head 128 -> [16, 24, 24])."""
    half = hidden_size // num_attention_heads // 2
    return [half - 2 * (half * 3 // 8), half * 3 // 8, half * 3 // 8]


def token_id_kwargs(ids: dict[str, int]) -> dict:
    """The special-token ids a Qwen2-VL / Qwen2.5-VL config carries, from the tokenizer's ids."""
    return dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
    )


def text_config(
    dims: dict, vocab_size: int, ids: dict[str, int], max_position_embeddings: int = 4096
) -> dict:
    """The language-model part of a Qwen2-VL config; ``dims`` holds hidden_size,
    intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads (and
    optionally rms_norm_eps; transformers' default otherwise)."""
    mrope = mrope_section(dims["hidden_size"], dims["num_attention_heads"])
    return dict(
        vocab_size=vocab_size,
        hidden_size=dims["hidden_size"],
        intermediate_size=dims["intermediate_size"],
        num_hidden_layers=dims["num_hidden_layers"],
        num_attention_heads=dims["num_attention_heads"],
        num_key_value_heads=dims["num_key_value_heads"],
        max_position_embeddings=max_position_embeddings,
        **({"rms_norm_eps": dims["rms_norm_eps"]} if "rms_norm_eps" in dims else {}),
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": mrope},
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
    )


def build_tiny_model(
    out_dir: str | Path, seed: int = 0, size: TinySize | None = None, family: str = "qwen2_vl"
) -> Path:
    """Write a tiny random Qwen2-VL (or Qwen2.5-VL: ``family="qwen2_5_vl"``, window-attention
    vision tower) with its tokenizer and processor to ``out_dir``."""
    import torch
    import transformers
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    if family not in FAMILIES:
        raise ValueError(f"family {family!r}: expected one of {', '.join(FAMILIES)}")
    size = size or TinySize()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(out, size.vocab_target)
    ids = special_token_ids(tokenizer)
    vocab = len(tokenizer)
    text = text_config(size.__dict__, (vocab + 63) // 64 * 64, ids)
    if family == "qwen2_vl":
        config_cls, model_cls, processor_cls = (
            "Qwen2VLConfig",
            "Qwen2VLForConditionalGeneration",
            "Qwen2VLProcessor",
        )
        vision = dict(
            depth=size.vision_depth,
            embed_dim=size.vision_embed_dim,
            hidden_size=size.hidden_size,
            num_heads=size.vision_num_heads,
            mlp_ratio=2,
        )
    else:
        config_cls, model_cls = "Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration"
        processor_cls = "Qwen2_5_VLProcessor"
        vision = dict(
            depth=size.vision_depth,
            hidden_size=size.vision_embed_dim,
            intermediate_size=2 * size.vision_embed_dim,
            num_heads=size.vision_num_heads,
            out_hidden_size=size.hidden_size,
            fullatt_block_indexes=[size.vision_depth - 1],
            window_size=112,
        )
    config = getattr(transformers, config_cls)(text_config=text, vision_config=vision, **token_id_kwargs(ids))
    torch.manual_seed(seed)
    model = getattr(transformers, model_cls)(config).to(torch.float32)
    # The final RMSNorm fixes the hidden state's norm (about sqrt(hidden)), so with the default
    # 0.02 init of the output head every logit stays within about +-1.3 and a frozen head (LoRA
    # trains only the inner layers) cannot express a confident next token: loss stalls near
    # ln(vocab). A wider head, as trained models have, lets LoRA fine-tuning learn.
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, size.head_init_std)
    model.generation_config.eos_token_id = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    model.save_pretrained(out, safe_serialization=True)

    image_processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=256 * 256)
    video_processor = Qwen2VLVideoProcessor(min_pixels=56 * 56, max_pixels=256 * 256)
    processor = getattr(transformers, processor_cls)(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    (out / "tiny_model.json").write_text(
        json.dumps(
            {"family": family, "seed": seed, "parameters": n_params, "vocab": vocab, **size.__dict__},
            indent=2,
        )
        + "\n"
    )
    return out
