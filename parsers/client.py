"""What a sender reads from HL7 answers and from its own messages (pure).

``cairn send``, the benchmarks and tests use these with the socket client,
``engine.client.MllpSender``: the acknowledgement code and control id of an
answer (MSA-1, MSA-2), and whether a message will be answered at all
(MSH-15/MSH-16). Everything is read with our own tokenizer
(``parsers.tokenizer``), with the delimiters of each message's own MSH;
python-hl7 is only the tests' oracle.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from parsers.errors import ParseError
from parsers.tokenizer import tokenize


def _msa_field(response: bytes, number: int) -> str:
    """One field of the first MSA, as sent, or ``""`` when there is none.

    The delimiters come from the response's own MSH; CR, LF or CRLF may end
    its segments. An answer that does not start with a usable MSH has no MSA
    to read.
    """
    text = response.decode("utf-8", errors="replace")
    try:
        msa = tokenize(text).first("MSA")
    except ParseError:
        return ""
    return msa.raw(number).strip() if msa is not None else ""


def ack_code(response: bytes) -> str:
    """MSA-1 of a response (the first MSA if several), or ``""`` when there is none."""
    return _msa_field(response, 1)


def acknowledged_control_id(response: bytes) -> str:
    """MSA-2 of a response: the control id (MSH-10) of the message it answers."""
    return _msa_field(response, 2)


class Answer(enum.Enum):
    """What a receiver that follows MSH-15/MSH-16 (original mode) will send back."""

    #: Always an answer: MSH-16 AL, empty or unknown, or the reversed
    #: MSH-15 AL / MSH-16 ER pair of older NIST messages (REFERENCE §1).
    ALWAYS = "always"
    #: Only some outcomes are answered: MSH-16 ER (errors only) or SU
    #: (successes only); silence is a correct answer to the others.
    SOMETIMES = "sometimes"
    #: Never: MSH-16 NE, or the message is itself an ACK or RSP.
    NEVER = "never"


@dataclass(frozen=True)
class Expectation:
    """What a sender may expect back for one message, read from its MSH.

    Attributes:
        answer: whether an answer will come.
        control_id: MSH-10, which the answer's MSA-2 echoes.
        message_type: MSH-9.1 (``VXU``, ``QBP``, ...), ``""`` when unreadable.
        mode: MSH-16 as sent (upper case, ``""`` when empty).
    """

    answer: Answer
    control_id: str
    message_type: str
    mode: str


def expectation(message: bytes) -> Expectation:
    """Read MSH-9, MSH-10, MSH-15 and MSH-16 of a message as the receiver will.

    The rules are the engine's (``engine.pipeline._wants_answer``): ``NE``
    never answers, ``ER`` answers errors only (but always when MSH-15 is
    ``AL``), ``SU`` successes only, anything else always. A message without
    a readable MSH is always answered (with an AR).
    """
    header = message.split(b"\r", 1)[0].split(b"\n", 1)[0].decode("latin-1")
    if len(header) < 5 or not header.startswith("MSH"):
        return Expectation(Answer.ALWAYS, "", "", "")
    fields = header.split(header[3])

    def field(number: int) -> str:
        # fields[1] is MSH-2: MSH-n is fields[n - 1].
        return fields[number - 1].strip() if len(fields) >= number else ""

    kind = field(9).split(header[4])[0].upper()
    mode = field(16).upper()
    if kind in {"ACK", "RSP"} or mode == "NE":
        answer = Answer.NEVER
    elif mode == "SU" or (mode == "ER" and field(15).upper() != "AL"):
        answer = Answer.SOMETIMES
    else:
        answer = Answer.ALWAYS
    return Expectation(answer, field(10), kind, mode)
