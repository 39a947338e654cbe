"""parsers/journal_view.py: PHI masked by position, structure kept; ERR-3 codes read."""

from __future__ import annotations

import pytest

from parsers import tokenize
from parsers.acks import read_errors
from parsers.journal_view import MASK, mask_message
from tests.e2e.test_queries import qbp
from tests.support.messages import CANARIES, Dose, vxu


def _shape(text: str) -> list[tuple[str, int, list[int]]]:
    """Each segment's id, field count and separators per field: the structure."""
    message = tokenize(text)
    enc = message.encoding
    return [
        (
            seg.id,
            len(seg.fields),
            [
                seg.fields[n].count(enc.component) + seg.fields[n].count(enc.repetition)
                for n in range(3 if seg.index == 0 else 1, len(seg.fields))
            ],
        )
        for seg in message
    ]


def test_mask_message_hides_every_canary_and_keeps_the_structure() -> None:
    """Segments, fields, components and repetitions are where they were."""
    text = vxu(control_id="C1", doses=[Dose(), Dose(cvx="20")])
    masked = mask_message(text)
    assert masked is not None
    assert not [c for c in CANARIES if c in masked]
    assert _shape(masked) == _shape(text)


def test_mask_message_masks_by_position_not_by_look() -> None:
    """A name that looks like a code is masked; a code that looks like a name is not."""
    pid = "PID|1||12345^^^EHR^MR||V02^CP^^^^^L||20200101|F"
    text = vxu(pid=pid, doses=[Dose(lot="Smith")])
    masked = mask_message(text)
    assert masked is not None
    pid_line = next(line for line in masked.split("\r") if line.startswith("PID"))
    assert pid_line == f"PID|1||{MASK}^^^EHR^MR||{MASK}^{MASK}^^^^^L||{MASK}|F"
    assert "|Smith|" in masked  # RXA-15 lot number


def test_mask_message_masks_next_of_kin_but_the_relationship() -> None:
    """NK1: set id, relationship and contact role stay; name, address and phones go."""
    nk1 = "NK1|1|Doe^Jane^^^^^L|MTH^Mother^HL70063|1 Elm St^^Town^CA^90001|^PRN^PH^^^555^1234567"
    masked = mask_message(vxu(extra_segments=[nk1]))
    assert masked is not None
    line = [x for x in masked.split("\r") if x.startswith("NK1")][-1]
    assert line.startswith("NK1|1|***^***^^^^^***|MTH^Mother^HL70063|")
    assert "Elm" not in line and "1234567" not in line


def test_mask_message_masks_the_query_parameters() -> None:
    """QPD-3 to QPD-6 (identifier, name, mother's maiden name, birth date) are masked."""
    text = qbp(ids="MRN1^^^EHR^MR", name="Doe^Jane", dob="20200101", sex="F")
    masked = mask_message(text)
    assert masked is not None
    qpd = next(line for line in masked.split("\r") if line.startswith("QPD"))
    assert qpd.split("|")[3:8] == [f"{MASK}^^^EHR^MR", f"{MASK}^{MASK}", "", MASK, "F"]


def test_mask_message_masks_free_text_and_unknown_segments() -> None:
    """OBX-5 free text, NTE-3 and a Z-segment are masked; a coded OBX-5 is not."""
    extra = [
        "OBX|9|ST|30956-7^note^LN|1|Mother says Jane Doe||||||F",
        "NTE|1||called Jane Doe at home",
        "ZPI|1|Jane^Doe|secret",
    ]
    masked = mask_message(vxu(extra_segments=extra, doses=[Dose()]))
    assert masked is not None
    assert "Jane" not in masked
    assert "ZPI|***|***^***|***" in masked
    assert "V02^Medicaid^HL70064" in masked


def test_mask_message_keeps_hl7_nulls_and_masks_escaped_values() -> None:
    """An explicit null ("") holds nothing; an escaped name is masked whole."""
    pid = 'PID|1||X1^^^EHR^MR||O\\T\\Brien^Pat^""^^^^L||20200101|F'
    masked = mask_message(vxu(pid=pid))
    assert masked is not None
    assert f'{MASK}^{MASK}^""^^^^L' in masked
    assert "Brien" not in masked


def test_mask_message_uses_the_senders_delimiters() -> None:
    """A message in other delimiters is masked in those delimiters."""
    text = vxu(pid="PID|1||X1^^^EHR^MR||Doe^Jane||20200101|F").replace("^", "#")
    masked = mask_message(text)
    assert masked is not None
    assert f"|{MASK}#{MASK}|" in masked
    assert "Doe" not in masked


