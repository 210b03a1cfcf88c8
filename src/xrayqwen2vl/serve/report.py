"""Write a report for one study (one or two chest X-ray images) with LLaMA-Factory's ``ChatModel``.

``llamafactory-cli chat`` in LLaMA-Factory 0.9.5 cannot take images, so this is the terminal way
to talk to a fine-tuned model: either once (images on the command line) or interactively (image
paths typed at a prompt, one study per line). The prompt is the one ``xrayqwen2vl prepare``
trains with (``--lang`` picks English or Chinese), so the model sees what it was trained on.
Research use only: the output is not a diagnosis.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
import threading
from pathlib import Path
from typing import TextIO

from .. import lf_shim
from ..data.records import InputFileError
from ..data.text import DEFAULT_PROMPTS
from ..model_scan import remote_code_allowed, remote_code_problem, scan_model_folder
from ..recipes.models import family_template
from ..yamlfile import UnsafeYamlError, read_config_yaml
from .dicom_io import image_kind, open_view

MAX_IMAGES = 2  # one study: frontal, and optionally lateral
# Same cap as the configs under configs/: 512x512 pixels per view (324 visual tokens for 512x512).
DEFAULT_IMAGE_MAX_PIXELS = 262144
DEFAULT_MAX_NEW_TOKENS = 512
DISCLAIMER = "Research use only: a model-written draft, not a diagnosis."


def load_config(path: str | Path) -> dict:
    """An inference YAML (configs/inference/*.yaml) as a dict of LLaMA-Factory arguments."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: config file not found")
    try:
        data = read_config_yaml(p)
    except (OSError, UnsafeYamlError) as e:
        raise InputFileError(
            str(e) if isinstance(e, UnsafeYamlError) else f"{p}: cannot read ({e.strerror})"
        ) from None
    if not isinstance(data, dict):
        raise InputFileError(f"{p}: expected a mapping of LLaMA-Factory arguments")
    return data


def check_study_images(paths: list[str]) -> list:
    """Validate the image files of one study or raise one clear error.

    One acceptance rule with ``web`` (``dicom_io.open_view``): PNG, JPEG or DICOM by content,
    whatever the name, decoded in full. Returns what ``ChatModel`` takes: the path (a string) of
    a PNG or JPEG file, and for a DICOM file the displayed image decoded in memory, so that no
    copy of it, and none of its tags, is written anywhere.
    """
    if not paths:
        raise InputFileError("no image given (one frontal view, optionally a lateral view)")
    if len(paths) > MAX_IMAGES:
        raise InputFileError(f"{len(paths)} images given; one study takes one or two (frontal, lateral)")
    out = []
    for raw in paths:
        p = Path(raw)
        view = open_view(p)  # regular file first (a FIFO named x.png is never opened), then content
        out.append(view if image_kind(p) == "DICOM" else str(p))
    return out


def build_args(
    config: dict | None,
    model: str | None,
    adapter: str | None,
    template: str | None,
    image_max_pixels: int | None,
    max_new_tokens: int | None,
    allow_remote_code: bool = False,
) -> dict:
    """LLaMA-Factory inference arguments: the config's, then the command-line options on top.

    The model and adapter folders must pass ``model_scan`` and the config may not turn on
    ``trust_remote_code``, unless remote code is allowed (``--allow-remote-code`` or
    XRAYQWEN2VL_ALLOW_REMOTE_CODE=1; then ``auto_map`` passes too)."""
    args = dict(config or {})
    if model:  # e.g. the same base model stored elsewhere: the config's adapter still applies
        args["model_name_or_path"] = model
    if adapter and adapter.lower() == "none":  # a config's adapter left out
        args.pop("adapter_name_or_path", None)
    elif adapter:
        args["adapter_name_or_path"] = adapter
    if not args.get("model_name_or_path"):
        raise InputFileError("no model: give --model PATH or --config with model_name_or_path")
    if args.get("adapter_name_or_path"):
        args["finetuning_type"] = "lora"
    args["template"] = (
        template or args.get("template") or family_template(args["model_name_or_path"]) or "qwen2_vl"
    )
    if image_max_pixels:
        args["image_max_pixels"] = image_max_pixels
    args.setdefault("image_max_pixels", DEFAULT_IMAGE_MAX_PIXELS)
    if max_new_tokens:
        args["max_new_tokens"] = max_new_tokens
    args.setdefault("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
    args.setdefault("do_sample", False)
    args.setdefault("infer_backend", "huggingface")
    args.setdefault("trust_remote_code", False)
    allowed = remote_code_allowed(allow_remote_code)
    problem = remote_code_problem(args, allowed)
    if problem:
        raise InputFileError(problem)

    model_dir = Path(str(args["model_name_or_path"]))
    if not (model_dir / "config.json").is_file():
        raise InputFileError(
            f"{model_dir}: model folder not found or has no config.json (see weights/README.md)"
        )
    adapter_path = args.get("adapter_name_or_path")
    if adapter_path:
        for one in str(adapter_path).split(","):
            if not (Path(one) / "adapter_config.json").is_file():
                raise InputFileError(f"{one}: adapter folder not found or has no adapter_config.json")
    for folder in [str(model_dir), *(str(adapter_path).split(",") if adapter_path else [])]:
        problems = scan_model_folder(folder, allow_remote_code=allowed)
        if problems:
            more = (
                f" (and {len(problems) - 1} more: xrayqwen2vl check lists them)" if len(problems) > 1 else ""
            )
            raise InputFileError(f"{folder}: {problems[0]}{more}")
    return args


class ReportWriter:
    """A loaded model and the study prompt; ``write(images)`` returns the report text."""

    def __init__(self, args: dict, prompt: str):
        # LLaMA-Factory logs to stdout through a handler made at its first import; importing it
        # while stdout points at stderr keeps stdout for the report alone.
        problem = lf_shim.problem()
        if problem:
            raise InputFileError(problem)
        warning = lf_shim.disabled_warning()
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
        with contextlib.redirect_stdout(sys.stderr):
            lf_shim.install()  # image positions right under transformers >= 5.3 (lf_shim.py)
            from llamafactory.chat import ChatModel

            self.chat_model = ChatModel(args)
        self.prompt = prompt

    def _messages(self, n_images: int, prompt: str | None) -> list[dict]:
        return [{"role": "user", "content": "<image>" * n_images + (prompt or self.prompt)}]

    def write(self, images: list, prompt: str | None = None, **generation) -> str:
        """The whole report. ``images``: paths or PIL images; ``generation``: LLaMA-Factory's
        per-request settings (max_new_tokens, temperature, do_sample, top_p)."""
        responses = self.chat_model.chat(self._messages(len(images), prompt), images=images, **generation)
        return responses[0].response_text.strip()

    def stream(self, images: list, prompt: str | None = None, **generation):
        """The report piece by piece as the model writes it (same arguments as ``write``).

        Returns only once the generation thread is done. LLaMA-Factory's ``stream_chat`` runs
        ``model.generate`` in a daemon thread that is still freeing tensors after the last piece
        arrives; a process that exits then (``report -i`` after ``exit``) finalises Python while
        that thread waits for the GIL inside torch's C++ tensor deallocation, CPython 3.11 ends
        the thread with ``pthread_exit``, the unwinding meets a ``noexcept`` frame and the C++
        runtime aborts: "terminate called without an active exception", exit status 134.
        """
        before = set(threading.enumerate())
        try:
            yield from self.chat_model.stream_chat(
                self._messages(len(images), prompt), images=images, **generation
            )
        finally:
            for thread in set(threading.enumerate()) - before:
                if thread.name.endswith("(generate)"):  # Thread-N (generate): model.generate
                    thread.join()


def interactive(writer: ReportWriter, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """Ask for image paths, one study per line, until ``exit``/``quit`` or end of input.

    A bad line (missing or corrupt image, more than two paths) prints one error and asks again.
    Returns the number of reports written.
    """
    print(
        "Type the image paths of one study (frontal, then optionally lateral; quote paths with spaces)."
        "\nEmpty line: nothing; exit or quit (or Ctrl-D): leave. " + DISCLAIMER,
        file=stdout,
        flush=True,
    )
    written = 0
    while True:
        print("\nimages> ", end="", file=stdout, flush=True)
        line = stdin.readline()
        if not line:  # end of input
            print(file=stdout)
            break
        line = line.strip()
        if not line:
            continue
        if line in ("exit", "quit"):
            break
        try:
            paths = check_study_images(shlex.split(line))
        except (InputFileError, ValueError) as e:  # ValueError: unbalanced quotes from shlex
            print(f"xrayqwen2vl report: error: {e}", file=stderr, flush=True)
            continue
        print("report> ", end="", file=stdout, flush=True)
        for piece in writer.stream(paths):
            print(piece, end="", file=stdout, flush=True)
        print(file=stdout, flush=True)
        written += 1
    return written


def prompt_for(lang: str, prompt: str | None) -> str:
    if prompt is not None:
        return prompt
    if lang not in DEFAULT_PROMPTS:
        raise ValueError(f"--lang {lang!r}: expected one of {', '.join(sorted(DEFAULT_PROMPTS))}")
    return DEFAULT_PROMPTS[lang]


def args_from_options(options) -> dict:
    """ChatModel arguments from the shared --config/--model/--adapter/--template/
    --image-max-pixels/--max-new-tokens options of ``report`` and ``web``."""
    config = load_config(options.config) if options.config else None
    return build_args(
        config,
        options.model,
        options.adapter,
        options.template,
        options.image_max_pixels,
        options.max_new_tokens,
        getattr(options, "allow_remote_code", False),
    )


def run_report(
    options, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr
) -> int:
    """The ``xrayqwen2vl report`` command (options from its argparse parser)."""
    prompt = prompt_for(options.lang, options.prompt)
    args = args_from_options(options)
    go_interactive = options.interactive or not options.images
    if options.interactive and options.images:
        raise InputFileError("give image paths or --interactive, not both")
    images = None if go_interactive else check_study_images(options.images)  # fail before loading

    writer = ReportWriter(args, prompt)
    if go_interactive:
        interactive(writer, stdin, stdout, stderr)
        return 0
    print(writer.write(images), file=stdout, flush=True)
    print(DISCLAIMER, file=stderr)
    return 0
