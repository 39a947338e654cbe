"""The engine's metrics after a known set of messages: exact counts, on a registry of its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from config import load_settings, with_overrides
from engine.app import start_server
from engine.metrics import UNREGISTERED_SENDER_LABELS, EngineMetrics
from engine.pipeline import (
    GroupCommitter,
    Inbound,
    MessagePipeline,
    Route,
    SenderPolicy,
)
from handlers.codes import CodeTables
from handlers.vxu import VxuHandler
from storage import (
    Database,
    PermanentStorageError,
    TransientStorageError,
    UnitOfWork,
)
from tests.conftest import SHARED, shared_path
from tests.e2e.test_queries import qbp
from tests.support.messages import CANARY_FAMILY, CANARY_GIVEN, CANARY_MRN, Dose, vxu
from tests.support.mllp import msa_code
from tests.support.registry import build_registry

_ACK = "MSH|^~\\&|EHR|CLINIC1|CAIRN|CAIRN|20240601||ACK^V04^ACK|K1|P|2.5.1\rMSA|AA|X1\r"


def _messages(m: EngineMetrics, **labels: str) -> float:
    return m.value("cairn_messages_total", labels)


def test_messages_are_counted_by_type_outcome_and_sender(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nine messages from two clinics, a stranger and a junk sender: each counted once where it belongs."""
    metrics = EngineMetrics()
    registry = build_registry(db, tmp_path, monkeypatch, metrics=metrics)
    first = vxu(control_id="A1", doses=[Dose()])
    batch = [
        first,
        vxu(control_id="A2", doses=[Dose()]),
        vxu(control_id="B1", sender="CLINIC2", doses=[Dose()]),
        vxu(control_id="A3", doses=[Dose(date="20990101")]),  # future dose: AE
        vxu(control_id="S1", sender="STRANGER", doses=[Dose()]),  # unregistered: AR
        "garbage that is not HL7\r",
        _ACK,  # a response: not answered
        qbp(control_id="Q1", name="Nobody^None", dob="20200101"),
    ]
    outcomes = registry.pipeline.process_batch(
        [Inbound(m.encode(), "127.0.0.1:1", "mllp") for m in batch]
    )
    assert [o.ack_code for o in outcomes] == [
        "AA",
        "AA",
        "AA",
        "AE",
        "AR",
        "AR",
        "",
        "AA",
    ]
    assert msa_code(registry.send(first)) == "AA"  # a resend: answered, counted again

    expected = {
        ("VXU", "AA", "CLINIC1"): 3,
        ("VXU", "AA", "CLINIC2"): 1,
        ("VXU", "AE", "CLINIC1"): 1,
        ("VXU", "AR", "STRANGER"): 1,
        ("unreadable", "AR", "_none"): 1,
        ("other", "none", "CLINIC1"): 1,
        ("QBP", "AA", "CLINIC1"): 1,
    }
    counted = {
        (s.labels["message_type"], s.labels["outcome"], s.labels["sender"]): s.value
        for family in metrics.registry.collect()
        if family.name == "cairn_messages"
        for s in family.samples
        if s.name == "cairn_messages_total"
    }
    assert counted == expected
    content_type, page = metrics.render()
    assert content_type.startswith("text/plain")
    assert (
        b'cairn_messages_total{message_type="VXU",outcome="AA",sender="CLINIC1"} 3.0'
        in page
    )
    for canary in (CANARY_FAMILY, CANARY_GIVEN, CANARY_MRN):
        assert canary.encode() not in page


def test_each_engine_counts_on_its_own_registry(db: Database) -> None:
    """Two pipelines in one process do not see each other's counts (nor the global registry)."""
    from prometheus_client import REGISTRY

    one, two = _pipeline(db), _pipeline(db)
    one.process_batch(
        [Inbound(vxu(control_id="I1", doses=[Dose()]).encode(), "p", "l")]
    )
    assert (
        _messages(one.metrics, message_type="VXU", outcome="AA", sender="CLINIC1") == 1
    )
    assert (
        _messages(two.metrics, message_type="VXU", outcome="AA", sender="CLINIC1") == 0
    )
    assert (
        REGISTRY.get_sample_value("cairn_messages_total", {"sender": "CLINIC1"}) is None
    )


def test_unregistered_senders_share_one_label_beyond_the_cap() -> None:
    """Junk MSH-4 values cannot grow the page without bound; registered senders always keep theirs; an empty MSH-4 is _none."""
    metrics = EngineMetrics()
    strangers = [(f"X{i}", False) for i in range(UNREGISTERED_SENDER_LABELS + 5)]
    metrics.messages_answered(
        [("VXU", sender, known, "AR") for sender, known in strangers]
        + [("VXU", "CLINIC1", True, "AA"), ("VXU", "", False, "AE")]
    )
    assert _messages(metrics, message_type="VXU", outcome="AE", sender="_none") == 1
    assert _messages(metrics, message_type="VXU", outcome="AR", sender="X0") == 1
    assert _messages(metrics, message_type="VXU", outcome="AR", sender="_other") == 5
    assert _messages(metrics, message_type="VXU", outcome="AA", sender="CLINIC1") == 1


