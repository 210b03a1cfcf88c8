"""Report-level splits. Every image of a report goes where the report goes."""

from __future__ import annotations

import hashlib

SPLITS = ("train", "val", "test")


def parse_ratios(text: str) -> tuple[float, float, float]:
    try:
        parts = [float(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(f"--ratios {text!r}: expected three numbers like 0.7,0.1,0.2") from None
    if len(parts) != 3 or any(p < 0 for p in parts) or abs(sum(parts) - 1.0) > 1e-6:
        raise ValueError(f"--ratios {text!r}: expected three non-negative numbers summing to 1")
    return parts[0], parts[1], parts[2]


def hash_unit(report_id: str, seed: int) -> float:
    """A number in [0, 1) fixed by the report id and the seed alone."""
    digest = hashlib.sha256(f"{seed}:{report_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def hash_split(report_id: str, seed: int = 0, ratios=(0.7, 0.1, 0.2)) -> str:
    """Assign a report by a hash of its id, so adding reports never moves existing ones."""
    u = hash_unit(report_id, seed)
    if u < ratios[0]:
        return "train"
    if u < ratios[0] + ratios[1]:
        return "val"
    return "test"
