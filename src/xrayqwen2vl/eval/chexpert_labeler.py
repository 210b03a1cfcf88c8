"""A rule-based labeler for the 14 CheXpert observations, in English and Chinese.

Our own rules and phrase lists (doc/labeler.md explains them and how they were checked). The
approach follows the CheXpert labeler's stages, with regular expressions where it uses a
dependency parse:

1. *Mentions.* A report is split into sentences and clauses; in each clause every phrase of an
   observation is found, except where it overlaps an *unmention* of that observation ("pericardial
   effusion" is no pleural effusion, "soft tissue edema" no pulmonary edema, "prior granulomatous
   infection" no pneumonia). Phrases are whole words in English ("stent" never matches inside
   "consistent").
2. *Classification.* Each mention is negative, uncertain or positive by the cues in its scope:
   the nearest cue before it decides (negation "no", "without", "未见"…, or uncertainty "possible",
   "may", "cannot exclude", "不除外"…); a hedge that can sit inside a negated noun phrase
   ("suspicious", "to suggest", "可疑的") passes the decision on to a negation before it; "no
   (significant) change in" and "无明显变化" are no negation of the finding. With no cue before
   it, the first cue after it decides ("… is not seen", "… cannot be entirely excluded", "… is in
   the differential", "…已吸收", "…可能"). An unnegated mention joined by "or"/"versus"/"或" to
   another is uncertain.
3. *Aggregation.* Per report an observation is 1 if any mention is positive, else -1 if any is
   uncertain, else 0 if any is negative, else None. "No Finding" is 1 when no observation other
   than Support Devices is 1 or -1 and no other abnormality (emphysema, scoliosis, granuloma,
   hernia…) is stated or suspected; it is never 0.
"""

from __future__ import annotations

import functools
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

# Abnormalities outside the 14 observations: they only keep "No Finding" from being 1.
OTHER_FINDING = "Other Finding"
PATHOLOGY = [o for o in OBSERVATIONS if o not in ("No Finding", "Support Devices")]

# Kinds of phrase. A MENTION names the finding; a STATEMENT names it with its own predicate
# ("heart is enlarged", "心脏增大": in Chinese it never continues a negated list after a comma);
# NORMAL says it is absent without a cue ("heart size is normal"): always 0; HEDGED says it
# uncertainly ("blunting of the costophrenic angle"): -1 unless negated; NEGATED_ONLY counts only
# when negated ("no acute bony abnormality").
MENTION, STATEMENT, NORMAL, HEDGED, NEGATED_ONLY = "mention", "statement", "normal", "hedged", "negated-only"


def _alt(*parts: str) -> str:
    return "|".join(parts)


# =========================================== English ===========================================
_HEART = r"(?:heart|cardiac(?: and mediastinal)? (?:silhouettes?|shadow|contours?|size)|heart (?:size|shadow|silhouette))"
_ENLARGED = r"(?:enlarged|enlarging|large|increased(?! density)|increased in size)"

