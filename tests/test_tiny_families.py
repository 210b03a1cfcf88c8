"""The tiny random models of the three Qwen VL families (synthetic/tiny_model.py): each loads with
the Auto classes as its real checkpoints do, carries its family's processor (Qwen3-VL: patch 16),
and its chat template renders exactly the tokens LLaMA-Factory trains on with the family's
template; and why Qwen3-VL Instruct takes qwen3_vl_nothink, not qwen3_vl."""

from __future__ import annotations

import json

import pytest
from conftest import tool

from xrayqwen2vl.synthetic.tiny_model import FAMILIES

CLASSES = {
    "qwen2_vl": ("Qwen2VLProcessor", "Qwen2VLForConditionalGeneration", "Qwen2VLVideoProcessor"),
    "qwen2_5_vl": ("Qwen2_5_VLProcessor", "Qwen2_5_VLForConditionalGeneration", "Qwen2VLVideoProcessor"),
    "qwen3_vl": ("Qwen3VLProcessor", "Qwen3VLForConditionalGeneration", "Qwen3VLVideoProcessor"),
}
PATCH = {"qwen2_vl": 14, "qwen2_5_vl": 14, "qwen3_vl": 16}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_loads_with_the_auto_classes_of_its_family(family, tiny_family_model):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder = tiny_family_model(family)
    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder)
    assert (type(processor).__name__, type(model).__name__, type(processor.video_processor).__name__) == (
        CLASSES[family]
    )
    assert type(processor.image_processor).__name__.startswith("Qwen2VLImageProcessor")
    image = processor.image_processor
    assert (image.patch_size, image.merge_size, image.temporal_patch_size) == (PATCH[family], 2, 2)
    assert FAMILIES[family].pixels_per_token == (2 * PATCH[family]) ** 2
    vision = model.config.vision_config
    assert vision.patch_size == PATCH[family] and vision.spatial_merge_size == 2
    tok = processor.tokenizer
    for key, token in (("image", "<|image_pad|>"), ("video", "<|video_pad|>")):
        assert getattr(model.config, f"{key}_token_id") == tok.convert_tokens_to_ids(token)
    assert model.config.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_start|>")
    assert model.config.text_config.vocab_size >= len(tok)
    assert sum(p.numel() for p in model.parameters()) < 1_000_000  # as small as the Qwen2-VL one
    meta = json.loads((folder / "tiny_model.json").read_text())
    assert meta["family"] == family
    if family == "qwen3_vl":
        # DeepStack: features of an inner vision block, through a merger of their own, added to
        # the first language-model layer; interleaved M-RoPE over half the head dimension.
        assert list(vision.deepstack_visual_indexes) == [0] and vision.depth == 2
        assert len(model.model.visual.deepstack_merger_list) == 1
        text = model.config.text_config
        rope = text.rope_parameters
        assert rope["mrope_interleaved"] is True and sum(rope["mrope_section"]) == text.head_dim // 2
        assert tuple(image.image_mean) == (0.5, 0.5, 0.5)
        assert tok.convert_tokens_to_ids("<think>") != tok.unk_token_id


def _llamafactory_prompt(folder, template_name: str, images):
    """(prompt ids, response ids) LLaMA-Factory builds for a two-view study with ``template``."""
    from llamafactory.data.template import get_template_and_fix_tokenizer
    from llamafactory.hparams import get_infer_args
    from llamafactory.model import load_tokenizer

    model_args, data_args, _, _ = get_infer_args(
        {"model_name_or_path": str(folder), "template": template_name, "image_max_pixels": 65536}
    )
    module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(module["tokenizer"], data_args)
    messages = [
        {"role": "user", "content": "<image><image>Report?"},
        {"role": "assistant", "content": "Findings: clear lungs."},
    ]
    messages = template.mm_plugin.process_messages(messages, images, [], [], module["processor"])
    prompt, response = template.encode_oneturn(module["tokenizer"], messages)
    return prompt, response, module


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_chat_template_gives_the_ids_llamafactory_trains_on(family, tiny_family_model):
    """The same study through LLaMA-Factory's template (what training and predict see) and through
    the tokenizer's chat template + processor (what a plain transformers user sends): the same
    ids, image tokens expanded alike."""
    from PIL import Image

    folder = tiny_family_model(family)
    images = [Image.new("RGB", (256, 256), 128), Image.new("RGB", (200, 300), 60)]
    prompt, response, module = _llamafactory_prompt(folder, FAMILIES[family].template, images)
    processor, tok = module["processor"], module["tokenizer"]
    text = processor.apply_chat_template(
        [
            {
                "role": "user",
                "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Report?"}],
            }
        ],
        add_generation_prompt=True,
        tokenize=False,
    )
    ids = processor(text=[text], images=images, return_tensors="pt")["input_ids"][0].tolist()
    assert prompt == ids
    assert tok.decode(response) == "Findings: clear lungs.<|im_end|>\n"
    n_image = ids.count(tok.convert_tokens_to_ids("<|image_pad|>"))
    # sides rounded to 28 (patch 14) or 32 (patch 16) pixels, one token each way: 256x256 gives 9x9 or
    # 8x8 tokens, 200x300 gives 196x308 (7x11) or 192x288 (6x9)
    assert n_image == {14: 81 + 77, 16: 64 + 54}[PATCH[family]]
    system = text.startswith("<|im_start|>system\n")
    assert system == (family != "qwen3_vl")  # Qwen3-VL Instruct writes no default system turn


