"""The OpenAI-compatible API: the real `llamafactory-cli api` with our tiny inference config (tiny
Qwen2-VL plus a LoRA adapter), called by the official `openai` client with base64 data-URL
images; with API_KEY set, a request without that key is refused."""

from __future__ import annotations

import base64
import io

import openai
import pytest
from conftest import REPO, tool
from PIL import Image
from web_support import dicom_from_png, free_port, phi_strings, server

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
    log = tmp_path_factory.mktemp("api") / "api.log"
    port = free_port()
    args = [
        tool("llamafactory-cli"),
        "api",
        str(CONFIG),
        f"model_name_or_path={tiny_model_dir}",
        f"adapter_name_or_path={adapter}",
        "max_new_tokens=16",
    ]
    env = {"API_KEY": KEY, "API_HOST": "127.0.0.1", "API_PORT": str(port)}
    with server(args, log, f"http://127.0.0.1:{port}", env=env, ready_path="/v1/models"):
        yield {"url": f"http://127.0.0.1:{port}/v1", "log": log}


@pytest.fixture(scope="module")
def views(sample_dir):
    pngs = sorted((sample_dir / "NLMCXR_png").glob("CXR1_*.png"))
    return pngs[:2]


def test_report_for_two_views_with_the_key(api, views):
    client = openai.OpenAI(base_url=api["url"], api_key=KEY, max_retries=0, timeout=300)
    message = study_message(views)
    assert [part["type"] for part in message["content"]] == ["image_url", "image_url", "text"]
    assert message["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    reply = client.chat.completions.create(model="xrayqwen2vl", messages=[message], max_tokens=12)
    assert reply.choices[0].message.content.strip()
    assert "Loaded adapter" in api["log"].read_text()


def test_streaming_jpeg_and_chinese(api, views, tmp_path):
    client = openai.OpenAI(base_url=api["url"], api_key=KEY, max_retries=0, timeout=300)
    buf = io.BytesIO()
    Image.open(views[0]).convert("L").save(buf, format="JPEG", quality=90)
    jpeg_url = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    message = study_message(views[:1], lang="zh")
    message["content"][0]["image_url"]["url"] = jpeg_url
    stream = client.chat.completions.create(model="x", messages=[message], max_tokens=8, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text.strip()


def test_dicom_is_sent_as_pixels_only(api, views, tmp_path):
    dcm = dicom_from_png(views[0], tmp_path / "frontal.dcm")
    message = study_message([dcm])
    sent = base64.b64decode(message["content"][0]["image_url"]["url"].split(",", 1)[1])
    for text in phi_strings():
        assert text.encode() not in sent
    client = openai.OpenAI(base_url=api["url"], api_key=KEY, max_retries=0, timeout=300)
    reply = client.chat.completions.create(model="x", messages=[message], max_tokens=6)
    assert reply.choices[0].message.content.strip()


def test_requests_without_the_key_are_refused(api, views):
    message = study_message(views[:1])
    for key in ("", "sk-wrong"):
        client = openai.OpenAI(base_url=api["url"], api_key=key or "unused", max_retries=0, timeout=60)
        if not key:  # no Authorization header at all
            client = client.with_options(default_headers={"Authorization": ""})
        with pytest.raises(openai.AuthenticationError) as e:
            client.chat.completions.create(model="x", messages=[message], max_tokens=4)
        assert e.value.status_code == 401
        with pytest.raises(openai.AuthenticationError):
            client.models.list()