EN_PHRASES: dict[str, list[tuple[str, str]]] = {
    "Enlarged Cardiomediastinum": [
        (
            MENTION,
            _alt(
                r"widen(?:ed|ing) (?:of )?(?:the )?(?:superior )?mediastin(?:um|al (?:silhouette|contours?))",
                r"mediastinal (?:widening|enlargement)",
                r"enlarged (?:cardio[- ]?)?mediastin(?:um|al (?:silhouette|contours?))",
            ),
        ),
        (
            STATEMENT,
            r"(?:superior |cardio[- ]?)?mediastin(?:um|al (?:silhouette|contours?|shadow))"
            r"(?:(?!\bnormal\b|\bno\b)[^.;:,]){0,30}?\b(?:widened|enlarged|wide)\b",
        ),
        (
            NORMAL,
            r"(?:cardio[- ]?)?mediastin(?:um|al)\b(?:(?!enlarg|widen|abnormal|\bnot\b|promin)[^.;:]){0,60}?"
            r"\b(?:normal|unremarkable|within normal limits|midline|healthy)\b",
        ),
        (
            NORMAL,
            r"\bnormal\b(?:(?!abnormal|enlarg|widen)[^.;:]){0,50}?\b(?:cardio[- ]?)?mediastin(?:um|al)\b",
        ),
    ],
    "Cardiomegaly": [
        (
            MENTION,
            _alt(
                r"cardiomegaly",
                r"cardiac enlargement",
                rf"(?:enlarged|large|increased) (?:[\w-]+ )?{_HEART}",
                r"enlargement of the (?:heart|cardiac (?:silhouette|shadow))",
            ),
        ),
        (
            STATEMENT,
            rf"{_HEART}\b(?:(?!\bnormal\b|\bno\b|\bwith\b)[^.;:,]){{0,40}}?\b{_ENLARGED}\b",
        ),
        (
            HEDGED,
            _alt(
                rf"{_HEART} (?:is |appears |remains |seems )?(?:at the )?borderline\b",
                rf"borderline {_HEART}",
                rf"prominent {_HEART}",
                rf"{_HEART} (?:is |appears |remains )?(?:\w+ )?prominent",
            ),
        ),
        (
            NORMAL,
            rf"{_HEART}\b(?:(?!enlarg|\blarge|increas|promin|abnormal|\bnot\b|borderline)[^.;:]){{0,50}}?"
            r"\b(?:normal|within normal limits|unremarkable|upper limits? of normal|top[- ]normal|healthy)\b",
        ),
        (NORMAL, r"\bnormal\b(?:(?!abnormal|enlarg|\blarge)[^.;:,]){0,50}?\b(?:heart|cardiac)\b"),
    ],
    "Lung Lesion": [
        (
            MENTION,
            _alt(
                r"nodul(?:e|es|ar|arity)",
                r"mass(?:es)?",
                r"(?:lung|pulmonary|parenchymal|cavitary|cavitating|spiculated) lesions?",
                r"neoplasms?",
                r"tumou?rs?",
                r"carcinoma",
                r"malignan(?:cy|t)",
            ),
        ),
    ],
    "Lung Opacity": [
        (
            MENTION,
            _alt(
                r"opacit(?:y|ies)",
                r"opacifi(?:cation|ed)",
                r"infiltrat(?:e|es|ion|ive|ed)",
                r"air[- ]?space (?:disease|process|filling)",
                r"alveolar (?:disease|process|filling)",
                r"haziness",
                r"ground[- ]glass",
                r"(?:increased|patchy|hazy|ill-defined|airspace) densit(?:y|ies)",
            ),
        ),
        (
            NORMAL,
            _alt(
                r"lungs?(?: fields?| parenchyma)? (?:is |are |appears? |remains? |seems? |looks? )?"
                r"(?:(?!not\b|no\b)\w+ ){0,2}(?:clear|normal|healthy|unremarkable)\b(?! of)",
                r"lungs?\b(?:(?!\bnot\b|\bno\b|heart|cardi|mediastin)[^.;:]){0,40}?\bwithin normal limits\b",
                r"clear lungs?",
            ),
        ),
    ],
    "Edema": [
        (
            MENTION,
            _alt(
                r"o?edema",
                r"(?:pulmonary |vascular |venous |interstitial )*congestion",
                r"congestive (?:heart|cardiac) failure",
                r"chf",
                r"(?:heart|cardiac) failure",
                r"fluid overload",
            ),
        ),
    ],
    "Consolidation": [(MENTION, r"consolidat(?:ion|ions|ive|ed|ing)")],
    "Pneumonia": [
        (
            MENTION,
            _alt(
                r"(?:broncho)?pneumonias?",
                r"pneumonic",
                r"infections?",
                r"infectious(?: process)?",
                r"infective",
            ),
        ),
    ],
    "Atelectasis": [
        (
            MENTION,
            _alt(
                r"atelecta(?:sis|ses|tic)",
                r"collapsed? (?:of )?(?:the )?(?:(?:left|right|middle|upper|lower|entire)\s+){0,3}"
                r"(?:lungs?|lobes?|segments?|lingula)",
                r"(?:lung|lobe|lobar|segmental|lingular) collapse",
                r"(?:lung|lobe|segment|lingula) (?:is |are |remains? |appears? )?(?:\w+ )?collapsed",
            ),
        ),
    ],
    "Pneumothorax": [
        (
            MENTION,
            _alt(
                r"(?:hydro)?pneumothora(?:x|ces)",
                r"pleural air(?: collections?)?",
                r"air in the (?:\w+ ){0,2}pleural spaces?",
                r"apical air collections?",
            ),
        ),
    ],
    "Pleural Effusion": [
        (
            MENTION,
            _alt(
                r"(?:pleural )?effusions?",
                r"hydrothorax",
                r"hemothorax",
                r"pleural fluid",
                r"fluid in the (?:\w+ ){0,2}pleural spaces?",
                r"fluid (?:buildup|build-up|accumulation)",
                r"(?:loculated|layering) (?:pleural )?fluid",
            ),
        ),
        (
            HEDGED,
            _alt(
                r"blunt(?:ing|ed) (?:of )?(?:the )?(?:\w+ ){0,2}costophrenic (?:angles?|sulc(?:us|i))",
                r"costophrenic (?:angles?|sulc(?:us|i)) (?:is |are |remains? )?(?:\w+ )?blunted",
            ),
        ),
        (
            NORMAL,
            _alt(
                r"costophrenic (?:angles?|sulc(?:us|i)) (?:is |are |remains? )?(?:sharp|clear|preserved|normal)",
                r"pleural spaces? (?:is |are )?(?:clear|normal)",
            ),
        ),
    ],
    "Pleural Other": [
        (
            MENTION,
            _alt(
                r"pleural (?:thickening|plaques?|scar(?:s|ring)?|calcifications?)",
                r"pleuro-?parenchymal scar(?:s|ring)?",
                r"pleural-parenchymal scar(?:s|ring)?",
                r"fibrothorax",
                r"apical (?:pleural )?capp?(?:ing)?",
            ),
        ),
    ],
    "Fracture": [
        (MENTION, r"fractur(?:e|es|ed)"),
        (
            NEGATED_ONLY,
            r"(?:acute )?(?:bony|bone|osseous|skeletal) (?:abnormalit(?:y|ies)|injur(?:y|ies)|lesions?|findings?|process)",
        ),
        (
            NORMAL,
            r"(?:bony|osseous|skeletal) (?:structures|thorax)(?: of the (?:chest|thorax))? "
            r"(?:are |is |appears? |looks? |remains? )?(?:(?!not\b|no\b)\w+ ){0,2}(?:intact|normal|unremarkable)",
        ),
    ],
    "Support Devices": [
        (
            MENTION,
            _alt(
                r"pacemakers?",
                r"pacer",
                r"a?icds?",
                r"defibrillators?",
                r"catheters?",
                r"picc",
                r"(?:central|venous|arterial|port|picc|support|swan[- ]ganz|midline) lines?",
                r"port-?a-?cath",
                r"mediport",
                r"port",
                r"(?:endotracheal|tracheostomy|nasogastric|orogastric|gastric|feeding|enteric|chest|thoracostomy|"
                r"dobhoff|et|ng|og) tubes?",
                r"ett",
                r"tracheostomy",
                r"(?:sternotomy|sternal) (?:wires|sutures)",
                r"(?:median )?sternotomy",
                r"(?:surgical|vascular|cholecystectomy|metallic) clips?",
                r"clips",
                r"stents?",
                r"support devices?",
                r"leads?(?! to\b)",
                r"drains?",
                r"(?:spinal|orthopedic|fixation|surgical) hardware",
                r"prosthe(?:sis|ses|tic valve)",
                r"valve replacement",
                r"shunt(?: catheter| tubing)?",
                r"loop recorder",
            ),
        ),
    ],
    OTHER_FINDING: [
        (
            MENTION,
            _alt(
                r"emphysema(?:tous)?",
                r"copd",
                r"chronic obstructive",
                r"hyperinflat\w*",
                r"hyperexpan\w*",
                r"over-?inflat\w*",
                r"hyperlucen\w*",
                r"bullae?",
                r"bullous",
                r"blebs?",
                r"scolio\w*",
                r"kypho\w*",
                r"degenerat\w*",
                r"spondylo\w*",
                r"osteophyt\w*",
                r"arthriti\w*",
                r"arthropath\w*",
                r"osteopeni\w*",
                r"osteoporo\w*",
                r"granulom\w*",
                r"calcifi\w*",
                r"hernia\w*",
                r"eventration",
                r"elevat(?:ed|ion)",
                r"tortu\w*",
                r"ectati\w*",
                r"ectasia",
                r"unfold\w*",
                r"atheroscl\w*",
                r"aneurysm\w*",
                r"scar(?:s|ring|red)?",
                r"fibros\w*",
                r"fibrotic",
                r"interstitial (?:markings?|disease|lung disease|prominence|pattern|changes?|thickening)",
                r"reticul\w*",
                r"bronchiectasis",
                r"bronchiti\w*",
                r"peribronchial (?:cuffing|thickening)",
                r"airways? disease",
                r"cephaliz\w*",
                r"pneumomediastinum",
                r"pneumoperitoneum",
                r"deformit\w*",
                r"metasta\w*",
                r"hematoma",
                r"hemorrhage",
                r"contusion",
                r"(?:lymph)?adenopathy",
                r"aspiration",
                r"low lung volumes?",
                r"hypoinflat\w*",
                r"crowding",
                r"thickening",
                r"tubercul\w*",
                r"inflammat\w*",
                r"pericardial effusions?",
                r"(?:soft[- ]tissues?|subcutaneous) (?:\w+ )?o?edema",
                r"o?edema (?:of|in|within|involving) the (?:\w+ ){0,3}?"
                r"(?:soft tissues?|arm|forearm|hand|extremit(?:y|ies)|limb|leg|neck|face|breast|chest wall|scalp)",
                r"disten(?:tion|sion|ded)",
                r"chronic (?:\w+ ){0,2}changes",
                r"pectus",
                r"volume loss",
                r"vertebral (?:body )?(?:collapse|compression|height loss)",
                r"prominen(?:t|ce)",
            ),
        ),
    ],
}

