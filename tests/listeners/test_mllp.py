"""The MLLP protocol, driven with in-memory transports and a fake clock (no sockets)."""

from __future__ import annotations

from structlog.testing import capture_logs
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock, StringTransport

from listeners.mllp import MllpFactory, MllpProtocol
from parsers.mllp import encode_frame


class FakeSink:
    """A sink whose Deferreds the test fires by hand."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.pending: list[Deferred[bytes]] = []

    def submit(self, raw: bytes, peer: str, listener: str) -> Deferred[bytes]:
        self.received.append(raw)
        d: Deferred[bytes] = Deferred()
        self.pending.append(d)
        return d

    def oversize(self, head: bytes, peer: str, listener: str) -> bytes:
        return b"REJECT " + head[:10]


def _connect(
    max_pipelined: int = 32, idle: float = 60.0, max_bytes: int = 1024
) -> tuple[FakeSink, MllpFactory, MllpProtocol, StringTransport, MemoryReactorClock]:
    sink = FakeSink()
    clock = MemoryReactorClock()
    factory = MllpFactory(
        sink,
        clock,
        name="test",
        max_message_bytes=max_bytes,
        idle_timeout=idle,
        max_pipelined=max_pipelined,
    )
    proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.1", 40000))
    proto.makeConnection(transport)
    return sink, factory, proto, transport, clock


def test_protocol_answers_in_arrival_order() -> None:
    """Pipelined frames are answered in the order they arrived, whatever order they finish in."""
    sink, _, proto, transport, _ = _connect()
    proto.dataReceived(encode_frame(b"first") + encode_frame(b"second"))
    assert sink.received == [b"first", b"second"]
    sink.pending[1].callback(b"ACK2")
    assert transport.value() == b""
    sink.pending[0].callback(b"ACK1")
    assert transport.value() == encode_frame(b"ACK1") + encode_frame(b"ACK2")


def test_protocol_passes_split_frames_whole() -> None:
    """A frame that arrives byte by byte reaches the sink once, whole."""
    sink, _, proto, _, _ = _connect()
    for byte in encode_frame(b"MSH|x"):
        proto.dataReceived(bytes([byte]))
    assert sink.received == [b"MSH|x"]


def test_protocol_pauses_reading_when_too_many_answers_are_pending() -> None:
    """Back-pressure: reading stops beyond max_pipelined pending answers and resumes when back to it."""
    sink, _, proto, transport, _ = _connect(max_pipelined=2)
    proto.dataReceived(encode_frame(b"a") + encode_frame(b"b"))
    assert transport.producerState == "producing"
    proto.dataReceived(encode_frame(b"c"))
    assert transport.producerState == "paused"
    sink.pending[1].callback(b"B")
    assert transport.producerState == "paused"
    sink.pending[0].callback(b"A")
    assert transport.producerState == "producing"
    assert transport.value() == encode_frame(b"A") + encode_frame(b"B")


def test_protocol_closes_without_answer_when_sink_fails() -> None:
    """A message that could not be made durable is never acknowledged: the connection closes."""
    sink, _, proto, transport, _ = _connect()
    proto.dataReceived(encode_frame(b"a"))
    sink.pending[0].errback(RuntimeError("commit failed"))
    assert transport.value() == b""
    assert transport.disconnecting


def test_protocol_rejects_oversize_then_closes() -> None:
    """A frame over the limit gets the sink's reject and the connection is closed."""
    sink, _, proto, transport, _ = _connect(max_bytes=1024)
    proto.dataReceived(b"\x0bMSH|huge" + b"x" * 3000 + b"\x1c\r")
    assert transport.value() == encode_frame(b"REJECT MSH|hugexx")
    assert transport.disconnecting
    assert sink.received == []


def test_protocol_closes_idle_connection() -> None:
    """A connection silent for the idle timeout is closed."""
    _, _, _, transport, clock = _connect(idle=5)
    clock.advance(4)
    assert not transport.disconnecting
    clock.advance(2)
    assert transport.disconnecting


