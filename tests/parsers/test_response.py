"""ACK and RSP encoding: structure (checked with hl7apy), escaping and ERR fields."""

from __future__ import annotations

import hl7
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from parsers import (
    STANDARD_ENCODING,
    Acknowledgement,
    Encoding,
    Issue,
    Location,
    ResponseHeader,
    read_header,
    tokenize,
)
from parsers.builder import OutSegment, Reps, encode_segment
from parsers.query import QueryResponse

OURS = ResponseHeader("CAIRN", "CAIRN", "R1", "20240101120000+0000")
QUERY = "MSH|^~\\&|EHR|CLINIC|CAIRN|CAIRN|20240101||VXU^V04^VXU_V04|X1|T|2.5.1|||ER|AL|||||Z22^CDCPHINVS"


def _ack(*issues: Issue, code: str = "AE") -> str:
    header = read_header(tokenize(QUERY).msh)
    return (
        Acknowledgement(code, issues).encode(OURS, header, STANDARD_ENCODING).decode()
    )  # type: ignore[arg-type]


def test_ack_matches_the_251_ack_structure() -> None:
    """The emitted ACK parses and validates strictly as an HL7 2.5.1 ACK (hl7apy)."""
    text = _ack(
        Issue(
            "E",
            "101",
            Location("PID", 1, 3),
            "7",
            "PID-3 (patient identifier list) is missing",
        )
    )
    message = parse_message(
        text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True
    )
    assert message.validate()


def test_ack_addresses_the_sender_and_echoes_control_id() -> None:
    """MSH-5/6 name the sender, MSH-11 echoes its processing id, MSA-2 its MSH-10, MSH-21 is Z23."""
    msh, msa = (seg.split("|") for seg in _ack(code="AA").split("\r")[:2])
    assert msh[4:6] == ["EHR", "CLINIC"]
    assert msh[8] == "ACK^V04^ACK"
    assert msh[10] == "T"
    assert msh[14:16] == ["NE", "NE"]
    assert msh[20] == "Z23^CDCPHINVS"
    assert msa == ["MSA", "AA", "X1"]


def test_ack_err_fields_carry_location_codes_severity_and_text() -> None:
    """ERR-2 location, ERR-3 (0357), ERR-4, ERR-5 (0533) and ERR-8 are all filled."""
    err = (
        _ack(
            Issue(
                "W", "103", Location("RXA", 2, 17), "5", "RXA-17 not a known MVX code"
            )
        )
        .split("\r")[2]
        .split("|")
    )
    assert err[2] == "RXA^2^17"
    assert err[3] == "103^Table value not found^HL70357"
    assert err[4] == "W"
    assert err[5] == "5^Table value not found^HL70533"
    assert err[8] == "RXA-17 not a known MVX code"


def test_ack_escapes_delimiters_in_text() -> None:
    """Delimiters inside ERR-8 are escaped, and python-hl7 reads the text back."""
    text = _ack(Issue("E", "102", None, "4", "bad ^ & \\ | ~ value"))
    parsed = hl7.parse(text)
    assert parsed.unescape(str(parsed.segment("ERR")[8])) == "bad ^ & \\ | ~ value"


def test_ack_uses_the_senders_delimiters() -> None:
    """An ACK to a message with unusual delimiters is written in those delimiters."""
    enc = Encoding("#", "$", "*", "%", "@")
    header = read_header(tokenize("MSH#$*%@#EHR#CLINIC#####VXU$V04#X9#P#2.5.1").msh)
    text = Acknowledgement("AA").encode(OURS, header, enc).decode()
    assert text.startswith("MSH#$*%@#CAIRN#CAIRN#EHR#CLINIC#")
    assert "MSA#AA#X9" in text


def test_builder_escapes_every_leaf() -> None:
    """Names with ^, & and \\ survive encoding as escapes."""
    seg = OutSegment(
        "PID",
        (
            "1",
            "",
            Reps((("12^3", "", "", "A&B", "MR"),)),
            "",
            ("O\\Brien^Jr", "Ann & Co"),
        ),
    )
    assert (
        encode_segment(STANDARD_ENCODING, seg)
        == "PID|1||12\\S\\3^^^A\\T\\B^MR||O\\E\\Brien\\S\\Jr^Ann \\T\\ Co"
    )


def test_rsp_echoes_query_tag_name_and_qpd() -> None:
    """RSP carries MSA-2, QAK-1 query tag, QAK-3 query name and the QPD unchanged."""
    header = read_header(
        tokenize("MSH|^~\\&|EHR|CLINIC|||20240101||QBP^Q11^QBP_Q11|Q1|P|2.5.1").msh
    )
    qpd = "QPD|Z34^Request Immunization History^CDCPHINVS|TAG1|123^^^A^MR"
    rsp = QueryResponse(
        "AA", "NF", "Z33", (), "TAG1", "Z34^Request Immunization History^CDCPHINVS", qpd
    )
    lines = rsp.encode(OURS, header, STANDARD_ENCODING).decode().split("\r")
    assert lines[0].split("|")[8] == "RSP^K11^RSP_K11"
    assert lines[0].split("|")[20] == "Z33^CDCPHINVS"
    assert lines[1] == "MSA|AA|Q1"
    assert lines[2] == "QAK|TAG1|NF|Z34^Request Immunization History^CDCPHINVS"
    assert lines[3] == qpd


def test_a_short_msh2_is_answered_in_standard_delimiters() -> None:
    """A sender that declared two encoding characters gets an ACK most receivers
    (python-hl7 here) can parse: standard delimiters, its values re-escaped."""
    short = "MSH|\\&|EHR|CLINIC&A|CAIRN|CAIRN|20240101||VXU\\V04\\VXU_V04|X^1|T|2.5.1"
    message = tokenize(short)
    assert not message.encoding.complete
    header = read_header(message.msh)
    text = (
        Acknowledgement("AR", ())
        .encode(OURS, header, message.encoding)  # type: ignore[arg-type]
        .decode()
    )
    assert text.startswith("MSH|^~\\&|CAIRN|CAIRN|EHR|")
    parsed = hl7.parse(text)
    assert str(parsed.segment("MSA")[2]) == "X\\S\\1"
    assert str(parsed.segment("MSH")[9]) == "ACK^V04^ACK"


def test_rsp_reencodes_the_qpd_of_a_query_in_other_delimiters() -> None:
    """A QPD written in #$*%@ is echoed in |^~\\&, a literal ^ in it escaped."""
    theirs = Encoding("#", "$", "*", "%", "@")
    header = read_header(
        tokenize("MSH#$*%@#EHR#CLINIC#####QBP$Q11$QBP_Q11#Q1#P#2.5.1").msh
    )
    rsp = QueryResponse(
        "AA", "NF", "Z33", (), "T", "Z34$Request*x", "QPD#Z34$Request*x#T^1@a"
    )
    # a declared but unusual set: answered in the sender's own delimiters
    lines = rsp.encode(OURS, header, theirs).decode().split("\r")
    assert lines[3] == "QPD#Z34$Request*x#T^1@a"
    short = Encoding("#", "$", "*", "%", "\x01")
    lines = rsp.encode(OURS, header, short).decode().split("\r")
    assert lines[2] == "QAK|T|NF|Z34^Request~x"
    assert lines[3] == "QPD|Z34^Request~x|T\\S\\1@a"
