"""Our ShareGPT output goes through LLaMA-Factory's own dataset code and the tiny model loads."""

from __future__ import annotations

import json

import pytest


def _lf_dataset(model_dir, data_dir, dataset: str, out_dir):
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    model_args, data_args, training_args, _, _ = get_train_args(
        {
            "model_name_or_path": str(model_dir),
            "stage": "sft",
            "do_train": True,
            "finetuning_type": "lora",
            "dataset_dir": str(data_dir),
            "dataset": dataset,
            "template": "qwen2_vl",
            "cutoff_len": 1024,
            "image_max_pixels": 65536,
            "output_dir": str(out_dir),
            "overwrite_cache": True,
            "preprocessing_num_workers": 1,
            "report_to": "none",
        }
    )
    tokenizer_module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
    module = get_dataset(template, model_args, data_args, training_args, stage="sft", **tokenizer_module)
    return module["train_dataset"], tokenizer_module["tokenizer"]


def test_llamafactory_loader_accepts_our_sharegpt(tiny_model_dir, prepared_dir, tmp_path):
    samples = json.loads((prepared_dir / "demo_train.json").read_text())
    dataset, tokenizer = _lf_dataset(tiny_model_dir, prepared_dir, "demo_train", tmp_path)
    assert len(dataset) == len(samples)
    start = tokenizer.convert_tokens_to_ids("<|vision_start|>")
    user = tokenizer.encode("user", add_special_tokens=False)
    n_two = 0
    for sample, row in zip(samples, dataset, strict=True):
        ids = row["input_ids"]
        # one vision block per image of the study, in the user turn
        assert ids.count(start) == len(sample["images"])
        n_two += len(sample["images"]) == 2
        # the assistant's report is the only supervised part
        labels = [t for t in row["labels"] if t != -100]
        target = tokenizer.decode(labels, skip_special_tokens=True).strip()
        assert target == sample["messages"][1]["content"]
        assert (
            tokenizer.decode(ids[: len(ids) - len(labels)]).count("<|im_start|>") == 3
        )  # system, user, assistant
        assert user[0] in ids
    assert n_two > 10  # most studies carry frontal + lateral


def test_tiny_model_loads_with_auto_classes(tiny_model_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    assert type(processor).__name__ == "Qwen2VLProcessor"
    assert type(processor.image_processor).__name__.startswith("Qwen2VLImageProcessor")
    assert type(model).__name__ == "Qwen2VLForConditionalGeneration"
    tok = processor.tokenizer
    assert model.config.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert model.config.video_token_id == tok.convert_tokens_to_ids("<|video_pad|>")
    assert model.config.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_start|>")
    assert model.config.vision_end_token_id == tok.convert_tokens_to_ids("<|vision_end|>")
    assert model.config.text_config.vocab_size >= len(tok)
    # the chat template renders the ChatML layout LLaMA-Factory's qwen2_vl template trains on
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Report?"}]}],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|image_pad|><|vision_end|>Report?<|im_end|>\n<|im_start|>assistant\n"
    )
    # Chinese and English both round-trip through the byte-level tokenizer
    for s in ("There is a left pleural effusion.", "左侧胸腔积液。"):
        assert tok.decode(tok.encode(s, add_special_tokens=False)) == s


@pytest.mark.slow
def test_tiny_model_is_deterministic(tmp_path):
    from xrayqwen2vl.synthetic.tiny_model import build_tiny_model

    a = build_tiny_model(tmp_path / "a", seed=3)
    b = build_tiny_model(tmp_path / "b", seed=3)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