def test_protocol_does_not_time_out_while_answer_pending() -> None:
    """The idle timeout does not close a connection that waits for its answer."""
    sink, _, proto, transport, clock = _connect(idle=5)
    proto.dataReceived(encode_frame(b"a"))
    clock.advance(6)
    assert not transport.disconnecting
    sink.pending[0].callback(b"A")
    assert transport.value() == encode_frame(b"A")


def test_protocol_sends_nothing_for_an_empty_answer() -> None:
    """An empty answer (MSH-16 says not to answer) writes nothing."""
    sink, _, proto, transport, _ = _connect()
    proto.dataReceived(encode_frame(b"a"))
    sink.pending[0].callback(b"")
    assert transport.value() == b""
    assert not transport.disconnecting


def test_factory_quiesce_waits_for_in_flight_then_closes() -> None:
    """Graceful shutdown: reading stops, pending answers go out, then connections close."""
    sink, factory, proto, transport, _ = _connect()
    proto.dataReceived(encode_frame(b"a"))
    done = factory.quiesce()
    assert transport.producerState == "paused"
    assert not done.called
    sink.pending[0].callback(b"A")
    assert done.called
    assert transport.value() == encode_frame(b"A")
    assert transport.disconnecting


def test_protocol_writes_nothing_after_a_failed_answer() -> None:
    """After a sink failure, later answers are not written either: the sender resends from the gap."""
    sink, factory, proto, transport, _ = _connect()
    proto.dataReceived(encode_frame(b"a") + encode_frame(b"b") + encode_frame(b"c"))
    sink.pending[0].callback(b"A")
    sink.pending[1].errback(RuntimeError("commit failed"))
    sink.pending[2].callback(b"C")
    assert transport.value() == encode_frame(b"A")
    assert transport.disconnecting
    assert factory.in_flight == 0


def test_protocol_answers_earlier_frames_before_an_oversize_reject() -> None:
    """An oversize frame's reject leaves after the answers to the frames before it, then the connection closes."""
    sink, _, proto, transport, _ = _connect(max_bytes=100)
    proto.dataReceived(encode_frame(b"first") + b"\x0bMSH|big" + b"x" * 200)
    proto.dataReceived(b"\x1c\r" + encode_frame(b"after"))
    assert transport.producerState == "paused"
    assert not transport.disconnecting
    assert sink.received == [b"first"]
    sink.pending[0].callback(b"ACK1")
    assert transport.value() == encode_frame(b"ACK1") + encode_frame(
        b"REJECT MSH|bigxxx"
    )
    assert transport.disconnecting


def test_protocol_logs_truncated_frame_and_reads_the_next() -> None:
    """A frame cut off by a new VT is logged by length only and the next frame is handled."""
    sink, _, proto, _, _ = _connect()
    with capture_logs() as logs:
        proto.dataReceived(b"\x0bMSH|CANARY" + encode_frame(b"whole"))
    assert sink.received == [b"whole"]
    truncated = [e for e in logs if e["event"] == "frame_truncated"]
    assert truncated == [
        {
            "event": "frame_truncated",
            "log_level": "warning",
            "peer": "10.0.0.1:40000",
            "listener": "test",
            "bytes": 10,
        }
    ]
    assert "CANARY" not in repr(logs)


def test_protocol_idle_timeout_restarts_after_the_answer() -> None:
    """The idle timeout counts from the answer, not from the frame that waited for it."""
    sink, _, proto, transport, clock = _connect(idle=5)
    proto.dataReceived(encode_frame(b"a"))
    clock.advance(100)
    sink.pending[0].callback(b"A")
    clock.advance(4)
    assert not transport.disconnecting
    clock.advance(2)
    assert transport.disconnecting


def test_protocol_activity_postpones_idle_timeout() -> None:
    """Bytes received restart the idle timer."""
    _, _, proto, transport, clock = _connect(idle=5)
    clock.advance(4)
    proto.dataReceived(b"\x0bMSH|par")
    clock.advance(4)
    assert not transport.disconnecting
    clock.advance(2)
    assert transport.disconnecting


