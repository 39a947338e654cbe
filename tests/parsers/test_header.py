"""The one MSH checker (parsers/header.py): envelope, conventions, profile, journal key."""

from __future__ import annotations

import pytest

from parsers import Issue, Message, MessageHeader, read_header, tokenize
from parsers.header import (
    QBP_HEADER,
    VXU_HEADER,
    HeaderCheck,
    check_header,
    check_key,
)

RULES = {"VXU": VXU_HEADER, "QBP": QBP_HEADER}
IDS = frozenset({"P", "T", "D"})
LIMITS = {"control_id": 20, "sender": 10}


def _msh(
    *,
    sender: str = "CLINIC1",
    timestamp: str = "20240201120000-0800",
    message_type: str = "VXU^V04^VXU_V04",
    control_id: str = "C1",
    processing_id: str = "P",
    version: str = "2.5.1",
    msh15: str = "ER",
    msh16: str = "AL",
    profile: str = "Z22^CDCPHINVS",
    delimiters: str = "|^~\\&",
) -> str:
    sep = delimiters[0]
    fields = [
        "MSH",
        delimiters[1:],
        "EHR",
        sender,
        "CAIRN",
        "CAIRN",
        timestamp,
        "",
        message_type.replace("^", delimiters[1]),
        control_id,
        processing_id,
        version,
        "",
        "",
        msh15,
        msh16,
        "",
        "",
        "",
        "",
        profile.replace("^", delimiters[1]),
    ]
    return sep.join(fields)


def _read(*segments: str) -> tuple[Message, MessageHeader]:
    message = tokenize("\r".join(segments) + "\r")
    return message, read_header(message.msh)


def _check(*segments: str, accepted: bool = True, charset: str = "") -> HeaderCheck:
    message, header = _read(*segments)
    return check_header(
        message,
        header,
        RULES,
        processing_ids=IDS,
        sender_accepted=accepted,
        charset_problem=charset,
    )


def _where(issues: tuple[Issue, ...]) -> list[tuple[str, str]]:
    return [(str(i.location), i.severity) for i in issues]


def _qbp(query: str = "Z34", profile: str = "Z34^CDCPHINVS") -> tuple[str, str]:
    return (
        _msh(message_type="QBP^Q11^QBP_Q11", profile=profile),
        f"QPD|{query}^Request^CDCPHINVS|TAG1|MRN1^^^EHR^MR",
    )


def test_check_header_clean_vxu_has_no_findings() -> None:
    """A VXU with a standard, complete MSH gets no finding at all."""
    assert _check(_msh()).issues == ()


def test_check_header_unsupported_type_is_the_only_envelope_error() -> None:
    """An unknown MSH-9 is rejected at MSH-9 alone, naming the types we take."""
    check = _check(_msh(message_type="ADT^A01^ADT_A01", version="2.3"))
    assert _where(check.rejections) == [("MSH-9", "E")]
    assert "VXU^V04 and QBP^Q11" in check.rejections[0].text
    assert check.leading == check.trailing == ()


def test_check_header_rejects_event_processing_id_and_version_in_field_order() -> None:
    """A wrong event, processing id and version are each named, in MSH order."""
    check = _check(_msh(message_type="VXU^V99", processing_id="X", version="2.3"))
    assert _where(check.rejections) == [
        ("MSH-9", "E"),
        ("MSH-11", "E"),
        ("MSH-12", "E"),
    ]


def test_check_header_refused_sender_is_named_at_msh4() -> None:
    """A sender the policy refuses is an MSH-4 error: unregistered, or anonymous."""
    unregistered = _check(_msh(sender="ELSEWHERE"), accepted=False)
    anonymous = _check(_msh(sender="").replace("|EHR|", "||", 1), accepted=False)
    assert "not registered" in unregistered.rejections[0].text
    assert "empty" in anonymous.rejections[0].text
    assert _where(anonymous.rejections) == [("MSH-4", "E")]


