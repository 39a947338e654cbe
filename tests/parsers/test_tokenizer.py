"""The lean tokenizer against python-hl7, its oracle."""

from __future__ import annotations

from pathlib import Path

import hl7
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers import Encoding, ParseError, decode_message, tokenize
from parsers.tokenizer import split_segments

SAMPLES = sorted(
    (Path(__file__).resolve().parents[3] / "shared" / "hl7" / "samples").glob("*.hl7")
)


def _assert_same_as_oracle(text: str) -> None:
    ours = tokenize(text)
    oracle = hl7.parse("\r".join(split_segments(text)))
    assert len(oracle) == len(ours.segments)
    for theirs, mine in zip(oracle, ours.segments, strict=True):
        assert str(theirs[0]) == mine.id
        for n in range(1, len(theirs)):
            assert str(theirs[n]) == mine.raw(n)
            if mine.id == "MSH" and n in (1, 2):
                continue
            field = theirs[n]
            reps = mine.repetitions(n)
            if isinstance(field, hl7.Field) and len(reps) > 1:
                assert [str(r) for r in field] == reps


def test_tokenizer_matches_python_hl7_on_every_sample(samples_dir: Path) -> None:
    """Every sample message that starts with MSH gives the oracle's fields."""
    checked = 0
    for path in sorted(samples_dir.glob("*.hl7")):
        text = decode_message(path.read_bytes()).text
        if not text.lstrip("\ufeff\r\n").startswith("MSH"):
            continue
        _assert_same_as_oracle(text)
        checked += 1
    assert checked > 80


def test_tokenizer_counts_msh_fields_as_the_guide_does() -> None:
    """MSH-1 is the field separator, so MSH-9 is the message type."""
    msg = tokenize("MSH|^~\\&|APP|FAC|||20240101||VXU^V04^VXU_V04|X1|P|2.5.1\rPID|1")
    assert msg.msh.raw(1) == "|"
    assert msg.msh.raw(2) == "^~\\&"
    assert msg.msh.components(9) == ["VXU", "V04", "VXU_V04"]
    assert msg.msh.value(10) == "X1"


def test_tokenizer_reads_unusual_encoding_characters() -> None:
    """Delimiters come from MSH-1/2, never assumed."""
    msg = tokenize(
        "MSH#$*@%#APP#FAC#####VXU$V04#C1#P#2.5.1\rPID#1##123$$$AUTH$MR*456$$$B$SR"
    )
    pid = msg.first("PID")
    assert pid is not None
    assert pid.repetitions(3) == ["123$$$AUTH$MR", "456$$$B$SR"]
    assert pid.value(3, 1, 4) == "B"
    assert msg.msh.value(9, 0, 2) == "V04"


def test_tokenizer_unescapes_leaf_values() -> None:
    """Escape sequences decode to the delimiters they stand for."""
    msg = tokenize("MSH|^~\\&|A\rNTE|1||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\X41\\")
    nte = msg.first("NTE")
    assert nte is not None
    assert nte.value(3) == "a|b^c&d~e\\fA"


def test_tokenizer_tolerates_lf_and_crlf_and_bom() -> None:
    """LF or CRLF segment ends and a byte-order mark are accepted."""
    msg = tokenize("\ufeffMSH|^~\\&|A\r\nPID|1\nRXA|0|1\r\n")
    assert [s.id for s in msg.segments] == ["MSH", "PID", "RXA"]


def test_tokenizer_rejects_text_without_msh() -> None:
    """Garbage without an MSH header raises ParseError naming MSH."""
    with pytest.raises(ParseError) as err:
        tokenize("hello world")
    assert err.value.location == "MSH"


def test_encoding_escape_roundtrips() -> None:
    """Escaping then unescaping gives the original text back."""
    enc = Encoding()
    text = "O'Brien^Smith & Co|x~y\\z"
    assert enc.unescape(enc.escape_text(text)) == text


_leaf = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n\x0b\x1c"), max_size=8
)
_delims = st.permutations(list("|^~\\&#$*@%!")).map(lambda p: p[:5])