def test_factory_quiesce_refuses_new_connections() -> None:
    """Once quiescing, a new connection is closed at once."""
    _, factory, _, _, _ = _connect()
    factory.quiesce()
    proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.2", 40001))
    proto.makeConnection(transport)
    assert transport.disconnecting


def test_factory_quiesce_takes_no_new_frames() -> None:
    """Frames read after quiesce are not handed to the sink (they get no answer and are resent)."""
    sink, factory, proto, transport, _ = _connect()
    proto.dataReceived(encode_frame(b"a"))
    done = factory.quiesce()
    proto.dataReceived(encode_frame(b"b"))
    assert sink.received == [b"a"]
    sink.pending[0].callback(b"A")
    assert done.called
    assert transport.value() == encode_frame(b"A")


def test_factory_quiesce_with_no_connections_fires_at_once() -> None:
    """With nothing connected, quiesce fires immediately, and again when called twice."""
    sink = FakeSink()
    factory = MllpFactory(
        sink, MemoryReactorClock(), name="t", max_message_bytes=1024, idle_timeout=5
    )
    assert factory.quiesce().called
    assert factory.quiesce().called


def test_factory_quiesce_waits_for_messages_of_a_lost_connection() -> None:
    """A connection lost with a message in flight still holds quiesce until the sink is done with it."""
    sink, factory, proto, transport, _ = _connect()
    proto.dataReceived(encode_frame(b"a"))
    proto.connectionLost(None)
    done = factory.quiesce()
    assert factory.in_flight == 1
    assert not done.called
    sink.pending[0].callback(b"A")
    assert done.called
    assert factory.in_flight == 0
    assert transport.value() == b""


def test_factory_tracks_connections() -> None:
    """The factory knows its live connections."""
    _, factory, proto, _, _ = _connect()
    assert factory.connections == {proto}
    proto.connectionLost(None)
    assert factory.connections == set()


# -- bounded resources per peer (issue 18 item 7) ------------------------------


def _factory(**limits: float) -> tuple[FakeSink, MllpFactory, MemoryReactorClock]:
    sink = FakeSink()
    clock = MemoryReactorClock()
    factory = MllpFactory(
        sink,
        clock,
        name="test",
        max_message_bytes=1024,
        idle_timeout=300,
        **limits,  # type: ignore[arg-type]
    )
    return sink, factory, clock


def _peer(
    factory: MllpFactory, host: str = "10.0.0.1", port: int = 40000
) -> tuple[MllpProtocol, StringTransport]:
    proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", host, port))
    proto.makeConnection(transport)
    return proto, transport


def test_protocol_frame_trickled_a_byte_a_second_is_cut_at_the_deadline() -> None:
    """A byte a second keeps the idle timer alive, but not past the frame deadline."""
    sink, factory, clock = _factory(frame_timeout=30)
    proto, transport = _peer(factory)
    proto.dataReceived(b"\x0bMSH|")
    for _ in range(29):
        clock.advance(1)
        proto.dataReceived(b"x")
    assert not transport.disconnecting
    clock.advance(1)
    assert transport.disconnecting
    assert sink.received == []
    assert factory.buffered == 0


def test_protocol_frame_restarted_with_vt_keeps_its_deadline() -> None:
    """Starting the frame over (VT again) does not restart its clock."""
    _, factory, clock = _factory(frame_timeout=10)
    proto, transport = _peer(factory)
    for _ in range(10):
        proto.dataReceived(b"\x0bMS")
        clock.advance(1)
    assert transport.disconnecting


def test_protocol_frame_deadline_restarts_for_each_frame() -> None:
    """A frame that ends in time is taken; the next one has its own deadline."""
    sink, factory, clock = _factory(frame_timeout=10)
    proto, transport = _peer(factory)
    proto.dataReceived(b"\x0bMSH|a")
    clock.advance(9)
    proto.dataReceived(b"\x1c\r\x0bMSH|b")
    sink.pending[0].callback(b"A")
    clock.advance(9)
    assert not transport.disconnecting
    assert sink.received == [b"MSH|a"]
    clock.advance(1)
    assert transport.disconnecting


