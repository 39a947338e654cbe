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
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.app import _read_in_worker, start_reader_processes
from engine.pipeline import Inbound, MessagePipeline, Route, SenderPolicy
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
    pool = start_reader_processes(pipeline.reader, 1)
    try:
        for raw in messages:
            theirs = pool.submit(_read_in_worker, raw, NOW.date()).result(timeout=60)
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
        pool.shutdown()


def test_the_writer_stores_what_a_worker_read(db: Database) -> None:
    """A VXU read in a worker gets the same ACK and rows as one read by the writer."""
    pipeline = _pipeline(db)
    raw = vxu(control_id="P1", mrn="M1", doses=[Dose(date="20990101"), Dose()]).encode()
    same = vxu(
        control_id="P2", mrn="M2", doses=[Dose(date="20990101"), Dose()]
    ).encode()
    pool = start_reader_processes(pipeline.reader, 1)
    try:
        pending = pool.submit(_read_in_worker, raw, NOW.date())
        (worker,) = pipeline.process_batch([Inbound(raw, "p", "mllp", pending=pending)])
    finally:
        pool.shutdown()
    (writer,) = pipeline.process_batch([Inbound(same, "p", "mllp")])
    assert worker.ack_code == writer.ack_code
    assert errs(worker.payload), "the future dose is a finding"
    assert errs(worker.payload) == errs(writer.payload)
    assert len(db.journal_search(control_id="P1")) == 1


def test_a_failed_worker_leaves_the_message_to_the_writer(db: Database) -> None:
    """A worker that died mid-message: the writer reads the message itself."""
    pipeline = _pipeline(db)
    broken: Future[object] = Future()
    broken.set_exception(RuntimeError("worker died"))
    raw = vxu(control_id="F1", doses=[Dose()]).encode()
    (outcome,) = pipeline.process_batch(
        [Inbound(raw, "p", "mllp", pending=broken)]  # type: ignore[arg-type]
    )
    assert msa_code(outcome.payload) == "AA"
    assert len(db.journal_search(control_id="F1")) == 1


_PARENT = """
import sys, time
from engine.app import start_reader_processes
from engine.pipeline import MessageReader, SenderPolicy
pool = start_reader_processes(MessageReader({}, SenderPolicy({}, "accept", "BAY")), 1)
print(*[p.pid for p in pool._processes.values()], flush=True)
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
    (worker,) = (int(p) for p in parent.stdout.readline().split())
    assert _alive(worker)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30  # a liveness bound, not a speed target
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker)
