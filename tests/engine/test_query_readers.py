"""Queries read on reader connections, outside the writer's transaction (issue 16)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from engine.app import PipelineSink
from engine.pipeline import Inbound, MessagePipeline, Route, SenderPolicy
from handlers.codes import CodeTables
from handlers.context import Logger, MessageContext
from handlers.qbp import QbpHandler, QueryAnswer, QueryPolicy
from handlers.vxu import VxuHandler
from parsers import Message
from storage import Database, UnitOfWork
from tests.e2e.test_queries import qbp
from tests.support.messages import CANARY_FAMILY, CANARY_GIVEN, Dose, vxu
from tests.support.mllp import msa_code, segments

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
WAIT = 20.0


def _pipeline(db: Any, query: QbpHandler | None = None) -> MessagePipeline:
    codes = CodeTables.load()
    return MessagePipeline(
        database=db,
        routes={
            "VXU": Route(VxuHandler(codes), "VXU_V04"),
            "QBP": Route(
                query or QbpHandler(codes, QueryPolicy(False, ("BAY",)), None),
                "QBP_Q11",
                replay_resends=False,
            ),
        },
        senders=SenderPolicy({"CLINIC1": "BAY"}, "reject", "BAY"),
        now=lambda: NOW,
    )


def _z34(control_id: str = "Q1", mrn: str = "MRN1", dob: str = "20230105") -> bytes:
    return qbp(
        control_id=control_id,
        ids=f"{mrn}^^^EHR^MR",
        name=f"{CANARY_FAMILY}^{CANARY_GIVEN}",
        dob=dob,
        sex="F",
    ).encode()


def _vxu(control_id: str, mrn: str = "MRN1", dob: str = "20230105") -> bytes:
    return vxu(control_id=control_id, mrn=mrn, dob=dob, doses=[Dose()]).encode()


def _profile(reply: bytes) -> str:
    return segments(reply)[0][20].split("^")[0]


def _inbound(raw: bytes) -> Inbound:
    return Inbound(raw, "test", "mllp")


def test_read_step_answers_a_query_from_a_reader(db: Database) -> None:
    """A query read on a reader is answered by the writer with the read's answer and audit row."""
    pipeline = _pipeline(db)
    (stored,) = pipeline.process_batch([_inbound(_vxu("V1"))])
    prepared = pipeline.read_step(_inbound(_z34()))
    assert prepared.prepared is not None
    assert prepared.prepared.answer is not None
    (answer,) = pipeline.process_batch([prepared])
    assert (stored.ack_code, answer.ack_code, _profile(answer.payload)) == (
        "AA",
        "AA",
        "Z32",
    )
    with db.engine.connect() as conn:
        audited = conn.execute(
            text("SELECT journal_id, outcome FROM audit_log WHERE action = 'query'")
        ).all()
    assert [tuple(r) for r in audited] == [(answer.journal_id, "disclosed")]


def test_read_step_gives_the_same_answer_as_the_inline_read(db: Database) -> None:
    """A query read on a reader and one read in the writer get the same RSP, MSH aside."""
    pipeline = _pipeline(db)
    pipeline.process_batch([_inbound(_vxu("V1"))])
    (read_first,) = pipeline.process_batch([pipeline.read_step(_inbound(_z34("Q1")))])
    (inline,) = pipeline.process_batch([_inbound(_z34("Q2"))])
    assert segments(read_first.payload)[1:] == [
        [*seg[:2], "Q1", *seg[3:]] if seg[0] == "MSA" else seg
        for seg in segments(inline.payload)[1:]
    ]


def test_read_step_sees_the_vxu_whose_aa_came_before(db: Database) -> None:
    """A Z34 sent after a VXU's AA finds that VXU's patient (the read starts after the commit)."""
    pipeline = _pipeline(db)
    (before,) = pipeline.process_batch([pipeline.read_step(_inbound(_z34("Q0")))])
    (stored,) = pipeline.process_batch([_inbound(_vxu("V1"))])
    (after,) = pipeline.process_batch([pipeline.read_step(_inbound(_z34("Q1")))])
    assert (_profile(before.payload), stored.ack_code, _profile(after.payload)) == (
        "Z33",
        "AA",
        "Z32",
    )


class _HeldCommit:
    """A real database whose write transactions wait, before committing, for the test."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.writing = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    @contextmanager
    def transaction(self) -> Iterator[UnitOfWork]:
        with self._db.transaction() as uow:
            yield uow
            uow.flush()
            self.writing.set()
            self.release.wait(WAIT)


def test_read_step_does_not_wait_for_an_open_write_transaction(db: Database) -> None:
    """A query is read while the writer holds its transaction open, and sees only committed data."""
    pipeline = _pipeline(db)
    pipeline.process_batch([_inbound(_vxu("V1"))])
    held = _HeldCommit(db)
    writer = threading.Thread(
        target=_pipeline(held).process_batch,
        args=([_inbound(_vxu("V2", mrn="MRN2", dob="20220303"))],),
    )
    writer.start()
    try:
        assert held.writing.wait(WAIT)
        started = time.monotonic()
        seen = pipeline.read_step(_inbound(_z34("Q1")))
        unseen = pipeline.read_step(_inbound(_z34("Q2", mrn="MRN2", dob="20220303")))
        elapsed = time.monotonic() - started
    finally:
        held.release.set()
        writer.join(WAIT)
    assert seen.prepared is not None
    assert unseen.prepared is not None
    assert elapsed < 5
    assert [
        seen.prepared.answer.response.profile,
        unseen.prepared.answer.response.profile,
    ] == ["Z32", "Z33"]


class _FailingReads:
    """A real database whose reader connections cannot be opened."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    @contextmanager
    def reading(self) -> Iterator[UnitOfWork]:
        raise RuntimeError("no reader")
        yield  # pragma: no cover


