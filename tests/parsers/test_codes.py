"""The named HL7 and CDC codes (parsers.codes) and the Issue builders."""

from __future__ import annotations

from parsers import (
    GIVEN,
    NOT_A_VACCINE,
    AppError,
    CompletionStatus,
    Cvx,
    Hl7Error,
    Issue,
    Location,
    Severity,
    encode_err,
    error,
    finding,
    warning,
)
from parsers.response import summarize
from parsers.tokenizer import STANDARD_ENCODING


def test_codes_table_0357_is_the_reference_list() -> None:
    """Hl7Error holds exactly table 0357's codes (REFERENCE §9.1), each with its text."""
    assert {e.value for e in Hl7Error} == {
        "0",
        "100",
        "101",
        "102",
        "103",
        *(str(n) for n in range(200, 208)),
    }
    assert all(e.text for e in Hl7Error)


def test_codes_table_0533_is_the_reference_list() -> None:
    """AppError holds CDC table 0533's codes 1 to 8, each with its text."""
    assert [e.value for e in AppError] == [str(n) for n in range(1, 9)]
    assert AppError.REQUIRED_DATA_MISSING.text == "Required data missing"


def test_codes_members_are_the_codes_on_the_wire() -> None:
    """A warning built from members encodes ERR-3, ERR-4 and ERR-5 as the plain codes."""
    item = warning(
        Hl7Error.TABLE_VALUE_NOT_FOUND,
        at=Location("RXA", 2, 17),
        app=AppError.TABLE_VALUE_NOT_FOUND,
        text="RXA-17 (manufacturer) is not a known MVX code",
    )
    assert encode_err(STANDARD_ENCODING, item) == (
        "ERR||RXA^2^17|103^Table value not found^HL70357|W|"
        "5^Table value not found^HL70533|||RXA-17 (manufacturer) is not a known MVX code"
    )


def test_codes_issue_without_app_code_leaves_err5_empty() -> None:
    """An error with no 0533 code has an empty ERR-5, not ``None``."""
    item = error(
        Hl7Error.APPLICATION_INTERNAL_ERROR, at=None, text="internal error; resend"
    )
    assert encode_err(STANDARD_ENCODING, item) == (
        "ERR|||207^Application internal error^HL70357|E||||internal error; resend"
    )


def test_codes_code_outside_the_table_has_no_text() -> None:
    """A code the table lacks (``999``, seen in NIST samples) is written with an empty text."""
    item = Issue(Severity.ERROR, "999", None, "", "x")  # type: ignore[arg-type]
    assert encode_err(STANDARD_ENCODING, item).startswith("ERR|||999^^HL70357|E|")


def test_codes_finding_keeps_every_part() -> None:
    """finding() puts each named part where Issue keeps it."""
    where = Location("PID", 1, 5, repetition=1, component=2)
    item = finding(
        Severity.INFORMATION,
        Hl7Error.MESSAGE_ACCEPTED,
        at=where,
        app=AppError.DATA_IGNORED,
        text="t",
    )
    assert item == Issue(
        Severity.INFORMATION,
        Hl7Error.MESSAGE_ACCEPTED,
        where,
        AppError.DATA_IGNORED,
        "t",
    )


def test_codes_summarize_counts_per_severity_letter() -> None:
    """Log summaries keep their E/W/I keys."""
    items = [
        error(Hl7Error.DATA_TYPE_ERROR, at=None, text="a"),
        warning(Hl7Error.DATA_TYPE_ERROR, at=None, text="b"),
        warning(Hl7Error.DATA_TYPE_ERROR, at=None, text="c"),
    ]
    assert summarize(items) == {"E": 1, "W": 2, "I": 0}


def test_codes_given_is_complete_or_partial() -> None:
    """RXA-20 CP and PA are doses given; RE and NA are not."""
    assert {"CP", "PA"} == GIVEN
    assert CompletionStatus.REFUSED not in GIVEN
    assert "NA" not in GIVEN


def test_codes_not_a_vaccine_is_998_and_999() -> None:
    """CVX 998 (no vaccine) and 999 (unknown) are never doses to evaluate."""
    assert {"998", "999"} == NOT_A_VACCINE
    assert Cvx.NO_VACCINE == "998"
