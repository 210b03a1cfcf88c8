"""Report text for the synthetic OpenI-style sample, in English and Chinese.

All sentences are written for this project. A synthetic study has a set of findings; its
report states each present finding, negates a few absent ones the way radiologists do ("No
pleural effusion or pneumothorax."), and carries ``XXXX`` de-identification tokens where the real
collection has them.
"""

from __future__ import annotations

import random

# Synthetic findings, in the order labels.csv lists them.
FINDINGS = [
    "cardiomegaly",
    "pleural_effusion",
    "pneumothorax",
    "atelectasis",
    "opacity",
    "nodule",
    "fracture",
    "support_devices",
]

# Each synthetic finding as the CheXpert observation a labeler should give it.
CHEXPERT_OF = {
    "cardiomegaly": "Cardiomegaly",
    "pleural_effusion": "Pleural Effusion",
    "pneumothorax": "Pneumothorax",
    "atelectasis": "Atelectasis",
    "opacity": "Lung Opacity",
    "nodule": "Lung Lesion",
    "fracture": "Fracture",
    "support_devices": "Support Devices",
}

# Probability that a synthetic study has each finding.
PREVALENCE = {
    "cardiomegaly": 0.25,
    "pleural_effusion": 0.18,
    "pneumothorax": 0.08,
    "atelectasis": 0.15,
    "opacity": 0.15,
    "nodule": 0.10,
    "fracture": 0.06,
    "support_devices": 0.10,
}

SIDES = {"left": "左侧", "right": "右侧"}

# Sentences stating a finding. {side} is "left"/"right" (or its Chinese form).
POSITIVE = {
    "cardiomegaly": [
        ("The heart is enlarged.", "心脏增大。"),
        ("Cardiomegaly is present.", "可见心影增大。"),
        ("The cardiac silhouette is enlarged.", "心脏轮廓增大。"),
    ],
    "pleural_effusion": [
        ("There is a {side} pleural effusion.", "{side}胸腔积液。"),
        (
            "Small {side} pleural effusion with blunting of the costophrenic angle.",
            "{side}少量胸腔积液，肋膈角变钝。",
        ),
    ],
    "pneumothorax": [
        ("There is a {side} pneumothorax.", "{side}气胸。"),
        ("A {side} apical pneumothorax is seen.", "可见{side}肺尖气胸。"),
    ],
    "atelectasis": [
        ("There is {side} basilar atelectasis.", "{side}肺底肺不张。"),
        ("Linear atelectasis in the {side} lung base.", "{side}肺底线状肺不张。"),
    ],
    "opacity": [
        ("There is an airspace opacity in the {side} lower lobe.", "{side}下叶可见气腔阴影。"),
        ("Patchy {side} lung opacity is present.", "{side}肺可见斑片状阴影。"),
    ],
    "nodule": [
        ("A small nodule is seen in the {side} upper lobe.", "{side}上叶可见小结节。"),
        ("There is a {side} pulmonary nodule.", "{side}肺结节。"),
    ],
    "fracture": [
        ("There is a fracture of a {side} rib.", "{side}肋骨骨折。"),
        ("An old {side} rib fracture is noted.", "可见{side}陈旧性肋骨骨折。"),
    ],
    "support_devices": [
        ("A cardiac pacemaker is in place.", "心脏起搏器在位。"),
        ("A central venous catheter is in place.", "中心静脉导管在位。"),
    ],
}

# Sentences saying a finding is absent.
NEGATIVE = {
    "cardiomegaly": [
        ("The heart size is normal.", "心脏大小正常。"),
        ("Heart size within normal limits.", "心脏大小在正常范围内。"),
    ],
    "pleural_effusion": [("No pleural effusion.", "未见胸腔积液。")],
    "pneumothorax": [("No pneumothorax.", "未见气胸。")],
    "atelectasis": [("No atelectasis.", "未见肺不张。")],
    "opacity": [
        ("No focal airspace opacity.", "未见局灶性气腔阴影。"),
        ("The lungs are clear.", "双肺清晰。"),
    ],
    "nodule": [("No suspicious pulmonary nodule.", "未见可疑肺结节。")],
    "fracture": [("No acute bony abnormality.", "未见急性骨质异常。")],
}