EN_UNMENTIONS: dict[str, list[str]] = {
    "Pleural Effusion": [r"(?:pericardial|joint|knee|elbow|shoulder) effusions?"],
    "Edema": [
        r"(?:soft[- ]tissues?|subcutaneous|chest wall|extremity|arm|forearm|hand|leg|limb|scalp|facial|neck|breast|"
        r"mucosal|bowel wall|airway|laryngeal|periorbital|pedal) (?:\w+ )?o?edema",
        r"o?edema (?:of|in|within|involving) the (?:\w+ ){0,3}?"
        r"(?:soft tissues?|arm|forearm|hand|extremit(?:y|ies)|limb|leg|neck|face|breast|chest wall|scalp)",
    ],
    "Pneumonia": [
        r"granulomatous (?:infection|disease|process)",
        r"(?:prior|old|previous|remote|healed|past|chronic|resolved) (?:granulomatous )?"
        r"(?:infections?|infectious process|pneumonias?)",
        r"(?:urinary(?: tract)?|skin|wound|soft tissue|dental|upper respiratory) infections?",
    ],
    "Lung Opacity": [
        r"(?:bony|bone|osseous|calcified|sclerotic|metallic|radiopaque|surgical|nipple|soft[- ]tissue|breast|skin) "
        r"(?:\w+ )?opacit(?:y|ies)",
        r"pleural scar",
    ],
    "Lung Lesion": [r"mass effect", r"muscle mass", r"body mass"],
    "Atelectasis": [r"vertebral (?:body )?collapse"],
    "Support Devices": [r"lead(?:s|ing)? to\b"],
}