def test_protocol_frame_deadline_lets_earlier_answers_out_first() -> None:
    """Past a frame's deadline, the answer to an earlier frame is still written, then the close."""
    sink, factory, clock = _factory(frame_timeout=10)
    proto, transport = _peer(factory)
    proto.dataReceived(encode_frame(b"first") + b"\x0bMSH|slow")
    clock.advance(10)
    assert not transport.disconnecting
    proto.dataReceived(b"more")
    sink.pending[0].callback(b"ACK1")
    assert transport.value() == encode_frame(b"ACK1")
    assert transport.disconnecting
    assert sink.received == [b"first"]


def test_protocol_junk_does_not_postpone_the_idle_timeout() -> None:
    """Bytes outside any frame (no VT) are not activity: the idle timeout still closes."""
    _, factory, clock = _factory(frame_timeout=10)
    proto, transport = _peer(factory)
    for _ in range(301):
        proto.dataReceived(b"j")
        clock.advance(1)
    assert transport.disconnecting


def test_factory_closes_connections_over_the_listener_cap() -> None:
    """One connection more than max_connections is closed as soon as it is accepted."""
    _, factory, _ = _factory(max_connections=2)
    first = [_peer(factory, f"10.0.0.{i}")[1] for i in (1, 2)]
    proto, third = _peer(factory, "10.0.0.3")
    assert third.disconnecting
    assert not any(t.disconnecting for t in first)
    proto.connectionLost(None)
    assert len(factory.connections) == 2
    _, fourth = _peer(factory, "10.0.0.4")
    assert fourth.disconnecting


def test_factory_closes_connections_over_the_per_address_cap() -> None:
    """Another address is still accepted when one address has used its share."""
    _, factory, _ = _factory(max_connections_per_address=2)
    protos = [_peer(factory, "10.0.0.9", 40000 + i) for i in range(3)]
    assert [t.disconnecting for _, t in protos] == [False, False, True]
    _, other = _peer(factory, "10.0.0.8")
    assert not other.disconnecting
    protos[0][0].connectionLost(None)
    protos[2][0].connectionLost(None)
    _, again = _peer(factory, "10.0.0.9", 41000)
    assert not again.disconnecting
    assert factory.per_host == {"10.0.0.9": 2, "10.0.0.8": 1}


def test_factory_bounds_unfinished_frames_of_all_connections_together() -> None:
    """Unfinished frames share one budget: the connection that would exceed it is closed."""
    sink, factory, _ = _factory(max_buffered_bytes=1500)
    one, t1 = _peer(factory, "10.0.0.1")
    two, t2 = _peer(factory, "10.0.0.2")
    one.dataReceived(b"\x0b" + b"a" * 700)
    two.dataReceived(b"\x0b" + b"b" * 700)
    assert factory.buffered == 1400
    two.dataReceived(b"b" * 200)
    assert t2.disconnecting
    assert not t1.disconnecting
    assert factory.buffered == 700
    one.dataReceived(b"\x1c\r")
    assert sink.received == [b"a" * 700]
    assert factory.buffered == 0


def test_protocol_connection_lost_releases_its_unfinished_frame() -> None:
    """A connection dropped mid-frame gives its bytes back to the budget."""
    _, factory, _ = _factory()
    proto, _ = _peer(factory)
    proto.dataReceived(b"\x0b" + b"a" * 500)
    assert factory.buffered == 500
    proto.connectionLost(None)
    assert factory.buffered == 0


def test_protocol_frame_deadline_waits_while_back_pressure_holds_reading() -> None:
    """A frame we stopped reading (too many answers pending) is not the sender's delay."""
    sink, factory, clock = _factory(frame_timeout=10, max_pipelined=1)
    proto, transport = _peer(factory)
    proto.dataReceived(encode_frame(b"a") + encode_frame(b"b") + b"\x0bMSH|c")
    assert transport.producerState == "paused"
    clock.advance(25)
    assert not transport.disconnecting
    sink.pending[0].callback(b"A")
    sink.pending[1].callback(b"B")
    assert transport.producerState == "producing"
    proto.dataReceived(b"\x1c\r")
    assert sink.received == [b"a", b"b", b"MSH|c"]
