"""A study as one OpenAI chat message for ``llamafactory-cli api`` (the OpenAI-compatible server).

The images come first and the prompt after them, as ``xrayqwen2vl prepare`` trains
(``<image><image>Prompt``); each view is sent as a base64 ``data:image/png`` URL. A DICOM file is
decoded here (pixels only, see ``dicom_io``) and sent as PNG: the server never sees its tags.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

from ..data.records import InputFileError
from ..data.text import DEFAULT_PROMPTS
from .dicom_io import open_view
from .report import MAX_IMAGES


def png_data_url(path: str | Path) -> str:
    """One view (PNG, JPEG or DICOM file) as a ``data:image/png;base64,…`` URL."""
    image = open_view(path)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def study_message(paths: list[str | Path], lang: str = "en", prompt: str | None = None) -> dict:
    """The user message for one study: frontal [+ lateral] image, then the training prompt."""
    if not paths or len(paths) > MAX_IMAGES:
        raise InputFileError(f"{len(paths)} images given; one study takes one or two (frontal, lateral)")
    content: list[dict] = [{"type": "image_url", "image_url": {"url": png_data_url(p)}} for p in paths]
    content.append({"type": "text", "text": prompt if prompt is not None else DEFAULT_PROMPTS[lang]})
    return {"role": "user", "content": content}