# The words of size, degree and course that open a finding of its own after "and" or a comma: no
# one writes a size on a finding they are negating.
_FRESH_WORDS = _alt(
    r"small(?:er)?",
    r"tiny",
    r"trace",
    r"minimal",
    r"slight(?:ly)?",
    r"subtle",
    r"mild(?:ly)?",
    r"moderate(?:ly)?",
    r"large(?:r)?",
    r"enlarg(?:ed|ing)",
    r"massive",
    r"severe",
    r"extensive",
    r"new(?:ly)?",
    r"increas(?:ed|ing)",
    r"decreas(?:ed|ing)",
    r"worsen(?:ed|ing)",
    r"improv(?:ed|ing)",
    r"(?:un)?changed",
    r"stable",
    r"persist(?:ent|ing)",
    r"residual",
    r"\d+(?:\.\d+)?\s*(?:mm|cm)",
)
EN_CUES_BEFORE = {
    # uncertainty that decides even when a negation word is part of it ("cannot exclude", "no new")
    "unc": _alt(
        r"\b(?:cannot|can ?not|can't|could not|couldn't) (?:be )?(?:entirely |completely |totally |definitely |fully )?"
        r"(?:exclude[ds]?|rule[ds]? out)",
        r"\b(?:difficult|impossible|hard) to (?:exclude|rule out|assess|evaluate)",
        r"\bno (?:definite )?new\b",
        r"\brule out\b",
        r"\br/o\b",
        r"\b(?:may|might|could|would)(?: not)?\b",
        r"\b(?:possibly|probably|likely) (?:no|not)\b",
        r"\bpossibl[ey]\b",
        r"\bpossibility of\b",
        r"\bprobabl[ey]\b",
        r"\b(?:un|less |more )?likely\b",
        r"\bpresum(?:ed|ably|ptive)\b",
        r"\bsuspect(?:ed|s)?\b",
        r"\bsuspicio(?:us|n) (?:for|of)\b",
        r"\bconcern(?:ing)? for\b",
        r"\bworrisome for\b",
        r"\bquestion(?:able|ed)?\b",
        r"\bdifferential\b",
        r"\bconsider(?:ed|ation)?\b",
        r"\bfavou?r(?:ed|s|ing)?\b",
        r"\bequivocal\b",
        r"\bindeterminate\b",
        r"\bborderline\b",
        r"\buncertain\b",
        r"\b(?:limited|suboptimal|poor|incomplete) (?:evaluation|assessment|visuali[sz]ation)\b",
        r"\beither\b",
    ),
    # hedges that may sit inside a negated noun phrase: "no suspicious nodule", "no opacity to suggest"
    "adj": _alt(r"\bsuspicious\b", r"\b(?:to )?suggest(?:s|ed|ing|ive)?(?: of)?\b", r"\bsuggestion of\b"),
    # "no (significant) change in X": X is still there
    "neu": _alt(
        r"\b(?:no|without)(?: \w+){0,3} (?:change|changes|increase|decrease|difference|progression|worsening)"
        r"(?: (?:in|of))?\b",
    ),
    "neg": _alt(
        r"\bno\b",
        r"\bnot\b",
        r"\bwithout\b",
        r"\bfree (?:of|from)\b",
        r"\bnegative for\b",
        r"\babsen(?:ce|t)\b(?: of)?",
        r"\black of\b",
        r"\bresolution of\b",
        r"\bresolved\b",
        r"\bclear(?:ed|ing)? of\b",
        r"\bremoval of\b",
        r"\bremoved\b",
        r"\bdisappearance of\b",
        r"\bnor\b",
        r"\bnone\b",
        r"\bdenies\b",
        r"\bhistory of\b",
        r"\bruled out\b",
        r"\brather than\b",
    ),
    # "No cardiomegaly with small effusions": a negation does not reach past "with"
    "stopneg": r"\bwith\b",
}
# "No effusion and small pneumothorax", "No pneumothorax, mild edema": a comma or "and" before a
# size, degree or course starts a finding of its own (unless a list closes with "or", see
# _new_finding). Read on the words themselves, not the masked part: the size word may open the
# phrase ("and large cardiac silhouette").
EN_FRESH = r"(?:,|\band)\s+(?:(?:a|an)\s+)?(?:" + _FRESH_WORDS + r")\b"
EN_CUES_AFTER = {
    "unc": _alt(
        r"\b(?:cannot|can ?not|can't|could not|not|couldn't) (?:yet )?(?:be )?(?:entirely |completely |totally |definitely |"
        r"fully |confidently |definitively )?(?:excluded|ruled out)",
        r"\b(?:is|are|was|were|remains?)\s(?:also\s|still\s|felt to be\s|thought to be\s)?"
        r"(?:possible|probable|(?:un|less |more )?likely|suspected|questioned|questionable|favou?red|considered|"
        r"a consideration|in question|not excluded|difficult to exclude)\b",
        r"\bsuspected\b",
        r"\b(?:may|might|could)\s(?:also\s)?(?:not\s)?be\s(?:present|seen|demonstrated|visuali[sz]ed|excluded|"
        r"obscured|missed|hidden|detected|identified)\b",
        r"\b(?:should|would|could|may|must) be (?:considered|excluded|ruled out)\b",
        r"\bin the differential\b",
        r"\b(?:is|are|was|were|remains?)\s(?:\w+\s)?(?:limited|obscured|poorly (?:seen|evaluated|visuali[sz]ed|assessed)|"
        r"incompletely (?:seen|evaluated|assessed)|not well (?:seen|evaluated|visuali[sz]ed|assessed)|"
        r"not clearly (?:seen|visuali[sz]ed)|difficult to (?:evaluate|assess|exclude))\b",
        r"\?",
    ),
    "neg": _alt(
        r"\b(?:(?:is|are|was|were|has|have|had)\s)?(?:been\s)?not\s(?:been\s)?(?:seen|identified|present|visuali[sz]ed|"
        r"demonstrated|appreciated|evident|noted|observed|detected|suspected|visible|apparent|found)\b",
        r"\b(?:is|are|was|were)\s(?:now\s)?(?:absent|negative)\b",
        r"\b(?:all\s|also\s)?(?:is|are|was|were|appears?|appeared)\s(?:all\s)?within normal limits\b",
        r"\b(?:has|have|had)\s(?:since\s|now\s|completely\s|nearly\s)?(?:resolved|cleared|disappeared)\b",
        r"\b(?:resolved|cleared)\b",
        r"\b(?:has|have|had|was|were)\s(?:\w+\s)?(?:been\s)?(?:removed|ruled out|excluded)\b",
        r"\bremoved\b",
        r"\bno longer\b",
    ),
}
EN_SENTENCES = r"(?<!\bvs\.)(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\bdr\.)(?<!\bapprox\.)(?<=[.!?;:])\s+|\n+"
EN_BREAKS = _alt(
    r"\bbut\b(?!\s+(?:otherwise\s+)?clear\b)",
    r"\bhowever\b",
    r"\balthough\b",
    r"\bthough\b",
    r"\bwhereas\b",
    r"\bwhile\b",
    r"\bexcept\b",
    r"\baside from\b",
    r"\bapart from\b",
    r"\bthere (?:is|are|was|were|has been|have been)\b",
    r"\bwhich\b",
    r"\bthat\b",
    r"\botherwise\b",
    r",\s*(?=(?:the|there|this|these|it|a|an)\b)",
)
EN_OR = r"\b(?:and/)?or\b(?<!\bwith or)(?!\s+without\b)(?<!\bwhether or)(?!\s+not\b)(?!\s+more\b)(?!\s+less\b)|\bversus\b|\bvs\b\.?"
EN_OR_BLOCK = (
    r"\b(?:is|are|was|were|be|been|being|may|might|could|would|should|can|represent\w*|reflect\w*|seen|noted|"
    r"identified|present|suggest\w*|indicat\w*|likely|which|that|with|without|no|not|from|result\w*|due|"
    r"secondary|related|and)\b"
)
EN_INSIDE_NEG = r"\bnot\b|\bno\b"
EN_INSIDE_UNC = r"\bborderline\b|\bquestionabl[ey]\b|\bpossibl[ey]\b"

# =========================================== Chinese ===========================================
_ZH_HEART = r"(?:心脏(?!纵[隔膈])|心影|心胸比(?:例|率)?|心脏轮廓|心影轮廓)"
_ZH_BIG = r"(?:增大|扩大|肿大|肥大|增加|偏大|较大|很大|略大|稍大|大于正常)"
_ZH_STOP = r"，,。；;、"
_ZH_END = r"，,。；;"  # a normal statement may list with "、": "心影形态、大小正常"