@pytest.mark.parametrize(
    "junk", ["", "hello world", "PID|1||X^^^EHR||Doe^Jane", "MSH", "MSH|"]
)
def test_mask_message_of_junk_is_none(junk: str) -> None:
    """What cannot be read as HL7 cannot be masked by position: None, never the text."""
    assert mask_message(junk) is None


def test_error_codes_reads_err_3() -> None:
    """ERR-3.1 of every ERR; nothing from MSA-2 or ERR-5."""
    ack = (
        "MSH|^~\\&|CAIRN|CAIRN|||20240101||ACK^V04^ACK|1|P|2.5.1\r"
        "MSA|AE|C103\r"
        "ERR||RXA^1^5|103^Table value not found^HL70357|E|5^Table value not found^HL70533\r"
        "ERR||PID^1^7|102^Data type error^HL70357|W|4^Invalid value^HL70533\r"
    )
    assert {err.hl7_code for err in read_errors(ack.encode())} == {"103", "102"}
    assert read_errors(b"not hl7") == ()


# -- the outside attacker's junk: PHI where the position rules did not look --

_MSH = "MSH|^~\\&|EHRAPP|CLINIC1|CAIRN|CAIRN|20240201||VXU^V04^VXU_V04|C1|P|2.5.1"


def _line(masked: str | None, seg_id: str, nth: int = 0) -> str:
    assert masked is not None
    return [x for x in masked.split("\r") if x.startswith(seg_id)][nth]


@pytest.mark.parametrize("value_type", ["", "  ", "XX", "FT^x", "CE~ST", "CF"])
def test_mask_message_masks_an_obx_5_whose_type_is_missing_or_unknown(
    value_type: str,
) -> None:
    """OBX-5 is shown only when OBX-2 says it is coded, a number or a date."""
    obx = f"OBX|1|{value_type}|30956-7^note^LN|1|Jane Doe 5551234567||||||F"
    line = _line(mask_message(f"{_MSH}\r{obx}"), "OBX")
    assert "Jane" not in line and "5551234567" not in line
    assert "30956-7^note^LN" in line  # the observation's code is kept


@pytest.mark.parametrize("value_type", ["CE", "cwe", "NM", "DT", "TS", "ID"])
def test_mask_message_shows_a_coded_or_numeric_obx_5(value_type: str) -> None:
    obx = f"OBX|1|{value_type}|64994-7^VFC^LN|1|V02^VFC eligible^HL70064||||||F"
    assert "V02^VFC eligible^HL70064" in _line(mask_message(f"{_MSH}\r{obx}"), "OBX")


def test_mask_message_masks_err_and_msa_in_a_sender_message() -> None:
    """ERR-8 and MSA-3 are the registry's own texts only in its answers (ACK, RSP)."""
    text = f"{_MSH}\rMSA|AA|Jane Doe\rERR||||E|||||Jane Doe 19900101"
    masked = mask_message(text)
    assert masked is not None and "Jane" not in masked and "19900101" not in masked
    answer = (
        "MSH|^~\\&|CAIRN|CAIRN|EHRAPP|CLINIC1|20240201||ACK^V04^ACK|1|P|2.5.1\r"
        "MSA|AE|C1\rERR||PID^1^7|102^Data type error^HL70357|E||||PID-7 is bad"
    )
    assert mask_message(answer) == answer


def test_mask_message_masks_a_second_msh() -> None:
    """Only the first MSH is the envelope; another is junk that may hold anything."""
    masked = mask_message(f"{_MSH}\rMSH|^~\\&|Doe^Jane|19900101\rPID|1||X1")
    assert masked is not None and "Jane" not in masked and "19900101" not in masked


def test_mask_message_masks_a_segment_glued_into_a_shown_or_partly_shown_one() -> None:
    """A lost segment terminator puts NK1 into PID-23 and on, RXA into PD1: mask what follows the glue.

    The tokenizer splits a glued segment only when the host segment ends up
    with more fields than its definition; short of that, the guardian's name,
    address and phone sit in PID fields the position rules keep.
    """
    pid = (
        "PID|1||MRN1^^^EHR^MR||Doe^Jane||20200101|F|||||||||||||||"
        "2186-5^Not Hispanic^CDCRECNK1|1|Doe^John|MTH^Mother^HL70063|"
        "2 Oak St^^Town^CA^90001|^PRN^PH^^^555^7654321"
    )
    masked = mask_message(f"{_MSH}\r{pid}")
    assert masked is not None
    for secret in ("John", "Oak", "7654321", "90001", "Jane", "MRN1"):
        assert secret not in masked, secret
    assert masked.count("|") == pid.count("|") + _MSH.count("|")  # structure kept
