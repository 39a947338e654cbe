"""Output escaping: nothing a sender stored can frame, split or forge a response.

The encoder (parsers.builder) escapes every leaf of every segment: the
delimiters, the escape character and every control character as ``\\Xhh\\``.
These tests feed it arbitrary stored text and read the result back with our
tokenizer and with python-hl7, the test oracle.
"""

from __future__ import annotations

import re
from dataclasses import replace

import hl7
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers import (
    STANDARD_ENCODING,
    Acknowledgement,
    Encoding,
    Issue,
    Location,
    ParseError,
    ResponseHeader,
    read_header,
    tokenize,
)
from parsers.builder import OutSegment, Reps, encode_segment, read_field
from parsers.query import QueryResponse

OURS = ResponseHeader("CAIRN", "CAIRN", "R1", "20240101120000+0000")
QUERY = "MSH|^~\\&|EHR|CLINIC|CAIRN|CAIRN|20240101||QBP^Q11^QBP_Q11|Q1|P|2.5.1"
#: Any control character a response must never carry raw (CR aside, which
#: only ends segments).
_RAW_CONTROL = re.compile("[\x00-\x0c\x0e-\x1f\x7f-\x9f]")

#: Arbitrary stored text: any code point a database can hold (no surrogates).
_stored = st.text(
    alphabet=st.one_of(
        st.sampled_from("|^~\\&#$*%@!\x00\x0b\x1c\r\n\t\x7f\x85\x9f\u2028 "),
        st.characters(exclude_categories=("Cs",)),
    ),
    max_size=24,
)
_delims = st.sampled_from(["|^~\\&", "#$*%@", "!@#$%", "|^~\\&"])


def _rsp(values: list[str]) -> QueryResponse:
    family, given_, street, lot, mvx, tag = values
    body = (
        OutSegment(
            "PID",
            (
                "1",
                "",
                Reps(((lot, "", "", (street, family), "MR"), ("7", "", "", "SR"))),
                "",
                (family, given_, "", "", "", "", "L"),
                "",
                "20200101",
                "F",
                "",
                "",
                (street, "", given_, "CA"),
            ),
        ),
        OutSegment("RXA", ("0", "1", "20240101", "", ("08", lot, "CVX"))),
        OutSegment(
            "RXA",
            ("0", "1", "", "", "", *[""] * 9, Reps((lot, mvx)), "", (mvx, "", "MVX")),
        ),
        OutSegment("ZZZ", ("END",)),
    )
    return QueryResponse(
        "AA", "OK", "Z32", (), tag, "Z34^History^CDCPHINVS", None, body
    )


@settings(max_examples=300, deadline=None)
@given(
    delims=_delims,
    values=st.lists(_stored, min_size=6, max_size=6),
    control_id=_stored,
)
def test_encoder_property_any_stored_text_round_trips_and_cannot_frame(
    delims: str, values: list[str], control_id: str
) -> None:
    """Arbitrary stored text gives exactly the intended segments and fields, no frame byte, and reads back unchanged through our tokenizer and python-hl7."""
    enc = Encoding(*delims)
    header = replace(read_header(tokenize(QUERY).msh), control_id=control_id)
    payload = _rsp(values).encode(OURS, header, enc)
    assert b"\x0b" not in payload
    assert b"\x1c" not in payload
    text = payload.decode("utf-8")
    assert text.endswith("\r")
    assert _RAW_CONTROL.search(text) is None
    lines = text[:-1].split("\r")
    fs = enc.field
    assert [line.split(fs)[0] for line in lines] == [
        "MSH",
        "MSA",
        "QAK",
        "PID",
        "RXA",
        "RXA",
        "ZZZ",
    ]
    assert len(lines[3].split(fs)) == 12
    assert lines[6] == f"ZZZ{fs}END"
    family, given_, street, lot, mvx, tag = values

    ours = tokenize(text)
    pid = ours.first("PID")
    assert pid is not None
    assert pid.value(5, 0, 1) == family
    assert pid.value(5, 0, 2) == given_
    assert pid.value(3, 0, 1) == lot
    assert pid.value(3, 0, 4, 1) == street
    assert pid.value(3, 0, 4, 2) == family
    assert pid.value(3, 1, 1) == "7"
    assert pid.value(11, 0, 1) == street
    assert ours.all("RXA")[1].value(15, 1) == mvx
    assert ours.all("RXA")[1].value(17) == mvx
    assert ours.first("MSA").value(2) == control_id  # type: ignore[union-attr]
    assert ours.first("QAK").value(1) == tag  # type: ignore[union-attr]

    oracle = hl7.parse(text)
    assert oracle["PID.F5.R1.C1"] == family
    assert oracle["PID.F5.R1.C2"] == given_
    assert oracle["PID.F3.R1.C1"] == lot
    assert oracle["PID.F3.R1.C4.S1"] == street
    assert oracle["PID.F11.R1.C3"] == given_
    assert oracle["RXA.F5.R1.C2"] == lot
    assert oracle["MSA.F2.R1.C1"] == control_id
    assert oracle["QAK.F1.R1.C1"] == tag
    assert oracle["RXA2.F17.R1.C1"] == mvx
    assert oracle["RXA2.F15.R2.C1"] == mvx


