"""Study-level splits. Every image of a study, and every study of a split group, goes where the
group goes: by a hash of the group key, or by a published split (R2Gen's, an official one)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

SPLITS = ("train", "val", "test")

HASH_RULE = (
    "sha256 of '<seed>:<group key>'; its first 8 bytes as a big-endian integer / 2**64 = u; "
    "train if u < train share, val if u < train + val share, else test"
)


def parse_ratios(text: str) -> tuple[float, float, float]:
    try:
        parts = [float(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(f"--ratios {text!r}: expected three numbers like 0.7,0.1,0.2") from None
    if len(parts) != 3 or any(p < 0 for p in parts) or abs(sum(parts) - 1.0) > 1e-6:
        raise ValueError(f"--ratios {text!r}: expected three non-negative numbers summing to 1")
    return parts[0], parts[1], parts[2]


def hash_unit(key: str, seed: int) -> float:
    """A number in [0, 1) fixed by the key and the seed alone (the same in every process)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def hash_split(key: str, seed: int = 0, ratios=(0.7, 0.1, 0.2)) -> str:
    """Assign a split group by a hash of its key (HASH_RULE), so adding studies never moves
    existing ones."""
    u = hash_unit(key, seed)
    if u < ratios[0]:
        return "train"
    if u < ratios[0] + ratios[1]:
        return "val"
    return "test"


@dataclass
class PublishedSplit:
    """A published split read from its own file (R2Gen's annotation.json for the forms that do
    not carry it), keyed by the canonical study key of the collection."""

    name: str  # the --split value, e.g. "r2gen"
    source: str  # the file it was read from, for messages and the manifest
    split_of: dict[str, str] = field(default_factory=dict)  # study key -> split
    label: dict[str, str] = field(default_factory=dict)  # study key -> the entry's own id
    conflicts: list[str] = field(default_factory=list)  # study keys listed under two splits (first kept)

    def add(self, key: str, split: str, label: str) -> None:
        if key in self.split_of:
            if self.split_of[key] != split:
                self.conflicts.append(key)
            return
        self.split_of[key] = split
        self.label[key] = label