def test_check_header_vxu_conventions_are_warnings_in_field_order() -> None:
    """Delimiters, MSH-7, MSH-9.3, MSH-21, MSH-15 and MSH-16 are warned about, in order."""
    check = _check(
        _msh(
            delimiters="#^~\\&",
            timestamp="2024-02-01",
            message_type="VXU^V04^ADT_A01",
            profile="Z99^CDCPHINVS",
            msh15="XX",
            msh16="YY",
        )
    )
    assert check.rejections == ()
    assert _where(check.leading) == [
        ("MSH-2", "W"),
        ("MSH-7", "W"),
        ("MSH-9.3", "W"),
        ("MSH-21", "W"),
        ("MSH-15", "W"),
        ("MSH-16", "W"),
    ]


def test_check_header_missing_profile_says_what_each_type_expects() -> None:
    """An empty MSH-21 names Z22 for a VXU and Z34 or Z44 for a query."""
    vxu = _check(_msh(profile=""))
    query = _check(*_qbp(profile=""))
    assert vxu.leading[0].text.endswith("expected Z22^CDCPHINVS")
    assert query.leading[0].text.endswith("expected Z34 or Z44")


def test_check_header_query_profile_must_be_its_query_name() -> None:
    """A Z44 query that names profile Z34 is warned that MSH-21 lacks Z44."""
    check = _check(*_qbp(query="Z44", profile="Z34^CDCPHINVS"))
    assert [i.text for i in check.leading] == [
        "MSH-21 does not name profile Z44^CDCPHINVS"
    ]


def test_check_header_unknown_query_name_expects_no_profile() -> None:
    """A query whose QPD-1 we do not answer is not also warned about MSH-21."""
    assert _check(*_qbp(query="Z99", profile="Z34^CDCPHINVS")).issues == ()


def test_check_header_query_skips_the_vxu_conventions() -> None:
    """A query is not checked for MSH-7 or MSH-16, as before issue 16."""
    msh = _msh(
        message_type="QBP^Q11^QBP_Q11",
        timestamp="",
        msh16="YY",
        profile="Z34^CDCPHINVS",
    )
    assert _check(msh, "QPD|Z34^Request^CDCPHINVS|TAG1").issues == ()


def test_check_header_charset_and_empty_msh4_trail() -> None:
    """An MSH-18 problem and an empty MSH-4 come after the handler's findings."""
    check = _check(_msh(sender=""), charset="unknown character set 'X'")
    assert _where(check.trailing) == [("MSH-18", "W"), ("MSH-4", "W")]
    assert check.trailing[1].text.endswith("MSH-3 identifies the sender")


def test_check_header_truncates_what_it_quotes_from_an_attacker() -> None:
    """A huge MSH-9 is quoted to at most eight characters in the ERR text."""
    check = _check(_msh(message_type="X" * 5000 + "^V04"))
    assert len(check.rejections[0].text) < 100


def test_check_key_missing_control_id_is_required() -> None:
    """An empty MSH-10 cannot be journaled: a required-field error at MSH-10."""
    _message, header = _read(_msh(control_id=""))
    issue = check_key(header, LIMITS)
    assert issue is not None
    assert (str(issue.location), issue.hl7_code) == ("MSH-10", "101")


@pytest.mark.parametrize(
    ("control_id", "sender", "where", "reason"),
    [
        ("C" * 21, "CLINIC1", "MSH-10", "21 characters long"),
        ("C\x01", "CLINIC1", "MSH-10", "control character"),
        ("C1", "S" * 11, "MSH-4", "11 characters long"),
    ],
)
def test_check_key_refuses_what_the_journal_cannot_key(
    control_id: str, sender: str, where: str, reason: str
) -> None:
    """Over-long or control-character keys are refused, naming field and reason."""
    _message, header = _read(_msh(control_id=control_id, sender=sender))
    issue = check_key(header, LIMITS)
    assert issue is not None
    assert str(issue.location) == where
    assert reason in issue.text


def test_check_key_names_msh3_when_msh4_is_empty() -> None:
    """With MSH-4 empty the sender is MSH-3, and its length is charged to MSH-3."""
    message = _msh(sender="").replace("|EHR|", "|" + "E" * 11 + "|", 1)
    _message, header = _read(message)
    issue = check_key(header, LIMITS)
    assert issue is not None
    assert issue.text.startswith("MSH-3 (sender)")


def test_check_key_accepts_a_usable_key() -> None:
    """A short printable MSH-10 and sender can be journaled."""
    _message, header = _read(_msh())
    assert check_key(header, LIMITS) is None
