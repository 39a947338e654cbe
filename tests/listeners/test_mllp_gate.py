"""The MLLP protocol with a connection gate: nothing is read before the gate says who is speaking."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock, StringTransport

from listeners.mllp import CloseAfter, MllpFactory, MllpProtocol
from parsers.mllp import encode_frame


class SessionSink:
    """Records each message with the session it came with."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, object]] = []

    def submit(
        self, raw: bytes, peer: str, listener: str, session: object = None
    ) -> Deferred[bytes]:
        self.received.append((raw, session))
        d: Deferred[bytes] = Deferred()
        d.callback(b"ACK " + raw)
        return d

    def oversize(self, head: bytes, peer: str, listener: str) -> bytes:
        return b"REJECT"


class FakeGate:
    """A gate whose decisions the test makes by hand."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, object | None]] = []
        self.pending: list[Deferred[object | None]] = []
        self.released: list[object] = []

    def admit(
        self, peer: str, certificate: object | None, listener: str
    ) -> Deferred[object | None]:
        self.asked.append((peer, certificate))
        d: Deferred[object | None] = Deferred()
        self.pending.append(d)
        return d

    def release(self, session: object) -> None:
        self.released.append(session)


class TlsTransport(StringTransport):
    """A transport with the TLS peer certificate Twisted's TLS transport offers."""

    def getPeerCertificate(self) -> object:
        return "CERT"


def _connect(tls: bool = False):
    sink, gate = SessionSink(), FakeGate()
    factory = MllpFactory(sink, MemoryReactorClock(), name="test", gate=gate, tls=tls)
    proto: MllpProtocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    cls = TlsTransport if tls else StringTransport
    transport = cls(peerAddress=IPv4Address("TCP", "10.0.0.1", 40000))
    proto.makeConnection(transport)
    return sink, gate, proto, transport


def test_gate_admits_before_anything_is_read() -> None:
    """Frames that arrive before the gate answers wait, then go to the sink with the session."""
    sink, gate, proto, transport = _connect()
    assert gate.asked == [("10.0.0.1:40000", None)]
    assert transport.producerState == "paused"
    proto.dataReceived(encode_frame(b"MSH|1"))
    assert sink.received == []
    gate.pending[0].callback("ORG-A")
    assert transport.producerState == "producing"
    assert sink.received == [(b"MSH|1", "ORG-A")]
    proto.dataReceived(encode_frame(b"MSH|2"))
    assert sink.received[-1] == (b"MSH|2", "ORG-A")
    assert transport.value() == encode_frame(b"ACK MSH|1") + encode_frame(b"ACK MSH|2")


def test_gate_refusal_closes_the_connection_unread() -> None:
    """A peer the gate does not know is closed; its frames never reach the sink."""
    sink, gate, proto, transport = _connect()
    proto.dataReceived(encode_frame(b"MSH|spoof"))
    gate.pending[0].callback(None)
    assert transport.disconnecting
    assert sink.received == []
    assert transport.value() == b""


def test_gate_failure_closes_the_connection() -> None:
    """A gate that fails (the database is down) admits nobody."""
    sink, gate, _proto, transport = _connect()
    gate.pending[0].errback(RuntimeError("database down"))
    assert transport.disconnecting
    assert sink.received == []


def test_gate_session_released_when_the_connection_closes() -> None:
    """The gate hears when an admitted connection closes (its connection count)."""
    _sink, gate, proto, _transport = _connect()
    gate.pending[0].callback("ORG-A")
    proto.connectionLost(None)
    assert gate.released == ["ORG-A"]


def test_gate_session_released_when_closed_while_deciding() -> None:
    """A connection that closes before the gate answers still releases the session it gets."""
    _sink, gate, proto, _transport = _connect()
    proto.connectionLost(None)
    gate.pending[0].callback("ORG-A")
    assert gate.released == ["ORG-A"]


def test_gate_on_tls_waits_for_the_handshake_and_gets_the_certificate() -> None:
    """On a TLS listener the gate is asked after the handshake, with the client certificate."""
    _sink, gate, proto, _transport = _connect(tls=True)
    assert gate.asked == []
    proto.handshakeCompleted()
    assert gate.asked == [("10.0.0.1:40000", "CERT")]