def test_rsp_qpd_echo_cannot_inject_segments_or_frame_bytes() -> None:
    """A QPD carrying raw VT, FS, CR-like escapes and C1 bytes is echoed re-escaped, one segment."""
    header = read_header(tokenize(QUERY).msh)
    qpd = "QPD|Z34^Request^CDCPHINVS|T\x0b1|M\x1c1^^^A^MR|Doe\\X0D\\MSH|x\x85\x00y"
    rsp = QueryResponse("AA", "NF", "Z33", (), "T\x0b1", "Z34^Request^CDCPHINVS", qpd)
    payload = rsp.encode(OURS, header, STANDARD_ENCODING)
    lines = payload.decode().split("\r")
    assert [line[:3] for line in lines[:-1]] == ["MSH", "MSA", "QAK", "QPD"]
    assert lines[3] == (
        "QPD|Z34^Request^CDCPHINVS|T\\X0B\\1|M\\X1C\\1^^^A^MR|Doe\\X0D\\MSH"
        "|x\\X85\\\\X00\\y"
    )
    assert lines[2] == "QAK|T\\X0B\\1|NF|Z34^Request^CDCPHINVS"


def test_ack_escapes_control_characters_in_every_field() -> None:
    """MSA-2 (the sender's MSH-10) and ERR-8 carry control characters only as \\Xhh\\ escapes."""
    header = replace(read_header(tokenize(QUERY).msh), control_id="C\x0b\x1c\r1")
    issue = Issue("E", "102", Location("PID", 1, 5), "4", "bad\x00\x9f text")
    payload = Acknowledgement("AE", (issue,)).encode(OURS, header, STANDARD_ENCODING)
    assert payload.count(b"\r") == 3
    msa, err = payload.decode().split("\r")[1:3]
    assert msa == "MSA|AE|C\\X0B\\\\X1C\\\\X0D\\1"
    assert err.endswith("|bad\\X00\\\\X9F\\ text")


def test_encoder_answers_control_character_delimiters_in_standard_ones() -> None:
    """Delimiters that are not printable punctuation are never used in a response."""
    enc = Encoding("\x0b", "^", "~", "\\", "&")
    assert enc.for_response() == STANDARD_ENCODING
    assert Encoding("#", "$", "*", "%", "@").for_response().field == "#"


def test_tokenizer_rejects_control_character_delimiters() -> None:
    """An MSH-1 that is a control character is refused with MSH-2 named."""
    with pytest.raises(ParseError) as err:
        tokenize("MSH\x1f^~\\&\x1fEHR")
    assert err.value.location == "MSH-2"


def test_builder_refuses_a_segment_id_that_is_not_one() -> None:
    """An OutSegment id must be three of A-Z/0-9: no way to smuggle text in as an id."""
    with pytest.raises(ValueError, match="segment id"):
        OutSegment("PID|1\rMSH")


def test_read_field_then_encode_field_round_trips_structure() -> None:
    """Reading raw field text and encoding it again gives the same text back."""
    raw = "a\\F\\b^c&d~e^^f"
    assert (
        encode_segment(
            STANDARD_ENCODING, OutSegment("ZZZ", (read_field(STANDARD_ENCODING, raw),))
        )
        == f"ZZZ|{raw}"
    )
