"""Fuzzing the pipeline: wild but structured messages, and corrupted frames.

Every input must get an answer that parses (python-hl7) or no answer at all,
never an exception out of the pipeline, and never a half-stored message. Wild
messages run on SQLite and on PostgreSQL, and both must give the same answer
(MSA, ERR and QAK segments; our MSH-7/MSH-10 and stored row ids differ).
``CAIRN_FUZZ_EXAMPLES`` sets the number of examples (``make fuzz`` runs a long
campaign; ``make test`` a bounded one).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime

import hl7
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from engine.pipeline import Inbound, MessagePipeline, Route, SenderPolicy
from handlers.codes import CodeTables
from handlers.qbp import QbpHandler, QueryPolicy
from handlers.vxu import VxuHandler
from parsers.mllp import Frame, FrameDecoder, encode_frame
from storage import Database, open_database
from tests.support.messages import Dose, vxu

EXAMPLES = int(os.environ.get("CAIRN_FUZZ_EXAMPLES", "120"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module", name="fuzz_db")
def _fuzz_db() -> Iterator[Database]:
    with tempfile.TemporaryDirectory() as tmp:
        db = open_database(f"sqlite:///{tmp}/fuzz.sqlite3", sqlite_synchronous="NORMAL")
        db.upgrade()
        yield db
        db.close()


@pytest.fixture(scope="module", name="fuzz_pg")
def _fuzz_pg(pg_databases) -> Iterator[Database]:  # type: ignore[no-untyped-def]
    db = open_database(pg_databases.new_url(), pool_size=2)
    db.upgrade()
    yield db
    db.close()


def _pipeline(db: Database) -> MessagePipeline:
    codes = CodeTables.load()
    return MessagePipeline(
        database=db,
        routes={
            "VXU": Route(VxuHandler(codes), "VXU_V04"),
            "QBP": Route(
                QbpHandler(codes, QueryPolicy(False, ("BAY",)), None),
                "QBP_Q11",
                replay_resends=False,
            ),
        },
        senders=SenderPolicy({}, "accept", "BAY"),
        now=lambda: datetime(2024, 6, 1, tzinfo=UTC),
    )


def _counts(db: Database) -> tuple[int, int]:
    with db.engine.connect() as conn:
        journal = conn.execute(
            text("SELECT count(*) FROM message_journal")
        ).scalar_one()
        orphans = conn.execute(
            text(
                "SELECT count(*) FROM vaccinations v LEFT JOIN message_journal j ON j.id = v.journal_id WHERE j.response IS NULL"
            )
        ).scalar_one()
        return int(journal), int(orphans)


def _answer_shape(payload: bytes) -> list[str]:
    """The parts of an answer both backends must agree on: MSA, ERR and QAK."""
    if not payload:
        return []
    lines = payload.decode("utf-8").split("\r")
    return [line for line in lines if line[:3] in {"MSA", "ERR", "QAK"}]


def _check_answer(payload: bytes) -> None:
    if not payload:
        return
    text_ = payload.decode("utf-8")
    parsed = hl7.parse(text_.replace("\n", "\r"))
    assert str(parsed.segments("MSH")[0][0]) == "MSH"
    assert parsed.segments("MSA")


_wild = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",), blacklist_characters="\r\n\x0b\x1c"
    ),
    max_size=40,
)
_delims = st.sampled_from(["|^~\\&", "#$*%@", "|^~\\&", "!@#$%"])
#: Values just over, or far over, a column's size (handlers.field_limits).
_long = st.sampled_from([5, 11, 21, 41, 101, 181, 201, 5000]).flatmap(
    lambda n: st.text(alphabet="MX7 ", min_size=n, max_size=n)
)
#: Control characters, raw (those the tokenizer leaves in a field) or escaped.
_control = st.lists(
    st.one_of(
        st.sampled_from(
            ["\\X00\\", "\\X0B\\", "\\X1C\\", "\\X0D\\", "\\X85\\", "\\X7F\\"]
        ),
        st.characters(
            categories=("Cc",), exclude_characters="\r\n\x00\x01\x02\x03\x04"
        ),
        st.text(alphabet="AB1", max_size=3),
    ),
    min_size=1,
    max_size=6,
).map("".join)


@st.composite
def wild_messages(draw: st.DrawFn) -> bytes:
    """Structurally valid VXU/QBP messages with wild field contents and segments."""
    delims = draw(_delims)
    fs, cs, rs, es, ss = delims
    base = vxu(
        control_id=f"F{draw(st.integers(0, 10**9))}",
        doses=[
            Dose(filler="D1"),
            Dose(
                filler="D2", cvx=draw(st.sampled_from(["08", "20", "XXX", "", "998"]))
            ),
        ],
    )
    if draw(st.booleans()):
        base = (
            "MSH|^~\\&|EHR|CLINIC1|CAIRN|CAIRN|20240601||QBP^Q11^QBP_Q11|Q"
            + str(draw(st.integers(0, 10**9)))
            + "|P|2.5.1|||ER|AL|||||Z34^CDCPHINVS\r"
            "QPD|Z34^Request Immunization History^CDCPHINVS|TAG|M1^^^EHR^MR|Doe^Jane||20200101|F\rRCP|I|5^RD&records&HL70126\r"
        )
    segments = [s.split("|") for s in base.strip("\r").split("\r")]
    for _ in range(draw(st.integers(0, 6))):
        seg = draw(st.integers(1, len(segments) - 1)) if len(segments) > 1 else 0
        fields = segments[seg]
        where = draw(st.integers(1, max(1, len(fields) + 3)))
        while len(fields) <= where:
            fields.append("")
        fields[where] = draw(
            st.one_of(
                _wild,
                st.just("\\"),
                st.just("^^^~~&&"),
                st.text(max_size=3000).map(lambda t: t.replace("\r", "")),
                _long,
                _control,
            )
        )
    if draw(st.booleans()) and len(segments) > 2:
        del segments[draw(st.integers(1, len(segments) - 1))]
    if draw(st.booleans()):
        segments.insert(draw(st.integers(1, len(segments))), ["ZZZ", draw(_wild)])
    text_ = "\r".join("|".join(f) for f in segments)
    text_ = (
        text_.replace("|", "\x00")
        .replace("^", "\x01")
        .replace("~", "\x02")
        .replace("\\", "\x03")
        .replace("&", "\x04")
    )
    text_ = (
        text_.replace("\x00", fs)
        .replace("\x01", cs)
        .replace("\x02", rs)
        .replace("\x03", es)
        .replace("\x04", ss)
    )
    raw = text_.encode("utf-8")
    if draw(st.booleans()):
        raw += draw(st.binary(max_size=20))  # invalid UTF-8 tails
    return raw


@FUZZ
@given(message=wild_messages())
def test_fuzz_wild_messages_get_the_same_parseable_answer_on_both_backends(
    fuzz_db: Database, fuzz_pg: Database, message: bytes
) -> None:
    """Any structured-but-wild VXU/QBP gets a parseable ACK/RSP, the same on SQLite and PostgreSQL, and nothing is half-stored."""
    answers = []
    for db in (fuzz_db, fuzz_pg):
        (outcome,) = _pipeline(db).process_batch([Inbound(message, "fuzz", "mllp")])
        _check_answer(outcome.payload)
        assert _counts(db)[1] == 0
        answers.append(_answer_shape(outcome.payload))
    assert answers[0] == answers[1]


_QBP = (
    "MSH|^~\\&|EHR|CLINIC1|CAIRN|CAIRN|20240601||QBP^Q11^QBP_Q11|{control}|P|2.5.1"
    "|||ER|AL|||||Z34^CDCPHINVS\rQPD|Z34^Request Immunization History^CDCPHINVS"
    "|{tag}|M1^^^EHR^MR|{family}^Jane||20200101|F\rRCP|I|5^RD&records&HL70126\r"
)


@pytest.mark.parametrize(
    ("tag", "family"),
    [
        ("T" * 65, "Doe"),
        ("T\\X00\\", "Doe"),
        ("TAG", "Doe\\X00\\"),
    ],
    ids=["long-tag", "nul-tag", "nul-name"],
)
def test_fuzz_query_with_a_bad_qpd_value_gets_the_same_answer_on_both_backends(
    fuzz_db: Database, fuzz_pg: Database, tag: str, family: str
) -> None:
    """A query whose QPD-2 is over 64 characters or holds a NUL is answered alike by both backends."""
    message = _QBP.format(control=f"QX{len(tag)}{len(family)}", tag=tag, family=family)
    answers = []
    for db in (fuzz_db, fuzz_pg):
        (outcome,) = _pipeline(db).process_batch(
            [Inbound(message.encode(), "fuzz", "mllp")]
        )
        answers.append(_answer_shape(outcome.payload))
    assert answers[0] == answers[1]


@FUZZ
@given(data=st.data())
def test_fuzz_corrupted_frames_never_break_the_decoder_or_pipeline(
    fuzz_db: Database, data: st.DataObject
) -> None:
    """Byte-level corruption of valid frames: every frame decoded is answered, nothing raises."""
    stream = bytearray(
        encode_frame(
            vxu(
                control_id=f"C{data.draw(st.integers(0, 10**9))}",
                doses=[Dose(filler="D1")],
            ).encode()
        )
        * 2
    )
    for _ in range(data.draw(st.integers(1, 10))):
        pos = data.draw(st.integers(0, len(stream) - 1))
        action = data.draw(st.sampled_from(["flip", "delete", "insert"]))
        if action == "flip":
            stream[pos] = data.draw(st.integers(0, 255))
        elif action == "delete":
            del stream[pos]
        else:
            stream.insert(
                pos, data.draw(st.sampled_from([0x0B, 0x1C, 0x0D, 0x0A, 0xFF, 0x7C]))
            )
    decoder = FrameDecoder(max_message_bytes=64 * 1024)
    frames = [e.payload for e in decoder.feed(bytes(stream)) if isinstance(e, Frame)]
    pipeline = _pipeline(fuzz_db)
    for outcome in pipeline.process_batch([Inbound(f, "fuzz", "mllp") for f in frames]):
        _check_answer(outcome.payload)
    assert _counts(fuzz_db)[1] == 0
