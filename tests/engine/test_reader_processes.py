"""Messages read and validated in worker processes, stored by the writer.

The worker's reading must be the writer's own (same header check, digest
and decision); a worker that fails leaves the message to the writer; and a
worker never outlives its parent, even one killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.pipeline import Inbound, MessagePipeline, Route, SenderPolicy
from engine.readers import Pending, ReaderProcesses
from handlers.codes import CodeTables
from handlers.vxu import VxuHandler
from storage import Database
from tests.support.messages import Dose, vxu
from tests.support.mllp import errs, msa_code

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def _pipeline(db: Database) -> MessagePipeline:
    return MessagePipeline(
        database=db,
        routes={"VXU": Route(VxuHandler(CodeTables.load()), "VXU_V04")},
        senders=SenderPolicy({"CLINIC1": "BAY"}, "reject", "BAY"),
        now=lambda: NOW,
    )


def test_a_workers_reading_is_the_writers_own(db: Database) -> None:
    """Header check, digest and validated VXU from a worker equal the writer's."""
    pipeline = _pipeline(db)
    messages = [
        vxu(control_id="W1", doses=[Dose(), Dose(cvx="03")]).encode(),
        # another clinic, not registered: refused at the header, no decision
        vxu(control_id="W2", sender="STRANGER", doses=[Dose()]).encode(),
        # a dose in the future: a finding the worker must carry back
        vxu(control_id="W3", doses=[Dose(date="20990101")]).encode(),
        b"MSH|junk",
    ]
    pool = ReaderProcesses(pipeline.reader, 2)
    try:
        pending = [pool.submit(raw, NOW.date()) for raw in messages]
        for raw, handed in zip(messages, pending, strict=True):
            assert handed is not None
            theirs = handed.result()
            ours = pipeline.reader.read(raw, NOW.date())
            if ours is None:
                assert theirs is None
                continue
            assert theirs is not None
            assert (
                theirs.message is None or ours.decision is None
            )  # no tokens sent back
            assert (theirs.header, theirs.digest, theirs.check, theirs.decision) == (
                ours.header,
                ours.digest,
                ours.check,
                ours.decision,
            )
        assert pipeline.reader.read(messages[0], NOW.date()).decision is not None  # type: ignore[union-attr]
        assert pipeline.reader.read(messages[1], NOW.date()).decision is None  # type: ignore[union-attr]
    finally:
        pool.close()


def test_the_writer_stores_what_a_worker_read(db: Database) -> None:
    """A VXU read in a worker gets the same ACK and rows as one read by the writer."""
    pipeline = _pipeline(db)
    raw = vxu(control_id="P1", mrn="M1", doses=[Dose(date="20990101"), Dose()]).encode()
    same = vxu(
        control_id="P2", mrn="M2", doses=[Dose(date="20990101"), Dose()]
    ).encode()
    pool = ReaderProcesses(pipeline.reader, 1)
    try:
        pending = pool.submit(raw, NOW.date())
        (worker,) = pipeline.process_batch([Inbound(raw, "p", "mllp", pending=pending)])
    finally:
        pool.close()
    (writer,) = pipeline.process_batch([Inbound(same, "p", "mllp")])
    assert worker.ack_code == writer.ack_code
    assert errs(worker.payload), "the future dose is a finding"
    assert errs(worker.payload) == errs(writer.payload)
    assert len(db.journal_search(control_id="P1")) == 1


def test_a_failed_worker_leaves_the_message_to_the_writer(db: Database) -> None:
    """A worker that died mid-message: the writer reads the message itself."""
    pipeline = _pipeline(db)
    pool = ReaderProcesses(pipeline.reader, 1)
    try:
        first = vxu(control_id="F1", doses=[Dose()]).encode()
        second = vxu(control_id="F2", mrn="M2", doses=[Dose()]).encode()
        pending = [pool.submit(first, NOW.date()), pool.submit(second, NOW.date())]
        pid = pool.pids[0]  # the ordinary worker (the large-message one is last)
        os.kill(pid, signal.SIGKILL)
        outcomes = pipeline.process_batch(
            [
                Inbound(first, "p", "mllp", pending=pending[0]),
                Inbound(second, "p", "mllp", pending=pending[1]),
            ]
        )
        # the dead worker takes no more messages: the writer reads them
        assert pool.submit(first, NOW.date()) is None
    finally:
        pool.close()
    assert [msa_code(o.payload) for o in outcomes] == ["AA", "AA"]
    assert len(db.journal_search(control_id="F1")) == 1


