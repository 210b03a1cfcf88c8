"""The web demo: upload one or two views of a chest X-ray (PNG, JPEG or DICOM), get the report.

A Gradio app around the same ``ReportWriter`` as ``xrayqwen2vl report`` (LLaMA-Factory's
``ChatModel``): the model is loaded once, requests queue for it one at a time, and the report
streams into the page as the model writes it. Bad uploads (not an image, corrupt, empty, too
large, more than two files) give one clear message in the page and the app keeps serving.

Privacy: a DICOM upload is decoded in memory (pixels only, see ``dicom_io``) and Gradio's copy
of it is deleted at once; no file name, path or tag goes into the page or the log. Research use
only: the notice is shown at the top of the page and under every report.
"""

from __future__ import annotations

import csv
import ipaddress
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..data.records import InputFileError
from ..data.text import DEFAULT_PROMPTS
from .dicom_io import DICOM_SUFFIXES, RASTER_SUFFIXES, looks_like_dicom, open_view
from .report import DISCLAIMER, MAX_IMAGES

AUTH_ENV = "XRAYQWEN2VL_WEB_AUTH"
VIEW_NAMES = ("frontal", "lateral")
LANGUAGES = [("English", "en"), ("Chinese", "zh")]
MAX_UPLOAD = "100mb"  # Gradio refuses bigger uploads before they reach the app
NOTICE = (
    "**Research use only.** This demo drafts chest X-ray reports with a fine-tuned Qwen2-VL for "
    "research. It is not a medical device; what it writes is not a diagnosis and must not guide "
    "the care of any patient. Do not upload identifiable patient data. From a DICOM file only the "
    "pixels are used: no tag is read into the report and the uploaded file is deleted once decoded."
)
CSS = """
#research-notice { border: 2px solid #b45309; background: #fffbeb; color: #78350f;
                   border-radius: 8px; padding: 4px 14px; }
#research-notice p { color: #78350f; }
"""


def log(message: str) -> None:
    """One line on stderr; never a file name, path or tag (they may identify a patient)."""
    print(f"xrayqwen2vl web: {message}", file=sys.stderr, flush=True)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_auth(value: str | None, host: str) -> tuple[str, str] | None:
    """``USER:PASSWORD`` from --auth or the environment; required off the loopback interface."""
    value = value or os.environ.get(AUTH_ENV) or None
    if value is None:
        if not is_loopback(host):
            raise InputFileError(
                f"--host {host} is reachable from other machines: give --auth USER:PASSWORD "
                f"(or set {AUTH_ENV}=USER:PASSWORD), or serve on 127.0.0.1"
            )
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise InputFileError("--auth: expected USER:PASSWORD with neither part empty")
    return user, password


def _view_name(i: int) -> str:
    return f"view {i + 1} ({VIEW_NAMES[i]})" if i < len(VIEW_NAMES) else f"view {i + 1}"


def _without_path(message: str, path: str) -> str:
    """An error message without the server-side path it starts with."""
    return message[len(path) + 2 :] if message.startswith(f"{path}: ") else message