ZH_PHRASES: dict[str, list[tuple[str, str]]] = {
    "Enlarged Cardiomediastinum": [
        (
            STATEMENT,
            rf"(?:(?:上|心脏?)?纵[隔膈]|心胸廓线?)(?:影|轮廓)?(?:(?!不|未|无|没|正常)[^{_ZH_STOP}]){{0,6}}?"
            r"(?:增宽|增大|扩大|变宽|加宽)",
        ),
        (
            NORMAL,
            rf"(?:纵[隔膈]|心胸廓线?)(?:(?!增宽|增大|扩大|变宽)[^{_ZH_END}]){{0,24}}?"
            r"(?:正常|不明显|无异常|未见异常|无明显异常|没有明显的?异常|居中|在正常范围内?|无特殊|不宽)",
        ),
    ],
    "Cardiomegaly": [
        (STATEMENT, rf"{_ZH_HEART}(?:(?!不|未|无|没|正常)[^{_ZH_STOP}]){{0,8}}?{_ZH_BIG}"),
        (STATEMENT, r"心(?:脏|肌)肥大(?:症)?|心脏(?:扩大|增大)症"),
        (HEDGED, r"心影饱满|心脏(?:大小)?(?:处于|为|在)?临界"),
        (
            NORMAL,
            rf"{_ZH_HEART}(?:(?!增大|扩大|肿大|肥大|增加|偏大|较大|略大|边缘)[^{_ZH_END}]){{0,24}}?"
            r"(?:正常|不大|健康|无异常|未见异常|在正常范围内?|未见增大|无增大|没有增大|未增大|没有增加)",
        ),
    ],
    "Lung Lesion": [
        (
            MENTION,
            r"结节(?!病)|肿块|肿物|占位(?:性病变)?|肿瘤|新生物|肺(?:部|内)?病变|空洞性病变|恶性(?:病变|肿瘤)?",
        ),
    ],
    "Lung Opacity": [
        (
            MENTION,
            _alt(
                r"阴影",
                r"(?:斑片|片状|斑点|条索|条片|网格|絮状|云絮)(?:状)?影",
                r"混浊",
                r"模糊影",
                r"浸润",
                r"密度增高影?",
                r"致密影",
                r"磨玻璃(?:影|样)?",
                r"不透明(?:度|影|区)?",
                r"(?:气腔|空域|空隙|气隙|肺泡)(?:性)?(?:疾病|病变|病)",
            ),
        ),
        (
            NORMAL,
            rf"(?:双|两)?(?:侧)?(?:的)?(?<!心)肺(?!门|炎|动脉|静脉|血管|结节|不张|气肿|水肿)(?:部|野|叶)?"
            rf"(?:(?!不|未|无|没|血管|容量|容积|纹理)[^{_ZH_END}]){{0,24}}?(?:清晰|清楚|健康|正常)",
        ),
    ],
    "Edema": [
        (
            MENTION,
            _alt(
                r"水肿",
                r"肺淤血",
                r"肺(?:部)?(?:血管|静脉)?(?:性)?(?:淤血|充血)",
                r"血管(?:性)?(?:淤血|充血)",
                r"充血性心力衰竭",
                r"心力衰竭",
                r"心衰",
            ),
        ),
    ],
    "Consolidation": [
        (
            MENTION,
            _alt(
                r"实变",
                r"固结",
                r"巩固",
                r"(?:肺泡|空隙|气隙|气腔|空域|局灶性?)(?:的)?合并(?:症)?",
                r"合并症",
            ),
        ),
    ],
    "Pneumonia": [(MENTION, r"肺炎|支气管肺炎|感染(?:性(?:病变|过程))?")],
    "Atelectasis": [
        (
            MENTION,
            r"(?:肺|叶)?不张|肺萎陷|(?:肺)?膨胀不全|无气症|(?:肺|肺叶|叶)(?:部)?(?:部分|完全)?(?:性)?塌陷|萎陷",
        ),
    ],
    "Pneumothorax": [
        (
            MENTION,
            _alt(
                r"(?:液|水)?气胸",
                r"胸膜腔(?:内)?(?:积气|空气)",
                r"胸腔(?:内)?积气",
                r"胸膜(?:腔)?(?:内)?空气(?:聚集|积聚)?",
            ),
        ),
    ],
    "Pleural Effusion": [
        (
            MENTION,
            _alt(
                r"胸腔积液",
                r"胸膜(?:腔)?积液",
                r"胸水",
                r"积液",
                r"渗出(?!性)(?:液|物)?",
                r"液体积聚",
                r"胸腔(?:内)?液体",
            ),
        ),
        (HEDGED, r"肋膈角(?:变钝|钝化|模糊|变浅)"),
        (NORMAL, r"肋膈角(?:锐利|清晰|正常|存在)"),
    ],
    "Pleural Other": [
        (MENTION, r"胸膜(?:增厚|斑块?|钙化|粘连|瘢痕|疤痕)|胸膜肺(?:实质)?(?:瘢痕|疤痕)|纤维胸")
    ],
    "Fracture": [
        (MENTION, r"骨折"),
        (NEGATED_ONLY, r"(?:急性)?骨(?:质|骼|性)(?:结构)?(?:的)?(?:异常|破坏|病变)"),
        (
            NORMAL,
            rf"骨(?:质|骼|性)(?:结构)?(?:(?!骨折|疏松)[^{_ZH_END}]){{0,16}}?"
            r"(?:完整|正常|无异常|未见异常|没有(?:什么|任何)?(?:明显的?)?(?:急性)?(?:的)?异常)",
        ),
    ],
    "Support Devices": [
        (
            MENTION,
            _alt(
                r"起搏器",
                r"除颤器",
                r"导管",
                r"置管",
                r"插管",
                r"气管切开(?:管|插管|套管)?",
                r"引流管",
                r"胸管",
                r"鼻?胃管",
                r"喂养管",
                r"分流管",
                r"picc(?:管|线)?",
                r"中心静脉(?:导管|管路|线)",
                r"输液港",
                r"支架",
                r"胸骨(?:钢丝|缝线|线|环扎|切开术?)",
                r"(?:手术|外科|血管|金属)夹",
                r"夹子",
                r"导线",
                r"人工瓣膜",
                r"瓣膜置换",
                r"内固定",
                r"支持(?:装置|设备)",
            ),
        ),
    ],
    OTHER_FINDING: [
        (
            MENTION,
            _alt(
                r"肺气肿",
                r"慢性阻塞性肺(?:疾)?病",
                r"慢阻肺",
                r"过度(?:充气|膨胀|扩张|通气)",
                r"充气过度",
                r"肺?大疱",
                r"脊柱侧[弯凸]",
                r"侧弯",
                r"后凸",
                r"驼背",
                r"退行性(?:改变|变化|病变)?",
                r"退变",
                r"骨赘",
                r"骨质增生",
                r"关节(?:炎|病)",
                r"骨质疏松(?:症)?",
                r"骨(?:量|质)(?:减少|减低)",
                r"肉芽肿",
                r"钙化",
                r"疝",
                r"膈(?:肌)?膨升",
                r"膈(?:肌)?(?:抬高|升高)",
                r"迂曲",
                r"扭曲",
                rf"主动脉(?:[^{_ZH_STOP}]{{0,3}})?(?:扩张|延长|增宽|硬化)",
                r"动脉(?:粥样)?硬化",
                r"动脉瘤",
                r"瘢痕",
                r"疤痕",
                r"纤维化",
                r"间质(?:性)?(?:标记|纹理|改变|突出|病变|疾病|增厚|增多)",
                r"纹理增多",
                r"网状",
                r"支气管扩张",
                r"支气管炎",
                r"支气管周围(?:袖套|增厚)",
                r"气道疾病",
                r"纵隔气肿",
                r"气腹",
                r"畸形",
                r"转移",
                r"血肿",
                r"出血",
                r"挫伤",
                r"淋巴结(?:肿大|病)",
                r"腺病",
                r"误吸",
                r"吸入性",
                r"肺(?:容量|容积)(?:低|减少|减低)",
                r"低肺(?:容量|容积)",
                r"拥挤",
                r"(?:胸椎|脊椎|脊柱)病",
                r"增厚",
                r"漏斗胸",
                r"结核",
                r"炎症",
                r"炎性",
                r"突出",
                r"心包积液",
                rf"(?:软组织|皮下|肢体|上肢|下肢|手臂)(?:[^{_ZH_STOP}]{{0,3}})?水肿",
                r"胀气",
                rf"(?:胃|肠)(?:部)?(?:[^{_ZH_STOP}]{{0,3}})?扩张",
                rf"慢性(?:[^{_ZH_STOP}]{{0,4}})?改变",
                r"椎体(?:压缩|塌陷)",
                r"压缩性改变",
                r"容(?:量|积)减少",
            ),
        ),
    ],
}

