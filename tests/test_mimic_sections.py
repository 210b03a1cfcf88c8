"""The MIMIC-CXR report section parser on report texts in the public files' form."""

from __future__ import annotations

from xrayqwen2vl.data.formats.mimic_sections import parse_report, split_sections

# The public files' form: lines indented by a space, blank lines holding one space, headers
# followed by a space (kept here as written, so the literal is built from lines).
STANDARD = "\n".join(
    [
        "                                 FINAL REPORT",
        " EXAMINATION:  CHEST (PA AND LAT)",
        " ",
        " INDICATION:  ___F with new onset ascites  // eval for infection",
        " ",
        " TECHNIQUE:  Chest PA and lateral",
        " ",
        " COMPARISON:  None.",
        " ",
        " FINDINGS: ",
        " ",
        " There is no focal consolidation, pleural effusion or pneumothorax.  Bilateral",
        " nodular opacities that most likely represent nipple shadows. The",
        " cardiomediastinal silhouette is normal.",
        " ",
        " IMPRESSION: ",
        " ",
        " No acute cardiopulmonary process.",
        "",
    ]
)


def test_standard_report_wrapped_lines_joined():
    r = parse_report(STANDARD)
    assert r.findings == (
        "There is no focal consolidation, pleural effusion or pneumothorax. Bilateral nodular "
        "opacities that most likely represent nipple shadows. The cardiomediastinal silhouette is normal."
    )
    assert r.impression == "No acute cardiopulmonary process."
    assert r.headers == ["examination", "indication", "technique", "comparison", "findings", "impression"]
    assert dict(r.sections)["indication"] == "___F with new onset ascites // eval for infection"
    assert r.final_report_line


def test_inline_headers_and_crlf():
    text = "FINAL REPORT\r\n FINDINGS:  Lungs are clear.  No\r\n effusion.\r\n IMPRESSION:  Normal.\r\n"
    r = parse_report(text)
    assert (r.findings, r.impression) == ("Lungs are clear. No effusion.", "Normal.")


def test_wet_read_before_final_report_is_dropped():
    text = (
        " WET READ: ___ ___ 4:35 PM\n  IMPRESSION: possible pneumonia.\n " + "_" * 78 + "\n"
        "                                 FINAL REPORT\n FINDINGS:  Clear lungs.\n \n IMPRESSION:  No pneumonia.\n"
    )
    r = parse_report(text)
    assert (r.findings, r.impression) == ("Clear lungs.", "No pneumonia.")
    assert "wet read" not in r.headers


def test_combined_and_conclusion_count_as_impression():
    combined = parse_report("FINAL REPORT\n FINDINGS AND IMPRESSION: \n \n Small left effusion.\n")
    assert (combined.findings, combined.impression) == ("", "Small left effusion.")
    slash = parse_report(" FINDINGS/IMPRESSION:  Normal chest.\n")
    assert (slash.findings, slash.impression) == ("", "Normal chest.")
    conclusion = parse_report(" FINDINGS:  Heart enlarged.\n CONCLUSION:  Cardiomegaly.\n")
    assert (conclusion.findings, conclusion.impression) == ("Heart enlarged.", "Cardiomegaly.")


def test_impression_only_and_no_sections():
    only = parse_report(" EXAMINATION:  CHEST (PORTABLE AP)\n IMPRESSION: \n \n Line in the SVC.\n")
    assert (only.findings, only.impression) == ("", "Line in the SVC.")
    none = parse_report(" INDICATION:  Cough.\n \n Frontal and lateral views. Lungs clear.\n")
    assert (none.findings, none.impression) == ("", "")
    assert none.headers == ["indication"]  # the free text stays in the last section


def test_notification_and_numbered_items_stay_out_of_the_impression():
    text = (
        " IMPRESSION: \n \n 1. Right lower lobe pneumonia.\n 2. Small right effusion.\n \n"
        " NOTIFICATION:  The findings were discussed with Dr. ___ at 10:20 AM.\n"
    )
    r = parse_report(text)
    assert r.impression == "1. Right lower lobe pneumonia. 2. Small right effusion."
    assert dict(r.sections)["notification"].endswith("10:20 AM.")


def test_not_headers_times_short_words_lowercase():
    text = (
        " FINDINGS:  Comparison to ___ at\n 10:30 the tube is unchanged.\n AP: single view.\n"
        " Lungs: clear.\n IMPRESSION:  Stable.\n"
    )
    sections, _ = split_sections(text)
    assert [name for name, _ in sections] == ["findings", "impression"]
    assert parse_report(text).findings.endswith("AP: single view. Lungs: clear.")


def test_views_header_holds_the_findings_of_older_reports():
    text = " PA AND LATERAL VIEWS OF THE CHEST:  The lungs are clear.\n IMPRESSION:  Normal.\n"
    r = parse_report(text)
    assert (r.findings, r.impression) == ("The lungs are clear.", "Normal.")
    explicit = parse_report(" CHEST, TWO VIEWS:  Exam.\n FINDINGS:  Clear.\n")
    assert explicit.findings == "Clear."  # an explicit FINDINGS wins


def test_last_non_empty_section_wins():
    text = " IMPRESSION:  Preliminary.\n FINDINGS:  Clear.\n IMPRESSION:  Final impression.\n IMPRESSION: \n"
    assert parse_report(text).impression == "Final impression."
