"""The group committer's transactions: small messages are not held behind a large one."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from engine.metrics import EngineMetrics
from engine.pipeline import GroupCommitter, Inbound, Outcome


class _RecordingPipeline:
    """Records each transaction's messages; the first one waits until released."""

    def __init__(self) -> None:
        self.metrics = EngineMetrics()
        self.groups: list[list[bytes]] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def process_batch(self, batch: Sequence[Inbound]) -> list[Outcome]:
        if not self.groups:
            self.groups.append([item.raw for item in batch])
            self.started.set()
            self.release.wait(30)
        else:
            self.groups.append([item.raw for item in batch])
        return [Outcome(item.raw, "AA", None) for item in batch]


def _run(items: list[Inbound]) -> list[list[bytes]]:
    pipeline = _RecordingPipeline()
    delivered: list[Any] = []
    committer = GroupCommitter(
        pipeline,  # type: ignore[arg-type]
        lambda token, outcome: delivered.append(token),
        large_bytes=100,
    )
    committer.start()
    # A first message holds the writer while the others queue up together.
    committer.submit(Inbound(b"first", "h:0", "mllp"), "first")
    assert pipeline.started.wait(30)
    for item in items:
        committer.submit(item, item.raw)
    pipeline.release.set()
    committer.stop(30)
    assert len(delivered) == len(items) + 1
    return pipeline.groups[1:]


def test_group_committer_writes_a_large_message_after_the_small_ones() -> None:
    """Queued together, the small messages commit first; the large one alone after them."""
    large = b"L" * 200
    groups = _run(
        [
            Inbound(b"a1", "a:1", "mllp"),
            Inbound(large, "b:1", "mllp"),
            Inbound(b"c1", "c:1", "mllp"),
        ]
    )
    assert groups == [[b"a1", b"c1"], [large]]


def test_group_committer_keeps_one_connections_order_behind_its_large_message() -> None:
    """What a connection sent after its large message is written after it, with it."""
    large = b"L" * 200
    other = b"M" * 150
    groups = _run(
        [
            Inbound(large, "b:1", "mllp"),
            Inbound(b"a1", "a:1", "mllp"),
            Inbound(b"b2", "b:1", "mllp"),
            Inbound(other, "c:1", "mllp"),
            Inbound(b"a2", "a:1", "mllp"),
        ]
    )
    assert groups == [[b"a1", b"a2"], [large, b"b2"], [other]]


class _SlowReading:
    """A large message's reading that a worker process is still working out."""

    slow = True

    def __init__(self) -> None:
        self.arrived = threading.Event()

    def ready(self) -> bool:
        return self.arrived.is_set()

    def result(self) -> None:
        assert self.arrived.is_set(), "the writer waited for a reading not ready"


class _Recording:
    """Records each transaction's messages as they are written."""

    def __init__(self) -> None:
        self.metrics = EngineMetrics()
        self.groups: list[list[bytes]] = []
        self.written = threading.Condition()

    def process_batch(self, batch: Sequence[Inbound]) -> list[Outcome]:
        for item in batch:
            if item.pending is not None:
                item.pending.result()
        with self.written:
            self.groups.append([item.raw for item in batch])
            self.written.notify_all()
        return [Outcome(item.raw, "AA", None) for item in batch]

    def wait_for(self, raw: bytes) -> None:
        with self.written:
            assert self.written.wait_for(
                lambda: any(raw in g for g in self.groups), 30
            ), f"{raw!r} was never written"


def test_the_writer_stores_other_connections_while_a_large_message_is_read() -> None:
    """A large message still being read elsewhere does not hold up other senders.

    What its own connection sent after it waits behind it (order per
    connection); everything is written once the reading arrives, and
    nothing is lost when the writer stops.
    """
    pipeline = _Recording()
    delivered: list[Any] = []
    committer = _committer_with(pipeline, 0.0, delivered, large_bytes=100)
    committer.start()
    reading = _SlowReading()
    large = b"L" * 200
    committer.submit(Inbound(large, "b:1", "mllp", pending=reading), "large")
    committer.submit(Inbound(b"b2", "b:1", "mllp"), "b2")
    committer.submit(Inbound(b"a1", "a:1", "mllp"), "a1")
    pipeline.wait_for(b"a1")
    committer.submit(Inbound(b"c1", "c:1", "mllp"), "c1")
    pipeline.wait_for(b"c1")
    written = [raw for group in pipeline.groups for raw in group]
    assert large not in written and b"b2" not in written
    assert committer.pending() == 2  # parked, still counted as in flight
    reading.arrived.set()
    pipeline.wait_for(b"b2")
    written = [raw for group in pipeline.groups for raw in group]
    assert written.index(large) < written.index(b"b2")
    committer.stop(30)
    assert sorted(delivered) == ["a1", "b2", "c1", "large"]


def test_a_parked_message_is_written_when_the_writer_stops() -> None:
    """Stopping waits for the reading (or the writer reads it): an accepted message is never dropped."""
    pipeline = _Recording()
    delivered: list[Any] = []
    committer = _committer_with(pipeline, 0.0, delivered, large_bytes=100)
    committer.start()
    reading = _SlowReading()
    committer.submit(Inbound(b"L" * 200, "b:1", "mllp", pending=reading), "large")
    committer.submit(Inbound(b"a1", "a:1", "mllp"), "a1")
    pipeline.wait_for(b"a1")
    reading.arrived.set()  # what a worker does, or the writer reading it itself
    committer.stop(30)
    assert sorted(delivered) == ["a1", "large"]


def _committer_with(
    pipeline: _Recording,
    linger: float,
    delivered: list[Any] | None = None,
    *,
    large_bytes: int = 10_000,
) -> GroupCommitter:
    """A committer over ``pipeline``; delivered tokens go to ``delivered``."""
    out: list[Any] = [] if delivered is None else delivered
    return GroupCommitter(
        pipeline,  # type: ignore[arg-type]
        lambda token, outcome: out.append(token),
        large_bytes=large_bytes,
        linger_seconds=linger,
    )


def test_the_writer_waits_for_the_rest_of_a_round_of_senders() -> None:
    """After a transaction of three, a lone message waits (within the linger) for the two behind it."""
    pipeline = _Recording()
    committer = _committer_with(pipeline, linger=10.0)
    # The first round is queued together: one transaction of three.
    _submit_all(committer, [b"a1", b"b1", b"c1"])
    committer.start()
    for name in (b"a1", b"b1", b"c1"):
        pipeline.wait_for(name)
    # The next round trickles in: the first waits for the other two.
    committer.submit(Inbound(b"a2", "a", "mllp"), "a2")
    threading.Timer(0.2, lambda: _submit_all(committer, [b"b2", b"c2"])).start()
    pipeline.wait_for(b"c2")
    committer.stop(30)
    assert pipeline.groups == [[b"a1", b"b1", b"c1"], [b"a2", b"b2", b"c2"]]


def test_a_lone_sender_never_waits_for_others() -> None:
    """At low load (the last transaction held one message) nothing lingers."""
    pipeline = _Recording()
    committer = _committer_with(pipeline, linger=120.0)
    committer.start()
    for name in (b"x1", b"x2", b"x3"):
        committer.submit(Inbound(name, "x", "mllp"), name)
        pipeline.wait_for(name)  # within its liveness bound, far below the linger
    committer.stop(30)
    assert [raw for group in pipeline.groups for raw in group] == [b"x1", b"x2", b"x3"]


def _submit_all(committer: GroupCommitter, names: list[bytes]) -> None:
    for name in names:
        committer.submit(Inbound(name, name.decode(), "mllp"), name)