ZH_UNMENTIONS: dict[str, list[str]] = {
    "Pleural Effusion": [r"心包积液", r"关节(?:腔)?积液"],
    "Edema": [rf"(?:软组织|皮下|肢体|上肢|下肢|手臂|胸壁|面部|颈部)(?:[^{_ZH_STOP}]{{0,3}})?水肿"],
    "Pneumonia": [
        r"肉芽肿性(?:感染|疾病|病变)",
        rf"(?:陈旧性?|既往|以前的?|旧的?|先前的?|愈合的?|远期)(?:[^{_ZH_STOP}]{{0,4}})?感染",
        r"(?:尿路|泌尿系|皮肤|伤口)感染",
    ],
    "Lung Opacity": [r"乳头(?:阴)?影", r"骨(?:性|质)(?:阴影|不透明)"],
}

_ZH_FRESH_WORDS = _alt(
    r"(?:极)?少[量许]",
    r"微量",
    r"轻[度微]",
    r"中[度等]",
    r"大量",
    r"重度",
    r"广泛",
    r"新(?:发|出现)",
    r"(?:稍|略)?(?:增多|增加|增大|减少|减轻|加重|好转)",
    r"稳定",
    r"持续",
    r"残[留余]",
)
ZH_CUES_BEFORE = {
    "unc": _alt(
        r"不能(?:完全)?排除",
        r"不能(?:完全)?除外",
        r"不除外",
        r"不排除",
        r"难以(?:排除|除外)",
        r"无法(?:排除|除外|显示|评估)",
        r"需(?:要)?排除",
        r"待排除?",
        r"没有新的?",
        r"无新(?:发)?的?",
        r"可能(?:无法|不会|未能)?",
        r"疑似",
        r"疑为",
        r"怀疑",
        r"考虑(?:为|是)?",
        r"倾向(?:于|为)?",
        r"或为",
        r"或许",
        r"也许",
        r"大概",
        r"似乎",
        r"似为",
        r"表明(?:有|存在)",
        r"(?:需)?警惕",
        r"(?:需|请)?除外",
        r"鉴别诊断(?:包括)?",
        r"不确定",
        r"边缘(?:性)?",
        r"评估(?:受限|有限)",
    ),
    "adj": r"可疑(?:的)?|提示",
    "neu": r"(?:无|没有|未见)(?:明显|显著|明确)?(?:的)?(?:变化|改变|进展|增加|减少|差异)",
    "neg": _alt(
        r"未见",
        r"未发现",
        r"未显示",
        r"未探及",
        r"未看到",
        r"未再见",
        r"未观察到",
        r"未检出",
        r"没有证据表明(?:有)?",
        r"没有(?:发现|看到|显示|观察到)?",
        r"没",
        r"无",
        r"不伴(?:有)?",
        r"已经?排除(?:了)?",
        r"排除(?:了)?",
        r"否认",
        r"不存在",
    ),
    "stopneg": r"伴(?:有)?|并有|并见|同时有",
}
# "无胸腔积液及少量气胸": as in English, "及/和/与/、" before a size, degree or course starts a
# finding of its own unless a list closes with "或" (_new_finding)
ZH_FRESH = r"(?:以及|和|及|与|、)\s*(?:" + _ZH_FRESH_WORDS + r")"
ZH_CUES_AFTER = {
    "neu": ZH_CUES_BEFORE["neu"],
    "unc": _alt(
        r"可能性?大?",
        r"待排",
        r"不除外",
        r"不能(?:完全)?(?:被)?排除",
        r"无法排除",
        r"不能除外",
        r"可疑",
        r"也是可能的",
        r"也有可能",
        r"(?:被|受到)?怀疑",
        r"疑似",
        r"[？?]",
        r"评估(?:受限|有限)",
        r"显示(?:不清|欠佳)",
        r"无法(?:显示|评估)",
        r"在鉴别诊断中",
        r"需(?:要)?排除",
    ),
    "neg": _alt(
        r"(?:已经?)?吸收",
        r"(?:已经?)?消失",
        r"(?:已经?)?(?:拔除|移除|去除|清除|消退|缓解)",
        r"(?:已经?)?被排除",
        r"均未见",
        r"未见",
        r"没有看到",
        r"未发现",
        r"不明显",
        r"阴性",
        r"病史",
    ),
}
ZH_SENTENCES = r"(?<=[。！？!?；;])|\n+|(?<=[a-z])\.\s*"
ZH_BREAKS = r"但是?|然而|不过|此外|另外|另见|同时|并且|而且|除此之外|(?<![排消])除了"
ZH_COMMA = r"[，,]"
ZH_OR = r"或者?(?!为|许)"
ZH_OR_BLOCK = r"是|为|有|可能|表明|提示|显示|见|考虑|伴|导致|引起"
# a comma-separated part that only continues a negated list: "没有气胸，胸腔积液或局灶性实变"
ZH_LIST_START = (
    r"(?:以及|及|和|与|或者?|、)?(?:任何|明显的?|急性的?|局灶性?的?|可疑的?|大量的?|局部的?|明确的?)*"
)
ZH_LIST_BLOCK = (
    r"可见|见到|看到|显示|存在|有|增大|扩大|正常|清晰|稳定|在位|提示|表明|考虑|可能|伴|左|右|双|两"
)
ZH_INSIDE_UNC = r"边缘|临界"


@dataclass
class Mention:
    observation: str
    text: str
    label: int  # 1, 0, -1
    sentence: str


@dataclass(frozen=True)
class _Found:
    """A phrase found in a clause, before classification."""

    observation: str
    kind: str
    start: int
    end: int