class _Raising:
    """A VXU handler whose work fails with the given exception."""

    def __init__(self, exc: Exception) -> None:
        self._exc = exc

    def handle(self, message: Any, ctx: Any, uow: UnitOfWork, log: Any) -> Any:
        raise self._exc


def _pipeline(db: Any, handler: Any = None) -> MessagePipeline:
    return MessagePipeline(
        database=db,
        routes={"VXU": Route(handler or VxuHandler(CodeTables.load()), "VXU_V04")},
        senders=SenderPolicy({"CLINIC1": "BAY", "CLINIC2": "LAO"}, "reject", "BAY"),
    )


def test_database_errors_are_counted_by_kind(db: Database) -> None:
    """An unavailable database and a refused value each count once; their messages are answered AE."""
    unavailable = _pipeline(db, _Raising(TransientStorageError("timeout")))
    refused = _pipeline(db, _Raising(PermanentStorageError("value too long")))
    for pipeline in (unavailable, refused):
        (outcome,) = pipeline.process_batch(
            [Inbound(vxu(control_id="E1", doses=[Dose()]).encode(), "p", "l")]
        )
        assert outcome.ack_code == "AE"
    assert (
        unavailable.metrics.value(
            "cairn_database_errors_total", {"kind": "unavailable"}
        )
        == 1
    )
    assert (
        unavailable.metrics.value("cairn_database_errors_total", {"kind": "refused"})
        == 0
    )
    assert (
        refused.metrics.value("cairn_database_errors_total", {"kind": "refused"}) == 1
    )
    assert (
        _messages(refused.metrics, message_type="VXU", outcome="AE", sender="CLINIC1")
        == 1
    )


class _CommitFails:
    """A real database whose commits fail (the transaction is rolled back)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    @contextmanager
    def transaction(self) -> Iterator[UnitOfWork]:
        with self._db.transaction() as uow:
            yield uow
            raise TransientStorageError("the connection was lost at commit")


def _drain(committer: GroupCommitter, items: list[Inbound]) -> None:
    """Queue ``items`` before the writer starts (so they form one batch); run them."""
    for n, item in enumerate(items):
        committer.submit(item, n)
    committer.start()
    committer.stop(60)


def test_group_commit_size_and_writer_time_per_committed_batch(db: Database) -> None:
    """Five messages queued together are one transaction of five; the writer's time is counted."""
    pipeline = _pipeline(db)
    delivered: list[Any] = []
    committer = GroupCommitter(
        pipeline, lambda token, outcome: delivered.append(outcome), max_batch=64
    )
    _drain(
        committer,
        [
            Inbound(vxu(control_id=f"G{i}", doses=[Dose()]).encode(), "p", "l")
            for i in range(5)
        ],
    )
    assert [o.ack_code for o in delivered] == ["AA"] * 5
    m = pipeline.metrics
    assert m.value("cairn_group_commit_size_count") == 1
    assert m.value("cairn_group_commit_size_sum") == 5
    assert m.value("cairn_writer_busy_seconds_total") > 0
    assert _messages(m, message_type="VXU", outcome="AA", sender="CLINIC1") == 5


def test_a_failed_commit_counts_a_database_error_and_no_answered_message(
    db: Database,
) -> None:
    """A batch whose commit fails answers nothing: no message is counted, the error is."""
    pipeline = _pipeline(_CommitFails(db))
    delivered: list[Any] = []
    committer = GroupCommitter(
        pipeline, lambda token, outcome: delivered.append(outcome), max_batch=64
    )
    _drain(
        committer,
        [
            Inbound(vxu(control_id=f"C{i}", doses=[Dose()]).encode(), "p", "l")
            for i in range(2)
        ],
    )
    assert len(delivered) == 2
    assert all(isinstance(o, TransientStorageError) for o in delivered)
    m = pipeline.metrics
    assert m.value("cairn_database_errors_total", {"kind": "commit"}) == 1
    assert m.value("cairn_group_commit_size_count") == 0
    assert _messages(m, message_type="VXU", outcome="AA", sender="CLINIC1") == 0


class _Reactor(MemoryReactorClock):
    """callFromThread runs the call at once, on the caller's thread."""

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        f(*args, **kw)


