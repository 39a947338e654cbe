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
- PV1-19 (visit number); OBX-5 unless OBX-2 says it is a code, a number
  or a date (an empty, repeated or unknown OBX-2 is masked too); NTE-3
  (comment);
- GT1, IN1, IN3: every field but the set id; IN2 and every segment this
  module does not know (Z-segments included): every field;
- MSA, ERR and QAK in a sender's message (they are the registry's own texts
  only in its ACK and RSP), and any MSH but the first: every field;
- every field after one that ends with a segment id: a segment glued to
  the one before it (its terminator lost) that the tokenizer did not split.

An explicit HL7 null (``""``) is kept: it holds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from parsers.errors import ParseError
from parsers.tokenizer import MAX_FIELDS, Encoding, Segment, tokenize

__all__ = ["MASK", "mask_message"]

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

#: OBX-2 value types whose OBX-5 is a code, a number or a date: shown. Any
#: other OBX-5 is masked, an empty, repeated or unknown OBX-2 included: free
#: text (ST, TX, FT) may name anyone, and XPN, XAD, XTN, CX are a person's
#: name, address, phone or identifier.
_CODED = frozenset(
    {"CE", "CWE", "CNE", "ID", "IS", "NM", "SN", "DT", "DTM", "TS", "TM"}
)

#: Segments that carry the registry's own texts in its answers (ACK, RSP),
#: and are masked in a sender's message, where they hold whatever was sent.
_ANSWER_ONLY = frozenset({"MSA", "ERR", "QAK"})
_ANSWERS = frozenset({"ACK", "RSP"})


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


def _spec(segment: Segment, n: int, answer: bool) -> tuple[bool, _Spec]:
    """Whether field ``n`` of ``segment`` is masked, and which components.

    ``answer``: whether the message is one of the registry's answers.
    """
    seg_id = segment.id
    if seg_id == "MSH" and segment.index != 0:
        return (True, _ALL)  # only the first MSH is the envelope
    if seg_id in _ANSWER_ONLY and not answer:
        return (True, _ALL)
    if seg_id in _MASKED_FIELDS:
        fields = _MASKED_FIELDS[seg_id]
        return (True, fields[n]) if n in fields else _SHOWN_FIELD
    if seg_id in _KEPT_FIELDS:
        return _SHOWN_FIELD if n in _KEPT_FIELDS[seg_id] else (True, _ALL)
    if seg_id == "OBX":
        raw_type = segment.fields[2] if len(segment.fields) > 2 else ""
        coded = (
            segment.encoding.repetition not in raw_type
            and segment.value(2).strip().upper() in _CODED
        )
        return (True, _ALL) if n == 5 and not coded else _SHOWN_FIELD
    if seg_id in _SHOWN:
        return _SHOWN_FIELD
    return (True, _ALL)


def _glued_at(fields: list[str], first: int) -> int:
    """The field a glued segment's id ends (its fields follow), else past the end.

    The tokenizer splits a segment glued to the previous one (its terminator
    lost) only when the host then has more fields than its definition; short
    of that, the glued segment's fields (a guardian's name, address, phone)
    sit in fields the position rules keep. Everything after a field that
    ends with a segment id is masked: a false alarm only masks more.
    """
    for n in range(first, len(fields) - 1):
        if fields[n][-3:] in MAX_FIELDS:
            return n
    return len(fields)


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
    segments = message.segments
    answer = bool(segments) and segments[0].value(9).strip().upper() in _ANSWERS
    lines = []
    for segment in segments:
        fields = list(segment.fields)
        first = 3 if segment.index == 0 else 1
        glued = _glued_at(fields, first)
        for n in range(first, len(fields)):
            masked, spec = (True, _ALL) if n > glued else _spec(segment, n, answer)
            if masked and fields[n]:
                fields[n] = _mask_field(fields[n], spec, enc)
        if segment.index == 0:
            del fields[1]  # MSH-1 is the separator itself (see Segment.raw)
        lines.append(enc.field.join(fields))
    return "\r".join(lines)
