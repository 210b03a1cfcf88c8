"""The record every input format is parsed into before prepare turns it into samples."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    split: str | None = None  # set when the source fixes the split (R2Gen)
    text: str = ""  # one undivided report text, for sources without sections (XrayGLM captions)


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


class InputFileError(ValueError):
    """A malformed input file; the message names the file and the line or element."""