def _until_ready(pending: Pending) -> None:
    """Wait (within a liveness bound, not a speed target) until the reading is back."""
    deadline = time.monotonic() + 60
    while not pending.ready() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pending.ready()


def test_a_large_message_is_read_by_the_large_message_worker(db: Database) -> None:
    """A message too large for the pipe goes through the feeder to its own worker.

    The writer is told it is not ready instead of waiting for it, and its
    reading, once there, is the writer's own.
    """
    pipeline = _pipeline(db)
    large = vxu(control_id="L1", doses=[Dose()] * 300).encode()
    assert len(large) > 32 * 1024
    pool = ReaderProcesses(pipeline.reader, 1)
    try:
        slow = pool.submit(large, NOW.date())
        small = pool.submit(vxu(control_id="L2").encode(), NOW.date())
        assert slow is not None and slow.slow
        assert small is not None and not small.slow
        # the small one is answered by the ordinary worker meanwhile
        assert small.result().header.control_id == "L2"
        _until_ready(slow)
        theirs = slow.result()
    finally:
        pool.close()
    ours = pipeline.reader.read(large, NOW.date())
    assert ours is not None
    assert theirs.header == ours.header and theirs.digest == ours.digest
    assert theirs.decision == ours.decision


def test_without_the_large_message_worker_the_writer_reads_large_messages(
    db: Database,
) -> None:
    """``large=False``: a large message is never written to a worker's pipe (the reactor must not block)."""
    pipeline = _pipeline(db)
    pool = ReaderProcesses(pipeline.reader, 1, large=False)
    try:
        large = vxu(control_id="L1", doses=[Dose()] * 300).encode()
        assert pool.submit(large, NOW.date()) is None
        assert pool.submit(vxu(control_id="L2").encode(), NOW.date()) is not None
        assert len(pool.pids) == 1
    finally:
        pool.close()


def test_an_answer_nobody_waits_for_is_skipped(db: Database) -> None:
    """A message dropped before the writer reached it does not shift the answers after it."""
    pipeline = _pipeline(db)
    pool = ReaderProcesses(pipeline.reader, 1)
    try:
        dropped = pool.submit(vxu(control_id="D1").encode(), NOW.date())
        kept = pool.submit(vxu(control_id="D2").encode(), NOW.date())
        assert dropped is not None and kept is not None
        reading = kept.result()
    finally:
        pool.close()
    assert reading.header.control_id == "D2"