class _Rules:
    """The compiled rules of one language."""

    def __init__(self, lang: str):
        # Phrases and cues are written in lower case and run on the lower-cased text (twice as fast
        # as IGNORECASE); the splitting runs on the original text.
        spec = _SPECS[lang]
        flags = 0
        wrap = (lambda p: rf"\b(?:{p})(?!\w)") if lang == "en" else (lambda p: f"(?:{p})")
        self.lang = lang
        # per observation: one pattern for any of its phrases (a quick test), then each kind's pattern
        self.phrases = [
            (
                obs,
                re.compile("|".join(wrap(p) for _, p in items), flags),
                [(kind, re.compile(wrap(p), flags)) for kind, p in items],
            )
            for obs, items in spec["phrases"].items()
        ]
        self.unmentions = {
            obs: re.compile("|".join(wrap(p) for p in pats), flags)
            for obs, pats in spec["unmentions"].items()
        }
        self.before = _named(spec["before"], flags)
        self.fresh = re.compile(f"(?P<fresh>{spec['fresh']})", flags)
        self.after = _named(spec["after"], flags)
        self.sentences = re.compile(spec["sentences"], re.IGNORECASE)
        self.breaks = re.compile(spec["breaks"], re.IGNORECASE)
        self.comma = re.compile(spec["comma"]) if spec["comma"] else None
        self.either = re.compile(spec["or"], flags)
        self.or_block = re.compile(spec["or_block"], flags)
        self.inside_neg = re.compile(spec["inside_neg"], flags) if spec["inside_neg"] else None
        self.inside_unc = re.compile(spec["inside_unc"], flags)
        self.list_start = re.compile(spec["list_start"]) if spec["list_start"] else None
        self.list_block = re.compile(spec["list_block"]) if spec["list_block"] else None


def _named(groups: dict[str, str], flags) -> re.Pattern:
    # One alternation, tried left to right at each position: uncertainty before negation, so that
    # "cannot exclude" or "不能排除" is read as one cue and never as "not" or "排除".
    order = [g for g in ("neu", "unc", "adj", "neg", "stopneg") if g in groups]
    return re.compile("|".join(f"(?P<{g}>{groups[g]})" for g in order), flags)


_SPECS = {
    "en": {
        "phrases": EN_PHRASES,
        "unmentions": EN_UNMENTIONS,
        "before": EN_CUES_BEFORE,
        "fresh": EN_FRESH,
        "after": EN_CUES_AFTER,
        "sentences": EN_SENTENCES,
        "breaks": EN_BREAKS,
        "comma": None,
        "or": EN_OR,
        "or_block": EN_OR_BLOCK,
        "inside_neg": EN_INSIDE_NEG,
        "inside_unc": EN_INSIDE_UNC,
        "list_start": None,
        "list_block": None,
    },
    "zh": {
        "phrases": ZH_PHRASES,
        "unmentions": ZH_UNMENTIONS,
        "before": ZH_CUES_BEFORE,
        "fresh": ZH_FRESH,
        "after": ZH_CUES_AFTER,
        "sentences": ZH_SENTENCES,
        "breaks": ZH_BREAKS,
        "comma": ZH_COMMA,
        "or": ZH_OR,
        "or_block": ZH_OR_BLOCK,
        "inside_neg": None,
        "inside_unc": ZH_INSIDE_UNC,
        "list_start": ZH_LIST_START,
        "list_block": ZH_LIST_BLOCK,
    },
}
_RULES: dict[str, _Rules] = {}


def _rules(lang: str) -> _Rules:
    if lang not in _SPECS:
        raise ValueError(f"unknown language {lang!r} (en or zh)")
    if lang not in _RULES:
        _RULES[lang] = _Rules(lang)
    return _RULES[lang]


# ---------------------------------------- stage 1: mentions ----------------------------------------
def _clauses(sentence: str, rules: _Rules) -> list[list[str]]:
    """A sentence as clauses; each clause as its comma-separated parts (one part in English)."""
    out = []
    for clause in rules.breaks.split(sentence):
        if clause and clause.strip():
            parts = rules.comma.split(clause) if rules.comma else [clause]
            out.append([p for p in parts if p.strip()])
    return [c for c in out if c]


def _find(part: str, rules: _Rules) -> list[_Found]:
    found = []
    for obs, anyone, kinds in rules.phrases:
        if anyone.search(part) is None:
            continue
        unmention = rules.unmentions.get(obs)
        blocked = [(m.start(), m.end()) for m in unmention.finditer(part)] if unmention else []
        for kind, pattern in kinds:
            for m in pattern.finditer(part):
                if not any(m.start() < e and m.end() > s for s, e in blocked):
                    found.append(_Found(obs, kind, m.start(), m.end()))
    found.sort(key=lambda f: (f.start, f.end))
    return found


def _mask(part: str, found: list[_Found]) -> str:
    """The part with every phrase blanked out, so that cues are never read inside a phrase. Normal
    statements stay: their window may span a cue that belongs to other mentions ("X, Y and Z all
    appeared within normal limits")."""
    chars = list(part)
    for f in found:
        if f.kind != NORMAL:
            chars[f.start : f.end] = "#" * (f.end - f.start)
    return "".join(chars)


# ------------------------------------- stage 2: classification -------------------------------------
def _cue_before(part: str, masked: str, start: int, rules: _Rules) -> int | None:
    """0 or -1 from the cues before the mention, or None when none reaches it."""
    cues = list(rules.before.finditer(masked, 0, start))
    fresh = [m for m in _fresh_cues(part, masked, rules) if m.start() < start]
    if fresh:
        cues = sorted(cues + fresh, key=lambda m: m.start())
    hedged, neg_blocked = False, False
    for cue in reversed(cues):
        group = cue.lastgroup
        if group == "neu":
            return None if not hedged else -1
        if group == "fresh" and _new_finding(masked, cue):
            if cue.group(0).startswith(","):
                break  # ", small effusion": a statement of its own, out of every cue's reach before it
            neg_blocked = True  # "and small effusion": "possible X and small Y" may still hedge both
        elif group == "stopneg":
            neg_blocked = True
        elif group == "unc":
            return -1
        elif group == "adj":
            hedged = True
        elif group == "neg" and not neg_blocked:
            if rules.lang == "en" and _verb_of_the_phrase_before(masked, cue):
                break  # it ends the clause of the phrase before: nothing further back reaches
            return 0
    return -1 if hedged else None


@functools.lru_cache(maxsize=256)
def _fresh_cues(part: str, masked: str, rules: _Rules) -> tuple[re.Match, ...]:
    """The "and"/comma + size word cues of a part whose "and"/comma lies outside every phrase; the
    size word may be the first of a phrase's own words. Once per part, not once per mention."""
    return tuple(m for m in rules.fresh.finditer(part) if masked[m.start()] != "#")


