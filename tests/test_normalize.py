"""The text the NLG metrics score (eval/normalize.py), exact to the character: no METEOR here, so
these stay fast. The English rules are R2Gen's (test_eval_nlg.py checks them against its cases);
the Chinese ones are ours: sentence ends kept as ' . ', punctuation and runs of whitespace gone,
jieba's words joined by single spaces."""

from __future__ import annotations

import pytest

from xrayqwen2vl.eval import normalize as norm
from xrayqwen2vl.eval.normalize import HEADERS_REMOVED, headers_note, normalize, normalize_zh, r2gen_clean


@pytest.mark.parametrize(
    "text, expected",
    [
        ("左侧 胸腔积液", "左侧 胸腔 积液 ."),  # a space between words is not a word
        ("左侧\t 胸腔积液", "左侧 胸腔 积液 ."),
        ("左侧胸腔积液，肋膈角变钝。未见气胸！", "左侧 胸腔 积液 肋 膈 角变 钝 . 未见 气胸 ."),
        ("CT示左侧胸腔积液", "ct 示 左侧 胸腔 积液 ."),  # Latin letters lower-cased
        ("心影增大；\n心脏增大?", "心影 增大 . 心脏 增大 ."),
        ("", ""),
        ("。。", ""),  # nothing but sentence ends: nothing to score
    ],
)
def test_chinese_normalisation_exactly(text, expected):
    assert normalize_zh(text) == expected
    assert normalize(text, "zh", keep_headers=True) == expected


def test_chinese_normalisation_of_nothing():
    assert normalize_zh(None) == ""
    assert normalize("", "zh") == ""


def test_jieba_is_loaded_once_on_first_use(monkeypatch):
    """A fresh process: the segmenter is imported and initialised at the first Chinese text and
    kept for the next ones."""
    monkeypatch.setattr(norm, "_jieba", None)
    assert normalize_zh("未见气胸。") == "未见 气胸 ."
    first = norm._jieba
    assert first is not None and first.__name__ == "jieba"
    assert normalize_zh("心脏增大。") == "心脏 增大 ."
    assert norm._jieba is first


def test_english_lower_cases_before_splitting():
    # "ß" has no one-letter upper case (upper() gives "SS"): lower-casing first keeps it
    assert r2gen_clean("Größe ß. Heart Normal.") == "größe ß . heart normal ."


def test_headers_note_says_what_was_done():
    assert headers_note("en", keep_headers=False) == HEADERS_REMOVED["en"]
    assert headers_note("zh", keep_headers=False) == HEADERS_REMOVED["zh"]
    assert headers_note("en", keep_headers=True) == "section headers kept (--keep-headers)"
    assert headers_note("zh", keep_headers=True) == "section headers kept (--keep-headers)"


def test_unknown_language_is_named():
    with pytest.raises(ValueError) as e:
        normalize("x", "fr")
    assert str(e.value) == "unknown language 'fr' (en or zh)"


def test_headers_stripped_unless_kept():
    text = "Findings: The heart is normal. Impression: No acute disease."
    assert normalize(text) == "the heart is normal . no acute disease ."
    assert (
        normalize(text, keep_headers=True) == "findings the heart is normal . impression no acute disease ."
    )
    assert normalize("印象：心脏增大。", "zh") == "心脏 增大 ."
    assert normalize("印象：心脏增大。", "zh", keep_headers=True) == "印象 心脏 增大 ."
