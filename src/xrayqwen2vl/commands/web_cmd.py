"""`xrayqwen2vl web`: the browser demo (Gradio) on a fine-tuned model."""

from __future__ import annotations


def run(args) -> int:
    from ..serve.web import run_web

    return run_web(args)


def register(sub) -> None:
    from ..serve.web import AUTH_ENV

    p = sub.add_parser(
        "web",
        help="browser demo: upload a chest X-ray (PNG, JPEG or DICOM), get the report",
        description=(
            "Serve a Gradio page where a user uploads one or two views of a study (frontal, then lateral; "
            "PNG, JPEG or DICOM), picks English or Chinese and the generation settings, and watches the "
            "report being written. The model is loaded once with LLaMA-Factory's ChatModel, as by "
            "`xrayqwen2vl report`. Serves on 127.0.0.1 unless --host says otherwise; any other address "
            f"needs --auth USER:PASSWORD (or {AUTH_ENV}). Research use only: not a diagnosis."
        ),
    )
    p.add_argument("--model", help="base or merged model folder (e.g. weights/Qwen2-VL-7B-Instruct)")
    p.add_argument("--adapter", help="LoRA adapter folder (e.g. saves/qwen2vl_7b/lora/sft)")
    p.add_argument(
        "--config",
        help="an inference YAML (configs/inference/*.yaml) to start from; --model/--adapter override it",
    )
    p.add_argument(
        "--template",
        help="LLaMA-Factory template (default: the config's, else the model family's: qwen2_vl, or qwen3_vl_nothink for Qwen3-VL)",
    )
    p.add_argument(
        "--image-max-pixels",
        type=int,
        help="pixel cap per image; use the training config's (default: the config's, else 262144)",
    )
    p.add_argument(
        "--allow-remote-code",
        action="store_true",
        help="run code shipped with the model (trust_remote_code: true, a folder's auto_map); refused "
        "otherwise; also XRAYQWEN2VL_ALLOW_REMOTE_CODE=1",
    )
    p.add_argument("--max-new-tokens", type=int, help="default of the page's max-tokens slider (default 512)")
    p.add_argument("--lang", default="en", choices=["en", "zh"], help="report language selected at start")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument(
        "--auth",
        metavar="USER:PASSWORD",
        help=f"require this login (required off 127.0.0.1; or set {AUTH_ENV} to keep it out of `ps`)",
    )
    p.add_argument(
        "--examples",
        metavar="DIR",
        help="show the PNG/JPEG/DICOM files of DIR as examples (default: a few synthetic studies drawn at start)",
    )
    p.set_defaults(func=run)