def _new_finding(masked: str, cue: re.Match) -> bool:
    """Does ", small …" / "and mild …" / "及少量…" start a finding of its own? Not when "or"/"nor"/"或"
    follows in the clause: "No consolidation, large effusion or pneumothorax" is one negated list."""
    return re.search(r"\b(?:or|nor)\b|或", masked[cue.end() :]) is None


# English participles that are also negation cues before a phrase ("resolved effusion", "removed
# line"), and what makes them the verb of the phrase before instead: that phrase (masked by "#")
# or an auxiliary right before them ("effusion (has) resolved and pneumothorax is present").
_PARTICIPLES = ("resolved", "removed")
_VERB_BEFORE = re.compile(r"(?:#|\b(?:has|have|had|is|are|was|were|been|since|now|completely|nearly))\s+\Z")


def _verb_of_the_phrase_before(masked: str, cue: re.Match) -> bool:
    return cue.group(0) in _PARTICIPLES and _VERB_BEFORE.search(masked, 0, cue.start()) is not None


def _cue_after(masked: str, end: int, rules: _Rules) -> int | None:
    """0 or -1 from the first cue after the mention, within its reach."""
    for cue in rules.after.finditer(masked, end):
        between = masked[end : cue.start()]
        if rules.lang == "en" and "," in between and not _is_list(between):
            return None
        group = cue.lastgroup
        return {"unc": -1, "neg": 0}.get(group)
    return None


def _is_list(between: str) -> bool:
    """English: does the text between a mention and a cue after it only continue a list?
    "X, Y, or Z is not seen" and "X, Y, Z or W has been ruled out" reach X; "X in the base, Y is
    suspected" does not."""
    last = between.rsplit(",", 1)[1]
    if re.match(r"\s*(?:and/or|or|and|nor)\b", last):
        return True
    joined = re.search(r"\b(?:or|and|nor)\b", between)
    return bool(joined) and not re.sub(r"#+|,|\b(?:and/or|or|and|nor)\b|\s", "", between)


def _joined_by_or(masked: str, start: int, end: int, rules: _Rules) -> bool:
    """True when "or"/"versus"/"或" joins the mention directly to another phrase."""
    for m in rules.either.finditer(masked):
        if m.start() >= end:
            between = masked[end : m.start()]
        elif m.end() <= start:
            between = masked[m.end() : start]
        else:
            continue
        word = m.group(0).lower()
        limit = 40 if rules.lang == "en" else 10
        if len(between) > limit or rules.or_block.search(between):
            continue
        # English: across a comma only inside a list ("X, Y or Z"), not from another phrase's
        # clause ("pneumothorax in the apex, effusion or edema is not seen")
        if rules.lang == "en" and "," in between and re.sub(r"#+|,|\s", "", between):
            continue
        if word.startswith(("vs", "versus")) and "," in between:
            continue
        return True
    return False


def _classify(part: str, masked: str, f: _Found, rules: _Rules, negated_list: bool) -> int | None:
    """The label of one phrase in its part: 1, 0, -1, or None for a negated-only phrase unnegated.
    ``negated_list``: the part continues a negated list from the part before it."""
    text = part[f.start : f.end]
    if f.kind == NORMAL:
        return 0
    if rules.inside_neg is not None and rules.inside_neg.search(text):
        return 0
    label = _cue_before(part, masked, f.start, rules)
    if label is None:
        label = _cue_after(masked, f.end, rules)
    if label is None and negated_list:
        label = 0
    if f.kind == NEGATED_ONLY:
        return 0 if label == 0 else None
    if label is not None:
        return label
    if f.kind == HEDGED or rules.inside_unc.search(text) or _joined_by_or(masked, f.start, f.end, rules):
        return -1
    return 1


def _continues_negated_list(part: str, masked: str, found: list[_Found], rules: _Rules) -> bool:
    """Chinese: does this comma-separated part only continue the negated list before it?"""
    if rules.list_start is None or not found:
        return False
    first = found[0]
    lead = rules.list_start.match(part.strip())
    offset = len(part) - len(part.lstrip())
    if first.kind != MENTION or lead is None or offset + lead.end() != first.start:
        return False
    return not rules.list_block.search(masked.replace("#", ""))


def _lower(text: str) -> str:
    """Lower case, keeping every offset (the few characters whose lower case is longer stay)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def _label_part(part: str, rules: _Rules, inherit_neg: bool) -> tuple[list[tuple[_Found, int]], bool]:
    """Labelled phrases of one part, and whether a negated list runs on into the next part."""
    part = _lower(part)
    found = _find(part, rules)
    masked = _mask(part, found)
    inherit = inherit_neg and _continues_negated_list(part, masked, found, rules)
    out, last_negated = [], inherit
    for f in found:
        label = _classify(part, masked, f, rules, inherit)
        if label is None:
            continue
        out.append((f, label))
        if f.kind in (MENTION, STATEMENT, NEGATED_ONLY):
            last_negated = label == 0 and (inherit or _cue_before(part, masked, f.start, rules) == 0)
    return out, last_negated


def _all_mentions(text: str, lang: str) -> list[Mention]:
    rules = _rules(lang)
    found: list[Mention] = []
    for sentence in rules.sentences.split(text or ""):
        if not sentence or not sentence.strip():
            continue
        for clause in _clauses(sentence, rules):
            negated_list = False
            for part in clause:
                labelled, negated_list = _label_part(part, rules, negated_list)
                found += [
                    Mention(f.observation, part[f.start : f.end], label, part.strip())
                    for f, label in labelled
                ]
    return found


# -------------------------------------- stage 3: aggregation --------------------------------------
def find_mentions(text: str, lang: str = "en") -> list[Mention]:
    """Every classified mention of the 14 observations in a report, in reading order."""
    return [m for m in _all_mentions(text, lang) if m.observation != OTHER_FINDING]


def label_report(text: str, lang: str = "en") -> dict[str, int | None]:
    """The 14 observations of one report: 1 positive, 0 negative, -1 uncertain, None not mentioned."""
    labels: dict[str, int | None] = {obs: None for obs in [*OBSERVATIONS, OTHER_FINDING]}
    rank = {1: 3, -1: 2, 0: 1}
    for m in _all_mentions(text, lang):
        current = labels[m.observation]
        if current is None or rank[m.label] > rank[current]:
            labels[m.observation] = m.label
    other = labels.pop(OTHER_FINDING)
    if not any(labels[o] in (1, -1) for o in PATHOLOGY) and other not in (1, -1):
        labels["No Finding"] = 1
    return labels
