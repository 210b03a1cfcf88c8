"""A test set's reference reports with the variety of real ones, for calibrating verdicts.

The sample generator (``text.py``) writes reports from a few sentences per finding; a real
collection is more uneven. Here, with every sentence written for this project: more than half of
the studies are normal, written in several normal phrasings of which a few are much more common
than the rest (as radiologists' templates are); some normal studies mention an incidental
abnormality outside the 14 CheXpert observations (a granuloma, degenerative spine); findings are
stated, negated ("No pneumothorax.") or hedged ("Possible small left effusion."); impressions are
present in some reports and not in others.

Each study comes with what a human indexer would say of it: ``normal`` (nothing abnormal, the
MeSH "normal" of Open-i), the CheXpert observations it states (``findings``) and those it only
hedges (``hedged``). ``collapse_calibration.py`` and the collapse tests build their scenarios on
these (the canonical-normal oracle writes one normal report for the ``normal`` studies).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# Normal reports, the first ones far more common (weights), as templates are in practice.
NORMAL_REPORTS = [
    ("The heart is normal in size. The mediastinum is unremarkable. The lungs are clear.", 30),
    (
        "Heart size and mediastinal contours are within normal limits. No focal consolidation, "
        "pleural effusion or pneumothorax.",
        18,
    ),
    (
        "The cardiomediastinal silhouette and pulmonary vasculature are within normal limits. "
        "There is no pneumothorax or pleural effusion. There are no focal areas of consolidation.",
        12,
    ),
    ("Lungs are clear bilaterally. No pleural effusion or pneumothorax. Heart size is normal.", 8),
    (
        "The lungs are clear. There is no pleural effusion or pneumothorax. The heart and "
        "mediastinum are normal. The skeletal structures are normal.",
        6,
    ),
    ("Normal heart size. Clear lungs. No effusion. No pneumothorax. No acute bony abnormality.", 4),
    (
        "Both lungs are clear and expanded. Heart and mediastinum normal. No acute cardiopulmonary "
        "abnormality.",
        3,
    ),
    ("Stable normal cardiac silhouette. The lungs are well expanded and clear. XXXX are intact.", 2),
]

# Sentences of a normal part of an abnormal report, one drawn per organ not involved.
NORMAL_PARTS = {
    "heart": ["The heart is normal in size.", "Heart size is within normal limits.", "Normal heart size."],
    "lungs": ["The lungs are otherwise clear.", "No focal airspace disease.", "No focal consolidation."],
    "pleura": ["No pneumothorax.", "No pleural effusion or pneumothorax.", "No large pleural effusion."],
    "bones": ["No acute bony abnormality.", "XXXX are intact.", "The osseous structures are unremarkable."],
}

# Stated findings: (CheXpert observation, organ it belongs to, phrasings). {side}: left/right.
STATED = [
    (
        "Cardiomegaly",
        "heart",
        ["The heart is enlarged.", "Cardiomegaly.", "Moderate cardiomegaly is present."],
    ),
    (
        "Pleural Effusion",
        "pleura",
        [
            "Small {side} pleural effusion.",
            "There is a moderate {side} pleural effusion.",
            "Bilateral pleural effusions.",
        ],
    ),
    ("Pneumothorax", "pleura", ["Small {side} apical pneumothorax.", "There is a {side} pneumothorax."]),
    (
        "Atelectasis",
        "lungs",
        ["{Side} basilar atelectasis.", "Streaky {side} basilar atelectasis."],
    ),
    (
        "Edema",
        "lungs",
        [
            "Interstitial edema.",
            "There is mild pulmonary edema.",
            "Pulmonary vascular congestion with interstitial edema.",
        ],
    ),
    (
        "Consolidation",
        "lungs",
        ["{Side} lower lobe consolidation.", "There is consolidation in the {side} upper lobe."],
    ),
    ("Lung Opacity", "lungs", ["Patchy opacity in the {side} lung base.", "Hazy {side} perihilar opacity."]),
    ("Lung Lesion", "lungs", ["A 1 cm nodule in the {side} upper lobe.", "{Side} upper lobe mass."]),
    ("Fracture", "bones", ["Healed {side} rib fractures.", "Acute fracture of the {side} clavicle."]),
    ("Support Devices", "heart", ["A pacemaker is in place.", "The endotracheal tube is in good position."]),
]
PREVALENCE = {
    "Cardiomegaly": 0.30,
    "Pleural Effusion": 0.22,
    "Pneumothorax": 0.06,
    "Atelectasis": 0.22,
    "Edema": 0.10,
    "Consolidation": 0.10,
    "Lung Opacity": 0.15,
    "Lung Lesion": 0.10,
    "Fracture": 0.08,
    "Support Devices": 0.12,
}

# Hedged findings (the indexer would not call the study normal; no observation is stated).
HEDGED = [
    ("Pleural Effusion", "Possible small {side} pleural effusion."),
    ("Pneumonia", "Cannot exclude early pneumonia in the {side} base."),
    ("Cardiomegaly", "Borderline heart size."),
    ("Atelectasis", "Minimal {side} basilar density may represent atelectasis."),
]
# Abnormalities outside the 14 observations: not normal for an indexer, no CheXpert finding.
INCIDENTAL = [
    "Calcified granuloma in the {side} upper lobe.",
    "Degenerative changes of the thoracic spine.",
    "Mild hyperinflation of the lungs.",
]
IMPRESSION_NORMAL = [
    "No acute cardiopulmonary abnormality.",
    "No acute cardiopulmonary disease.",
    "Normal chest.",
    "No active disease.",
]

NORMAL_SHARE = 0.55  # IU X-ray's R2Gen test split: 52% of the studies indexed normal
HEDGED_SHARE = 0.07
INCIDENTAL_SHARE = 0.06


@dataclass(frozen=True)
class MixStudy:
    report: str
    normal: bool  # nothing abnormal: what the MeSH indexers call "normal"
    findings: frozenset[str]  # CheXpert observations the report states
    hedged: frozenset[str]  # observations it only hedges


def _side(text: str, rng: random.Random) -> str:
    side = rng.choice(["left", "right"])
    return text.replace("{side}", side).replace("{Side}", side.capitalize())


def _normal(rng: random.Random) -> MixStudy:
    texts, weights = zip(*NORMAL_REPORTS, strict=True)
    report = rng.choices(texts, weights)[0]
    if rng.random() < 0.3:  # some normal reports carry an impression, most R2Gen ones do not
        report += " " + rng.choice(IMPRESSION_NORMAL)
    return MixStudy(report, True, frozenset(), frozenset())


def _abnormal(rng: random.Random) -> MixStudy:
    kind = rng.random()
    findings: list[tuple[str, str, str]] = []
    hedged: list[str] = []
    extra: list[str] = []
    if kind < HEDGED_SHARE / (1 - NORMAL_SHARE):
        obs, text = rng.choice(HEDGED)
        hedged.append(obs)
        extra.append(_side(text, rng))
    elif kind < (HEDGED_SHARE + INCIDENTAL_SHARE) / (1 - NORMAL_SHARE):
        extra.append(_side(rng.choice(INCIDENTAL), rng))
    else:
        while not findings:
            for obs, organ, phrasings in STATED:
                if rng.random() < PREVALENCE[obs]:
                    findings.append((obs, organ, _side(rng.choice(phrasings), rng)))
    involved = {organ for _, organ, _ in findings}
    sentences = [text for _, _, text in findings] + extra
    normal_parts = [rng.choice(p) for organ, p in NORMAL_PARTS.items() if organ not in involved]
    sentences += rng.sample(normal_parts, k=min(len(normal_parts), rng.randint(1, 3)))
    rng.shuffle(sentences)
    return MixStudy(" ".join(sentences), False, frozenset(o for o, _, _ in findings), frozenset(hedged))


def realistic_references(n: int, seed: int = 0, normal_share: float = NORMAL_SHARE) -> list[MixStudy]:
    """``n`` reference reports: about ``normal_share`` of them normal, the rest with stated,
    hedged or incidental findings (see the module's description)."""
    rng = random.Random(seed)
    return [_normal(rng) if rng.random() < normal_share else _abnormal(rng) for _ in range(n)]