# Sentences every report may carry, with XXXX de-identification tokens as in the real data.
FILLER = [
    ("The mediastinal contours are normal.", "纵隔轮廓正常。"),
    ("The cardiomediastinal silhouette is within normal limits.", "心脏纵隔轮廓在正常范围内。"),
    ("Degenerative changes of the thoracic spine.", "胸椎退行性改变。"),
    ("Stable calcified granuloma in the XXXX.", "XXXX可见稳定的钙化肉芽肿。"),
    ("XXXX XXXX are intact.", "XXXX XXXX完整。"),
]

IMPRESSION_NORMAL = [
    ("No acute cardiopulmonary abnormality.", "无急性心肺异常。"),
    ("No acute cardiopulmonary disease.", "无急性心肺疾病。"),
    ("Normal chest XXXX.", "胸部XXXX正常。"),
]

IMPRESSION_FINDING = {
    "cardiomegaly": ("Cardiomegaly.", "心脏增大。"),
    "pleural_effusion": ("{Side} pleural effusion.", "{side}胸腔积液。"),
    "pneumothorax": ("{Side} pneumothorax.", "{side}气胸。"),
    "atelectasis": ("{Side} basilar atelectasis.", "{side}肺底肺不张。"),
    "opacity": ("{Side} lung opacity, possibly pneumonia.", "{side}肺阴影，可能为肺炎。"),
    "nodule": ("{Side} pulmonary nodule.", "{side}肺结节。"),
    "fracture": ("{Side} rib fracture.", "{side}肋骨骨折。"),
    "support_devices": ("Support device in place.", "支持装置在位。"),
}

INDICATIONS = [
    "XXXX-year-old XXXX with chest pain.",
    "Shortness of breath.",
    "Cough.",
    "Preoperative evaluation.",
]


def _fill(template: str, side: str, zh: bool) -> str:
    s = SIDES[side] if zh else side
    return template.replace("{side}", s).replace("{Side}", s if zh else s.capitalize())


def choose_findings(rng: random.Random) -> dict[str, str]:
    """Draw the findings of one study: a dict finding -> side ("left"/"right")."""
    present = {}
    for name in FINDINGS:
        if rng.random() < PREVALENCE[name]:
            present[name] = rng.choice(["left", "right"])
    return present


def write_report(present: dict[str, str], rng: random.Random) -> dict[str, dict[str, str]]:
    """Findings and impression text of one study in both languages: {"en": {...}, "zh": {...}}."""
    en_f, zh_f = [], []
    order = list(FINDINGS)
    rng.shuffle(order)
    negated = [n for n in order if n not in present and n in NEGATIVE]
    for name in order:
        if name in present:
            en, zh = rng.choice(POSITIVE[name])
            en_f.append(_fill(en, present[name], False))
            zh_f.append(_fill(zh, present[name], True))
    # Radiologists negate the important absent findings; pick two to four of them.
    for name in negated[: rng.randint(2, 4)]:
        en, zh = rng.choice(NEGATIVE[name])
        en_f.append(en)
        zh_f.append(zh)
    if rng.random() < 0.5:
        en, zh = rng.choice(FILLER)
        en_f.append(en)
        zh_f.append(zh)
    if present:
        names = [n for n in FINDINGS if n in present]
        en_i = [_fill(IMPRESSION_FINDING[n][0], present[n], False) for n in names]
        zh_i = [_fill(IMPRESSION_FINDING[n][1], present[n], True) for n in names]
    else:
        en, zh = rng.choice(IMPRESSION_NORMAL)
        en_i, zh_i = [en], [zh]
    return {
        "en": {"findings": " ".join(en_f), "impression": " ".join(en_i)},
        "zh": {"findings": "".join(zh_f), "impression": "".join(zh_i)},
    }


def corpus_sentences() -> list[str]:
    """Every sentence the generator can write, in both languages (for tokenizer training)."""
    out: list[str] = []
    pairs = [p for v in POSITIVE.values() for p in v] + [p for v in NEGATIVE.values() for p in v]
    pairs += FILLER + IMPRESSION_NORMAL + list(IMPRESSION_FINDING.values())
    for en, zh in pairs:
        for side in SIDES:
            out.append(_fill(en, side, False))
            out.append(_fill(zh, side, True))
    return out + INDICATIONS
