"""The rule-based CheXpert labeler: every observation positive, negated and uncertain, in English
and Chinese (sentences written for these tests), the "No Finding" rule, and the synthetic
report vocabulary mapped to the right observations."""

from __future__ import annotations

import csv
import json
import random

import pytest

from xrayqwen2vl.cli import main
from xrayqwen2vl.eval.chexpert_labeler import OBSERVATIONS, label_report
from xrayqwen2vl.synthetic.text import FINDINGS, choose_findings, write_report

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


SYNTHETIC_TO_CHEXPERT = {
    "cardiomegaly": "Cardiomegaly",
    "pleural_effusion": "Pleural Effusion",
    "pneumothorax": "Pneumothorax",
    "atelectasis": "Atelectasis",
    "opacity": "Lung Opacity",
    "nodule": "Lung Lesion",
    "fracture": "Fracture",
    "support_devices": "Support Devices",
}


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
        expected = {SYNTHETIC_TO_CHEXPERT[f] for f in present}
        pathology = expected - {"Support Devices"}
        if not pathology:
            expected.add("No Finding")
        assert positives == expected, (report, labels)
        # the impression of an opacity says "possibly pneumonia": uncertain, never positive
        assert labels["Pneumonia"] == (-1 if "opacity" in present else None), (report, labels)
        for finding in FINDINGS:
            if finding not in present:
                assert labels[SYNTHETIC_TO_CHEXPERT[finding]] in (0, None), (report, finding, labels)


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
