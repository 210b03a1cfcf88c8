"""The split rules of data/splits.py on their own: the documented hash rule (HASH_RULE) worked out
here by hand, its boundaries, the --ratios parser's edges, and a published split table."""

from __future__ import annotations

import hashlib

import pytest

from xrayqwen2vl.data import splits
from xrayqwen2vl.data.splits import PublishedSplit, hash_split, hash_unit, parse_ratios


def test_hash_unit_is_the_documented_rule():
    for key, seed in (("CXR1", 0), ("CXR1", 7), ("p10/s50414267", 3)):
        digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
        assert hash_unit(key, seed) == int.from_bytes(digest[:8], "big") / 2**64
    assert hash_unit("CXR1", 0) != hash_unit("CXR1", 1)


@pytest.mark.parametrize(
    "u, expected",
    [(0.0, "train"), (0.6999, "train"), (0.7, "val"), (0.7999, "val"), (0.7 + 0.1, "test"), (0.9999, "test")],
)
def test_hash_split_cuts_are_half_open(monkeypatch, u, expected):
    """train if u < train share, val if u < train + val share, else test: a cut belongs above
    (0.7 + 0.1 is the second cut exactly as the rule adds it, 0.7999999999999999)."""
    monkeypatch.setattr(splits, "hash_unit", lambda key, seed: u)
    assert hash_split("any", 0, (0.7, 0.1, 0.2)) == expected
    monkeypatch.setattr(splits, "hash_unit", lambda key, seed: 0.75)
    assert hash_split("any", 0, (0.5, 0.25, 0.25)) == "test"  # u on the second cut, exact in binary


def test_zero_shares_leave_a_split_empty():
    keys = [f"CXR{n}" for n in range(300)]
    assert {hash_split(k, 0, (0.0, 0.0, 1.0)) for k in keys} == {"test"}
    assert {hash_split(k, 0, (1.0, 0.0, 0.0)) for k in keys} == {"train"}
    assert {hash_split(k, 0, (0.5, 0.0, 0.5)) for k in keys} == {"train", "test"}


def test_parse_ratios_accepts_zero_shares_and_rounding():
    assert parse_ratios("0,0.5,0.5") == (0.0, 0.5, 0.5)
    assert parse_ratios("1,0,0") == (1.0, 0.0, 0.0)
    assert parse_ratios("0.7, 0.1, 0.2") == (0.7, 0.1, 0.2)
    assert parse_ratios("0.6999999,0.1,0.2") == (0.6999999, 0.1, 0.2)  # within 1e-6 of 1
    for bad, reason in (
        ("0.7,0.1,0.21", "summing to 1"),
        ("0.5,0.5", "summing to 1"),
        ("0.5,0.25,0.25,0", "summing to 1"),
        ("-0.1,0.6,0.5", "non-negative"),
        ("x,0.5,0.5", "expected three numbers"),
    ):
        with pytest.raises(ValueError, match=reason) as e:
            parse_ratios(bad)
        assert str(e.value).startswith(f"--ratios {bad!r}: ")


def test_published_split_keeps_the_first_listing_and_records_conflicts():
    table = PublishedSplit("r2gen", "annotation.json")
    table.add("CXR1", "train", "CXR1_1_IM-0001")
    table.add("CXR2", "test", "CXR2_1_IM-0002")
    table.add("CXR1", "train", "CXR1_2_IM-0001")  # the same split again: no conflict
    table.add("CXR2", "val", "CXR2_2_IM-0002")  # another split: the first one stays
    assert table.split_of == {"CXR1": "train", "CXR2": "test"}
    assert table.label == {"CXR1": "CXR1_1_IM-0001", "CXR2": "CXR2_1_IM-0002"}
    assert table.conflicts == ["CXR2"]
