"""Reader for the ReXrank leaderboard's test JSONs (github rajpurkarlab/ReXrank, ``data/``):
``ReXRank_IUXray_test.json``, ``ReXRank_MIMICCXR_test.json``, ``ReXRank_CheXpertPlus.json``.

Each file is one JSON object: study key -> ``image_path`` (a list), ``key_image_path``,
``section_findings``, ``section_impression``, ``report`` ("Findings: … Impression: …", with
"None." for a missing section), ``frontal_lateral`` (a list aligned with ``image_path``),
``context`` ("Indication: … Comparison: …", with age and gender in some sets), ``split`` and other
fields per set. Missing values are bare ``NaN`` literals. The MIMIC paths start with ``/``
(``/p10/p10046166/s50051329/….jpg``): they are read relative to ``--images-dir``, never as
absolute paths (``os.path.join`` would silently drop the root). IU paths are R2Gen's
``CXR<n>_IM-<a>/0.png``.

Every study goes to the test split, keyed by the leaderboard's study key (one sample per key).
``--with-context`` puts the study's indication and comparison (never the age, gender or other
parts of ``context``) before the prompt.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ..records import ImageRef, Report, Skipped, UnusedImage
from ..text import placeholder_in
from .common import iter_json_object, text_field, undecodable
from .registry import InputForm

# "Label: text" parts of a context or report string.
_LABEL = re.compile(r"(?:^|(?<=[\s.;]))([A-Z][A-Za-z ]{1,30}?)\s*:\s*")
CONTEXT_KEPT = ("indication", "comparison")
_NONE = {"", "none", "none.", "nan", "n/a"}


def labelled_parts(text: str) -> dict[str, str]:
    """``"Indication: a. Comparison: b."`` -> {"indication": "a.", "comparison": "b."}; text
    before the first label is ignored."""
    parts: dict[str, str] = {}
    matches = list(_LABEL.finditer(text))
    for m, nxt in zip(matches, [*matches[1:], None], strict=False):
        value = text[m.end() : nxt.start() if nxt else len(text)].strip()
        parts[m.group(1).strip().lower()] = value
    return parts


def section(value) -> str:
    """A section value: "" for NaN, null and the leaderboard's "None."."""
    text = text_field(value)
    return "" if text.lower() in _NONE else text


def reference_sections(study: dict) -> tuple[str, str]:
    """(findings, impression) of a leaderboard study: its section fields, else its ``report``."""
    findings, impression = section(study.get("section_findings")), section(study.get("section_impression"))
    if not findings and not impression:
        parts = labelled_parts(text_field(study.get("report")))
        findings, impression = section(parts.get("findings")), section(parts.get("impression"))
    return findings, impression


def context_text(value) -> str:
    """The indication and comparison of a study's ``context`` ("" when it has neither); age,
    gender and anything else in it are dropped."""
    parts = labelled_parts(text_field(value))
    kept = [f"{name.capitalize()}: {parts[name]}" for name in CONTEXT_KEPT if section(parts.get(name))]
    return " ".join(kept)


def image_relpath(path: str) -> str:
    """A leaderboard image path relative to the images root: leading slashes (MIMIC's
    ``/p10/…``) are removed so the path stays under the root."""
    return path.strip().replace("\\", "/").lstrip("/")


class ReXrankFile:
    def __init__(self, path: str | Path, with_context: bool = False, for_prediction: bool = False):
        self.path = Path(path)
        self.with_context = with_context
        # rexrank-predict: every study becomes a sample, the reference "None." where it has none
        self.for_prediction = for_prediction
        self.keys = [k for k, _ in iter_json_object(self.path, "ReXrank test JSON")]

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[Report | Skipped | UnusedImage]:
        for key, study in iter_json_object(self.path, "ReXrank test JSON"):
            yield from self._records(key, study)

    def _records(self, key: str, study) -> Iterator[Report | Skipped | UnusedImage]:
        source = f"{self.path.name}[{key}]"
        if not isinstance(study, dict):
            yield Skipped(key, source, f"expected a JSON object, got {type(study).__name__}")
            return
        findings, impression = reference_sections(study)
        context = context_text(study.get("context")) if self.with_context else ""
        bad = undecodable(findings=findings, impression=impression, context=context)
        if bad:
            yield Skipped(key, source, bad)
            return
        if placeholder_in(context):
            yield Skipped(key, source, f"context contains a literal {placeholder_in(context)}")
            return
        if self.for_prediction and not findings and not impression:
            findings = "None."
        paths = study.get("image_path")
        if isinstance(paths, str):
            paths = [paths]
        if not isinstance(paths, list) or not paths:
            paths = [study["key_image_path"]] if isinstance(study.get("key_image_path"), str) else []
        views = study.get("frontal_lateral")
        views = views if isinstance(views, list) else []
        images = []
        for i, p in enumerate(paths):
            if not isinstance(p, str) or not p.strip():
                yield UnusedImage(key, f"image_path[{i}]", f"not a path ({p!r})")
                continue
            view = text_field(views[i]).lower() if i < len(views) else ""
            rel = image_relpath(p)
            images.append(
                ImageRef(id=rel, relpath=rel, view=view if view in ("frontal", "lateral") else None)
            )
        if not images:
            yield Skipped(key, source, "no images (image_path missing or empty)")
            return
        yield Report(
            id=key,
            source=source,
            findings=findings,
            impression=impression,
            images=images,
            split="test",
            study=key,
            context=context,
        )


FORM = InputForm(
    name="rexrank",
    collection="rexrank",
    help="a ReXrank leaderboard test JSON (ReXRank_*.json) as --reports, the root its image_path "
    "entries are relative to as --images-dir; every study to the test split",
    inputs={
        "reports": "the leaderboard's test JSON (ReXRank_*.json)",
        "images_dir": "the root of the JSON's image_path entries (leading '/' read relative to it)",
    },
    read=lambda given: ReXrankFile(given["reports"], with_context=bool(given.get("with_context"))),
    count=lambda given: None,
    key_rule="the leaderboard's study key",
    published_split="rexrank",
    default_split="rexrank",
    flags={
        "with_context": "rexrank: put each study's indication and comparison (from its context; never "
        "age or gender) before the prompt"
    },
)
