"""A rule-based labeler for the 14 CheXpert observations, in English and Chinese.

Our own rules and phrase lists (documented in doc/labeler.md). A report is split into sentences
and each sentence into clauses at scope breakers ("but", "however", "there is"…; in Chinese also
the comma). Every mention phrase of an observation found in a clause is classified:

- a *normal statement* ("heart size is normal", "心脏大小正常") is negative;
- a *negated-only* phrase ("no acute bony abnormality") counts only when negated (negative);
- a *mention* is uncertain when an uncertainty cue is in scope, negative when a negation cue is
  in scope, else positive. A cue before the mention reaches it within the clause; a cue after it
  ("… is not seen", "… cannot be excluded") reaches mentions before it in the clause; "versus"
  reaches both sides. When both kinds of cue precede the mention the one nearer the clause start
  wins ("no suspicious nodule" is negative, "possibly no effusion" uncertain).

Per report an observation is 1 (positive) if any mention is positive, else -1 (uncertain) if
any is uncertain, else 0 (negative) if any is negative, else None (not mentioned). "No Finding"
is 1 when no observation other than Support Devices is 1 or -1, else None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OBSERVATIONS = [
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Lesion",
    "Lung Opacity",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
]
TOP5 = ["Cardiomegaly", "Edema", "Consolidation", "Atelectasis", "Pleural Effusion"]

MENTION, NORMAL, NEGATED_ONLY = "mention", "normal", "negated-only"

# --- English -------------------------------------------------------------------------------
_EN_SIZE = r"(?:mildly |moderately |markedly |severely |slightly |minimally |significantly |borderline )?"
_EN_BE = r"(?:is |are |appears |appear |remains |remain |seems |looks )?(?:not )?"
EN_PHRASES: dict[str, list[tuple[str, str]]] = {
    "Enlarged Cardiomediastinum": [
        (
            MENTION,
            r"widen(?:ed|ing) (?:of the )?(?:superior )?mediastinum|mediastinal (?:widening|enlargement)",
        ),
        (
            MENTION,
            r"(?:cardio)?mediastin(?:um|al silhouette|al contours?) "
            + _EN_BE
            + _EN_SIZE
            + r"(?:widened|enlarged)",
        ),
        (MENTION, r"enlarged (?:cardio)?mediastin(?:um|al silhouette)"),
        (
            NORMAL,
            r"(?:cardio)?mediastinal (?:silhouette|contours?|structures)(?: and hil(?:a|u)r contours)? "
            r"(?:is |are |appears |appear |remains |remain )?(?:normal|unremarkable|within normal limits|stable|"
            r"normal in (?:size|contour))",
        ),
        (NORMAL, r"normal (?:cardio)?mediastinal (?:silhouette|contours?)"),
    ],
    "Cardiomegaly": [
        (MENTION, r"cardiomegaly|cardiac enlargement|enlarged (?:heart|cardiac silhouette|cardiac shadow)"),
        (
            MENTION,
            r"(?:heart|cardiac silhouette|cardiac shadow|heart size|cardiac size) "
            + _EN_BE
            + _EN_SIZE
            + r"(?:enlarged|increased)",
        ),
        (MENTION, r"enlargement of the (?:heart|cardiac silhouette)"),
        (
            NORMAL,
            r"(?:heart|cardiac silhouette|heart size|cardiac size)(?: size)? (?:is |are |appears |remains )?"
            r"(?:normal|within normal limits|normal in size|upper normal|unremarkable)",
        ),
        (NORMAL, r"normal (?:heart|cardiac) (?:size|silhouette)|normal-sized heart|normal sized heart"),
    ],
    "Lung Lesion": [
        (
            MENTION,
            r"nodul(?:e|es|ar)|mass(?:es)?\b|(?:lung|pulmonary) lesions?|neoplasm|tumou?r|cavitary lesion",
        ),
    ],
    "Lung Opacity": [
        (MENTION, r"opacit(?:y|ies)|opacification|infiltrat(?:e|es|ion)|airspace disease|haziness"),
        (NORMAL, r"lungs (?:are |appear |remain )?(?:clear|well expanded and clear)|clear lungs"),
    ],
    "Edema": [
        (MENTION, r"edema|oedema|vascular congestion|pulmonary congestion|interstitial prominence"),
    ],
    "Consolidation": [(MENTION, r"consolidat(?:ion|ions|ive|ed)")],
    "Pneumonia": [(MENTION, r"pneumonias?|infection|infectious process|bronchopneumonia")],
    "Atelectasis": [(MENTION, r"atelecta(?:sis|tic)|(?:lobar|lung) collapse|collapsed lung")],
    "Pneumothorax": [(MENTION, r"pneumothora(?:x|ces)")],
    "Pleural Effusion": [
        (MENTION, r"(?<!pericardial )effusions?|hydrothorax|pleural fluid"),
        (MENTION, r"blunting of the (?:\w+ )?costophrenic angles?|blunted (?:\w+ )?costophrenic angles?"),
    ],
    "Pleural Other": [
        (MENTION, r"pleural (?:thickening|plaques?|scarring|calcifications?)|fibrothorax"),
    ],
    "Fracture": [
        (MENTION, r"fractur(?:e|es|ed)"),
        (NEGATED_ONLY, r"(?:acute )?(?:bony|bone|osseous) (?:abnormality|abnormalities|injury|lesion)"),
    ],
    "Support Devices": [
        (
            MENTION,
            r"pacemakers?|pacer|defibrillator|aicd|catheters?|picc|(?:central|venous|port) line|port-a-cath|"
            r"(?:endotracheal|tracheostomy|nasogastric|orogastric|feeding|enteric|chest) tubes?|"
            r"(?:sternotomy|sternal) wires|surgical clips|stents?|support devices?|leads?\b|"
            r"(?:et|ng|og) tube|drains?\b|(?:spinal|orthopedic) hardware",
        ),
    ],
}
EN_NEGATION_PRE = (
    r"\bno\b|\bnot\b|\bwithout\b|\bfree of\b|\bnegative for\b|\babsence of\b|\babsent\b|\bresolution of\b|"
    r"\bresolved\b|\bclear of\b|\bremoval of\b|\bnor\b|\bnone\b|\bdenies\b"
)
EN_NEGATION_POST = (
    r"\b(?:is|are|has|have|was|were)? ?(?:been )?(?:not (?:seen|identified|present|visualized|demonstrated|"
    r"appreciated)|absent|resolved|removed|cleared)\b|\bno longer\b"
)
EN_UNCERTAIN_PRE = (
    r"\bcannot (?:be )?(?:excluded?|ruled? out)|\bcan not (?:be )?(?:excluded?|ruled? out)|\brule out\b|"
    r"\bmay\b|\bmight\b|\bcould\b|\bpossible\b|\bpossibly\b|\bprobable\b|\bprobably\b|\blikely\b|"
    r"\bsuspicious for\b|\bsuspected\b|\bsuspect\b|\bconcerning for\b|\bconcern for\b|\bquestion of\b|"
    r"\bquestionable\b|\bsuggest(?:s|ed|ing|ive of)?\b|\bdifferential\b|\bconsider(?:ed)?\b|\bequivocal\b|"
    r"\bindeterminate\b|\bborderline\b|\buncertain\b|\bpresumably\b|\bpresumed\b|\bversus\b|\bvs\b"
)
EN_UNCERTAIN_POST = (
    r"\b(?:cannot|can not) (?:be )?(?:excluded|ruled out)|\bnot (?:be )?(?:excluded|ruled out)|"
    r"\b(?:is|are) (?:possible|suspected|likely|questioned|not excluded)\b|\bversus\b|\bvs\b|"
    r"\bmay be present\b|\bcould be\b"
)
EN_BREAK = (
    r"\bbut\b|\bhowever\b|\balthough\b|\bthough\b|\bwhereas\b|\bwhile\b|\bexcept\b|\baside from\b|"
    r"\bapart from\b|\bthere (?:is|are)\b|\bwhich\b|\bthat\b"
)
EN_SENTENCE = r"(?<=[.!?;:])\s+|\n+|[.!?;]$"

# --- Chinese -------------------------------------------------------------------------------
ZH_PHRASES: dict[str, list[tuple[str, str]]] = {
    "Enlarged Cardiomediastinum": [
        (MENTION, r"纵隔(?:影)?增宽|纵隔(?:影)?增大|心(?:脏)?纵隔(?:轮廓|影)增大"),
        (NORMAL, r"(?:心脏)?纵隔(?:轮廓|影|结构)(?:在)?(?:正常|正常范围内|无异常|未见异常|居中)"),
    ],
    "Cardiomegaly": [
        (MENTION, r"心(?:脏|影)(?:轮廓)?(?:明显|轻度|稍|略)?(?:增大|扩大)|心脏肥大|心影饱满"),
        (NORMAL, r"心(?:脏|影)(?:大小|轮廓)?(?:在)?(?:正常|正常范围内|不大|大小正常|未见增大|无增大)"),
    ],
    "Lung Lesion": [(MENTION, r"结节|肿块|占位|肿瘤|肺部病变")],
    "Lung Opacity": [
        (MENTION, r"阴影|混浊|模糊影|浸润|密度增高影|致密影|磨玻璃影"),
        (NORMAL, r"(?:双|两)肺(?:野)?清晰|肺野清晰"),
    ],
    "Edema": [(MENTION, r"水肿|肺淤血|肺血管淤血")],
    "Consolidation": [(MENTION, r"实变")],
    "Pneumonia": [(MENTION, r"肺炎|感染")],
    "Atelectasis": [(MENTION, r"肺不张|肺萎陷")],
    "Pneumothorax": [(MENTION, r"气胸")],
    "Pleural Effusion": [(MENTION, r"胸腔积液|胸水|(?<!心包)积液|肋膈角变钝")],
    "Pleural Other": [(MENTION, r"胸膜增厚|胸膜斑|胸膜钙化|胸膜粘连")],
    "Fracture": [(MENTION, r"骨折"), (NEGATED_ONLY, r"(?:急性)?骨质异常|骨质破坏")],
    "Support Devices": [(MENTION, r"起搏器|导管|置管|支持装置|插管|引流管|胸骨(?:钢丝|缝线)|支架|除颤器")],
}
ZH_NEGATION_PRE = r"未见|未发现|未显示|未探及|没有|无|不伴|排除|否认|不存在"
ZH_NEGATION_POST = r"已吸收|已消失|消失|已拔除|阴性|不明显"
ZH_UNCERTAIN_PRE = r"不除外|不能排除|不排除|可能|疑似|疑为|考虑|待排|倾向|可疑为|似为|或为|怀疑"
ZH_UNCERTAIN_POST = r"不除外|不能排除|可能|待排|可疑"
ZH_BREAK = r"，|,|但|然而|另见|此外"
ZH_SENTENCE = r"[。！？!?；;\n]+|(?<=[a-z])\.\s*"

_LANG = {
    "en": (
        EN_PHRASES,
        EN_NEGATION_PRE,
        EN_NEGATION_POST,
        EN_UNCERTAIN_PRE,
        EN_UNCERTAIN_POST,
        EN_BREAK,
        EN_SENTENCE,
    ),
    "zh": (
        ZH_PHRASES,
        ZH_NEGATION_PRE,
        ZH_NEGATION_POST,
        ZH_UNCERTAIN_PRE,
        ZH_UNCERTAIN_POST,
        ZH_BREAK,
        ZH_SENTENCE,
    ),
}


@dataclass
class Mention:
    observation: str
    text: str
    label: int  # 1, 0, -1
    sentence: str


class _Rules:
    def __init__(self, lang: str):
        phrases, neg_pre, neg_post, unc_pre, unc_post, brk, sent = _LANG[lang]
        flags = re.IGNORECASE
        self.phrases = [
            (obs, kind, re.compile(pattern, flags))
            for obs, items in phrases.items()
            for kind, pattern in items
        ]
        # One alternation for every pre-cue, so "cannot exclude" is read as one cue, not as "not".
        self.pre_cues = re.compile(f"(?P<unc>{unc_pre})|(?P<neg>{neg_pre})", flags)
        self.post_cues = re.compile(f"(?P<unc>{unc_post})|(?P<neg>{neg_post})", flags)
        self.breaks = re.compile(brk, flags)
        self.sentences = re.compile(sent, flags)
        self.both_ways = re.compile(r"\bversus\b|\bvs\b", flags) if lang == "en" else re.compile(r"或", flags)


_RULES: dict[str, _Rules] = {}


def _rules(lang: str) -> _Rules:
    if lang not in _LANG:
        raise ValueError(f"unknown language {lang!r} (en or zh)")
    if lang not in _RULES:
        _RULES[lang] = _Rules(lang)
    return _RULES[lang]


def _clauses(text: str, rules: _Rules) -> list[str]:
    out = []
    for sentence in rules.sentences.split(text):
        if sentence and sentence.strip():
            out.extend(c for c in rules.breaks.split(sentence) if c and c.strip())
    return out


def _classify(clause: str, start: int, end: int, matched: str, rules: _Rules) -> tuple[int, bool]:
    """Label of the mention clause[start:end]; the second value says whether a negation applied."""
    if re.search(r"\bnot\b", matched, re.IGNORECASE):
        return 0, True
    before, after = clause[:start], clause[end:]
    first = next(rules.pre_cues.finditer(before), None)
    if rules.both_ways.search(clause):
        return -1, False
    if first is not None:
        return (-1, False) if first.group("unc") else (0, True)
    post = next(rules.post_cues.finditer(after), None)
    if post is not None:
        return (-1, False) if post.group("unc") else (0, True)
    return 1, False


def find_mentions(text: str, lang: str = "en") -> list[Mention]:
    """Every classified mention in a report, in reading order."""
    rules = _rules(lang)
    found: list[Mention] = []
    for clause in _clauses(text or "", rules):
        for obs, kind, pattern in rules.phrases:
            for m in pattern.finditer(clause):
                if kind == NORMAL:
                    label = 0
                else:
                    label, negated = _classify(clause, m.start(), m.end(), m.group(0), rules)
                    if kind == NEGATED_ONLY and not negated:
                        continue
                found.append(Mention(obs, m.group(0), label, clause.strip()))
    return found


def label_report(text: str, lang: str = "en") -> dict[str, int | None]:
    """The 14 observations of one report: 1 positive, 0 negative, -1 uncertain, None not mentioned."""
    labels: dict[str, int | None] = {obs: None for obs in OBSERVATIONS}
    rank = {1: 3, -1: 2, 0: 1}
    for m in find_mentions(text, lang):
        current = labels[m.observation]
        if current is None or rank[m.label] > rank[current]:
            labels[m.observation] = m.label
    pathology = [o for o in OBSERVATIONS if o not in ("No Finding", "Support Devices")]
    if not any(labels[o] in (1, -1) for o in pathology):
        labels["No Finding"] = 1
    return labels
