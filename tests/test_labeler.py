"""The rule-based CheXpert labeler: every observation positive, negated and uncertain, in English
and Chinese (sentences written for these tests), the "No Finding" rule, the error kinds of issue 11,
accuracy on our labelled sentence set (tests/fixtures/labeler_sentences.jsonl), the synthetic report
vocabulary mapped to the right observations, and benchmarks/labeler_bench.py's options for real data
(run on small files of our own in the real formats)."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from xrayqwen2vl.cli import main
from xrayqwen2vl.eval.chexpert_labeler import OBSERVATIONS, find_mentions, label_report
from xrayqwen2vl.synthetic.text import CHEXPERT_OF, FILLER, FINDINGS, choose_findings, write_report

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SENTENCES = FIXTURES / "labeler_sentences.jsonl"
BENCH = REPO / "benchmarks" / "labeler_bench.py"
sys.path.insert(0, str(BENCH.parent))
import labeler_bench  # noqa: E402

# observation: (positive, negated, uncertain) sentences, English then Chinese.
CASES = {
    "Enlarged Cardiomediastinum": [
        ("The mediastinum is widened.", "No mediastinal widening.", "Possible mediastinal widening."),
        ("纵隔增宽。", "未见纵隔增宽。", "纵隔增宽可能。"),
    ],
    "Cardiomegaly": [
        ("The heart is mildly enlarged.", "The heart is not enlarged.", "Borderline cardiomegaly."),
        ("心影增大。", "心脏大小正常。", "考虑心脏增大。"),
    ],
    "Lung Lesion": [
        (
            "A 1 cm nodule in the right upper lobe.",
            "No pulmonary nodules or masses.",
            "Questionable left lung nodule.",
        ),
        ("右上肺结节。", "未见肿块。", "可疑为结节。"),
    ],
    "Lung Opacity": [
        (
            "Patchy opacity at the left base.",
            "No focal opacity.",
            "Opacity may be present in the right base.",
        ),
        ("右下肺斑片状阴影。", "双肺未见阴影。", "左肺疑似浸润。"),
    ],
    "Edema": [
        ("Mild interstitial edema.", "No pulmonary edema.", "Findings suggestive of mild edema."),
        ("间质性肺水肿。", "无肺水肿。", "不除外肺水肿。"),
    ],
    "Consolidation": [
        ("Right lower lobe consolidation.", "Without focal consolidation.", "Cannot exclude consolidation."),
        ("右下叶实变。", "未见实变。", "可能有实变。"),
    ],
    "Pneumonia": [
        ("Findings consistent with pneumonia.", "Negative for pneumonia.", "Concerning for pneumonia."),
        ("右下肺肺炎。", "没有肺炎。", "考虑肺炎。"),
    ],
    "Atelectasis": [
        ("Bibasilar atelectasis.", "No atelectasis.", "Likely atelectasis in the left base."),
        ("左下肺肺不张。", "未见肺不张。", "肺不张可能。"),
    ],
    "Pneumothorax": [
        (
            "Small right apical pneumothorax.",
            "The pneumothorax has resolved.",
            "Pneumothorax cannot be excluded.",
        ),
        ("右侧气胸。", "气胸已吸收。", "不能排除气胸。"),
    ],
    "Pleural Effusion": [
        ("Small bilateral pleural effusions.", "Free of pleural effusion.", "Possible small left effusion."),
        ("左侧胸腔积液。", "未见胸腔积液。", "疑似少量胸腔积液。"),
    ],
    "Pleural Other": [
        (
            "Right apical pleural thickening.",
            "No pleural thickening.",
            "Probable pleural plaque on the left.",
        ),
        ("右侧胸膜增厚。", "无胸膜增厚。", "可疑为胸膜斑。"),
    ],
    "Fracture": [
        (
            "Healed fracture of the left 6th rib.",
            "No displaced rib fracture.",
            "Questionable right rib fracture.",
        ),
        ("右侧第六肋骨骨折。", "未见骨折。", "疑似肋骨骨折。"),
    ],
    "Support Devices": [
        (
            "Left-sided pacemaker with leads in the right heart.",
            "Interval removal of the central venous catheter.",
            "Possible catheter in the SVC.",
        ),
        ("左侧起搏器在位。", "导管已拔除。", "可能为引流管。"),
    ],
}
PARAMS = [
    pytest.param(obs, lang, kind, sentence, id=f"{obs}-{lang}-{kind}")
    for obs, (en, zh) in CASES.items()
    for lang, sentences in (("en", en), ("zh", zh))
    for kind, sentence in zip(("positive", "negated", "uncertain"), sentences, strict=True)
]
EXPECTED = {"positive": 1, "negated": 0, "uncertain": -1}


@pytest.mark.parametrize("obs,lang,kind,sentence", PARAMS)
def test_every_observation_positive_negated_uncertain(obs, lang, kind, sentence):
    labels = label_report(sentence, lang)
    assert labels[obs] == EXPECTED[kind], (sentence, labels)
    # "No Finding" follows the rule: 1 exactly when no pathology is positive or uncertain.
    pathology_flagged = kind != "negated" and obs != "Support Devices"
    assert labels["No Finding"] == (None if pathology_flagged else 1)


@pytest.mark.parametrize(
    "text,lang,expected",
    [
        (
            "No pleural effusion, pneumothorax, or focal consolidation.",
            "en",
            {"Pleural Effusion": 0, "Pneumothorax": 0, "Consolidation": 0, "No Finding": 1},
        ),
        (
            "No effusion, but there is left basilar atelectasis.",
            "en",
            {"Pleural Effusion": 0, "Atelectasis": 1},
        ),
        ("Atelectasis versus pneumonia in the right base.", "en", {"Atelectasis": -1, "Pneumonia": -1}),
        ("Left lung opacity, possibly pneumonia.", "en", {"Lung Opacity": 1, "Pneumonia": -1}),
        ("No suspicious pulmonary nodule.", "en", {"Lung Lesion": 0}),
        ("Possibly no effusion.", "en", {"Pleural Effusion": -1}),
        ("No pericardial effusion.", "en", {"Pleural Effusion": None}),
        (
            "Heart size within normal limits. The lungs are clear.",
            "en",
            {"Cardiomegaly": 0, "Lung Opacity": 0},
        ),
        (
            "A pacemaker is in place. No acute cardiopulmonary abnormality.",
            "en",
            {"Support Devices": 1, "No Finding": 1},
        ),
        ("", "en", {"No Finding": 1, "Cardiomegaly": None}),
        (
            "Support device in place. Small left pleural effusion.",
            "en",
            {"Support Devices": 1, "Pleural Effusion": 1},
        ),
        ("未见胸腔积液、气胸。", "zh", {"Pleural Effusion": 0, "Pneumothorax": 0}),
        ("未见胸腔积液，心脏增大。", "zh", {"Pleural Effusion": 0, "Cardiomegaly": 1}),
        ("未见可疑肺结节。", "zh", {"Lung Lesion": 0}),
    ],
)
def test_scope_and_aggregation(text, lang, expected):
    labels = label_report(text, lang)
    for obs, value in expected.items():
        assert labels[obs] == value, (text, obs, labels)


def test_positive_wins_over_negative_and_uncertain_in_one_report():
    labels = label_report(
        "No pneumothorax on the left. Possible right pneumothorax. Right apical pneumothorax."
    )
    assert labels["Pneumothorax"] == 1
    assert label_report("No pneumothorax on the left. Possible right pneumothorax.")["Pneumothorax"] == -1


# The error kinds issue 11 found on real reports, in our own sentences; each failed before the fix.
ISSUE_CASES = [
    # word boundaries: "stent" inside consistent / persistent / distention
    ("Findings are consistent with prior granulomatous disease.", "en", {"Support Devices": None}),
    ("Persistent left basilar opacity.", "en", {"Support Devices": None, "Lung Opacity": 1}),
    ("Mild gaseous distention of the stomach.", "en", {"Support Devices": None}),
    # hedges are uncertain, not positive
    ("Question left lower lobe infiltrate.", "en", {"Lung Opacity": -1}),
    ("Right lower lobe pneumonia suspected.", "en", {"Pneumonia": -1}),
    ("Right middle lobe pneumonia cannot be entirely excluded.", "en", {"Pneumonia": -1}),
    ("Pneumonia is in the differential.", "en", {"Pneumonia": -1}),
    ("Small bilateral effusions are also possible.", "en", {"Pleural Effusion": -1}),
    ("Evaluation for pneumothorax is limited by patient rotation.", "en", {"Pneumothorax": -1}),
    ("A small pneumothorax may not be demonstrated on this supine film.", "en", {"Pneumothorax": -1}),
    # negation scope
    ("No significant change in the right pneumothorax.", "en", {"Pneumothorax": 1}),
    ("No cardiomegaly with small bilateral effusions.", "en", {"Cardiomegaly": 0, "Pleural Effusion": 1}),
    # concepts
    ("Calcified granuloma, sequela of prior granulomatous infection.", "en", {"Pneumonia": None}),
    ("Soft tissue edema of the left upper extremity.", "en", {"Edema": None}),
    # vocabulary
    ("The heart is large.", "en", {"Cardiomegaly": 1}),
    ("Heart size remains slightly large.", "en", {"Cardiomegaly": 1}),
    ("Collapse of the right lung.", "en", {"Atelectasis": 1}),
    ("Apical pleural air collection on the right.", "en", {"Pneumothorax": 1}),
    # "No Finding" is not 1 when another abnormality is stated
    ("Hyperexpanded lungs consistent with emphysema.", "en", {"No Finding": None}),
    # Chinese: "或" in a negated list negates both; commas continue a negated list
    ("没有发现胸腔积液或气胸。", "zh", {"Pleural Effusion": 0, "Pneumothorax": 0, "No Finding": 1}),
    (
        "没有气胸，胸腔积液或局灶性实变。",
        "zh",
        {"Pneumothorax": 0, "Pleural Effusion": 0, "Consolidation": 0},
    ),
    ("没有任何浸润、气胸或渗出的迹象。", "zh", {"Lung Opacity": 0, "Pneumothorax": 0, "Pleural Effusion": 0}),
    # Chinese vocabulary
    ("心脏肿大。", "zh", {"Cardiomegaly": 1}),
    ("心肌肥大。", "zh", {"Cardiomegaly": 1}),
    ("心脏大小适度增大。", "zh", {"Cardiomegaly": 1}),
    ("右下叶气隙不透明。", "zh", {"Lung Opacity": 1}),
    ("右下叶固结。", "zh", {"Consolidation": 1}),
    ("没有任何病灶巩固、气胸或胸腔积液的迹象。", "zh", {"Consolidation": 0}),
    # Chinese hedges and scope
    ("右中叶肺炎不能完全排除。", "zh", {"Pneumonia": -1}),
    ("没有明显变化的右侧气胸。", "zh", {"Pneumothorax": 1}),
    ("无心脏肿大，伴有双侧少量胸腔积液。", "zh", {"Cardiomegaly": 0, "Pleural Effusion": 1}),
    # issue 22: 伴 / 伴有 / 并有 / 并见 / 同时有 stop a negation in the same part, no comma needed
    ("无心脏增大伴双侧胸腔积液。", "zh", {"Cardiomegaly": 0, "Pleural Effusion": 1}),
    ("无气胸伴有胸腔积液。", "zh", {"Pneumothorax": 0, "Pleural Effusion": 1}),
    ("无心脏增大并有胸腔积液。", "zh", {"Cardiomegaly": 0, "Pleural Effusion": 1}),
    ("无心脏增大并见胸腔积液。", "zh", {"Cardiomegaly": 0, "Pleural Effusion": 1}),
    ("无心脏增大同时有胸腔积液。", "zh", {"Cardiomegaly": 0, "Pleural Effusion": 1}),
    # a negation cue after its phrase does not run on past the comma into a new list
    ("肺水肿不明显，胸腔积液。", "zh", {"Edema": 0, "Pleural Effusion": 1}),
    ("气胸已吸收，胸腔积液。", "zh", {"Pneumothorax": 0, "Pleural Effusion": 1}),
]


# The scope rules at their edges (issue 22): each case failed under a mutant that the cases above
# let through (make mutation, doc/testing.md).
_OR_FAR = " at the right lung bases on the frontal"  # 39 characters, no word that blocks "or"
_ZH_FAR = "位于右下肺野外带区域"  # 10 characters
RULE_EDGES = [
    # English lists: a cue after the last item reaches every item of the list
    (
        "Pneumothorax, pleural effusion, or focal consolidation is not seen.",
        "en",
        {"Pneumothorax": 0, "Pleural Effusion": 0, "Consolidation": 0},
    ),
    (
        "Pneumothorax, pleural effusion, consolidation or edema has been ruled out.",
        "en",
        {"Pneumothorax": 0, "Pleural Effusion": 0, "Consolidation": 0, "Edema": 0},
    ),
    (
        "Pneumothorax, pleural effusion and edema are not seen.",
        "en",
        {"Pneumothorax": 0, "Pleural Effusion": 0, "Edema": 0},
    ),
    # ... but not past a comma that ends a statement, even with an "and" before it
    ("Pneumothorax at the apex and base, edema is not seen.", "en", {"Pneumothorax": 1, "Edema": 0}),
    (
        "Effusion in the right base, pneumothorax is suspected.",
        "en",
        {"Pleural Effusion": 1, "Pneumothorax": -1},
    ),
    # "versus" after a comma does not join the phrase before the comma
    ("Right basilar atelectasis, scarring versus pneumonia.", "en", {"Atelectasis": 1, "Pneumonia": -1}),
    ("Atelectasis, scarring vs pneumonia.", "en", {"Atelectasis": 1, "Pneumonia": -1}),
    # "or" joins two phrases within 40 characters (English) or 10 (Chinese), not further
    (f"Atelectasis{_OR_FAR} or pneumonia.", "en", {"Atelectasis": -1, "Pneumonia": -1}),
    (f"Atelectasis{_OR_FAR}s or pneumonia.", "en", {"Atelectasis": 1, "Pneumonia": -1}),
    (
        "The patient turned right or left during the exposure, with atelectasis or pneumonia at the base.",
        "en",
        {"Atelectasis": -1, "Pneumonia": -1},
    ),
    ("肺不张或肺炎。", "zh", {"Atelectasis": -1, "Pneumonia": -1}),
    (f"肺不张{_ZH_FAR}或肺炎。", "zh", {"Atelectasis": -1, "Pneumonia": -1}),
    (f"肺不张{_ZH_FAR}内或肺炎。", "zh", {"Atelectasis": 1, "Pneumonia": -1}),
    # a "no change" cue: nothing before it reaches the phrase; a hedge between them does
    ("No new effusion and no change in the effusion.", "en", {"Pleural Effusion": 1}),
    ("No change in the suspicious pneumothorax.", "en", {"Pneumothorax": -1}),
    # a cue after one phrase is not read for a phrase after it
    ("Effusion has resolved with new pneumothorax.", "en", {"Pleural Effusion": 0, "Pneumothorax": 1}),
    # a participle that is the verb of the clause before ("has resolved", "has been removed") is no
    # cue before the next phrase; the adjective still is ("resolved effusion")
    ("Effusion has resolved and pneumothorax is present.", "en", {"Pleural Effusion": 0, "Pneumothorax": 1}),
    (
        "The chest tube has been removed and a small pneumothorax is present.",
        "en",
        {"Support Devices": 0, "Pneumothorax": 1},
    ),
    ("Effusion resolved and pneumothorax present.", "en", {"Pleural Effusion": 0, "Pneumothorax": 1}),
    ("Effusion has  resolved and pneumothorax is present.", "en", {"Pneumothorax": 1}),  # two spaces
    ("Effusion: has resolved and pneumothorax present.", "en", {"Pneumothorax": 1}),
    # ... and it ends that phrase's clause: a cue before it does not reach the next phrase either
    ("Previously suspected effusion has resolved and pneumothorax is present.", "en", {"Pneumothorax": 1}),
    # (a hedge between it and the phrase still counts)
    (
        "Effusion has resolved and a suspicious nodule is seen.",
        "en",
        {"Pleural Effusion": 0, "Lung Lesion": -1},
    ),
    ("Resolved effusion and pneumothorax.", "en", {"Pleural Effusion": 0, "Pneumothorax": 0}),
    # "or" joins across a comma only inside a list, not from the clause of another phrase
    (
        "Pneumothorax in the apex, effusion or edema is not seen.",
        "en",
        {"Pneumothorax": 1, "Pleural Effusion": 0, "Edema": 0},
    ),
    ("Atelectasis, pneumonia or aspiration.", "en", {"Atelectasis": -1, "Pneumonia": -1}),
    # ... and an "or" so refused does not stop the search for the next one
    (
        "Effusion or edema in the base, pneumothorax or atelectasis.",
        "en",
        {"Pleural Effusion": -1, "Edema": -1, "Pneumothorax": -1, "Atelectasis": -1},
    ),
    # a hedged phrase (a sign that only suggests the finding) with no cue at all is uncertain
    ("Blunting of the left costophrenic angle.", "en", {"Pleural Effusion": -1}),
    ("Prominent cardiac silhouette.", "en", {"Cardiomegaly": -1}),
    ("右侧肋膈角变钝。", "zh", {"Pleural Effusion": -1}),
    # a phrase counted only when negated: nothing when it is not, and the rest of the part is read
    ("Acute bony abnormality.", "en", {"Fracture": None}),
    ("Bony abnormality, rib fracture.", "en", {"Fracture": 1}),
    # Chinese negated lists run on over commas only through parts that continue the list
    ("未见气胸，请结合临床，胸腔积液。", "zh", {"Pneumothorax": 0, "Pleural Effusion": 1}),
    ("未见气胸，少量胸腔积液。", "zh", {"Pneumothorax": 0, "Pleural Effusion": 1}),
    ("没有气胸，以及局灶性实变。", "zh", {"Pneumothorax": 0, "Consolidation": 0}),
    # a size, degree or course after "and" or a comma starts a finding of its own: no one writes a
    # size on a finding they are negating ...
    ("No pleural effusion and small right pneumothorax.", "en", {"Pleural Effusion": 0, "Pneumothorax": 1}),
    ("No effusion and a small pneumothorax.", "en", {"Pleural Effusion": 0, "Pneumothorax": 1}),
    ("Lungs without effusion and mild edema.", "en", {"Pleural Effusion": 0, "Edema": 1}),
    ("No pneumothorax and stable mild cardiomegaly.", "en", {"Pneumothorax": 0, "Cardiomegaly": 1}),
    ("No pneumothorax, small left pleural effusion.", "en", {"Pneumothorax": 0, "Pleural Effusion": 1}),
    (
        "No pleural effusion, 2 cm right apical pneumothorax.",
        "en",
        {"Pleural Effusion": 0, "Pneumothorax": 1},
    ),
    ("No acute cardiopulmonary process, mild cardiomegaly.", "en", {"Cardiomegaly": 1}),
    ("No pneumothorax, small effusion and mild edema.", "en", {"Pleural Effusion": 1, "Edema": 1}),
    ("Heart size normal, no effusion and small focus of atelectasis.", "en", {"Atelectasis": 1}),
    # ... also when the size word is the first word of the phrase itself
    ("No effusion and large cardiac silhouette.", "en", {"Pleural Effusion": 0, "Cardiomegaly": 1}),
    ("No pneumothorax, enlarged cardiac silhouette.", "en", {"Pneumothorax": 0, "Cardiomegaly": 1}),
    (
        "No pleural effusion, pneumothorax, or enlarged heart.",
        "en",
        {"Pleural Effusion": 0, "Pneumothorax": 0, "Cardiomegaly": 0},
    ),
    # after a comma it is a statement of its own, out of an uncertainty's reach too (as the Chinese
    # comma); after "and" a hedge may still cover both
    ("Possible pneumonia, small left pleural effusion.", "en", {"Pneumonia": -1, "Pleural Effusion": 1}),
    ("Possible pneumonia and small effusion.", "en", {"Pneumonia": -1, "Pleural Effusion": -1}),
    ("No pneumothorax, small suspicious nodule.", "en", {"Pneumothorax": 0, "Lung Lesion": -1}),
    (
        "Likely atelectasis, small effusion, or pneumonia.",
        "en",
        {"Atelectasis": -1, "Pleural Effusion": -1, "Pneumonia": -1},
    ),
    ("无胸腔积液及少量气胸。", "zh", {"Pleural Effusion": 0, "Pneumothorax": 1}),
    ("未见胸腔积液和轻度肺水肿。", "zh", {"Pleural Effusion": 0, "Edema": 1}),
    # ... but a list closed by "or" stays one negated list, and so do a plain "and" and a new "no"
    (
        "No focal consolidation, large effusion or pneumothorax.",
        "en",
        {"Consolidation": 0, "Pleural Effusion": 0, "Pneumothorax": 0},
    ),
    (
        "No pneumothorax, small effusion, or consolidation.",
        "en",
        {"Pneumothorax": 0, "Pleural Effusion": 0, "Consolidation": 0},
    ),
    ("No large pleural effusion and pneumothorax.", "en", {"Pleural Effusion": 0, "Pneumothorax": 0}),
    ("No effusion and no small pneumothorax.", "en", {"Pleural Effusion": 0, "Pneumothorax": 0}),
    ("No pneumothorax and possible small effusion.", "en", {"Pneumothorax": 0, "Pleural Effusion": -1}),
    (
        "未见局灶性实变、大量胸腔积液或气胸。",
        "zh",
        {"Consolidation": 0, "Pleural Effusion": 0, "Pneumothorax": 0},
    ),
    ("无气胸、胸腔积液。", "zh", {"Pneumothorax": 0, "Pleural Effusion": 0}),
]


@pytest.mark.parametrize("text,lang,expected", ISSUE_CASES + RULE_EDGES)
def test_error_kinds_and_rule_edges(text, lang, expected):
    labels = label_report(text, lang)
    assert {o: labels[o] for o in expected} == expected, text


def _sentence_set():
    return [json.loads(line) for line in SENTENCES.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_sentence_set_is_ours_and_large_enough():
    records = _sentence_set()
    by_lang = Counter(r["lang"] for r in records)
    assert by_lang["en"] >= 200 and by_lang["zh"] >= 150, by_lang
    assert len({r["id"] for r in records}) == len(records)
    for r in records:
        assert set(r["labels"]) <= set(OBSERVATIONS) and set(r["labels"].values()) <= {1, 0, -1}, r
    # every observation is stated (not blank) in several sentences of each language
    for lang in ("en", "zh"):
        stated = Counter(o for r in records if r["lang"] == lang for o in r["labels"])
        assert all(stated[o] >= 3 for o in OBSERVATIONS), (lang, stated)
    # real report phrasing: redactions, hedges, negated lists, comparisons
    texts = " ".join(r["text"] for r in records)
    for phrase in ("XXXX", "cannot be", "No significant change", "或", "较前", "unchanged", "healed"):
        assert phrase.lower() in texts.lower(), phrase


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_accuracy_on_the_sentence_set(lang):
    """At least 95% per observation, over all sentences and over those where it is mentioned."""
    result = labeler_bench.sentence_accuracy(_sentence_set(), label_report)[lang]
    for o, c in result["per_observation"].items():
        assert c["correct"] / c["n"] >= 0.95, (o, c, result["misses"])
        assert c["correct_mentioned"] / c["mentioned"] >= 0.95, (o, c, result["misses"])


def test_find_mentions_keeps_its_shape_and_the_report_text():
    text = "Small LEFT Pleural Effusion. No pneumothorax. Degenerative changes of the spine."
    mentions = find_mentions(text)
    assert [(m.observation, m.label) for m in mentions] == [("Pleural Effusion", 1), ("Pneumothorax", 0)]
    for m in mentions:
        assert m.text in text and m.sentence in text  # html_report highlights m.text in the report
    assert mentions[0].text == "Pleural Effusion"
    # the other abnormality keeps "No Finding" off but is no observation of its own
    assert label_report(text)["No Finding"] is None and len(label_report(text)) == len(OBSERVATIONS)


ABNORMAL_FILLER = [pair for pair in FILLER if "Degenerative" in pair[0] or "granuloma" in pair[0]]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_synthetic_vocabulary_maps_to_the_right_observations(lang):
    rng = random.Random(7)
    for _ in range(400):
        present = choose_findings(rng)
        text = write_report(present, rng)[lang]
        report = (
            f"{text['findings']} {text['impression']}"
            if lang == "en"
            else text["findings"] + text["impression"]
        )
        labels = label_report(report, lang)
        positives = {o for o in OBSERVATIONS if labels[o] == 1}
        expected = {CHEXPERT_OF[f] for f in present}
        pathology = expected - {"Support Devices"}
        # degenerative changes and a calcified granuloma are abnormalities: no "No Finding"
        other = any(pair[k] in report for pair in ABNORMAL_FILLER for k in (0, 1))
        if not pathology and not other:
            expected.add("No Finding")
        assert positives == expected, (report, labels)
        # the impression of an opacity says "possibly pneumonia": uncertain, never positive
        assert labels["Pneumonia"] == (-1 if "opacity" in present else None), (report, labels)
        for finding in FINDINGS:
            if finding not in present:
                assert labels[CHEXPERT_OF[finding]] in (0, None), (report, finding, labels)


def test_label_command_writes_the_csv(tmp_path):
    reports = tmp_path / "reports.jsonl"
    reports.write_text(
        json.dumps({"id": "a", "text": "The heart is enlarged. No pleural effusion."})
        + "\n"
        + json.dumps({"id": 7, "text": "Possible pneumothorax."})
        + "\n"
    )
    out = tmp_path / "labels.csv"
    assert main(["label", str(reports), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0].keys()) == ["id", *OBSERVATIONS]
    assert rows[0]["Cardiomegaly"] == "1" and rows[0]["Pleural Effusion"] == "0" and rows[0]["Edema"] == ""
    assert rows[1]["id"] == "7" and rows[1]["Pneumothorax"] == "-1" and rows[1]["No Finding"] == ""


def test_label_command_names_the_bad_line(tmp_path, capsys):
    reports = tmp_path / "reports.jsonl"
    reports.write_text(json.dumps({"id": "a", "text": "Clear."}) + "\n{not json\n")
    assert main(["label", str(reports), "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert f"{reports}:2: not valid JSON" in err and len(err.strip().splitlines()) == 1
    reports.write_text(json.dumps({"id": "a"}) + "\n")
    assert main(["label", str(reports), "--out", str(tmp_path / "x.csv")]) == 2
    assert f'{reports}:1: missing "text"' in capsys.readouterr().err


# ------------------------------------------------------------------ benchmarks/labeler_bench.py
def _bench(*args: str, out: Path | None = None):
    cmd = [sys.executable, str(BENCH), "--reports", "20", "--repeats", "1", *args]
    if out is not None:
        cmd += ["--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_bench_prints_per_observation_accuracy_and_speed(tmp_path):
    proc = _bench(out=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "English:" in proc.stdout and "Chinese:" in proc.stdout and "reports/s" in proc.stdout
    result = json.loads((tmp_path / "results.json").read_text())
    for lang in ("en", "zh"):
        per = result["sentences"]["rules"][lang]["per_observation"]
        assert set(per) == set(OBSERVATIONS)
        assert all(c["correct"] / c["n"] >= 0.95 for c in per.values())
        # the rules beat a keyword labeler that reads no negation or uncertainty
        base = result["sentences"]["keyword_baseline"][lang]["per_observation"]
        assert sum(c["correct"] for c in per.values()) > sum(c["correct"] for c in base.values())
        assert result["speed"][lang]["labeler"] > 0


def test_bench_fails_when_accuracy_is_under_the_bar(tmp_path):
    wrong = tmp_path / "wrong.jsonl"
    records = [
        {"id": f"w{k}", "lang": "en", "text": "No pneumothorax.", "labels": {"Pneumothorax": 1}}
        for k in range(3)
    ]
    wrong.write_text("".join(json.dumps(r) + "\n" for r in records))
    proc = _bench("--sentences", str(wrong))
    assert proc.returncode == 1 and "required 0.95" in proc.stdout, proc.stdout + proc.stderr


def test_bench_against_mesh_indexing(tmp_path):
    """F1 against the human MeSH terms of a Kaggle-format indiana_reports.csv (our own rows)."""
    csv_path = FIXTURES / "labeler" / "indiana_reports_sample.csv"
    proc = _bench("--indiana-reports", str(csv_path), out=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    mesh = json.loads((tmp_path / "results.json").read_text())["mesh"]
    assert mesh["reports"] == 13
    assert [(s["record"], s["reason"]) for s in mesh["skipped"]] == [
        ("9", "no MeSH indexing"),
        ("10", "no findings or impression text"),
    ]
    per = mesh["per_observation"]
    # "Hydropneumothorax" counts as Pneumothorax; "no significant change in the ... pneumothorax" is one
    assert (per["Pneumothorax"]["tp"], per["Pneumothorax"]["fp"], per["Pneumothorax"]["fn"]) == (2, 0, 0)
    # "Pulmonary Congestion" is Edema; "Edema/soft tissue/arm" is not
    assert (per["Edema"]["tp"], per["Edema"]["fp"], per["Edema"]["fn"]) == (1, 0, 0)
    # "question of early pneumonia" and "prior granulomatous infection" are no pneumonia
    assert (per["Pneumonia"]["tp"], per["Pneumonia"]["fp"]) == (1, 0)
    assert (per["Cardiomegaly"]["f1"], per["Pleural Effusion"]["f1"], per["No Finding"]["f1"]) == (
        1.0,
        1.0,
        1.0,
    )
    # "volume loss" is not read as atelectasis: a miss the table must show
    assert per["Atelectasis"]["fn"] == 1 and per["Atelectasis"]["f1"] == 0.0
    assert per["Consolidation"]["fp"] == 1
    assert "Atelectasis" in proc.stdout and "NOT met" in proc.stdout
    skipped = [json.loads(x) for x in (tmp_path / "skipped.jsonl").read_text().splitlines()]
    assert {s["record"] for s in skipped} == {"9", "10"}


def test_bench_chinese_against_english_captions(tmp_path):
    proc = _bench(
        "--openi-en",
        str(FIXTURES / "labeler" / "openi-en_sample.json"),
        "--openi-zh",
        str(FIXTURES / "labeler" / "openi-zh_sample.json"),
        out=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    agreement = json.loads((tmp_path / "results.json").read_text())["agreement"]
    assert agreement["pairs"] == 8
    assert sorted(s["record"] for s in agreement["skipped"]) == ["x10", "x9"]
    per = agreement["per_observation"]
    assert per["Pleural Effusion"]["exact"] == 1.0 and per["Pneumothorax"]["exact"] == 1.0
    # one Chinese caption leaves out the enlarged heart of its English original
    assert per["Cardiomegaly"]["exact"] == 7 / 8
    assert agreement["disagreements"] == [
        {"image_id": "a7", "en_vs_zh": {"No Finding": [None, 1], "Cardiomegaly": [1, None]}}
    ]


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("reports.csv", "uid,MeSH,findings\n1,normal,Clear.\n", "missing column(s) impression"),
        ("en.json", '{"annotations": [{"image_id": 1}]}', 'annotations[0]: missing "caption"'),
        ("en.json", '{"annotations": [{"image_id": 1, "caption": 5}]}', '"caption" must be a string'),
        ("en.json", '{"annotations": [\n{"image_id": 1,}]}', ":2: not valid JSON"),
        ("en.json", '[{"image_id": 1, "caption": "x"}]', "XrayGLM caption format"),
    ],
)
def test_bench_names_the_bad_file_and_record(tmp_path, name, content, message):
    bad = tmp_path / name
    bad.write_text(content)
    good = FIXTURES / "labeler" / "openi-zh_sample.json"
    args = (
        ["--indiana-reports", str(bad)]
        if name.endswith(".csv")
        else ["--openi-en", str(bad), "--openi-zh", str(good)]
    )
    proc = _bench(*args, "--reports", "0")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and message in err, err
