"""Issue 15's envelope findings: MSH-11, response ids and charsets, dev warnings, batches.

Each test feeds the in-process pipeline what an interface analyst sent and
checks the answer and the registry, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import text

from engine.pipeline import Inbound, MessagePipeline, Route, SenderPolicy
from handlers.codes import CodeTables
from handlers.qbp import QbpHandler, QueryPolicy
from handlers.vxu import VxuHandler
from storage import Database
from tests.e2e.test_queries import qbp
from tests.support.messages import Dose, vxu
from tests.support.mllp import errs, msa_code

START = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def _pipeline(db: Database, unknown: str = "reject") -> MessagePipeline:
    codes = CodeTables.load()
    ticks = itertools.count()
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
        senders=SenderPolicy({"CLINIC1": "BAY"}, unknown, "BAY"),
        now=lambda: START + timedelta(seconds=next(ticks)),
    )


def _send(pipeline: MessagePipeline, message: str | bytes) -> bytes:
    raw = message.encode() if isinstance(message, str) else message
    (outcome,) = pipeline.process_batch([Inbound(raw, "test", "mllp")])
    return outcome.payload


def _count(db: Database, table: str) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def _msh(reply: bytes) -> list[str]:
    return reply.split(b"\r")[0].decode("latin-1").split("|")


# -- MSH-11: P is stored; T (training) and D (debugging) are not ---------------


def test_processing_id_t_and_d_are_validated_but_not_stored(db: Database) -> None:
    """A VXU with MSH-11 T or D gets its real ACK and an I at MSH-11; no registry row is kept."""
    pipeline = _pipeline(db)
    for control_id, processing in (("T1", "T"), ("D1", "D")):
        reply = _send(
            pipeline,
            vxu(control_id=control_id, processing_id=processing, doses=[Dose()]),
        )
        assert msa_code(reply) == "AA"
        notes = [e for e in errs(reply) if e[2].startswith("MSH^1^11")]
        assert notes, errs(reply)
        assert notes[0][4] == "I"
    assert (_count(db, "patients"), _count(db, "vaccinations")) == (0, 0)
    assert _count(db, "patient_versions") == 0
    with db.engine.connect() as conn:
        outcomes = [
            r[0]
            for r in conn.execute(
                text("SELECT outcome FROM message_journal ORDER BY id")
            )
        ]
    assert [o.split(":")[0] for o in outcomes] == [
        "not stored (MSH-11 T)",
        "not stored (MSH-11 D)",
    ]
    reply = _send(pipeline, vxu(control_id="P1", processing_id="P", doses=[Dose()]))
    assert msa_code(reply) == "AA"
    assert (_count(db, "patients"), _count(db, "vaccinations")) == (1, 1)


def test_processing_id_t_vxu_with_errors_still_answers_them(db: Database) -> None:
    """A training message with a bad dose gets the same AE and ERR a production one would."""
    pipeline = _pipeline(db)
    bad = vxu(control_id="T2", processing_id="T", doses=[Dose(cvx="XYZ")])
    reply = _send(pipeline, bad)
    assert msa_code(reply) == "AE"
    assert any(e[2].startswith("RXA^1^5") for e in errs(reply))
    assert _count(db, "vaccinations") == 0


# -- response headers: unique control ids, the character set --------------------


def test_responses_get_unique_control_ids(db: Database) -> None:
    """Four queries with one MSH-10, and two unreadable frames, get six different MSH-10s."""
    pipeline = _pipeline(db)
    replies = [
        _send(pipeline, qbp(control_id="SAME", name="Nobody^Here", dob="20200101"))
        for _ in range(4)
    ]
    replies += [_send(pipeline, b"garbage"), _send(pipeline, b"more garbage")]
    ids = [_msh(r)[9] for r in replies]
    assert all(ids)
    assert len(set(ids)) == 6
    other = _pipeline(db)  # another node (or a restart)
    assert _msh(_send(other, b"garbage"))[9] not in ids


def _stored_with_accent(pipeline: MessagePipeline) -> None:
    pid = "PID|1||ACC-1^^^EHR^MR||Muñoz^José^^^^^L||20200101|M"
    assert msa_code(_send(pipeline, vxu(control_id="A1", pid=pid, doses=[Dose()])))


def _query_with_charset(charset: str, control_id: str) -> bytes:
    message = qbp(control_id=control_id, name="Muñoz^José", dob="20200101")
    fields = message.split("\r")[0].split("|")
    fields += [""] * (19 - len(fields))
    fields[17] = charset
    return "\r".join(["|".join(fields), *message.split("\r")[1:]]).encode(
        "latin-1" if charset == "8859/1" else "utf-8"
    )


def test_response_is_in_the_declared_character_set(db: Database) -> None:
    """A query that declared 8859/1 gets Latin-1 bytes and MSH-18 8859/1."""
    pipeline = _pipeline(db)
    _stored_with_accent(pipeline)
    reply = _send(pipeline, _query_with_charset("8859/1", "Q1"))
    assert _msh(reply)[17] == "8859/1"
    assert "Muñoz".encode("latin-1") in reply
    assert "Muñoz".encode() not in reply


def test_response_without_a_declared_set_names_utf8(db: Database) -> None:
    """Non-ASCII content to a message that declared nothing goes as UTF-8, declared in MSH-18."""
    pipeline = _pipeline(db)
    _stored_with_accent(pipeline)
    reply = _send(pipeline, _query_with_charset("", "Q2"))
    assert _msh(reply)[17] == "UNICODE UTF-8"
    assert "Muñoz".encode() in reply


def test_response_falls_back_to_utf8_when_the_declared_set_cannot_carry_it(
    db: Database,
) -> None:
    """A stored name that Latin-1 cannot write makes the answer UTF-8, and says so."""
    pipeline = _pipeline(db)
    pid = "PID|1||ACC-2^^^EHR^MR||Kowalski^Łucja^^^^^L||20200101|F"
    _send(pipeline, vxu(control_id="A2", pid=pid, doses=[Dose()]))
    message = qbp(control_id="Q3", name="Kowalski^Lucja", dob="20200101")
    head = message.split("\r")[0].split("|")
    head += [""] * (19 - len(head))
    head[17] = "8859/1"
    raw = "\r".join(["|".join(head), *message.split("\r")[1:]])
    reply = _send(pipeline, raw.encode("latin-1"))
    assert _msh(reply)[17] == "UNICODE UTF-8"
    assert "Łucja".encode() in reply


def test_ascii_response_to_a_message_without_msh18_stays_plain(db: Database) -> None:
    """An all-ASCII answer to a message that declared nothing leaves MSH-18 empty."""
    reply = _send(_pipeline(db), vxu(control_id="V1", doses=[Dose()]))
    assert _msh(reply)[17] == ""
    assert reply.isascii()


# -- the development defaults' warning -------------------------------------------


def _unregistered(reply: bytes) -> list[list[str]]:
    return [e for e in errs(reply) if "not registered" in e[8]]


def test_unregistered_sender_warning_only_where_it_changed_what_happened(
    db: Database,
) -> None:
    """Accepted unknown senders: stored data is told its region; a rejected VXU and a query are not."""
    pipeline = _pipeline(db, unknown="accept")
    stored = _send(pipeline, vxu(control_id="U1", sender="NEWCLINIC", doses=[Dose()]))
    assert msa_code(stored) == "AA"
    assert len(_unregistered(stored)) == 1
    rejected = _send(
        pipeline, vxu(control_id="U2", sender="NEWCLINIC", dob="", doses=[Dose()])
    )
    assert msa_code(rejected) == "AE"
    assert _unregistered(rejected) == []
    query = _send(
        pipeline,
        qbp(control_id="U3", sender="NEWCLINIC", name="Nobody^Here", dob="20200101"),
    )
    assert _unregistered(query) == []


def test_unregistered_sender_is_logged_once(db: Database) -> None:
    """The log says an unregistered sender was accepted the first time only."""
    pipeline = _pipeline(db, unknown="accept")
    with structlog.testing.capture_logs() as logs:
        for n in range(3):
            _send(pipeline, vxu(control_id=f"L{n}", sender="NEWCLINIC", doses=[Dose()]))
    events = [e for e in logs if e["event"] == "unregistered_sender_accepted"]
    assert len(events) == 1
    assert events[0]["fallback_region"] == "BAY"


# -- a batch inside one MLLP frame ------------------------------------------------


def test_batch_in_one_frame_is_rejected_naming_the_batch(db: Database) -> None:
    """FHS/BHS/…/BTS/FTS in one frame: AR, MSA-2 the first MSH-10, an ERR at FHS; nothing stored."""
    first = vxu(control_id="B-1", doses=[Dose()])
    second = vxu(control_id="B-2", doses=[Dose()])
    batch = (
        "FHS|^~\\&|EHR|CLINIC1|CAIRN|CAIRN|20240601\r"
        "BHS|^~\\&|EHR|CLINIC1|CAIRN|CAIRN|20240601\r"
        f"{first}{second}BTS|2\rFTS|1\r"
    )
    reply = _send(_pipeline(db), batch)
    msa = next(s for s in reply.decode().split("\r") if s.startswith("MSA"))
    assert msa.split("|")[1:3] == ["AR", "B-1"]
    (err,) = errs(reply)
    assert err[2].startswith("FHS")
    assert "cairn load" in err[8]
    assert "2 message(s)" in err[8]
    assert _count(db, "message_journal") == 0
    assert _count(db, "patients") == 0