def test_read_step_that_fails_leaves_the_query_to_the_writer(db: Database) -> None:
    """When the reader cannot read, the writer reads the query inline and answers it."""
    pipeline = _pipeline(_FailingReads(db))
    pipeline.process_batch([_inbound(_vxu("V1"))])
    prepared = pipeline.read_step(_inbound(_z34()))
    assert prepared.prepared is not None
    assert prepared.prepared.ctx is None
    (answer,) = pipeline.process_batch([prepared])
    assert _profile(answer.payload) == "Z32"


def test_read_step_leaves_a_refused_query_to_the_writer(db: Database) -> None:
    """A query from an unregistered sender is not read; the writer rejects it, journaled."""
    pipeline = _pipeline(db)
    raw = _z34().replace(b"|CLINIC1|", b"|STRANGER|", 1)
    prepared = pipeline.read_step(_inbound(raw))
    assert prepared.prepared is not None
    assert prepared.prepared.ctx is None
    (answer,) = pipeline.process_batch([prepared])
    assert (answer.ack_code, answer.journal_id is not None) == ("AR", True)


def test_pipeline_reads_only_routes_queries_alone() -> None:
    """Only a QBP goes to a reader; a VXU, an unknown type and garbage go to the writer."""
    pipeline = _pipeline(None)
    assert [
        pipeline.reads_only(raw)
        for raw in (
            _z34(),
            _vxu("V1"),
            b"MSH|^~\\&|A|B|||||ADT^A01|1|P|2.5.1",
            b"\x00junk",
        )
    ] == [True, False, False, False]


def test_reads_only_sees_a_query_however_its_header_is_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bytes shortcut answers as the full reading does, for odd headers too."""
    pipeline = _pipeline(None)
    z34, vxu = _z34(), _vxu("V2")
    variants = [
        z34,
        vxu,
        b"\xef\xbb\xbf" + z34,  # a UTF-8 byte-order mark
        b"\r\n  " + z34,  # blank lines and spaces first
        z34.replace(b"\r", b"\n"),  # LF terminators
        z34.replace(b"|QBP^", b"| QBP ^", 1),  # spaces around MSH-9.1
        z34.replace(b"|QBP^", b"|qbp^", 1),  # lower case
        vxu.replace(b"|VXU^", b"|V\\T\\XU^", 1),  # an escape sequence
        b"MSH|",  # too short to say
    ]
    fast = [pipeline.reads_only(raw) for raw in variants]
    monkeypatch.setattr("engine.pipeline._plain_message_code", lambda _raw: None)
    assert fast == [pipeline.reads_only(raw) for raw in variants]
    assert fast[:2] == [True, False]


class _HeldQueries(QbpHandler):
    """A QBP handler whose read step waits at a barrier until the test lets it go."""

    def __init__(self) -> None:
        super().__init__(CodeTables.load(), QueryPolicy(False, ("BAY",)), None)
        self.entered = threading.Event()
        self.release = threading.Event()

    def read(
        self, message: Message, ctx: MessageContext, uow: UnitOfWork, log: Logger
    ) -> QueryAnswer:
        self.entered.set()
        self.release.wait(WAIT)
        return super().read(message, ctx, uow, log)


class _Threads:
    """callFromThread that runs the call at once, on the calling thread."""

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        f(*args, **kw)


def _wait(results: list[Any]) -> bool:
    deadline = time.monotonic() + WAIT
    while not results and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(results)


def test_sink_slow_query_does_not_hold_up_a_vxu_ack(db: Database) -> None:
    """A query held in its read step does not delay a VXU's AA; it is answered once released."""
    held = _HeldQueries()
    sink = PipelineSink(_Threads(), _pipeline(db, held), max_batch=8)  # type: ignore[arg-type]
    sink.start()
    query: list[Any] = []
    ingest: list[Any] = []
    try:
        sink.submit(_z34("Q1"), "test", "mllp").addBoth(query.append)
        assert held.entered.wait(WAIT)
        sink.submit(_vxu("V1"), "test", "mllp").addBoth(ingest.append)
        assert _wait(ingest)
        assert query == []
        held.release.set()
        assert _wait(query)
    finally:
        held.release.set()
        sink.stop(WAIT)
    assert (msa_code(ingest[0]), msa_code(query[0])) == ("AA", "AA")