@settings(max_examples=200, deadline=None)
@given(delims=_delims, data=st.data())
def test_tokenizer_property_agrees_with_python_hl7(
    delims: list[str], data: st.DataObject
) -> None:
    """Random messages built with random delimiters tokenize as python-hl7 does."""
    fs, cs, rs, es, ss = delims
    enc = Encoding(fs, cs, rs, es, ss)
    segments = [f"MSH{fs}{cs}{rs}{es}{ss}{fs}APP{fs}FAC"]
    for seg_id in data.draw(
        st.lists(st.sampled_from(["PID", "RXA", "OBX", "ZZZ"]), max_size=4)
    ):
        fields = []
        for _ in range(data.draw(st.integers(0, 5))):
            reps = []
            for _ in range(data.draw(st.integers(1, 3))):
                comps = []
                for _ in range(data.draw(st.integers(1, 3))):
                    subs = [
                        enc.escape_text(data.draw(_leaf))
                        for _ in range(data.draw(st.integers(1, 2)))
                    ]
                    comps.append(ss.join(subs))
                reps.append(cs.join(comps))
            fields.append(rs.join(reps))
        segments.append(fs.join([seg_id, *fields]))
    # python-hl7 strips the message's trailing blanks: end on a fixed segment.
    segments.append(f"ZZZ{fs}END")
    text = "\r".join(segments)
    _assert_same_as_oracle(text)
    ours = tokenize(text)
    oracle = hl7.parse(text)
    for theirs, mine in zip(oracle[1:], ours.segments[1:], strict=True):
        for n in range(1, len(theirs)):
            assert oracle.unescape(str(theirs[n])) == enc.unescape(mine.raw(n))


def test_tokenizer_splits_a_segment_glued_into_an_over_long_one() -> None:
    """An OBX that lost its terminator gives back its own fields and the RXA, marked as glued."""
    rxa = "RXA|0|1|20240101||08^HepB^CVX|999|||01^Historical^NIP001" + "|" * 11 + "CP|A"
    msg = tokenize(f"MSH|^~\\&|A|B\rOBX|1|CE|64994-7^E^LN|1|V02||||||F{rxa}\rPID|1")
    assert [s.id for s in msg.segments] == ["MSH", "OBX", "RXA", "PID"]
    obx, glued = msg.segments[1:3]
    assert obx.raw(11) == "F"
    assert obx.field_count == 11
    assert glued.raw(21) == "A"
    assert glued.glued_into is not None
    assert (glued.glued_into.segment, glued.glued_into.field) == ("OBX", 11)


def test_tokenizer_leaves_a_value_ending_in_a_segment_id_alone() -> None:
    """A short segment whose value merely ends in ``OBX`` is not split."""
    msg = tokenize("MSH|^~\\&|A|B\rNTE|1|L|see OBX|x")
    assert [s.id for s in msg.segments] == ["MSH", "NTE"]
    assert msg.segments[1].glued_into is None


def test_segment_repetitions_read_one_by_one_agree_with_the_split() -> None:
    """Each repetition read by number is the one the split gives, however often read.

    The split is kept after the first read; a caller changing the list it
    was handed does not change what the next reader sees.
    """
    reps = [f"ID{i}^^^AUTH&1.2.3&ISO^MR" for i in range(50)]
    message = tokenize(
        "MSH|^~\\&|A|B|C|D|20240101||QBP^Q11^QBP_Q11|1|P|2.5.1\r"
        f"QPD|Z44^q^CDCPHINVS|T1|{'~'.join(reps)}\r"
    )
    qpd = message.segments[1]
    handed = qpd.repetitions(3)
    handed.append("intruder")
    assert [qpd.value(3, i) for i in range(50)] == [f"ID{i}" for i in range(50)]
    assert qpd.subcomponents(3, 49, 4) == ["AUTH", "1.2.3", "ISO"]
    assert qpd.components(3, 50) == [""]
    assert qpd.repetitions(3) == reps
