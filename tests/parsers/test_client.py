"""What a sender reads from answers and messages: MSA-1/MSA-2 and the MSH-16 expectation."""

from __future__ import annotations

import hl7
import pytest
from hypothesis import given
from hypothesis import strategies as st

from parsers.client import (
    Answer,
    ack_code,
    acknowledged_control_id,
    expectation,
)


def test_ack_code_reads_msa1_with_any_delimiter() -> None:
    """MSA-1 is read with the message's own field separator."""
    assert ack_code(b"MSH#$*%@#A\rMSA#AE#X\r") == "AE"


def test_ack_code_is_empty_without_msa() -> None:
    """A reply that is not HL7, or has no MSA, has no ack code."""
    assert ack_code(b"garbage") == ""
    assert ack_code(b"") == ""
    assert ack_code(b"MSH|^~\\&|S\rERR|x\r") == ""


def test_ack_code_reads_the_first_of_repeated_msa_and_lf_endings() -> None:
    """An ACK with LF endings and a repeated MSA gives the first MSA-1."""
    assert ack_code(b"MSH|^~\\&|S\nMSA|AR|1\nMSA|AA|1\n") == "AR"


def _msh(msh9: str, msh15: str = "", msh16: str = "", control_id: str = "C1") -> bytes:
    fields = ["MSH", "^~\\&", "APP", "FAC", "CAIRN", "CAIRN", "20240101", ""]
    fields += [msh9, control_id, "P", "2.5.1", "", "", msh15, msh16]
    return ("|".join(fields) + "\rPID|1\r").encode()


@pytest.mark.parametrize(
    ("msh9", "msh15", "msh16", "answer"),
    [
        ("VXU^V04^VXU_V04", "ER", "AL", Answer.ALWAYS),
        ("VXU^V04^VXU_V04", "", "", Answer.ALWAYS),
        ("VXU^V04^VXU_V04", "", "XX", Answer.ALWAYS),
        ("VXU^V04^VXU_V04", "", "er", Answer.SOMETIMES),
        ("VXU^V04^VXU_V04", "NE", "ER", Answer.SOMETIMES),
        ("VXU^V04^VXU_V04", "AL", "ER", Answer.ALWAYS),
        ("QBP^Q11^QBP_Q11", "", "SU", Answer.SOMETIMES),
        ("VXU^V04^VXU_V04", "AL", "NE", Answer.NEVER),
        ("ACK^V04^ACK", "", "AL", Answer.NEVER),
        ("RSP^K11^RSP_K11", "", "", Answer.NEVER),
    ],
)
def test_expectation_follows_msh15_and_msh16_as_the_engine_does(
    msh9: str, msh15: str, msh16: str, answer: Answer
) -> None:
    """NE never, ER (unless MSH-15 is AL) and SU sometimes, anything else always."""
    assert expectation(_msh(msh9, msh15, msh16)).answer is answer


def test_expectation_reads_type_and_control_id_with_the_message_delimiters() -> None:
    """MSH-9.1 and MSH-10 come out with whatever delimiters MSH-1/MSH-2 declare."""
    found = expectation(b"MSH#$*%@#A#F#R#RF#2024##VXU$V04#ID-7#P#2.5.1####ER\r")
    assert (found.message_type, found.control_id, found.mode) == ("VXU", "ID-7", "ER")


def test_expectation_of_unreadable_bytes_is_an_answer() -> None:
    """Bytes without an MSH are answered by an AR, so the sender waits for it."""
    assert expectation(b"garbage\r").answer is Answer.ALWAYS
    assert expectation(b"").answer is Answer.ALWAYS


def test_acknowledged_control_id_reads_msa2() -> None:
    """MSA-2 names the message an answer belongs to."""
    assert acknowledged_control_id(b"MSH|^~\\&|S\rMSA|AE|ID-9\r") == "ID-9"
    assert acknowledged_control_id(b"MSH|^~\\&|S\r") == ""


def _oracle_msa_field(response: bytes, number: int) -> str:
    """MSA-n as python-hl7 reads it: the implementation ``ack_code`` had before."""
    text = response.decode("utf-8", errors="replace").replace("\r\n", "\r")
    text = text.replace("\n", "\r").lstrip("\ufeff")
    try:
        return str(hl7.parse(text).segments("MSA")[0][number]).strip()
    except (hl7.ParseException, KeyError, IndexError):
        return ""


_PUNCTUATION = list("|^~\\&#$*%@!+")
_VALUE = st.text(alphabet="AERBCXYZ019 -.", max_size=6)


@st.composite
def _answers(draw: st.DrawFn) -> bytes:
    """An answer with random delimiters, segments, values and line endings."""
    fs, cs, rs, es, ss = draw(st.permutations(_PUNCTUATION))[:5]
    joiner = st.sampled_from([cs, rs, ss, es])

    def value() -> str:
        pieces = draw(st.lists(_VALUE, min_size=1, max_size=3))
        return draw(joiner).join(pieces)

    segments = [f"MSH{fs}{cs}{rs}{es}{ss}{fs}" + fs.join(value() for _ in range(3))]
    for seg_id in draw(
        st.lists(st.sampled_from(["MSA", "ERR", "QAK", "PID", "ZXY"]), max_size=5)
    ):
        # At least one field: python-hl7 skips a bare "MSA" (see below).
        fields = [value() for _ in range(draw(st.integers(1, 5)))]
        segments.append(fs.join([seg_id, *fields]))
    ending = draw(st.sampled_from(["\r", "\n", "\r\n"]))
    bom = draw(st.sampled_from(["", "\ufeff"]))
    return (bom + ending.join(segments) + ending).encode()


@given(_answers())
def test_ack_code_agrees_with_python_hl7_as_oracle(response: bytes) -> None:
    """MSA-1 and MSA-2 read by the tokenizer equal python-hl7's, whatever the delimiters."""
    assert ack_code(response) == _oracle_msa_field(response, 1)
    assert acknowledged_control_id(response) == _oracle_msa_field(response, 2)


def test_ack_code_keeps_escapes_and_components_as_sent() -> None:
    """An MSA-1 with components or escapes is returned raw, as python-hl7 gave it."""
    response = b"MSH|^~\\&|S\rMSA|A\\F\\A~x^y|1\r"
    assert ack_code(response) == "A\\F\\A~x^y" == _oracle_msa_field(response, 1)


def test_ack_code_of_an_answer_whose_msh_is_broken_is_empty() -> None:
    """An answer without usable delimiters (MSH-1 a letter, or cut short) has no MSA-1."""
    assert ack_code(b"MSHA^~\\&AS\rMSAAAA1\r") == ""
    assert ack_code(b"MSH|\rMSA|AA|1\r") == ""
    assert ack_code(b"MSA|AA|1\r") == ""


def test_ack_code_reads_a_bare_msa_as_the_first_with_an_empty_msa1() -> None:
    """A bare ``MSA`` is still the first MSA (MSA-1 empty); python-hl7 skipped it."""
    response = b"MSH|^~\\&|S\rMSA\rMSA|AA|1\r"
    assert ack_code(response) == ""
    assert _oracle_msa_field(response, 1) == "AA"
