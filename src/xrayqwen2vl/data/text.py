"""Cleaning of report text and assembly of the training target.

Rules (documented in data/README.md):
- whitespace runs (including newlines and tabs) become one space; ends are stripped;
- de-identification tokens, Indiana's ``XXXX`` and MIMIC-CXR's ``___`` (three or more
  underscores), are kept as they are by default (the model learns to write them where the
  radiologist's words were removed); ``deid="mask"`` replaces each run of them (tokens separated
  only by spaces, ``-`` or ``/``, e.g. ``___ ___`` or ``XXXX-XXXX``) by one ``[REDACTED]`` token
  consistently in targets;
- empty sections are left out of the target; a report with neither findings nor impression is
  skipped with a reason;
- the target must be written in the script of ``--lang`` (``script_of``): Han characters for
  zh, Latin letters for en;
- a literal multimodal placeholder (``<image>``, ``<video>``, ``<audio>``) in report text would
  be read by LLaMA-Factory as a media slot and break training, so the report is rejected with a
  reason rather than silently rewritten.
"""

from __future__ import annotations

import re

_WS = re.compile(r"\s+")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
_DEID_TOKEN = r"(?:X{4}|_{3,})"
_DEID_RUN = re.compile(rf"{_DEID_TOKEN}(?:[\s\-/]*{_DEID_TOKEN})*")
PLACEHOLDERS = ("<image>", "<video>", "<audio>")

SECTION_NAMES = {
    "en": {"findings": "Findings", "impression": "Impression"},
    "zh": {"findings": "所见", "impression": "印象"},
}

DEFAULT_PROMPTS = {
    "en": "Write the radiology report for this chest X-ray study: the findings and the impression.",
    "zh": "请根据这组胸部X光片写出放射学报告，包括所见和印象。",
}


def clean_section(text: str | None, deid: str = "keep") -> str:
    text = _WS.sub(" ", text or "").strip()
    if deid == "mask":
        text = _DEID_RUN.sub("[REDACTED]", text)
    return text


def placeholder_in(text: str) -> str | None:
    low = text.lower()
    for p in PLACEHOLDERS:
        if p in low:
            return p
    return None


def build_target(findings: str, impression: str, lang: str = "en", target: str = "both") -> str:
    """The assistant turn: "Findings: … Impression: …" (or one section), empty when nothing."""
    names = SECTION_NAMES[lang]
    sep = ": " if lang == "en" else "："
    parts = []
    if target in ("findings", "both") and findings:
        parts.append(f"{names['findings']}{sep}{findings}")
    if target in ("impression", "both") and impression:
        parts.append(f"{names['impression']}{sep}{impression}")
    return (" " if lang == "en" else "\n").join(parts)


def script_of(text: str) -> str | None:
    """ "zh" when Han characters carry the text, "en" when Latin letters do, None when it has
    neither. A Chinese word is one or two characters, an English one about five letters, so a
    text counts as Chinese once its Han characters reach a third of its Latin letters (Chinese
    reports keep the odd "T8"; English ones have no Han at all). De-identification tokens
    (XXXX, ___, [REDACTED]) belong to no language and are not counted."""
    text = _DEID_RUN.sub(" ", text).replace("[REDACTED]", " ")
    han = len(_HAN.findall(text))
    latin = len(_LATIN.findall(text))
    if not han and not latin:
        return None
    return "zh" if 3 * han >= latin else "en"
