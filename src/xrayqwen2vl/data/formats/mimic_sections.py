"""Sections of a MIMIC-CXR free-text report (``files/p<NN>/p<subject>/s<study>.txt``).

A report is plain text wrapped at about 80 columns, every line indented by a space. An optional
preamble (a ``WET READ:`` note, a line of underscores) precedes a ``FINAL REPORT`` line; then come
sections, each opened by an upper-case header and a colon at the start of a line
(``EXAMINATION:``, ``INDICATION:``, ``TECHNIQUE:``, ``COMPARISON:``, ``FINDINGS:``,
``IMPRESSION:``, ``FINDINGS AND IMPRESSION:``, ``CONCLUSION:``, ``NOTIFICATION:``…). The text of
a section may start on the header's line or on the following lines. De-identified spans are
``___`` and are kept as they are.

The rules, the same ones the MIT-LCP ``mimic-cxr`` section extraction follows (written here from
its description, not copied):

- only text after the ``FINAL REPORT`` line is read, when there is one;
- a header is a line that starts (after spaces) with upper-case words followed by a colon;
- header names are normalised to lower case with single spaces; ``CONCLUSION(S)``,
  ``IMPRESSION(S)``, ``IMPRESSION AND RECOMMENDATION(S)``, ``SUMMARY`` count as the impression;
  a combined ``FINDINGS AND IMPRESSION`` (or ``FINDINGS/IMPRESSION``) section counts as the
  impression (it is the radiologist's conclusion), so the study has no separate findings;
- a header that names the views of the chest (``PA AND LATERAL VIEWS OF THE CHEST:``) holds the
  findings of older reports; it counts as the findings when there is no FINDINGS section;
- when a section occurs more than once, the last non-empty one wins (amended reports repeat it);
- section text is whitespace-collapsed (wrapping and indentation removed); nothing else changes.

We do not guess a findings or impression section from an unlabelled last paragraph: a report
without either header is left without a target, and the reader says which headers it had.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Upper-case words (letters, digits after the first letter, spaces and a few joiners) and a colon
# at the start of a line; the rest of the line is the first text of the section.
_HEADER = re.compile(r"^[ \t]*([A-Z][A-Z0-9 ()/,&'-]*?)[ \t]*:(?![0-9])[ \t]*(.*)$")
_FINAL = re.compile(r"^[ \t]*FINAL REPORT[ \t]*:?[ \t]*$")
_WS = re.compile(r"\s+")
_VIEWS_HEADER = re.compile(r"\bviews?\b.*\bchest\b|\bchest\b.*\bviews?\b")

FINDINGS_NAMES = frozenset({"findings", "finding", "findings (pa and lateral)"})
IMPRESSION_NAMES = frozenset(
    {
        "impression",
        "impressions",
        "conclusion",
        "conclusions",
        "summary",
        "impression and recommendation",
        "impression and recommendations",
        "impression and plan",
    }
)
COMBINED_NAMES = frozenset(
    {
        "findings and impression",
        "findings and impressions",
        "impression and findings",
        "findings/impression",
        "findings / impression",
        "findings impression",
    }
)


@dataclass
class ParsedReport:
    """The sections of one report, in order, and the two that become targets."""

    sections: list[tuple[str, str]] = field(default_factory=list)  # (normalised name, text)
    findings: str = ""
    impression: str = ""
    final_report_line: bool = False

    @property
    def headers(self) -> list[str]:
        return [name for name, _ in self.sections if name != "preamble"]


def normalise_header(name: str) -> str:
    return _WS.sub(" ", name.strip().lower())


def _is_header(match: re.Match) -> bool:
    """At least three letters: ``AP:`` or ``L:`` at the start of a wrapped line is no section."""
    return sum(c.isalpha() for c in match.group(1)) >= 3


def split_sections(text: str) -> tuple[list[tuple[str, str]], bool]:
    """(sections, whether a FINAL REPORT line was seen). Text before the first header is the
    section ``preamble``; text before ``FINAL REPORT`` is dropped."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    final_at = next((i for i, line in enumerate(lines) if _FINAL.match(line)), None)
    if final_at is not None:
        lines = lines[final_at + 1 :]
    sections: list[tuple[str, list[str]]] = [("preamble", [])]
    for line in lines:
        m = _HEADER.match(line)
        if m and _is_header(m):
            sections.append((normalise_header(m.group(1)), [m.group(2)]))
        else:
            sections[-1][1].append(line)
    out = [(name, _WS.sub(" ", " ".join(body)).strip()) for name, body in sections]
    if not out[0][1]:
        out = out[1:]
    return out, final_at is not None


def canonical(name: str) -> str | None:
    """ "findings", "impression", "views" (a header naming the views of the chest, e.g.
    ``PA AND LATERAL VIEWS OF THE CHEST:``, whose text is the findings of older reports) or None
    for a normalised header name."""
    if name in FINDINGS_NAMES:
        return "findings"
    if name in IMPRESSION_NAMES or name in COMBINED_NAMES:
        return "impression"
    if _VIEWS_HEADER.search(name):
        return "views"
    return None


def parse_report(text: str) -> ParsedReport:
    sections, final = split_sections(text)
    chosen = {"findings": "", "impression": "", "views": ""}
    for name, body in sections:
        kind = canonical(name)
        if kind and body:
            chosen[kind] = body  # the last non-empty one wins
    findings = chosen["findings"] or chosen["views"]
    return ParsedReport(sections, findings, chosen["impression"], final)
