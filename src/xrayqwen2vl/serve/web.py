"""The web demo: upload one or two views of a chest X-ray (PNG, JPEG or DICOM), get the report.

A Gradio app around the same ``ReportWriter`` as ``xrayqwen2vl report`` (LLaMA-Factory's
``ChatModel``): the model is loaded once, requests queue for it one at a time, and the report
streams into the page as the model writes it. Bad uploads (not an image, corrupt, empty, too
large, more than two files) give one clear message in the page and the app keeps serving.

Privacy: an upload is decoded in memory (for DICOM, pixels only, see ``dicom_io``) and Gradio's
copy of it is deleted at once, whether the request is served or refused; no file name, path or
tag goes into the page or the log. Everything the app writes (Gradio's uploads and rendered
previews, half-received uploads, the synthetic examples) goes to one private folder,
``<GRADIO_TEMP_DIR or the system temp folder>/xrayqwen2vl-web-XXXX``, that is removed at
shutdown; folders left by a run that crashed are removed at the next start. Research use only:
the notice is shown at the top of the page and under every report.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import ipaddress
import os
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..data.records import InputFileError
from ..data.text import DEFAULT_PROMPTS
from ..fileio import is_regular_file
from .dicom_io import DICOM_SUFFIXES, RASTER_SUFFIXES, ViewError, open_view
from .report import DISCLAIMER, MAX_IMAGES

AUTH_ENV = "XRAYQWEN2VL_WEB_AUTH"
VIEW_NAMES = ("frontal", "lateral")
LANGUAGES = [("English", "en"), ("Chinese", "zh")]
MAX_UPLOAD = "100mb"  # Gradio refuses bigger uploads before they reach the app
TEMP_PREFIX = "xrayqwen2vl-web-"  # the app's private temp folder: <base>/xrayqwen2vl-web-XXXX
LOCK_NAME = ".lock"  # held (flock) by the running app inside its folder
NOTICE = (
    "**Research use only.** This demo drafts chest X-ray reports with a fine-tuned Qwen2-VL for "
    "research. It is not a medical device; what it writes is not a diagnosis and must not guide "
    "the care of any patient. Do not upload identifiable patient data. From a DICOM file only the "
    "pixels are used: no tag is read into the report. Uploaded files are deleted once decoded."
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


def gradio_upload_dir() -> Path:
    """Where Gradio keeps its copies of uploads (GRADIO_TEMP_DIR, else <tmp>/gradio)."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio").resolve()