class _Gated:
    """A real database whose writer transactions wait until the test opens the gate."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.entered = threading.Event()
        self.gate = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    @contextmanager
    def transaction(self) -> Iterator[UnitOfWork]:
        self.entered.set()
        self.gate.wait(30)
        with self._db.transaction() as uow:
            yield uow


def _wait_for(results: list[list[Any]]) -> None:
    deadline = time.monotonic() + 60
    while not all(results) and time.monotonic() < deadline:
        time.sleep(0.01)


def test_queue_depth_and_ack_latency_through_the_sink(
    db: Database, tmp_path: Path
) -> None:
    """Two messages behind a busy writer are the queue depth, a third is refused; every answer is one latency sample per path."""
    settings = with_overrides(
        load_settings(None, environ={}),
        server={"data_dir": str(tmp_path), "listen": "127.0.0.1:0", "max_in_flight": 2},
    )
    gated = _Gated(db)
    server = start_server(_Reactor(), settings, gated)  # type: ignore[arg-type]
    metrics = server.metrics
    assert metrics is not None
    results: list[list[Any]] = []

    def submit(message: str) -> None:
        out: list[Any] = []
        d: Deferred[bytes] = server.sink.submit(message.encode(), "p", "mllp")
        d.addBoth(out.append)
        results.append(out)

    try:
        submit(vxu(control_id="L1", doses=[Dose()]))
        assert gated.entered.wait(30)  # the writer holds the first message
        submit(vxu(control_id="L2", doses=[Dose()]))
        submit(vxu(control_id="L3", doses=[Dose()]))
        assert metrics.value("cairn_queue_depth") == 2
        submit(vxu(control_id="L4", doses=[Dose()]))  # one more than max_in_flight
        refused = results.pop()
        assert len(refused) == 1 and isinstance(refused[0], Failure)
        assert (
            metrics.value("cairn_messages_refused_total", {"reason": "overloaded"}) == 1
        )
        gated.gate.set()
        _wait_for(results)
        submit(qbp(control_id="LQ", name="Nobody^None", dob="20200101"))
        _wait_for(results)
        assert [msa_code(r[0]) for r in results] == ["AA", "AA", "AA", "AA"]
        assert metrics.value("cairn_queue_depth") == 0
        assert metrics.value("cairn_ack_latency_seconds_count", {"path": "ingest"}) == 3
        assert metrics.value("cairn_ack_latency_seconds_count", {"path": "query"}) == 1
    finally:
        gated.gate.set()
        server.sink.stop()


def test_forecast_time_is_observed_once_per_z44(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Z44 on a stored child runs the forecast once: one sample, and CDSi counts as loaded."""
    shared_path("CAIRN_CDSI_DIR", SHARED / "cdsi" / "supporting-data", "CDSi data")
    metrics = EngineMetrics()
    registry = build_registry(db, tmp_path, monkeypatch, metrics=metrics)
    assert metrics.value("cairn_cdsi_loaded") == 1
    assert msa_code(registry.send(vxu(control_id="V1", doses=[Dose()]))) == "AA"
    assert metrics.value("cairn_forecast_seconds_count") == 0
    z44 = qbp(
        query="Z44",
        control_id="Z1",
        ids=f"{CANARY_MRN}^^^EHR^MR",
        name=f"{CANARY_FAMILY}^{CANARY_GIVEN}",
        dob="20230105",
    )
    assert msa_code(registry.send(z44)) == "AA"
    assert metrics.value("cairn_forecast_seconds_count") == 1


def test_an_oversize_message_counts_as_answered_ar() -> None:
    """The reject of a message over the size limit is counted like any AR, under its MSH's sender."""
    pipeline = _pipeline(None)
    pipeline.oversize(vxu(control_id="BIG1").encode()[:300], "p", "mllp")
    pipeline.oversize(b"\x00\x01 not even HL7", "p", "mllp")
    assert (
        _messages(pipeline.metrics, message_type="VXU", outcome="AR", sender="CLINIC1")
        == 1
    )
    assert (
        _messages(
            pipeline.metrics, message_type="unreadable", outcome="AR", sender="_none"
        )
        == 1
    )


def test_connections_closed_by_a_per_peer_limit_are_counted_by_limit() -> None:
    """Each limit that closes an MLLP connection counts under its own reason, present at 0."""
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    from listeners.mllp import MllpFactory

    metrics = EngineMetrics()

    class _Sink:
        def submit(self, raw: bytes, peer: str, listener: str) -> Deferred[bytes]:
            return Deferred()

        def oversize(self, head: bytes, peer: str, listener: str) -> bytes:
            return b""

    clock = MemoryReactorClock()
    factory = MllpFactory(
        _Sink(),
        clock,
        max_connections_per_address=1,
        frame_timeout=5,
        on_limited=metrics.connection_limited,
    )

    def connect(host: str) -> Any:
        proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 2575))
        proto.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", host, 1)))
        return proto

    slow = connect("10.0.0.1")
    connect("10.0.0.1")  # over the per-address cap
    slow.dataReceived(b"\x0bMSH|")
    clock.advance(5)  # the frame deadline passes

    def limited(reason: str) -> float:
        return metrics.value("cairn_connections_limited_total", {"reason": reason})

    assert [
        limited(r) for r in ("connections", "address", "frame_timeout", "buffer")
    ] == [
        0,
        1,
        1,
        0,
    ]
