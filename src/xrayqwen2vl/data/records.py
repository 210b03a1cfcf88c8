"""The record every input format is parsed into before prepare turns it into samples."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..fileio import InputFileError  # noqa: F401  (its home; the readers import it from here)


@dataclass
class ImageRef:
    """One image of a report: its id in the source and its path relative to the images folder."""

    id: str
    relpath: str
    view: str | None = None  # "frontal"/"lateral" when the source says so, else None


@dataclass
class Report:
    """One study: the radiologist's sections and its images, plus where it came from."""

    id: str
    source: str  # file (and element or line) the record came from, for messages
    findings: str = ""
    impression: str = ""
    images: list[ImageRef] = field(default_factory=list)
    split: str | None = None  # the published split the source gives this report (R2Gen's), if any
    text: str = ""  # one undivided report text, for sources without sections (XrayGLM captions)
    # The canonical study key, by the form's key rule (for the Indiana collection: "CXR<n>", the
    # report number, whatever the form); "" when the id does not fit the rule: the id is used.
    study: str = ""
    # The split group: all reports of one group land in one split (hash split). "" = the study
    # key; a form whose patients have several studies (MIMIC-CXR) sets the patient here.
    group: str = ""
    # Facts worth counting that did not stop the record, "<kind> (<details>)", e.g. the caption
    # variants of one study; listed and counted in the manifest under "notes".
    notes: list[str] = field(default_factory=list)
    # Text the prompt starts with for this study (the indication and comparison a form gives when
    # asked for them, e.g. rexrank --with-context); never demographics.
    context: str = ""

    @property
    def study_key(self) -> str:
        return self.study or self.id

    @property
    def group_key(self) -> str:
        return self.group or self.study_key


@dataclass
class Skipped:
    """A record that did not become a sample, and why."""

    id: str
    source: str
    reason: str

    def to_json(self) -> dict:
        return {"id": self.id, "source": self.source, "reason": self.reason}


@dataclass
class UnusedImage:
    """An image the source lists that belongs to no readable report (e.g. an orphan Kaggle
    projection row). Recorded under ``images_not_used``; it is not a report, so not an input."""

    report: str
    image: str
    reason: str
