"""Back-pressure: with a slow database the engine stops reading instead of queueing without bound."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from engine.app import PipelineSink
from engine.pipeline import MessagePipeline, Route, SenderPolicy
from handlers.codes import CodeTables
from handlers.vxu import VxuHandler
from listeners.mllp import MllpFactory
from parsers.mllp import encode_frame
from storage import Database, UnitOfWork
from tests.support.messages import Dose, vxu
from tests.support.mllp import msa_code


class SlowDatabase:
    """A real database whose every transaction takes at least ``delay`` seconds."""

    def __init__(self, db: Database, delay: float) -> None:
        self._db = db
        self._delay = delay

    @contextmanager
    def transaction(self) -> Iterator[UnitOfWork]:
        time.sleep(self._delay)
        with self._db.transaction() as uow:
            yield uow


class ImmediateThreads:
    """callFromThread that runs the call at once (the test polls from one thread)."""

    def callFromThread(self, f: Callable[..., Any], *args: Any) -> None:
        f(*args)


def _setup(
    db: Database, *, delay: float, max_queue: int, max_pipelined: int
) -> tuple[PipelineSink, StringTransport, Any]:
    pipeline = MessagePipeline(
        database=SlowDatabase(db, delay),  # type: ignore[arg-type]
        routes={"VXU": Route(VxuHandler(CodeTables.load()), "VXU_V04")},
        senders=SenderPolicy({}, "accept", "BAY"),
    )
    sink = PipelineSink(ImmediateThreads(), pipeline, max_batch=2, max_queue=max_queue)  # type: ignore[arg-type]
    sink.start()
    factory = MllpFactory(
        sink,
        MemoryReactorClock(),
        name="t",
        max_message_bytes=1 << 20,
        idle_timeout=60,
        max_pipelined=max_pipelined,
    )
    proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    transport = StringTransport()
    proto.makeConnection(transport)
    return sink, transport, proto


def _wait(predicate: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_backpressure_pauses_reading_until_the_slow_database_catches_up(
    db: Database,
) -> None:
    """More unanswered frames than allowed pause the socket; every answer still arrives, in order."""
    sink, transport, proto = _setup(db, delay=0.05, max_queue=100, max_pipelined=3)
    try:
        frames = b"".join(
            encode_frame(
                vxu(
                    control_id=f"BP{i}", mrn=f"BP{i}", doses=[Dose(filler=f"F{i}")]
                ).encode()
            )
            for i in range(6)
        )
        proto.dataReceived(frames)
        assert transport.producerState == "paused"
        _wait(lambda: transport.value().count(b"\x1c\r") == 6)
        answers = [a for a in transport.value().split(b"\x1c\r") if a]
        assert [msa_code(a.lstrip(b"\x0b")) for a in answers] == ["AA"] * 6, answers[0]
        assert [a.split(b"MSA|AA|")[1][:3] for a in answers] == [
            b"BP0",
            b"BP1",
            b"BP2",
            b"BP3",
            b"BP4",
            b"BP5",
        ]
        assert transport.producerState == "producing"
    finally:
        sink.stop()


def test_backpressure_full_queue_closes_instead_of_queueing(db: Database) -> None:
    """When the engine's queue is full a message is refused by closing the connection, never ACKed falsely."""
    sink, transport, proto = _setup(db, delay=0.3, max_queue=2, max_pipelined=50)
    try:
        frames = b"".join(
            encode_frame(
                vxu(
                    control_id=f"Q{i}", mrn=f"Q{i}", doses=[Dose(filler=f"G{i}")]
                ).encode()
            )
            for i in range(10)
        )
        proto.dataReceived(frames)
        _wait(lambda: transport.disconnecting)
        assert transport.disconnecting
        _wait(lambda: sink._committer.pending() == 0)
        answered = transport.value().count(b"MSA|AA|")
        assert answered < 10
        stored = {e.control_id for e in db.journal_search(limit=100)}
        assert len(stored) <= 10
        assert all(
            f"MSA|AA|{cid}".encode() not in transport.value() or cid in stored
            for cid in (f"Q{i}" for i in range(10))
        )
    finally:
        sink.stop()
