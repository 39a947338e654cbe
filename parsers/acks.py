"""Read the ERR segments back out of a stored ACK or RSP.

The journal keeps every response as sent. Reports over the journal (the
per-sender data-quality report, replay's comparison of old and new answers)
read its ERR segments with this module, with the same tokenizer that reads
inbound messages, so an escaped ``^`` in an ERR-8 text is one character and
not a component break.
"""

from __future__ import annotations

from dataclasses import dataclass

from parsers.decoding import decode_message
from parsers.errors import ParseError
from parsers.tokenizer import Segment, tokenize


@dataclass(frozen=True, slots=True)
class ReportedError:
    """One ERR segment of a response, as plain values."""

    #: ERR-4: E, W or I (HL7 table 0516)
    severity: str
    #: ERR-3.1: HL7 table 0357 (``0`` accepted, ``101`` required field missing…)
    hl7_code: str
    #: ERR-5.1: HL7 table 0533 application error code, ``""`` when absent
    app_code: str
    #: ERR-2 as ``SEG-field`` (``RXA-15``), ``SEG`` or ``""``
    location: str
    #: ERR-8, the text for a person
    text: str


def _location(seg: Segment) -> str:
    name = seg.value(2, comp=1).strip()
    field_no = seg.value(2, comp=3).strip()
    if name and field_no:
        return f"{name}-{field_no}"
    return name


def read_errors(response: bytes) -> tuple[ReportedError, ...]:
    """The ERR segments of a response, in order; ``()`` for none or unreadable bytes."""
    if not response:
        return ()
    text = decode_message(response).text
    try:
        message = tokenize(text)
    except ParseError:
        return ()
    return tuple(
        ReportedError(
            severity=seg.value(4).strip().upper(),
            hl7_code=seg.value(3, comp=1).strip(),
            app_code=seg.value(5, comp=1).strip(),
            location=_location(seg),
            text=seg.value(8),
        )
        for seg in message.all("ERR")
    )
