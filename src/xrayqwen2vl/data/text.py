"""Cleaning of report text and assembly of the training target.

Rules (documented in data/README.md):
- whitespace runs (including newlines and tabs) become one space; ends are stripped;
- ``XXXX`` de-identification tokens are kept as they are by default (the model learns to write
  them where the radiologist's words were removed); ``deid="mask"`` replaces each run of them by
  one ``[REDACTED]`` token consistently in targets;
- empty sections are left out of the target; a report with neither findings nor impression is
  skipped with a reason;
- a literal multimodal placeholder (``<image>``, ``<video>``, ``<audio>``) in report text would
  be read by LLaMA-Factory as a media slot and break training, so the report is rejected with a
  reason rather than silently rewritten.
"""

from __future__ import annotations

import re

_WS = re.compile(r"\s+")
_DEID_RUN = re.compile(r"X{4}(?:[\s\-/]*X{4})*")
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