def test_qwen3_vl_reasoning_template_trains_an_empty_thought(tiny_family_model):
    """Why the Qwen3-VL recipe uses qwen3_vl_nothink: with qwen3_vl (the Thinking models'
    template) every target report is trained behind an empty <think></think> block, which the
    Instruct model never writes; LLaMA-Factory 0.9.5 registers the Instruct models with
    qwen3_vl_nothink (extras/constants.py)."""
    from llamafactory.extras.constants import DEFAULT_TEMPLATE
    from PIL import Image

    folder = tiny_family_model("qwen3_vl")
    images = [Image.new("RGB", (256, 256), 128), Image.new("RGB", (256, 256), 60)]
    prompt, response, module = _llamafactory_prompt(folder, "qwen3_vl", images)
    nothink_prompt, nothink_response, _ = _llamafactory_prompt(folder, "qwen3_vl_nothink", images)
    tok = module["tokenizer"]
    assert tok.decode(response) == "<think>\n\n</think>\n\nFindings: clear lungs.<|im_end|>\n"
    assert tok.decode(nothink_response) == "Findings: clear lungs.<|im_end|>\n"
    assert prompt == nothink_prompt
    assert DEFAULT_TEMPLATE["Qwen3-VL-8B-Instruct"] == FAMILIES["qwen3_vl"].template == "qwen3_vl_nothink"
    assert DEFAULT_TEMPLATE["Qwen3-VL-8B-Thinking"] == "qwen3_vl"
    assert DEFAULT_TEMPLATE["Qwen2.5-VL-7B-Instruct"] == FAMILIES["qwen2_5_vl"].template == "qwen2_vl"
    # the preflight's table names the same template first for each family
    from xrayqwen2vl.recipes.models import FAMILY_TEMPLATES

    assert {f: ts[0] for f, (_, ts) in FAMILY_TEMPLATES.items()} == {
        f: v.template for f, v in FAMILIES.items()
    }


def test_llamafactory_loader_supervises_only_the_report(tiny_family_model, prepared_dir, tmp_path):
    """Our prepared data through LLaMA-Factory's own loader with the tiny Qwen3-VL and
    qwen3_vl_nothink: one vision block per view, no system turn, the report the only target."""
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    args = dict(
        model_name_or_path=str(tiny_family_model("qwen3_vl")),
        stage="sft",
        do_train=True,
        finetuning_type="lora",
        dataset_dir=str(prepared_dir),
        dataset="demo_val",
        template="qwen3_vl_nothink",
        cutoff_len=1024,
        image_max_pixels=65536,
        output_dir=str(tmp_path),
        overwrite_cache=True,
        preprocessing_num_workers=1,
        report_to="none",
    )
    model_args, data_args, training_args, _, _ = get_train_args(args)
    module = load_tokenizer(model_args)
    tok = module["tokenizer"]
    template = get_template_and_fix_tokenizer(tok, data_args)
    dataset = get_dataset(template, model_args, data_args, training_args, stage="sft", **module)[
        "train_dataset"
    ]
    samples = json.loads((prepared_dir / "demo_val.json").read_text())
    assert len(dataset) == len(samples) > 0
    start = tok.convert_tokens_to_ids("<|vision_start|>")
    for sample, row in zip(samples, dataset, strict=True):
        ids = row["input_ids"]
        assert ids.count(start) == len(sample["images"])
        labels = [t for t in row["labels"] if t != -100]
        assert tok.decode(labels, skip_special_tokens=True).strip() == sample["messages"][1]["content"]
        prompt = tok.decode(ids[: len(ids) - len(labels)])
        assert prompt.count("<|im_start|>") == 2 and "system" not in prompt  # user, assistant


@pytest.mark.slow
def test_tiny_model_command_builds_the_same_model(tiny_family_model, tmp_path):
    """`xrayqwen2vl tiny-model --family qwen3_vl` (the real CLI) writes the session's tiny
    Qwen3-VL byte for byte: same seed, same weights and tokenizer."""
    import subprocess

    out = tmp_path / "tiny3"
    proc = subprocess.run(
        [tool("xrayqwen2vl"), "tiny-model", "--family", "qwen3_vl", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "tiny random Qwen3-VL" in proc.stdout and "template qwen3_vl_nothink" in proc.stdout
    ref = tiny_family_model("qwen3_vl")
    for name in ("model.safetensors", "tokenizer.json", "config.json", "processor_config.json"):
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name


def test_report_and_web_default_to_the_family_template(tiny_family_model):
    """`xrayqwen2vl report/web --model DIR` without a config or --template: the template of the
    folder's family, so a Qwen3-VL model is not prompted with Qwen2-VL's default system turn."""
    from xrayqwen2vl.serve.report import build_args

    for family in sorted(FAMILIES):
        args = build_args(None, str(tiny_family_model(family)), None, None, None, 8)
        assert args["template"] == FAMILIES[family].template
    args = build_args(None, str(tiny_family_model("qwen3_vl")), None, "qwen3_vl", None, 8)
    assert args["template"] == "qwen3_vl"  # an explicit --template wins