def _own_folder(path: Path) -> bool:
    """A real folder (not a link) of this user: one this app may have made."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid()


def _lock(folder: Path) -> int | None:
    """Hold the lock of ``folder``; its descriptor, or None when a live app holds it."""
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def remove_leftovers(base: Path, starting_grace_s: float = 60) -> int:
    """Remove the temp folders of earlier runs under ``base`` whose app is gone (a crash or a
    kill -9 leaves them with uploads inside); a live app holds the lock of its folder. A folder
    still being set up (dot name) is left alone for ``starting_grace_s`` seconds."""
    removed = 0
    for folder in sorted([*base.glob(TEMP_PREFIX + "*"), *base.glob("." + TEMP_PREFIX + "*")]):
        if not _own_folder(folder):
            continue
        if folder.name.startswith(".") and time.time() - folder.stat().st_mtime < starting_grace_s:
            continue
        try:
            fd = _lock(folder)
        except OSError:
            continue
        if fd is None:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)
        removed += 1
    return removed


@contextlib.contextmanager
def private_temp_folder() -> Iterator[Path]:
    """The app's own temp folder for the length of the block, locked while it runs.

    Gradio (GRADIO_TEMP_DIR) and Python's tempfile (half-received uploads) write into it; it is
    removed when the block ends, and leftovers of earlier runs are removed when it starts.
    """
    base = Path(os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir()).resolve()
    base.mkdir(parents=True, exist_ok=True)
    removed = remove_leftovers(base)
    if removed:
        log(f"removed {removed} temp folder(s) left by an earlier run that did not shut down")
    # Made (mode 0700) and locked under a dot name, then renamed: the sweep above never takes
    # the folder of an app that is starting at the same time for a leftover.
    starting = Path(tempfile.mkdtemp(prefix="." + TEMP_PREFIX, dir=base))
    fd = _lock(starting)
    folder = starting.with_name(starting.name[1:])
    os.rename(starting, folder)
    saved = os.environ.get("GRADIO_TEMP_DIR"), tempfile.tempdir
    try:
        (folder / "tmp").mkdir()
        os.environ["GRADIO_TEMP_DIR"] = str(folder)
        tempfile.tempdir = str(folder / "tmp")
        yield folder
    finally:
        tempfile.tempdir = saved[1]
        if saved[0] is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = saved[0]
        shutil.rmtree(folder, ignore_errors=True)
        if fd is not None:
            os.close(fd)


def _in_folder(path: Path, folder: Path | None) -> bool:
    return folder is not None and folder in path.resolve().parents


class DecodedViews:
    """The decoded uploads of all sessions, by Gradio's upload path, newest kept first within
    ``max_pixels``. Gradio names an upload by the hash of its content, so one path is one
    picture, and several pages uploading the same file share one path: once the first request
    has decoded and deleted it, the others (and Generate pressed again) find it here."""

    def __init__(self, max_pixels: int = 256_000_000):
        self.max_pixels = max_pixels
        self._views: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str):
        with self._lock:
            if path in self._views:
                self._views.move_to_end(path)
            return self._views.get(path)

    def __setitem__(self, path: str, view) -> None:
        with self._lock:
            self._views[path] = view
            self._views.move_to_end(path)
            total = sum(v.width * v.height for v in self._views.values())
            while len(self._views) > 1 and total > self.max_pixels:
                _, old = self._views.popitem(last=False)
                total -= old.width * old.height


def load_views(paths: list[str] | None, decoded, upload_dir: Path | None = None) -> list:
    """The decoded views of one upload, or InputFileError with a message fit for the page.

    Every file inside ``upload_dir`` (Gradio's copies of uploads) is deleted when this returns,
    decoded or refused; files elsewhere (examples) are left alone. ``decoded`` (a
    ``DecodedViews`` or a dict) keeps the decoded uploads, so that Generate may be pressed
    again with new settings.
    """
    paths = [p for p in (paths or []) if p]
    uploads = {p for p in paths if _in_folder(Path(p), upload_dir)}
    try:
        return _decode(paths, decoded, uploads)
    finally:
        for raw in uploads:  # keep no copy of a file that may carry patient identifiers
            Path(raw).unlink(missing_ok=True)


def _decode(paths: list[str], decoded, uploads: set[str]) -> list:
    if not paths:
        raise InputFileError("upload one frontal view (PNG, JPEG or DICOM), optionally a lateral view")
    if len(paths) > MAX_IMAGES:
        raise InputFileError(
            f"{len(paths)} files uploaded; one study takes one or two views (frontal, then lateral)"
        )
    views = []
    for i, raw in enumerate(paths):
        view = decoded.get(raw) if raw in uploads else None
        if view is not None:
            views.append(view)
            continue
        p = Path(raw)
        if raw in uploads and not os.path.lexists(p):
            raise InputFileError(
                f"{_view_name(i)}: this upload was deleted after an earlier request (uploads are kept "
                "only until they are decoded or refused); upload the file again"
            )
        try:
            view = open_view(p)
        except ViewError as e:  # our reason alone: no path, file name or exception text
            raise InputFileError(f"{_view_name(i)}: {e.reason}") from None
        except Exception as e:  # whatever else a decoder raises: its type, never its text
            raise InputFileError(f"{_view_name(i)}: could not be read ({type(e).__name__})") from None
        if raw in uploads:
            decoded[raw] = view
        views.append(view)
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
    files = sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in RASTER_SUFFIXES | DICOM_SUFFIXES and is_regular_file(p)
    )
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

    decoded = DecodedViews()

    def generate(paths, lang, max_new_tokens, temperature):
        try:
            views = load_views(paths, decoded, upload_dir)
        except InputFileError as e:
            log(f"refused an upload: {e}")
            yield f"⚠️ **Cannot write a report:** {e}.", "", []
            return
        preview = [(img, _view_name(i)) for i, img in enumerate(views)]
        temperature = float(temperature or 0)
        generation = {"max_new_tokens": int(max_new_tokens), "do_sample": temperature > 0}
        if temperature > 0:
            generation["temperature"] = temperature
        yield "Writing the report…", "", preview
        start, text = time.time(), ""
        try:
            for piece in writer.stream(views, prompt=DEFAULT_PROMPTS[lang], **generation):
                text += piece
                yield "Writing the report…", text, gr.skip()
        except Exception as e:  # the app must keep serving whatever one request does
            log(f"generation failed: {type(e).__name__}")
            yield f"⚠️ **Generation failed** ({type(e).__name__}); try again.", text, gr.skip()
            return
        seconds = time.time() - start
        log(f"report written: {len(views)} view(s), {len(text)} characters, {seconds:.1f} s")
        if not text.strip():
            yield (
                "⚠️ **The model wrote an empty report**; try more tokens or a temperature above 0.",
                "",
                gr.skip(),
            )
            return
        yield f"Done in {seconds:.1f} s. {DISCLAIMER}", text.strip(), gr.skip()

    with gr.Blocks(title="XrayQwen2VL: chest X-ray report draft (research use only)", css=CSS) as app:
        gr.Markdown("# XrayQwen2VL: chest X-ray report draft")
        gr.Markdown(NOTICE, elem_id="research-notice")
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
            inputs=[files, lang, max_tokens, temperature],
            outputs=[status, report, preview],
            concurrency_limit=1,  # one model: requests queue for it
            show_progress="minimal",
            show_progress_on=[report],  # queue position and timer on the report, not over messages
        )
    return app


def login_limit_kwargs() -> dict:
    """The FastAPI arguments that put ``login_limit``'s lockout in front of Gradio's login."""
    from starlette.middleware import Middleware

    from .login_limit import LoginLimiter, LoginLimitMiddleware

    def on_lock(failures: int, seconds: float) -> None:
        log(f"login: {failures} failed attempts in a row from one address; locked for {seconds:g} s")

    return {"middleware": [Middleware(LoginLimitMiddleware, limiter=LoginLimiter(on_lock=on_lock))]}


def run_web(options) -> int:
    """The ``xrayqwen2vl web`` command (options from its argparse parser)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a demo
    from .report import ReportWriter, args_from_options, prompt_for

    auth = parse_auth(options.auth, options.host)
    args = args_from_options(options)
    if options.lang not in DEFAULT_PROMPTS:
        raise InputFileError(f"--lang {options.lang}: expected one of {', '.join(sorted(DEFAULT_PROMPTS))}")
    if options.examples:
        examples_dir = Path(options.examples).resolve()
        examples = folder_examples(examples_dir)
    # A plain SIGTERM (service managers, test harnesses) ends the server the way Ctrl-C does, so
    # that the temp folder is removed too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with private_temp_folder() as temp:
        if not options.examples:
            examples_dir = temp / "examples"
            examples = synthetic_examples(examples_dir)
        log("loading the model…")
        writer = ReportWriter(args, prompt_for(options.lang, None))
        app = build_app(writer, Settings(options.lang, int(args["max_new_tokens"]), examples))
        app.queue(max_size=64)
        log(f"serving on http://{options.host}:{options.port} ({'login required' if auth else 'no login'})")
        try:
            app.launch(
                server_name=options.host,
                server_port=options.port,
                auth=auth,
                share=False,
                inbrowser=False,
                show_api=False,
                ssr_mode=False,
                allowed_paths=[str(examples_dir)],
                max_file_size=MAX_UPLOAD,
                prevent_thread_lock=False,
                app_kwargs=login_limit_kwargs() if auth else None,
            )
        finally:
            app.close(verbose=False)  # no request may write into the folder while it is removed
    return 0