class ClosingSink(SessionSink):
    """Answers like the engine: a refused session's AR closes, a rate-limited one does not."""

    def submit(
        self, raw: bytes, peer: str, listener: str, session: object = None
    ) -> Deferred[bytes]:
        self.received.append((raw, session))
        d: Deferred[bytes] = Deferred()
        if session == "REVOKED":
            d.callback(CloseAfter(b"AR " + raw))
        elif session == "RATE":
            d.callback(b"AR " + raw)
        else:
            d.callback(b"AA " + raw)
        return d


def _connect_as(
    session: object, factory: MllpFactory | None = None
) -> tuple[ClosingSink, MllpProtocol, StringTransport]:
    if factory is None:
        factory = MllpFactory(
            ClosingSink(), MemoryReactorClock(), name="test", gate=FakeGate()
        )
    sink, gate = factory.sink, factory.gate
    assert isinstance(sink, ClosingSink) and isinstance(gate, FakeGate)
    proto: MllpProtocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.1", 40000))
    proto.makeConnection(transport)
    gate.pending[-1].callback(session)
    return sink, proto, transport


def test_close_after_answer_is_written_in_full_then_the_connection_closes() -> None:
    """An attacker's refused connection gets its AR whole, then is let go; frames behind it are not taken."""
    sink, proto, transport = _connect_as("REVOKED")
    proto.dataReceived(encode_frame(b"MSH|1") + encode_frame(b"MSH|2"))
    assert transport.value() == encode_frame(b"AR MSH|1")
    assert transport.disconnecting
    assert sink.received == [(b"MSH|1", "REVOKED")]
    proto.dataReceived(encode_frame(b"MSH|3"))
    assert len(sink.received) == 1
    assert transport.value() == encode_frame(b"AR MSH|1")


def test_close_after_waits_for_the_answers_before_it() -> None:
    """A closing AR behind a slower answer goes out after it, then the connection closes."""
    slow: Deferred[bytes] = Deferred()
    answers = iter([slow])

    class Sink(SessionSink):
        def submit(
            self, raw: bytes, peer: str, listener: str, session: object = None
        ) -> Deferred[bytes]:
            self.received.append((raw, session))
            first = next(answers, None)
            if first is not None:
                return first
            d: Deferred[bytes] = Deferred()
            d.callback(CloseAfter(b"AR " + raw))
            return d

    gate = FakeGate()
    factory = MllpFactory(Sink(), MemoryReactorClock(), name="test", gate=gate)
    proto: MllpProtocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.1", 40000))
    proto.makeConnection(transport)
    gate.pending[0].callback("ORG-A")
    proto.dataReceived(encode_frame(b"MSH|1") + encode_frame(b"MSH|2"))
    assert transport.value() == b"" and not transport.disconnecting
    proto.dataReceived(encode_frame(b"MSH|3"))  # read no more once a close is due
    slow.callback(b"AA MSH|1")
    assert transport.value() == encode_frame(b"AA MSH|1") + encode_frame(b"AR MSH|2")
    assert transport.disconnecting
    assert factory.in_flight == 0


def test_rate_limited_answer_keeps_the_connection_open() -> None:
    """A sender over its message rate is answered AR and may go on sending on the same connection."""
    sink, proto, transport = _connect_as("RATE")
    proto.dataReceived(encode_frame(b"MSH|1"))
    proto.dataReceived(encode_frame(b"MSH|2"))
    assert transport.value() == encode_frame(b"AR MSH|1") + encode_frame(b"AR MSH|2")
    assert not transport.disconnecting
    assert transport.producerState == "producing"
    assert [raw for raw, _ in sink.received] == [b"MSH|1", b"MSH|2"]


def test_ordinary_connection_is_not_closed_by_another_one_closing() -> None:
    """One organization's refused connection closing leaves another's open and answered."""
    _sink, refused_proto, refused = _connect_as("REVOKED")
    _sink, proto, transport = _connect_as("ORG-A", refused_proto.factory)
    refused_proto.dataReceived(encode_frame(b"MSH|x"))
    proto.dataReceived(encode_frame(b"MSH|1"))
    assert refused.disconnecting
    proto.dataReceived(encode_frame(b"MSH|2"))
    assert transport.value() == encode_frame(b"AA MSH|1") + encode_frame(b"AA MSH|2")
    assert not transport.disconnecting
