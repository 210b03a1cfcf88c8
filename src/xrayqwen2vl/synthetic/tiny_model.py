"""Build a tiny, randomly initialised Qwen2-VL, Qwen2.5-VL or Qwen3-VL offline.

No pretrained weights can be downloaded in CI, so the demo and the tests use a model that has
the real architecture, processor classes and special tokens of its family, but tiny dimensions
and a byte-level BPE tokenizer trained on the spot. It loads with ``AutoProcessor`` and
``AutoModelForImageTextToText`` like the real checkpoints, and LLaMA-Factory trains it with the
template of its family (``FAMILIES``): ``qwen2_vl`` for Qwen2-VL and Qwen2.5-VL,
``qwen3_vl_nothink`` for Qwen3-VL (the Instruct models' template).
"""

from __future__ import annotations

import json
from collections.abc import Callable
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


def chat_template(default_system: str | None) -> str:
    """Our own Jinja chat template: the ChatML layout LLaMA-Factory's Qwen VL templates train on,
    each image as <|vision_start|><|image_pad|><|vision_end|>. ``default_system``: the system turn
    written when the messages have none (Qwen2-VL's "You are a helpful assistant."; Qwen3-VL
    writes none, like LLaMA-Factory's ``qwen3_vl_nothink``, which has no default system)."""
    system = (
        "{% if messages[0]['role'] != 'system' %}"
        f"<|im_start|>system\n{default_system}<|im_end|>\n"
        "{% endif %}"
        if default_system
        else ""
    )
    return system + (
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


# Qwen2-VL's and Qwen2.5-VL's: a default system turn, as LLaMA-Factory's ``qwen2_vl`` template.
CHAT_TEMPLATE = chat_template("You are a helpful assistant.")

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


def train_tokenizer(
    out_dir: Path, vocab_size: int, template: str = CHAT_TEMPLATE, thought_tokens: bool = False
):
    """Train a byte-level BPE tokenizer and wrap it as a transformers fast tokenizer with the Qwen
    control tokens; ``thought_tokens``: also Qwen3's <think> and </think> (added, not special)."""
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
    if thought_tokens:
        fast.add_tokens(["<think>", "</think>"])
    fast.chat_template = template
    return fast


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


def qwen2_vision(size: TinySize) -> dict:
    """Qwen2-VL's vision tower: patch 14, 2x2 merge, full attention in every block."""
    return dict(
        depth=size.vision_depth,
        embed_dim=size.vision_embed_dim,
        hidden_size=size.hidden_size,
        num_heads=size.vision_num_heads,
        mlp_ratio=2,
    )


def _vision_tower(size: TinySize) -> dict:
    """The vision-config keys Qwen2.5-VL and Qwen3-VL share (Qwen2-VL names them otherwise)."""
    return dict(
        depth=size.vision_depth,
        hidden_size=size.vision_embed_dim,
        intermediate_size=2 * size.vision_embed_dim,
        num_heads=size.vision_num_heads,
        out_hidden_size=size.hidden_size,
    )


def qwen2_5_vision(size: TinySize) -> dict:
    """Qwen2.5-VL's: window attention, full attention only in the blocks listed (the last here)."""
    return dict(_vision_tower(size), fullatt_block_indexes=[size.vision_depth - 1], window_size=112)


def qwen3_vision(size: TinySize) -> dict:
    """Qwen3-VL's: patch 16, 2x2 merge, learnt position embeddings (a 16x16 grid here, 48x48 in
    the real model, interpolated to each image's grid) and DeepStack: the features of the listed
    vision blocks (8, 16, 24 of 27 in Qwen3-VL-8B) go through mergers of their own and are added to
    the hidden states of the first language-model layers; here the first block of two, feeding
    layer 0."""
    return dict(
        _vision_tower(size),
        patch_size=16,
        spatial_merge_size=2,
        temporal_patch_size=2,
        num_position_embeddings=256,
        deepstack_visual_indexes=[0],
    )


def qwen3_text(dims: dict, vocab_size: int, ids: dict[str, int]) -> dict:
    """Qwen3-VL's language model: an explicit head_dim and interleaved multimodal RoPE, whose
    height and width sections each take 5/16 of half the head (Qwen3-VL-8B: head 128 ->
    [24, 20, 20])."""
    text = text_config(dims, vocab_size, ids)
    head_dim = dims["hidden_size"] // dims["num_attention_heads"]
    half = head_dim // 2
    hw = half * 5 // 16
    text["head_dim"] = head_dim
    text["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": 5000000.0,
        "mrope_section": [half - 2 * hw, hw, hw],
        "mrope_interleaved": True,
    }
    return text


@dataclass(frozen=True)
class Family:
    """What differs between the Qwen VL families for the tiny model: the transformers classes, the
    image processor (patch size, normalisation), the chat template and the vision tower."""

    title: str
    template: str  # LLaMA-Factory's template for the (instruct) model
    config_cls: str
    model_cls: str
    processor_cls: str
    video_processor_cls: str
    patch_size: int
    image_mean: tuple | None  # None: the image processor's default (OpenAI CLIP's)
    default_system: str | None
    vision: Callable[[TinySize], dict]  # the vision_config
    text: Callable[..., dict] = text_config  # (dims, vocab, ids) -> the text_config

    @property
    def pixels_per_token(self) -> int:
        """Pixels of one visual token after the 2x2 merge: 28x28 (patch 14), 32x32 (patch 16)."""
        return (2 * self.patch_size) ** 2


_QWEN2 = dict(video_processor_cls="Qwen2VLVideoProcessor", patch_size=14, image_mean=None)
FAMILIES = {
    "qwen2_vl": Family(
        title="Qwen2-VL",
        template="qwen2_vl",
        config_cls="Qwen2VLConfig",
        model_cls="Qwen2VLForConditionalGeneration",
        processor_cls="Qwen2VLProcessor",
        default_system="You are a helpful assistant.",
        vision=qwen2_vision,
        **_QWEN2,
    ),
    "qwen2_5_vl": Family(
        title="Qwen2.5-VL",
        template="qwen2_vl",
        config_cls="Qwen2_5_VLConfig",
        model_cls="Qwen2_5_VLForConditionalGeneration",
        processor_cls="Qwen2_5_VLProcessor",
        default_system="You are a helpful assistant.",
        vision=qwen2_5_vision,
        **_QWEN2,
    ),
    "qwen3_vl": Family(
        title="Qwen3-VL",
        template="qwen3_vl_nothink",
        config_cls="Qwen3VLConfig",
        model_cls="Qwen3VLForConditionalGeneration",
        processor_cls="Qwen3VLProcessor",
        default_system=None,
        vision=qwen3_vision,
        video_processor_cls="Qwen3VLVideoProcessor",
        patch_size=16,
        image_mean=(0.5, 0.5, 0.5),
        text=qwen3_text,
    ),
}


def family_of(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"family {name!r}: expected one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def processors(family: Family):
    """The image and video processors of the family, for images of at most 256x256 pixels (the
    tiny configs' image_max_pixels 65536) and at least two merged patches a side. The sizes are
    passed as a fresh dict: Qwen2VLImageProcessor(min_pixels=…) writes into the class's default."""
    import transformers

    side = 2 * family.patch_size * 2
    kwargs = dict(
        size={"shortest_edge": side * side, "longest_edge": 256 * 256},
        patch_size=family.patch_size,
        merge_size=2,
        temporal_patch_size=2,
    )
    if family.image_mean is not None:
        kwargs.update(image_mean=list(family.image_mean), image_std=list(family.image_mean))
    image = transformers.Qwen2VLImageProcessor(**kwargs)
    video = getattr(transformers, family.video_processor_cls)(**{**kwargs, "size": dict(kwargs["size"])})
    return image, video


def build_tiny_model(
    out_dir: str | Path, seed: int = 0, size: TinySize | None = None, family: str = "qwen2_vl"
) -> Path:
    """Write a tiny random model of ``family`` (``FAMILIES``: qwen2_vl, qwen2_5_vl with its
    window-attention vision tower, qwen3_vl with patch 16 and DeepStack) with its tokenizer and
    processor to ``out_dir``."""
    import torch
    import transformers

    fam = family_of(family)
    size = size or TinySize()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    template = chat_template(fam.default_system)
    tokenizer = train_tokenizer(out, size.vocab_target, template, thought_tokens=family == "qwen3_vl")
    ids = special_token_ids(tokenizer)
    vocab = len(tokenizer)
    text = fam.text(size.__dict__, (vocab + 63) // 64 * 64, ids)
    config = getattr(transformers, fam.config_cls)(
        text_config=text, vision_config=fam.vision(size), **token_id_kwargs(ids)
    )
    torch.manual_seed(seed)
    model = getattr(transformers, fam.model_cls)(config).to(torch.float32)
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

    image_processor, video_processor = processors(fam)
    processor = getattr(transformers, fam.processor_cls)(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=template,
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
