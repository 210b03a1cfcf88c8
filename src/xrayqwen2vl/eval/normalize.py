"""Text normalisation before the NLG metrics, as in the report-generation literature.

Section headers first: our targets read "Findings: … Impression: …" ("所见：…\\n印象：…" in
Chinese, see ``data/text.py`` ``build_target``) while R2Gen's IU X-ray references are the bare
findings, so the header words would be scored as report words. :func:`strip_headers` removes
them (``keep_headers=True`` keeps them); the labeler still reads the text as written.

English follows R2Gen's tokenizer for IU X-ray (``clean_report_iu_xray`` in
cuhksz-nlp/R2Gen ``modules/tokenizers.py``; our own code, the same steps):

1. plain substring replacements, in this order: ``..`` → ``.`` three times; ``1. `` → nothing
   (anywhere, so "T11. No" becomes "T1No"); ``. 2. ``, ``. 3. ``, ``. 4. ``, ``. 5. `` → ``. ``;
   `` 2. ``, `` 3. ``, `` 4. ``, `` 5. `` → ``. ``;
2. strip, lower-case, split into sentences at ``". "``;
3. in each sentence delete ``"``, ``/``, ``\\`` and ``'``; strip; lower-case; delete every
   character matched by ``[.,?;*!%^&_+():-\\[\\]{}]``. In that class ``:-\\[`` is a *range*
   (``:`` to ``[``: ``: ; < = > ? @``, A–Z and ``[``), so the hyphen itself is **not** removed:
   "well-expanded" stays one token, a free-standing " - " stays a "-" token; ``#``, ``$``,
   ``|``, ``~`` and backquotes stay too. Deleting, not replacing by a space, joins words:
   "and/or" → "andor", "1.5 cm" → "15 cm";
4. join the sentences (empty ones included) with `` . `` and append `` .``; tokens are the
   whitespace-separated words (R2Gen splits on whitespace; the COCO scorers do too).

The one step we add before these: every line break, tab or other whitespace character becomes
a space (R2Gen's references are single lines; a model's output may not be; runs of spaces are
left alone, as R2Gen leaves them, since "1.  x" and "1. x" clean differently). On single-line
text the result is R2Gen's exactly; an empty text becomes ``.`` as in R2Gen.

Chinese: sentence ends (``。！？；`` and line breaks) become `` . ``; punctuation (ASCII and
full-width) is removed; the words are segmented with jieba (default dictionary, precise mode)
and joined by single spaces.
"""

from __future__ import annotations

import re

# What metrics.json says about the normalisation, per language.
NORMALISATION = {
    "en": (
        "R2Gen's IU X-ray tokenisation (clean_report_iu_xray): '..' -> '.', list numbers '1. '..'5. ' "
        "removed, lower-cased, split at '. ', quotes / \\ ' and the class [.,?;*!%^&_+():-\\[\\]{}] deleted "
        "(hyphens kept), sentences joined with ' . '; whitespace tokens"
    ),
    "zh": (
        "punctuation (ASCII and full-width) removed, sentence ends kept as ' . '; segmented into words "
        "with jieba 0.42.1 (precise mode); tokens joined with spaces before scoring"
    ),
}
HEADERS_REMOVED = {
    "en": "section headers (Findings:, Impression:) removed before scoring",
    "zh": "section headers (所见：, 印象：, 影像所见：, 诊断意见：, 结论：) removed before scoring",
}


def headers_note(lang: str, keep_headers: bool) -> str:
    """What metrics.json and report.html say about section headers."""
    return "section headers kept (--keep-headers)" if keep_headers else HEADERS_REMOVED[lang]


_WS = re.compile(r"\s+")
_OTHER_WS = re.compile(r"[^\S ]")  # whitespace other than the plain space

# A header word, its colon and the spaces after it, at the start of the text or after whitespace
# or a sentence end; removed, so "Findings: X. Impression: Y." becomes "X. Y.".
_HEADERS = {
    "en": re.compile(r"(?:^|(?<=[\s.;]))(?:findings?|impressions?)\s*:\s*", re.IGNORECASE),
    "zh": re.compile(
        r"(?:^|(?<=[\s。；;.!?！？]))(?:影像学?所见|检查所见|所见|印象|诊断意见|结论)\s*[:：]\s*",
        re.IGNORECASE,
    ),
}


def strip_headers(text: str, lang: str = "en") -> str:
    """Remove section headers ("Findings:", "Impression:", "所见：", "印象：" …) from ``text``."""
    return _HEADERS[lang].sub("", text or "")


# R2Gen clean_report_iu_xray, step 1: (old, new) plain replacements in order.
_R2GEN_REPLACEMENTS = (
    [("..", ".")] * 3
    + [("1. ", "")]
    + [(f". {k}. ", ". ") for k in range(2, 6)]
    + [(f" {k}. ", ". ") for k in range(2, 6)]
)
_R2GEN_DELETE = ('"', "/", "\\", "'")
# ":-\[" is the range ':'..'[', not a hyphen: R2Gen keeps hyphens.
_R2GEN_PUNCT = re.compile(r"[.,?;*!%^&_+():-\[\]{}]")


def r2gen_clean(text: str) -> str:
    """R2Gen's IU X-ray report cleaning (steps 1–4 above), tokens joined by single spaces."""
    text = _OTHER_WS.sub(" ", text or "")
    for old, new in _R2GEN_REPLACEMENTS:
        text = text.replace(old, new)
    sentences = []
    for sentence in text.strip().lower().split(". "):
        for ch in _R2GEN_DELETE:
            sentence = sentence.replace(ch, "")
        sentences.append(_R2GEN_PUNCT.sub("", sentence.strip().lower()))
    return " ".join((" . ".join(sentences) + " .").split())


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


_ZH_SENT = re.compile(r"[。！？!?；;\n]+|\.(?=\s|$)")
_ZH_PUNCT = re.compile(r"[，、：:“”‘’（）()《》【】\[\]「」—…·,.\"'|/\\\-*~`<>=#@$%^&_+{}]")


def normalize_zh(text: str) -> str:
    parts = []
    for sentence in _ZH_SENT.split((text or "").lower()):
        sentence = _WS.sub(" ", _ZH_PUNCT.sub(" ", sentence)).strip()
        if sentence:
            parts.append(" ".join(_segment(sentence)))
    return " . ".join(parts) + " ." if parts else ""


def normalize(text: str, lang: str = "en", keep_headers: bool = False) -> str:
    """The text the NLG metrics score: headers stripped (unless kept), then normalised."""
    if lang not in _HEADERS:
        raise ValueError(f"unknown language {lang!r} (en or zh)")
    if not keep_headers:
        text = strip_headers(text, lang)
    return r2gen_clean(text) if lang == "en" else normalize_zh(text)
