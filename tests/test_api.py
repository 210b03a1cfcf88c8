"""The OpenAI-compatible API: the real `llamafactory-cli api`, started by scripts/api.sh on its
default address with our tiny inference config (tiny Qwen2-VL plus a LoRA adapter), called by the
official `openai` client with base64 data-URL images; with API_KEY set, a request without that
key is refused.

The tiny model is random, so no test can say what a good reply is. What they check instead: the
server answers exactly what the same model answers in this process (LLaMA-Factory's ChatModel,
as `xrayqwen2vl report` runs it) to the same pixels and prompt under greedy decoding, and counts
the same prompt tokens: a lost image, a mangled prompt or an image read wrongly changes one or
the other."""

from __future__ import annotations

import base64
import io
import json
import shutil

import numpy as np
import openai
import pytest
import yaml
from conftest import REPO
from PIL import Image
from web_support import dicom_from_png, free_port, listening_addresses, phi_strings, server

from xrayqwen2vl.data.text import DEFAULT_PROMPTS
from xrayqwen2vl.serve.api_request import study_message

pytestmark = pytest.mark.slow

KEY = "sk-test-4b1d9e"
CONFIG = REPO / "configs" / "tiny" / "qwen2vl_tiny_lora_infer.yaml"


@pytest.fixture(scope="module")
def adapter(tiny_model_dir, tmp_path_factory):
    """A LoRA adapter for the tiny model as PEFT saves it (initialised, not trained: the test is
    about serving, and make demo trains the real one)."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2VLForConditionalGeneration

    model = Qwen2VLForConditionalGeneration.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    out = tmp_path_factory.mktemp("adapter") / "lora"
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def api(tiny_model_dir, adapter, tmp_path_factory):
    """scripts/api.sh with API_KEY and a port of its own; API_HOST left to its default."""
    log = tmp_path_factory.mktemp("api") / "api.log"
    port = free_port()
    args = [
        shutil.which("bash"),
        "scripts/api.sh",
        str(CONFIG),
        f"model_name_or_path={tiny_model_dir}",
        f"adapter_name_or_path={adapter}",
        "max_new_tokens=16",
    ]
    env = {"API_KEY": KEY, "API_HOST": None, "API_PORT": str(port)}
    with server(args, log, f"http://127.0.0.1:{port}", env=env, ready_path="/v1/models") as proc:
        yield {"url": f"http://127.0.0.1:{port}/v1", "log": log, "pid": proc.pid, "port": port}


@pytest.fixture(scope="module")
def reference(tiny_model_dir, adapter):
    """The same model and adapter in this process: ``answer(images, prompt, max_new_tokens)`` is
    the greedy (reply text, prompt tokens) the server must give for those images and prompt."""
    from xrayqwen2vl import lf_shim

    lf_shim.install()  # as the server's processes (scripts/api.sh) and serve/report.py do
    from llamafactory.chat import ChatModel

    args = yaml.safe_load(CONFIG.read_text())
    args.update(model_name_or_path=str(tiny_model_dir), adapter_name_or_path=str(adapter))
    model = ChatModel(args)

    def answer(images: list, prompt: str, max_new_tokens: int) -> tuple[str, int]:
        messages = [{"role": "user", "content": "<image>" * len(images) + prompt}]
        out = model.chat(messages, images=images, max_new_tokens=max_new_tokens)[0]
        return out.response_text, out.prompt_length

    return answer


def _client(api, key: str = KEY):
    return openai.OpenAI(base_url=api["url"], api_key=key, max_retries=0, timeout=300)


def _pixels(message: dict) -> list:
    """The images of a request as the server decodes them (PIL, RGB)."""
    return [
        Image.open(io.BytesIO(base64.b64decode(part["image_url"]["url"].split(",", 1)[1]))).convert("RGB")
        for part in message["content"]
        if part["type"] == "image_url"
    ]


def _reply(reply) -> tuple[str, int]:
    return reply.choices[0].message.content, reply.usage.prompt_tokens


@pytest.fixture(scope="module")
def views(sample_dir):
    pngs = sorted((sample_dir / "NLMCXR_png").glob("CXR1_*.png"))
    return pngs[:2]


def test_api_sh_serves_this_machine_only_by_default(api):
    assert listening_addresses(api["pid"]) == {("127.0.0.1", api["port"])}


def test_both_views_and_the_prompt_reach_the_model_with_the_key(api, views, reference):
    message = study_message(views)
    assert [part["type"] for part in message["content"]] == ["image_url", "image_url", "text"]
    assert message["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    reply = _client(api).chat.completions.create(model="xrayqwen2vl", messages=[message], max_tokens=12)
    expected = reference(_pixels(message), DEFAULT_PROMPTS["en"], 12)
    assert _reply(reply) == expected
    one_view = reference(_pixels(message)[:1], DEFAULT_PROMPTS["en"], 12)
    assert reply.usage.prompt_tokens > one_view[1]  # the lateral view's image tokens are counted
    assert "Loaded adapter" in api["log"].read_text()


def test_chinese_prompt_gets_its_own_answer_streamed_or_not(api, views, reference):
    """A random model's reply has no determined script, so the script is not checked. Checked:
    the Chinese prompt arrives intact (the server counts the prompt tokens this process counts
    for it, not the English prompt's) and the reply is the model's greedy answer to it, the same
    streamed as not (characters of several bytes reassemble)."""
    message = study_message(views, lang="zh")
    assert message["content"][-1]["text"] == DEFAULT_PROMPTS["zh"]
    chinese = reference(_pixels(message), DEFAULT_PROMPTS["zh"], 8)
    english = reference(_pixels(message), DEFAULT_PROMPTS["en"], 8)
    assert chinese[1] != english[1] or chinese[0] != english[0], "the two prompts must be told apart"
    client = _client(api)
    assert _reply(client.chat.completions.create(model="x", messages=[message], max_tokens=8)) == chinese
    stream = client.chat.completions.create(model="x", messages=[message], max_tokens=8, stream=True)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == chinese[0]


def _jpeg_url(png, size: tuple[int, int], cut: int | None = None) -> tuple[str, bytes]:
    buf = io.BytesIO()
    Image.open(png).convert("L").resize(size).save(buf, format="JPEG", quality=90)
    data = buf.getvalue()[:cut]
    return "data:image/jpeg;base64," + base64.b64encode(data).decode(), data


def test_jpeg_is_decoded_by_the_server(api, views, reference, tiny_model_dir):
    """The server reads a JPEG data URL's pixels: the prompt grows by the image tokens of its size
    (one per merge_size x merge_size patches), the reply is the model's answer to the decoded
    pixels, and a JPEG cut in half is refused instead of answered."""
    processor = json.loads((tiny_model_dir / "processor_config.json").read_text())["image_processor"]
    side = processor["patch_size"] * processor["merge_size"]  # pixels per image token, each way
    client = _client(api)
    replies, decoded = {}, {}
    for size in [(4 * side, 4 * side), (8 * side, 4 * side)]:
        message = study_message(views[:1])
        message["content"][0]["image_url"]["url"], data = _jpeg_url(views[0], size)
        replies[size] = _reply(client.chat.completions.create(model="x", messages=[message], max_tokens=6))
        decoded[size] = Image.open(io.BytesIO(data)).convert("RGB")
    small, wide = replies.values()
    assert wide[1] - small[1] == 8 * 4 - 4 * 4
    for size, reply in replies.items():
        assert reply == reference([decoded[size]], DEFAULT_PROMPTS["en"], 6)
    message = study_message(views[:1])
    full = _jpeg_url(views[0], (4 * side, 4 * side))[1]
    message["content"][0]["image_url"]["url"] = _jpeg_url(views[0], (4 * side, 4 * side), len(full) // 2)[0]
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="x", messages=[message], max_tokens=6)
    assert e.value.status_code >= 400


def test_dicom_is_sent_as_pixels_only(api, views, reference, tmp_path):
    dcm = dicom_from_png(views[0], tmp_path / "frontal.dcm")
    message = study_message([dcm])
    sent = base64.b64decode(message["content"][0]["image_url"]["url"].split(",", 1)[1])
    for text in phi_strings():
        assert text.encode() not in sent
    pixels = _pixels(message)[0]
    assert np.array_equal(np.asarray(pixels.convert("L")), np.asarray(Image.open(views[0]).convert("L")))
    reply = _client(api).chat.completions.create(model="x", messages=[message], max_tokens=6)
    assert _reply(reply) == reference([pixels], DEFAULT_PROMPTS["en"], 6)


def test_requests_without_the_key_are_refused(api, views):
    message = study_message(views[:1])
    for key in ("", "sk-wrong"):
        client = _client(api, key or "unused")
        if not key:  # no Authorization header at all
            client = client.with_options(default_headers={"Authorization": ""})
        with pytest.raises(openai.AuthenticationError) as e:
            client.chat.completions.create(model="x", messages=[message], max_tokens=4)
        assert e.value.status_code == 401
        with pytest.raises(openai.AuthenticationError):
            client.models.list()


GREEN_PAIRS = [
    ("Heart size is normal. Lungs are clear.", "The heart is normal. Lungs clear."),
    ("Mild cardiomegaly. Small left pleural effusion.", "Cardiomegaly with a left effusion."),
    ("Heart size is normal. Lungs are clear.", "The heart is normal. Lungs clear."),  # asked once
]


def test_green_judge_asked_through_the_openai_compatible_server(api, tmp_path):
    """evaluate --green-endpoint sends GREEN's prompt to the real server, each distinct pair once,
    with the key from the environment. The random model's answers have no GREEN sections: GREEN
    counts them 0, and evaluate says how many there were instead of hiding them."""
    import os
    import subprocess
    import sys

    preds = tmp_path / "p.jsonl"
    preds.write_text(
        "".join(json.dumps({"prompt": "x", "predict": p, "label": r}) + "\n" for p, r in GREEN_PAIRS)
    )
    cmd = [
        sys.executable, "-m", "xrayqwen2vl.cli", "evaluate", "--predictions", str(preds), "--out",
        str(tmp_path / "out"), "--metrics", "rexrank", "--rexrank-metrics", "green", "--bootstrap", "20",
        "--green-endpoint", api["url"], "--green-model", "xrayqwen2vl", "--green-max-tokens", "6",
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), XRAYQWEN2VL_GREEN_API_KEY=KEY)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    block = json.loads((tmp_path / "out" / "metrics.json").read_text())["rexrank"]
    green = block["green"]
    # 2 distinct model pairs + the constant report against the 2 distinct references
    assert green["endpoint"] == {
        "url": api["url"] + "/chat/completions",
        "model": "xrayqwen2vl",
        "requests": 4,
    }
    assert green["unparsed"] == 3 and green["unparsed_studies"] == [0, 1, 2]
    assert block["means"]["GREEN"]["value"] == 0.0 and "green" not in block["skipped"]
    assert "GREEN: 3 of 3 judge answers had no GREEN sections" in proc.stdout
    rows = [json.loads(line) for line in (tmp_path / "out" / "per_sample.jsonl").read_text().splitlines()]
    assert [r["rexrank"]["GREEN"] for r in rows] == [0.0, 0.0, 0.0]
    # the wrong key: one line naming the endpoint and the refusal, nothing written
    env["XRAYQWEN2VL_GREEN_API_KEY"] = "sk-wrong"
    proc = subprocess.run(
        [*cmd[:7], str(tmp_path / "out2"), *cmd[8:]], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("[rexrank] ")]  # progress
    assert len(lines) == 1 and "HTTP 401" in lines[0], proc.stderr
    assert f"127.0.0.1:{api['port']}" in lines[0] and not (tmp_path / "out2" / "metrics.json").exists()
    assert "[rexrank] green (1/1): 6 pairs on cpu" in proc.stderr
