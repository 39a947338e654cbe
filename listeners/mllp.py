"""The MLLP listener: a Twisted protocol that frames bytes and nothing more.

Each complete frame goes to an injected :class:`MessageSink`, whose Deferred
fires with the response payload once the message is durable; responses are
written back in arrival order per connection. The protocol knows nothing of
HL7 content.

- Back-pressure: when more than ``max_pipelined`` frames of one connection are
  waiting for their answers, the connection stops reading until they drain.
- Oversize: the sink's reject is written, then the connection is closed.
- A failed Deferred (the message could not be made durable) closes the
  connection without an answer, so the sender retries; an ACK is never faked.
- Idle connections are closed after ``idle_timeout`` seconds (not while an
  answer is pending).
- :meth:`MllpFactory.quiesce` stops reading everywhere, waits for in-flight
  answers to be written, then closes the connections (graceful shutdown).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol, cast

import structlog
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import Factory
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from parsers.mllp import Frame, FrameDecoder, Oversize, Truncated, encode_frame

logger = structlog.get_logger()


class MessageSink(Protocol):
    """Where framed messages go (the engine's pipeline)."""

    def submit(self, raw: bytes, peer: str, listener: str) -> Deferred[bytes]:
        """Process a message; fire with the response payload (b"" for none)."""

    def oversize(self, head: bytes, peer: str, listener: str) -> bytes:
        """The reject payload for a message over the size limit."""


class _Transport(Protocol):
    """The transport methods the protocol uses (Twisted's are zope interfaces)."""

    def write(self, data: bytes) -> None:
        """Send bytes."""

    def loseConnection(self) -> None:
        """Close after pending writes."""

    def pauseProducing(self) -> None:
        """Stop reading."""

    def resumeProducing(self) -> None:
        """Read again."""

    def getPeer(self) -> IAddress:
        """The remote address."""


class _Slot:
    """The answer to one frame, once its Deferred has fired."""

    __slots__ = ("done", "failure", "value")

    def __init__(self) -> None:
        self.done = False
        self.value = b""
        self.failure: Failure | None = None

    def fill(self, result: bytes | Failure) -> None:
        self.done = True
        if isinstance(result, Failure):
            self.failure = result
        else:
            self.value = result


def _peer_text(address: IAddress) -> str:
    host = getattr(address, "host", "")
    port = getattr(address, "port", "")
    return f"{host}:{port}" if host else str(address)


class MllpProtocol(TwistedProtocol, TimeoutMixin):
    """One MLLP connection."""

    factory: MllpFactory

    def __init__(self, factory: MllpFactory) -> None:
        self.factory = factory
        self._decoder = FrameDecoder(factory.max_message_bytes)
        self._pending: deque[_Slot] = deque()
        self._paused = False
        self._closing = False
        self._peer = ""
        self.messages = 0

    @property
    def _t(self) -> _Transport:
        return cast(_Transport, self.transport)

    # -- connection ---------------------------------------------------------

    def connectionMade(self) -> None:
        """Register with the factory and start the idle timer."""
        self._peer = _peer_text(self._t.getPeer())
        self.callLater = self.factory.clock.callLater  # type: ignore[method-assign,assignment] # TimeoutMixin's clock
        self.factory.connections.add(self)
        if self.factory.quiescing:
            self._t.loseConnection()
            return
        self.setTimeout(self.factory.idle_timeout)  # type: ignore[no-untyped-call]
        logger.info(
            "connection_opened",
            peer=self._peer,
            listener=self.factory.name,
            connections=len(self.factory.connections),
        )

    def connectionLost(self, reason: Failure | None = None) -> None:
        """Forget the connection."""
        self.setTimeout(None)  # type: ignore[no-untyped-call]
        self.factory.connections.discard(self)
        logger.info(
            "connection_closed",
            peer=self._peer,
            listener=self.factory.name,
            count=self.messages,
            connections=len(self.factory.connections),
        )

    def timeoutConnection(self) -> None:
        """Close an idle connection."""
        if self._pending:
            self.resetTimeout()  # type: ignore[no-untyped-call]
            return
        logger.info(
            "connection_idle_timeout", peer=self._peer, listener=self.factory.name
        )
        self._t.loseConnection()

    # -- data ---------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """Cut frames and hand them on."""
        if self._closing:
            return
        self.resetTimeout()  # type: ignore[no-untyped-call]
        for event in self._decoder.feed(data):
            if isinstance(event, Frame):
                self._submit(event.payload)
            elif isinstance(event, Oversize):
                self._oversize(event.head)
                return
            elif isinstance(event, Truncated):
                logger.warning(
                    "frame_truncated",
                    peer=self._peer,
                    listener=self.factory.name,
                    bytes=event.length,
                )
        if (
            self._decoder.buffered > self.factory.max_message_bytes + 2
        ):  # pragma: no cover - decoder bounds it
            self._oversize(b"")

    def _submit(self, payload: bytes) -> None:
        self.messages += 1
        self.factory.in_flight += 1
        slot = _Slot()
        self._pending.append(slot)
        try:
            d = self.factory.sink.submit(payload, self._peer, self.factory.name)
        except Exception:  # the sink must not raise, but a listener never dies of it
            logger.exception("sink_raised", peer=self._peer, listener=self.factory.name)
            d = Deferred()
            d.errback(Failure())  # type: ignore[no-untyped-call]
        d.addBoth(slot.fill).addBoth(lambda _: self._flush())
        if len(self._pending) >= self.factory.max_pipelined and not self._paused:
            self._paused = True
            self._t.pauseProducing()

    def _flush(self) -> None:
        """Write every answer at the head of the queue that is ready, in order."""
        while self._pending and self._pending[0].done:
            slot = self._pending.popleft()
            self.factory.in_flight -= 1
            if slot.failure is not None:
                failure = slot.failure
                logger.warning(
                    "message_not_answered",
                    peer=self._peer,
                    listener=self.factory.name,
                    error_type=failure.type.__name__ if failure.type else "",
                )
                self._abandon()
                return
            if slot.value and not self._closing:
                self._t.write(encode_frame(slot.value))
        if (
            self._paused
            and len(self._pending) < self.factory.max_pipelined
            and not self.factory.quiescing
            and not self._closing
        ):
            self._paused = False
            self._t.resumeProducing()
        if not self._pending:
            self.factory.drained(self)

    def _abandon(self) -> None:
        """Drop the connection without answering what is still pending."""
        self._closing = True
        self.factory.in_flight -= len(self._pending)
        self._pending.clear()
        self._t.loseConnection()
        self.factory.drained(self)

    def _oversize(self, head: bytes) -> None:
        logger.warning(
            "message_too_large",
            peer=self._peer,
            listener=self.factory.name,
            limit=self.factory.max_message_bytes,
        )
        reject = self.factory.sink.oversize(head, self._peer, self.factory.name)
        self._closing = True
        if reject:
            self._t.write(encode_frame(reject))
        self._t.loseConnection()

    # -- shutdown -----------------------------------------------------------

    @property
    def idle(self) -> bool:
        """Whether no answer is pending."""
        return not self._pending

    def close(self) -> None:
        """Close the connection after pending writes."""
        if self.transport is not None:
            self._t.loseConnection()

    def stop_reading(self) -> None:
        """Stop reading new frames (graceful shutdown)."""
        if not self._paused:
            self._paused = True
            self._t.pauseProducing()


class MllpFactory(Factory):
    """Builds MLLP connections that feed one sink.

    Args:
        sink: where messages go.
        clock: the reactor's clock (injected; tests pass a fake one).
        name: the listener's name, for logs.
        max_message_bytes: the largest message accepted.
        idle_timeout: seconds of silence before a connection is closed.
        max_pipelined: answers one connection may wait for before it stops
            being read.
    """

    protocol = MllpProtocol  # type: ignore[assignment]

    def __init__(
        self,
        sink: MessageSink,
        clock: IReactorTime,
        *,
        name: str = "mllp",
        max_message_bytes: int = 1024 * 1024,
        idle_timeout: float = 300.0,
        max_pipelined: int = 32,
    ) -> None:
        self.sink = sink
        self.clock = clock
        self.name = name
        self.max_message_bytes = max_message_bytes
        self.idle_timeout = idle_timeout
        self.max_pipelined = max_pipelined
        self.connections: set[MllpProtocol] = set()
        self.in_flight = 0
        self.quiescing = False
        self._waiters: dict[MllpProtocol, Deferred[None]] = {}

    def buildProtocol(self, addr: IAddress | None) -> MllpProtocol:  # type: ignore[override]
        """A new connection."""
        return MllpProtocol(self)

    def drained(self, proto: MllpProtocol) -> None:
        """A connection has no answer pending."""
        waiter = self._waiters.pop(proto, None)
        if waiter is not None:
            waiter.callback(None)

    def quiesce(self) -> Deferred[Any]:
        """Stop reading, let in-flight answers go out, then close every connection."""
        self.quiescing = True
        waits: list[Deferred[Any]] = []
        for proto in list(self.connections):
            proto.stop_reading()
            if proto.idle:
                waits.append(succeed(None))
            else:
                d: Deferred[None] = Deferred()
                self._waiters[proto] = d
                waits.append(d)

        def close(_: object) -> None:
            for proto in list(self.connections):
                proto.close()
            logger.info("listener_quiesced", listener=self.name)

        done: Deferred[Any] = DeferredList(waits)
        done.addCallback(close)
        return done
