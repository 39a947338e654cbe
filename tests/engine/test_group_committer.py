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