_PARENT = """
import sys, time
from engine.readers import Pending, ReaderProcesses
from engine.pipeline import MessageReader, SenderPolicy
pool = ReaderProcesses(MessageReader({}, SenderPolicy({}, "accept", "BAY")), 1)
print(*pool.pids, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) is gone too.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


@pytest.mark.skipif(sys.platform != "linux", reason="fork and /proc")
def test_a_worker_leaves_when_its_parent_is_killed(tmp_path: Path) -> None:
    """SIGKILL of the server (the crash tests do it) leaves no worker behind."""
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert parent.stdout is not None
    workers = [int(p) for p in parent.stdout.readline().split()]
    assert len(workers) == 2  # the ordinary worker and the large-message one
    assert all(_alive(w) for w in workers)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30  # a liveness bound, not a speed target
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers)


def test_an_authenticated_senders_message_is_read_as_accepted(db: Database) -> None:
    """On an authenticated connection MSH-4 need not be registered: the worker knows it."""
    pipeline = _pipeline(db)
    raw = vxu(control_id="A1", sender="ORGFACILITY", doses=[Dose()]).encode()
    pool = ReaderProcesses(pipeline.reader, 1)
    try:
        open_ = pool.submit(raw, NOW.date())
        authenticated = pool.submit(raw, NOW.date(), authenticated=True)
        assert open_ is not None and authenticated is not None
        refused, accepted = open_.result(), authenticated.result()
    finally:
        pool.close()
    assert refused.check.rejections and refused.decision is None
    assert not accepted.check.rejections and accepted.decision is not None
    assert accepted == pipeline.reader.read(
        raw, NOW.date(), keep_tokens=False, authenticated=True
    )


def test_the_hand_off_pickles_dataclasses_by_constructor_only_when_that_is_faithful() -> (
    None
):
    """Plain dataclasses travel as constructor calls; others keep Python's own pickling."""
    import dataclasses
    import pickle

    from engine.readers import _REDUCERS, dumps

    @dataclasses.dataclass(frozen=True, slots=True)
    class Plain:
        a: int
        b: str = "x"

    @dataclasses.dataclass
    class Checked:
        a: int

        def __post_init__(self) -> None:
            self.a = abs(self.a)

    @dataclasses.dataclass(frozen=True)
    class Keyword:
        a: int
        b: int = dataclasses.field(default=0, kw_only=True)

    globals().update(Plain=Plain, Checked=Checked, Keyword=Keyword)
    Plain.__qualname__, Checked.__qualname__, Keyword.__qualname__ = (
        "Plain",
        "Checked",
        "Keyword",
    )
    value = (Plain(1, "y"), [Plain(2)], Keyword(3, b=4), {"k": Plain(5, "z")})
    assert pickle.loads(dumps(value)) == value
    assert Plain in _REDUCERS
    assert _REDUCERS[Plain](Plain(7, "q")) == (Plain, (7, "q"))
    # __post_init__ would run again on a constructor call; kw_only would not be positional
    for cls in (Checked, Keyword):
        with pytest.raises(KeyError):
            _REDUCERS[cls]
    checked = Checked(-3)
    checked.a = -9  # a state its constructor would never produce
    assert pickle.loads(dumps(checked)).a == -9


def test_a_reading_claimed_out_of_order_is_kept_for_its_message(db: Database) -> None:
    """The writer may store a later message first (one parked behind a large message).

    The earlier message's answer, read on the way, is kept for it: its
    result comes back instead of the writer waiting on the pipe forever.
    """
    pipeline = _pipeline(db)
    pool = ReaderProcesses(pipeline.reader, 1)
    try:
        earlier = pool.submit(vxu(control_id="E1").encode(), NOW.date())
        later = pool.submit(vxu(control_id="E2").encode(), NOW.date())
        assert earlier is not None and later is not None
        assert later.result().header.control_id == "E2"
        assert earlier.ready()
        assert earlier.result().header.control_id == "E1"
    finally:
        pool.close()


@pytest.mark.skipif(sys.platform != "linux", reason="SIGSTOP")
def test_a_stuck_large_message_worker_leaves_its_message_to_the_writer(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that never answers does not park a connection's messages for ever."""
    import engine.readers

    monkeypatch.setattr(engine.readers, "STUCK_SECONDS", 0.3)
    pipeline = _pipeline(db)
    large = vxu(control_id="S1", doses=[Dose()] * 200).encode()
    assert len(large) > 32 * 1024
    pool = ReaderProcesses(pipeline.reader, 1)
    stuck = pool.pids[-1]  # the large-message worker
    os.kill(stuck, signal.SIGSTOP)
    try:
        slow = pool.submit(large, NOW.date())
        assert slow is not None and not slow.ready()
        _until_ready(slow)
        (outcome,) = pipeline.process_batch([Inbound(large, "p", "mllp", pending=slow)])
        # later large messages are read by the writer (the worker is given up)
        assert pool.submit(large, NOW.date()) is None
    finally:
        os.kill(stuck, signal.SIGCONT)
        pool.close()
    assert msa_code(outcome.payload) == "AA"
