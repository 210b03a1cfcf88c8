"""`xrayqwen2vl report`: a report for one study from one or two images, through LLaMA-Factory."""

from __future__ import annotations


def run(args) -> int:
    from ..serve.report import run_report

    return run_report(args)


def register(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write a report for one study (frontal [+ lateral] image) with a fine-tuned model",
        description=(
            "Load a Qwen2-VL (base plus LoRA adapter, or a merged model) with LLaMA-Factory's ChatModel and "
            "write the report for one study from one or two PNG, JPEG or DICOM files (DICOM: modality and VOI LUT applied, no tag is read into the output), with the prompt prepare trains "
            "with. Without IMAGE (or with --interactive) it asks for image paths, one study per line, until "
            "exit. The report goes to stdout. Research use only: not a diagnosis."
        ),
    )
    p.add_argument(
        "images", nargs="*", metavar="IMAGE", help="frontal view, then optionally the lateral view"
    )
    p.add_argument("--model", help="base or merged model folder (e.g. weights/Qwen2-VL-7B-Instruct)")
    p.add_argument(
        "--adapter", help="LoRA adapter folder (e.g. saves/qwen2vl_7b/lora/sft); none: leave the config's out"
    )
    p.add_argument(
        "--config",
        help="an inference YAML (configs/inference/*.yaml) to start from; --model/--adapter override it",
    )
    p.add_argument(
        "--lang", default="en", choices=["en", "zh"], help="report language of the prompt (default en)"
    )
    p.add_argument("--prompt", help="user prompt instead of prepare's default for --lang")
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
    p.add_argument("--max-new-tokens", type=int, help="longest report in tokens (default 512)")
    p.add_argument("-i", "--interactive", action="store_true", help="ask for image paths at a prompt")
    p.set_defaults(func=run)