def gradio_upload_dir() -> Path:
    """Where Gradio keeps its copies of uploads (GRADIO_TEMP_DIR, else <tmp>/gradio)."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio").resolve()


def load_views(paths: list[str] | None, decoded: dict, upload_dir: Path | None = None) -> list:
    """The decoded views of one upload, or InputFileError with a message fit for the page.

    A DICOM file inside ``upload_dir`` (Gradio's copy of an upload) is deleted right after
    decoding; files elsewhere (examples) are left alone. ``decoded`` (per browser session)
    keeps those DICOM views, so the user may press Generate again with new settings.
    """
    paths = [p for p in (paths or []) if p]
    if not paths:
        raise InputFileError("upload one frontal view (PNG, JPEG or DICOM), optionally a lateral view")
    if len(paths) > MAX_IMAGES:
        raise InputFileError(
            f"{len(paths)} files uploaded; one study takes one or two views (frontal, then lateral)"
        )
    views = []
    for i, raw in enumerate(paths):
        if raw in decoded:
            views.append(decoded[raw])
            continue
        p = Path(raw)
        dicom = p.suffix.lower() in DICOM_SUFFIXES or looks_like_dicom(p)
        uploaded = upload_dir is not None and upload_dir in p.resolve().parents
        try:
            image = open_view(p)
        except InputFileError as e:
            raise InputFileError(f"{_view_name(i)}: {_without_path(str(e), str(p))}") from None
        finally:
            if dicom and uploaded:  # keep no copy of a file that may carry patient identifiers
                p.unlink(missing_ok=True)
        if dicom and uploaded:
            decoded[raw] = image
        views.append(image)
    return views


def synthetic_examples(out_dir: Path, studies: int = 3) -> list[list[str]]:
    """A few two-view studies drawn by the synthetic Open-i sample (not patient data)."""
    from ..synthetic.sample import generate_sample

    generate_sample(out_dir, reports=studies + 3, seed=6, progress=False)
    examples = []
    with open(out_dir / "labels.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            views = dict(reversed(item.split(":")) for item in row["images"].split(";"))
            if "frontal" in views and "lateral" in views:
                examples.append([str(out_dir / "NLMCXR_png" / f"{views[v]}.png") for v in VIEW_NAMES])
            if len(examples) == studies:
                break
    return examples


def folder_examples(folder: Path, limit: int = 8) -> list[list[str]]:
    """Each PNG, JPEG or DICOM file of a folder as a one-view example."""
    if not folder.is_dir():
        raise InputFileError(f"{folder}: examples folder not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in RASTER_SUFFIXES | DICOM_SUFFIXES)
    if not files:
        raise InputFileError(f"{folder}: no .png, .jpg, .jpeg or .dcm file to show as an example")
    return [[str(p)] for p in files[:limit]]


@dataclass
class Settings:
    default_lang: str = "en"
    max_new_tokens: int = 512
    examples: list[list[str]] = field(default_factory=list)


def build_app(writer, settings: Settings):
    """The Gradio Blocks app around a loaded ``ReportWriter``."""
    import gradio as gr

    upload_dir = gradio_upload_dir()

    def generate(paths, lang, max_new_tokens, temperature, decoded):
        decoded = decoded if isinstance(decoded, dict) else {}
        try:
            views = load_views(paths, decoded, upload_dir)
        except InputFileError as e:
            log(f"refused an upload: {e}")
            yield f"⚠️ **Cannot write a report:** {e}.", "", [], decoded
            return
        preview = [(img, _view_name(i)) for i, img in enumerate(views)]
        temperature = float(temperature or 0)
        generation = {"max_new_tokens": int(max_new_tokens), "do_sample": temperature > 0}
        if temperature > 0:
            generation["temperature"] = temperature
        yield "Writing the report…", "", preview, decoded
        start, text = time.time(), ""
        try:
            for piece in writer.stream(views, prompt=DEFAULT_PROMPTS[lang], **generation):
                text += piece
                yield "Writing the report…", text, gr.skip(), gr.skip()
        except Exception as e:  # the app must keep serving whatever one request does
            log(f"generation failed: {type(e).__name__}")
            yield f"⚠️ **Generation failed** ({type(e).__name__}); try again.", text, gr.skip(), gr.skip()
            return
        seconds = time.time() - start
        log(f"report written: {len(views)} view(s), {len(text)} characters, {seconds:.1f} s")
        if not text.strip():
            yield (
                "⚠️ **The model wrote an empty report**; try more tokens or a temperature above 0.",
                "",
                gr.skip(),
                gr.skip(),
            )
            return
        yield f"Done in {seconds:.1f} s. {DISCLAIMER}", text.strip(), gr.skip(), gr.skip()

    with gr.Blocks(title="XrayQwen2VL: chest X-ray report draft (research use only)", css=CSS) as app:
        gr.Markdown("# XrayQwen2VL: chest X-ray report draft")
        gr.Markdown(NOTICE, elem_id="research-notice")
        decoded = gr.State({})
        with gr.Row():
            with gr.Column(scale=1):
                files = gr.File(
                    label="Views: frontal, then optionally lateral (PNG, JPEG or DICOM)",
                    file_count="multiple",
                    type="filepath",
                    elem_id="views",
                )
                lang = gr.Radio(
                    LANGUAGES, value=settings.default_lang, label="Report language", elem_id="lang"
                )
                with gr.Accordion("Generation settings", open=True):
                    max_tokens = gr.Slider(
                        1,
                        2048,
                        value=settings.max_new_tokens,
                        step=1,
                        label="Max new tokens",
                        elem_id="max-tokens",
                    )
                    temperature = gr.Slider(
                        0.0, 1.5, value=0.0, step=0.05, label="Temperature (0: greedy)", elem_id="temperature"
                    )
                button = gr.Button("Generate report", variant="primary", elem_id="generate")
            with gr.Column(scale=1):
                status = gr.Markdown("Upload a study and press *Generate report*.", elem_id="status")
                report = gr.Textbox(
                    label="Report (model draft, not a diagnosis)",
                    lines=10,
                    interactive=False,
                    show_copy_button=True,
                    elem_id="report",
                )
                preview = gr.Gallery(
                    label="What the model sees", columns=2, height=260, elem_id="preview", format="png"
                )
        if settings.examples:
            gr.Examples(
                examples=[[paths] for paths in settings.examples],
                inputs=[files],
                label="Synthetic examples (drawn by the project's sample generator; not patient data)",
                elem_id="examples",
            )
        button.click(
            generate,
            inputs=[files, lang, max_tokens, temperature, decoded],
            outputs=[status, report, preview, decoded],
            concurrency_limit=1,  # one model: requests queue for it
            show_progress="minimal",
            show_progress_on=[report],  # queue position and timer on the report, not over messages
        )
    return app


def run_web(options) -> int:
    """The ``xrayqwen2vl web`` command (options from its argparse parser)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a demo
    from .report import ReportWriter, args_from_options, prompt_for

    auth = parse_auth(options.auth, options.host)
    args = args_from_options(options)
    if options.lang not in DEFAULT_PROMPTS:
        raise InputFileError(f"--lang {options.lang}: expected one of {', '.join(sorted(DEFAULT_PROMPTS))}")
    tmp = None
    if options.examples:
        examples = folder_examples(Path(options.examples))
        allowed = [str(Path(options.examples).resolve())]
    else:
        tmp = Path(tempfile.mkdtemp(prefix="xrayqwen2vl-examples-"))
        examples = synthetic_examples(tmp)
        allowed = [str(tmp)]
    # A plain SIGTERM (service managers, test harnesses) ends the server the way Ctrl-C does, so
    # the examples folder below is removed too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        log("loading the model…")
        writer = ReportWriter(args, prompt_for(options.lang, None))
        app = build_app(writer, Settings(options.lang, int(args["max_new_tokens"]), examples))
        app.queue(max_size=64)
        log(f"serving on http://{options.host}:{options.port} ({'login required' if auth else 'no login'})")
        app.launch(
            server_name=options.host,
            server_port=options.port,
            auth=auth,
            share=False,
            inbrowser=False,
            show_api=False,
            ssr_mode=False,
            allowed_paths=allowed,
            max_file_size=MAX_UPLOAD,
            prevent_thread_lock=False,
        )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0
