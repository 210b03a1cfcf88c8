"""Text normalisation before the NLG metrics, as in the report-generation literature.

English (the R2Gen convention for IU X-ray): lower-case; split into sentences at ``.``; inside
each sentence remove the punctuation ``. , ? ; * ! % ^ & _ + ( ) : - [ ] { } / \\ " ' |``; join
the sentences with `` . `` and end with `` .``; collapse whitespace. Tokens are then the
whitespace-separated words (the COCO toolkit scorers split on whitespace).

Chinese: the same punctuation removal (ASCII and full-width) and segmentation into words with
jieba (default dictionary, precise mode); tokens joined by single spaces. Sentence ends (``。``)
become `` . `` tokens as in English.
"""

from __future__ import annotations

import re

NORMALISATION = {
    "en": (
        "lower-cased; split into sentences at '.'; punctuation .,?;*!%^&_+():-[]{}/\\\"'| removed inside "
        "sentences; sentences joined with ' . ' (R2Gen's IU X-ray convention); whitespace tokens"
    ),
    "zh": (
        "punctuation (ASCII and full-width) removed, sentence ends kept as ' . '; segmented into words "
        "with jieba 0.42.1 (precise mode); tokens joined with spaces before scoring"
    ),
}

_PUNCT = re.compile(r"[.,?;*!%^&_+():\-\[\]{}/\\\"'|`~<>=#@$]")
_WS = re.compile(r"\s+")
_ZH_SENT = re.compile(r"[。！？!?；;\n]+|\.(?=\s|$)")
_ZH_PUNCT = re.compile(r"[，、：:“”‘’（）()《》【】\[\]「」—…·,.\"'|/\\\-*~`<>=#@$%^&_+{}]")


def normalize_en(text: str) -> str:
    text = (text or "").lower().replace("\n", " ")
    sentences = [_WS.sub(" ", _PUNCT.sub("", s)).strip() for s in text.split(". ")]
    sentences = [s for s in sentences if s]
    return " . ".join(sentences) + " ." if sentences else ""


_jieba = None


def _segment(text: str) -> list[str]:
    global _jieba
    if _jieba is None:
        import logging

        import jieba

        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        _jieba = jieba
    return [t for t in _jieba.lcut(text) if t.strip()]


def normalize_zh(text: str) -> str:
    parts = []
    for sentence in _ZH_SENT.split((text or "").lower()):
        sentence = _WS.sub(" ", _ZH_PUNCT.sub(" ", sentence)).strip()
        if sentence:
            parts.append(" ".join(_segment(sentence)))
    return " . ".join(parts) + " ." if parts else ""


def normalize(text: str, lang: str = "en") -> str:
    if lang == "en":
        return normalize_en(text)
    if lang == "zh":
        return normalize_zh(text)
    raise ValueError(f"unknown language {lang!r} (en or zh)")
