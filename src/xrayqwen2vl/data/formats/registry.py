"""The one registry of input forms: name -> reader, counter, required inputs, study-key rule.

Each form is one module of this package that defines ``FORM = InputForm(...)`` (and, when it
publishes a split other forms can use, ``SPLIT_TABLE = SplitTable(...)``); adding a form is that
module plus its name in ``MODULES``. Nothing else in the package branches on a format name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ..records import InputFileError, Report, Skipped, UnusedImage
from ..splits import PublishedSplit

# The form modules, in the order --format lists them.
MODULES = ("openi", "kaggle", "r2gen", "xrayglm", "mimic", "chexpert_plus", "rexgradient", "rexrank")

Records = Iterable[Report | Skipped | UnusedImage]


@dataclass(frozen=True)
class InputForm:
    """One public form of a collection, as ``prepare --format NAME`` reads it.

    ``inputs`` maps each required input (its argparse dest; the flag is ``--dest-with-dashes``,
    ``images_dir`` included) to its help text. ``read`` and ``count`` receive those inputs as a
    mapping dest -> the value given. The reader sets ``Report.study`` by ``key_rule`` (and
    ``Report.group`` when studies of one patient must share a split), and ``Report.split`` when
    the form carries the published split named ``published_split``.
    """

    name: str
    collection: str  # forms of one collection share study keys and split tables
    help: str  # one line for --format's help
    inputs: Mapping[str, str]
    read: Callable[[Mapping[str, str]], Records]
    # Records read, for the progress bar (None: unknown). A reader whose records are sized (len())
    # is asked that instead, so a collection indexed once is not indexed twice.
    count: Callable[[Mapping[str, str]], int | None]
    key_rule: str  # how the reader derives the study key (and group key); kept in the manifest
    sections_lang: str | None = "en"  # language of the source's sections; None: text taken as given
    published_split: str | None = None  # the --split value the reader fills Report.split for
    default_split: str = "hash"
    # Optional on/off switches of the form (argparse dest -> help), passed to read() in the
    # mapping as True/False; the flag is --dest-with-dashes.
    flags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SplitTable:
    """A published split that forms of ``collection`` can take from a file of its own
    (``--split NAME --INPUT FILE``), matched by the collection's study key."""

    name: str
    collection: str
    input: str  # argparse dest of the file, e.g. "annotation"
    help: str
    load: Callable[[str], PublishedSplit]


def _modules():
    return [importlib.import_module(f"{__package__}.{m}") for m in MODULES]


def forms() -> dict[str, InputForm]:
    return {mod.FORM.name: mod.FORM for mod in _modules()}


def split_tables() -> dict[str, SplitTable]:
    return {mod.SPLIT_TABLE.name: mod.SPLIT_TABLE for mod in _modules() if hasattr(mod, "SPLIT_TABLE")}


def get_form(name: str) -> InputForm:
    known = forms()
    if name not in known:
        raise ValueError(f"--format {name!r}: expected one of {', '.join(known)}")
    return known[name]


def split_choices() -> list[str]:
    """Every --split value: hash, the splits forms carry, and the split tables."""
    names = ["hash"]
    for f in forms().values():
        if f.published_split and f.published_split not in names:
            names.append(f.published_split)
    names += [t for t in split_tables() if t not in names]
    return names


def split_table_for(form: InputForm, split: str) -> SplitTable | None:
    """The table that gives ``form`` the published split ``split``; None for the hash split and
    for a split the form's records carry. An unknown combination is an InputFileError."""
    if split == "hash" or split == form.published_split:
        return None
    table = split_tables().get(split)
    if table is None or table.collection != form.collection:
        raise InputFileError(f"--split {split} is not available for --format {form.name}")
    return table
