"""How a journaled message is shown to an operator: PHI masked, ERR codes read.

``cairn messages show`` prints a stored message and its answer. By default
what identifies a person is masked by *position*: each segment's fields
(and, where the rest of the field is a code an analyst needs, only some
components) are replaced by ``***`` whatever they hold, so that masking
does not depend on guessing what a name or a phone looks like. The
structure stays: every segment, field, repetition and component separator
is kept, as are codes, control ids, order ids, dates of administration and
the ERR segments of the answer, so an analyst can still see why a message
was refused.

Masked (HL7 2.5.1 positions; the CDC IG's VXU, QBP and RSP):

- PID-2, -3, -4, -18, -21 (identifier value; authority and type code kept),
  PID-5, -6, -9 (names; name type code kept), PID-7 (birth date), PID-11
  (street, city, postal code, county; state, country and address type
  kept), PID-12 (county), PID-13, -14 (phone numbers and e-mail; use and
  equipment codes kept), PID-19, -20 (SSN, driver's licence), PID-23
  (birth place), PID-29 (death date);
- NK1: everything but NK1-1 (set id), NK1-3 (relationship) and NK1-7
  (contact role);
- QPD-3 to QPD-6, QPD-8, QPD-9 (the queried identifier, name, mother's
  maiden name, birth date, address, phone);
- PV1-19 (visit number); OBX-5 when OBX-2 says it is free text (ST, TX,
  FT) or a name, address, phone or identifier (XPN, XAD, XTN, CX); NTE-3
  (comment);
- GT1, IN1, IN3: every field but the set id; IN2 and every segment this
  module does not know (Z-segments included): every field.

An explicit HL7 null (``""``) is kept: it holds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from parsers.errors import ParseError
from parsers.tokenizer import Encoding, Segment, tokenize

__all__ = ["MASK", "error_codes", "mask_message"]

#: What a masked value is shown as.
MASK = "***"

#: A field's masking: None masks every component; a set masks those (1-based).
_Spec = frozenset[int] | None

_ALL: _Spec = None
_CX = frozenset({1})  # identifier value (CX-1); authority, type kept
_XPN = frozenset(range(1, 7))  # family … degree; name type code (XPN-7) kept
_XAD = frozenset({1, 2, 3, 5, 8, 9})  # street, other, city, zip, other geo, county
_XTN = frozenset({1, 4, 5, 6, 7, 8, 9, 12})  # numbers, e-mail; use/equipment kept

#: Segments whose listed fields are masked (the others are kept).
_MASKED_FIELDS: Mapping[str, Mapping[int, _Spec]] = {
    "PID": {
        2: _CX,
        3: _CX,
        4: _CX,
        5: _XPN,
        6: _XPN,
        7: _ALL,
        9: _XPN,
        11: _XAD,
        12: _ALL,
        13: _XTN,
        14: _XTN,
        18: _CX,
        19: _ALL,
        20: _ALL,
        21: _CX,
        23: _ALL,
        29: _ALL,
    },
    "QPD": {3: _CX, 4: _XPN, 5: _XPN, 6: _ALL, 8: _XAD, 9: _XTN},
    "PV1": {19: _CX},
    "NTE": {3: _ALL},
}

#: Segments masked except for the listed fields.
_KEPT_FIELDS: Mapping[str, frozenset[int]] = {
    "NK1": frozenset({1, 3, 7}),
    "GT1": frozenset({1}),
    "IN1": frozenset({1}),
    "IN2": frozenset(),
    "IN3": frozenset({1}),
}

#: Segments shown as they are: envelope, order, dose, route, query control,
#: acknowledgement. (OBX is shown but for free-text values, below.)
_SHOWN = frozenset(
    {
        "MSH",
        "SFT",
        "MSA",
        "ERR",
        "QAK",
        "RCP",
        "PD1",
        "ORC",
        "TQ1",
        "TQ2",
        "RXA",
        "RXR",
        "OBX",
        "FHS",
        "FTS",
        "BHS",
        "BTS",
    }
)

#: OBX-2 value types whose OBX-5 is free text, which may name anyone, or a
#: person's name, address, phone or identifier.
_FREE_TEXT = frozenset({"ST", "TX", "FT", "XPN", "XAD", "XTN", "CX"})


def _mask_leaf(value: str, enc: Encoding) -> str:
    return enc.subcomponent.join(
        MASK if part and part != '""' else part
        for part in value.split(enc.subcomponent)
    )


def _mask_field(raw: str, spec: _Spec, enc: Encoding) -> str:
    reps = []
    for rep in raw.split(enc.repetition):
        parts = rep.split(enc.component)
        reps.append(
            enc.component.join(
                _mask_leaf(part, enc) if spec is None or n in spec else part
                for n, part in enumerate(parts, start=1)
            )
        )
    return enc.repetition.join(reps)


#: (masked, which components) for a field that is shown as sent.
_SHOWN_FIELD: tuple[bool, _Spec] = (False, None)


def _spec(segment: Segment, n: int) -> tuple[bool, _Spec]:
    """Whether field ``n`` of ``segment`` is masked, and which components."""
    seg_id = segment.id
    if seg_id in _MASKED_FIELDS:
        fields = _MASKED_FIELDS[seg_id]
        return (True, fields[n]) if n in fields else _SHOWN_FIELD
    if seg_id in _KEPT_FIELDS:
        return _SHOWN_FIELD if n in _KEPT_FIELDS[seg_id] else (True, _ALL)
    if seg_id == "OBX":
        free = segment.value(2).strip().upper() in _FREE_TEXT
        return (True, _ALL) if n == 5 and free else _SHOWN_FIELD
    if seg_id in _SHOWN:
        return _SHOWN_FIELD
    return (True, _ALL)


def mask_message(text: str) -> str | None:
    """The message with its PHI masked, segments joined by CR.

    Args:
        text: the decoded message (or response).

    Returns:
        The masked text, or None when it cannot be read as HL7 (then nothing
        of it can be shown safely).
    """
    try:
        message = tokenize(text)
    except ParseError:
        return None
    enc = message.encoding
    lines = []
    for segment in message.segments:
        fields = list(segment.fields)
        first = 3 if segment.index == 0 else 1
        for n in range(first, len(fields)):
            masked, spec = _spec(segment, n)
            if masked and fields[n]:
                fields[n] = _mask_field(fields[n], spec, enc)
        if segment.index == 0:
            del fields[1]  # MSH-1 is the separator itself (see Segment.raw)
        lines.append(enc.field.join(fields))
    return "\r".join(lines)


def error_codes(text: str) -> frozenset[str]:
    """The HL7 error codes (ERR-3.1, table 0357) a response carries.

    Args:
        text: the decoded response.

    Returns:
        The codes, empty when there is none or the text is not HL7.
    """
    try:
        message = tokenize(text)
    except ParseError:
        return frozenset()
    return frozenset(
        code for segment in message.all("ERR") if (code := segment.value(3).strip())
    )
