"""`xrayqwen2vl label`: CheXpert observations of reports with our rule-based labeler."""

from __future__ import annotations

import csv
import io


def run_label(args) -> int:
    from ..eval.chexpert_labeler import OBSERVATIONS, label_report
    from ..eval.inputs import read_reports
    from ..fileio import atomic_write_text, refuse_output_over_inputs, spreadsheet_safe

    refuse_output_over_inputs({"--out": args.out}, {"REPORTS": args.reports})
    reports = read_reports(args.reports)
    buf = io.StringIO()
    # CRLF rows (RFC 4180): the writer then quotes a cell holding a bare CR too, which with "\n"
    # rows it leaves unquoted and readers take for the end of the row.
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(["id", *OBSERVATIONS])
    for rid, text in reports:
        labels = label_report(text, args.lang)
        writer.writerow(
            [spreadsheet_safe(rid), *("" if labels[o] is None else labels[o] for o in OBSERVATIONS)]
        )
    atomic_write_text(args.out, buf.getvalue())
    print(f"labelled {len(reports)} reports -> {args.out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "label",
        help="label reports with the 14 CheXpert observations (rule-based, English or Chinese)",
        description=(
            'Read REPORTS.jsonl (one {"id": ..., "text": ...} per line) and write a CSV with columns id and the '
            "14 CheXpert observations: 1 positive, 0 negative, -1 uncertain, empty not mentioned. An id that a "
            "spreadsheet would run as a formula (starting with =, +, -, @, tab or CR) is written with a leading '. "
            "Rules: doc/labeler.md."
        ),
    )
    p.add_argument("reports", help="REPORTS.jsonl")
    p.add_argument("--out", required=True, help="output CSV")
    p.add_argument("--lang", default="en", choices=["en", "zh"], help="report language (default en)")
    p.set_defaults(func=run_label)
