"""The MLLP listener: a Twisted protocol that frames bytes and nothing more.

Each complete frame goes to an injected :class:`MessageSink`, whose Deferred
fires with the response payload once the message is durable; responses are
written back in arrival order per connection. The protocol knows nothing of
HL7 content.

- Back-pressure: when more than ``max_pipelined`` frames of one connection are
  waiting for their answers, the connection stops reading (``pauseProducing``)
  until no more than ``max_pipelined`` are left.
- Oversize: the sink's reject is written after the answers to earlier frames,
  then the connection is closed; nothing more is read from it.
- A failed Deferred (the message could not be made durable) closes the
  connection without that answer or any later one, so the sender retries; an
  ACK is never faked.
- Idle connections are closed after ``idle_timeout`` seconds of silence,
  counted from the last frame received or answer written; there is no timeout
  while an answer is pending. Bytes outside a frame (junk before a VT) do
  not count as activity.
- A frame must arrive whole within ``frame_timeout`` seconds of its first
  byte: a sender trickling a byte a second cannot hold a connection (and
  its buffer) for ever. Past the deadline nothing more is read; answers to
  earlier frames still go out, then the connection is closed.
- Bounded resources per peer: at most ``max_connections`` connections, and
  ``max_connections_per_address`` from one source address; one more is
  closed as soon as it is accepted. The bytes of unfinished frames are
  bounded per connection (``max_message_bytes``, then the rest of the frame
  is discarded) and for all connections together (``max_buffered_bytes``):
  a connection whose unfinished frame would go over it is closed.
- :meth:`MllpFactory.quiesce` stops reading everywhere and refuses new
  connections, waits until every in-flight message has its answer written (or
  its connection gone), then closes the connections (graceful shutdown).
- Who is speaking: with a :class:`ConnectionGate`, nothing is read from a
  connection until the gate has admitted it (after the TLS handshake on a
  TLS listener, so that the client certificate is known). The gate's session
  goes with every message to the sink; a connection the gate refuses is
  closed unread. The listener never decides who a peer is.
- An answer the sink marks :class:`CloseAfter` (the engine's: a session over
  its organization's connection limit, or revoked) is written after the
  answers to earlier frames, then the connection is closed; nothing more is
  read from it. Any other answer leaves the connection open.

Logs carry peer, listener and counts, never message content.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol, cast

import structlog
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IAddress, IHandshakeListener, IReactorTime
from twisted.internet.protocol import Factory
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import classImplements  # type: ignore[import-untyped]

from parsers.mllp import Frame, FrameDecoder, Oversize, Truncated, encode_frame

logger = structlog.get_logger()


class MessageSink(Protocol):
    """Where framed messages go (the engine's pipeline)."""

    def submit(
        self, raw: bytes, peer: str, listener: str, session: object = None
    ) -> Deferred[bytes]:
        """Process a message; fire with the response payload (b"" for none).

        ``session`` is what the listener's :class:`ConnectionGate` admitted
        the connection as (None without a gate).
        """

    def oversize(self, head: bytes, peer: str, listener: str) -> bytes:
        """The reject payload for a message over the size limit."""


class CloseAfter(bytes):
    """An answer after which the connection is closed (nothing more is read).

    The sink fires with it instead of plain bytes when every further message
    of the connection would be refused too: the peer is told why, then let go,
    rather than holding the connection until its idle timeout.
    """

    __slots__ = ()


class ConnectionGate(Protocol):
    """Decides who a connection is before anything is read from it (the engine's)."""

    def admit(
        self, peer: str, certificate: object | None, listener: str
    ) -> Deferred[object | None]:
        """Fire with the connection's session, or None to close it unread.

        ``certificate`` is the TLS peer certificate (pyOpenSSL ``X509``)
        on a TLS listener, else None.
        """

    def release(self, session: object) -> None:
        """The connection of an admitted session has closed."""


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


class _Delayed(Protocol):
    """A scheduled call (Twisted's ``IDelayedCall``, a zope interface)."""

    def active(self) -> bool:
        """Whether it has neither run nor been cancelled."""

    def cancel(self) -> None:
        """Do not run it."""


class _Clock(Protocol):
    """The clock method the protocol uses (Twisted's ``IReactorTime``)."""

    def callLater(
        self, delay: float, call: Callable[..., object], *args: object
    ) -> _Delayed:
        """Run ``call`` after ``delay`` seconds."""


class _Slot:
    """The answer to one frame, once its Deferred has fired."""

    __slots__ = ("close_after", "done", "failure", "value")

    def __init__(self) -> None:
        self.done = False
        self.value = b""
        self.failure: Failure | None = None
        self.close_after = False

    def fill(self, result: bytes | Failure) -> None:
        self.done = True
        if isinstance(result, Failure):
            self.failure = result
        else:
            self.value = result
            if isinstance(result, CloseAfter):
                self.close_after = True


def _peer_text(address: IAddress) -> str:
    host = getattr(address, "host", "")
    port = getattr(address, "port", "")
    return f"{host}:{port}" if host else str(address)


class MllpProtocol(TwistedProtocol, TimeoutMixin):
    """One MLLP connection."""

    factory: MllpFactory

    def __init__(self, factory: MllpFactory) -> None:
        self.factory = factory
        # TimeoutMixin schedules through self.callLater: use the injected clock.
        self.callLater = factory.clock.callLater  # type: ignore[method-assign,assignment] # the injected clock, not the global reactor
        self._decoder = FrameDecoder(factory.max_message_bytes)
        self._pending: deque[_Slot] = deque()
        self._paused = False
        # Nothing more is read or written (sink failure, connection lost).
        self._silent = False
        # Nothing more is read (after an oversize frame); answers still go out.
        self._reading = True
        self._peer = ""
        self._host = ""
        self._ignored = 0
        # Bytes of an unfinished frame counted in the factory's total.
        self._held = 0
        # The deadline of the frame being received (None between frames).
        self._frame_deadline: _Delayed | None = None
        # Close once the answers pending are written (frame deadline passed).
        self._close_when_answered = False
        self.messages = 0
        # With a gate: admitted (the session is known), and what arrived first.
        self._admitted = factory.gate is None
        self._session: object = None
        self._early = b""

    @property
    def _t(self) -> _Transport:
        return cast(_Transport, self.transport)

    # -- connection ---------------------------------------------------------

    def connectionMade(self) -> None:
        """Register with the factory and start the idle timer."""
        address = self._t.getPeer()
        self._peer = _peer_text(address)
        self._host = str(getattr(address, "host", "")) or self._peer
        factory = self.factory
        factory.connections.add(self)
        factory.per_host[self._host] = factory.per_host.get(self._host, 0) + 1
        if (
            len(factory.connections) > factory.max_connections
            or factory.per_host[self._host] > factory.max_connections_per_address
        ):
            factory.limited(
                "connections"
                if len(factory.connections) > factory.max_connections
                else "address"
            )
            logger.warning(
                "connection_refused_limit",
                peer=self._peer,
                listener=factory.name,
                connections=len(factory.connections) - 1,
                limit=factory.max_connections
                if len(factory.connections) > factory.max_connections
                else factory.max_connections_per_address,
                reason="listener"
                if len(factory.connections) > factory.max_connections
                else "address",
            )
            self._silent = True
            self._t.loseConnection()
            return
        if self.factory.quiescing:
            logger.info(
                "connection_refused_shutting_down",
                peer=self._peer,
                listener=self.factory.name,
            )
            self._silent = True
            self._t.loseConnection()
            return
        self.setTimeout(self.factory.idle_timeout)  # type: ignore[no-untyped-call]
        logger.info(
            "connection_opened",
            peer=self._peer,
            listener=self.factory.name,
            connections=len(self.factory.connections),
        )
        if not self._admitted and not self.factory.tls:
            self._admit(None)

    def handshakeCompleted(self) -> None:
        """TLS is up (IHandshakeListener): the client certificate can be read."""
        if self._admitted or self._silent:
            return
        get = getattr(self.transport, "getPeerCertificate", None)
        self._admit(get() if get is not None else None)

    def _admit(self, certificate: object | None) -> None:
        """Ask the gate who this is; read nothing until it answers."""
        gate = self.factory.gate
        assert gate is not None
        self._t.pauseProducing()
        try:
            d = gate.admit(self._peer, certificate, self.factory.name)
        except Exception:  # a listener never dies of its gate
            logger.exception("gate_raised", peer=self._peer, listener=self.factory.name)
            self._close()
            return
        d.addCallbacks(self._admitted_as, self._gate_failed)

    def _admitted_as(self, session: object | None) -> None:
        if session is None:
            logger.info(
                "connection_refused", peer=self._peer, listener=self.factory.name
            )
            self._close()
            return
        if self._silent:
            # Closed while the gate was deciding.
            assert self.factory.gate is not None
            self.factory.gate.release(session)
            return
        self._session = session
        self._admitted = True
        self._t.resumeProducing()
        early, self._early = self._early, b""
        if early:
            self.dataReceived(early)

    def _gate_failed(self, failure: Failure) -> None:
        logger.warning(
            "connection_not_admitted",
            peer=self._peer,
            listener=self.factory.name,
            error_type=failure.type.__name__ if failure.type else "",
        )
        self._close()

    def connectionLost(self, reason: Failure | None = None) -> None:
        """Forget the connection; answers still pending can no longer be written."""
        self.setTimeout(None)  # type: ignore[no-untyped-call]
        self._silent = True
        self._cancel_frame_deadline()
        self._release()
        factory = self.factory
        if self in factory.connections:
            factory.connections.discard(self)
            left = factory.per_host.get(self._host, 0) - 1
            if left > 0:
                factory.per_host[self._host] = left
            else:
                factory.per_host.pop(self._host, None)
        if self._session is not None and self.factory.gate is not None:
            session, self._session = self._session, None
            self.factory.gate.release(session)
        logger.info(
            "connection_closed",
            peer=self._peer,
            listener=self.factory.name,
            count=self.messages,
            in_flight=len(self._pending),
            connections=len(self.factory.connections),
        )
        self._flush()

    def timeoutConnection(self) -> None:
        """Close an idle connection."""
        if (
            self._pending
        ):  # pragma: no cover - the timer is off while answers are pending
            return
        logger.info(
            "connection_idle_timeout",
            peer=self._peer,
            listener=self.factory.name,
            seconds=self.factory.idle_timeout,
        )
        self._silent = True
        self._t.loseConnection()

    # -- data ---------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """Cut frames and hand them on."""
        if self._silent or not self._reading:
            return
        if not self._admitted:
            # Read before the gate answered (paused, but a chunk was in hand).
            self._early += data
            return
        if self.factory.quiescing:
            # Shutting down: frames read after quiesce() are not taken; they
            # get no answer and the sender sends them again later.
            self._ignored += len(data)
            return
        decoder = self._decoder
        was_in_frame = decoder.in_frame
        events = decoder.feed(data)
        if was_in_frame or decoder.in_frame or events:
            # Junk outside a frame is not activity: it cannot keep a
            # connection open past its idle timeout.
            self.resetTimeout()  # type: ignore[no-untyped-call]
        if decoder.in_frame:
            # A frame started in this read (a new one, if others ended in
            # it) has frame_timeout from now to end. A frame abandoned for a
            # new start block does not restart the clock: VT after VT is
            # still one slow frame.
            if not was_in_frame or any(
                not isinstance(event, Truncated) for event in events
            ):
                self._cancel_frame_deadline()
            if self._frame_deadline is None:
                clock = cast(_Clock, self.factory.clock)
                self._frame_deadline = clock.callLater(
                    self.factory.frame_timeout, self._frame_expired
                )
        else:
            self._cancel_frame_deadline()
        if not self._hold(decoder.buffered):
            return
        for event in events:
            if not self._taking():
                # An answer closes the connection: frames after it are not taken.
                return
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

    # -- bounds ---------------------------------------------------------------

    def _hold(self, buffered: int) -> bool:
        """Count this connection's unfinished frame in the total; False if it closed.

        Over the listener's total, the connection whose unfinished frame
        grew is closed (its frames complete in this read are dropped too:
        the sender resends them).
        """
        factory = self.factory
        factory.buffered += buffered - self._held
        self._held = buffered
        if buffered and factory.buffered > factory.max_buffered_bytes:
            factory.limited("buffer")
            logger.warning(
                "connection_buffer_limit",
                peer=self._peer,
                listener=factory.name,
                bytes=buffered,
                limit=factory.max_buffered_bytes,
            )
            self._release()
            self._abandon()
            return False
        return True

    def _release(self) -> None:
        """Take this connection's unfinished frame out of the total."""
        self.factory.buffered -= self._held
        self._held = 0

    def _cancel_frame_deadline(self) -> None:
        if self._frame_deadline is not None:
            if self._frame_deadline.active():
                self._frame_deadline.cancel()
            self._frame_deadline = None

    def _frame_expired(self) -> None:
        """The frame being received took too long: read no more, close once answered."""
        self._frame_deadline = None
        if self._silent:
            return
        if self._paused and self._reading and not self.factory.quiescing:
            # Not read because of back-pressure (answers pending): the
            # delay is ours, not the sender's. The frame gets its time again.
            clock = cast(_Clock, self.factory.clock)
            self._frame_deadline = clock.callLater(
                self.factory.frame_timeout, self._frame_expired
            )
            return
        self.factory.limited("frame_timeout")
        logger.warning(
            "frame_timeout",
            peer=self._peer,
            listener=self.factory.name,
            bytes=self._decoder.buffered,
            seconds=self.factory.frame_timeout,
        )
        self._release()
        self._abandon()

    def _abandon(self) -> None:
        """Read nothing more; close now, or once the answers pending are written."""
        self._stop_reading_for_good()
        if self._pending:
            self._close_when_answered = True
        else:
            self._close()

    def _enqueue(self) -> _Slot:
        slot = _Slot()
        self._pending.append(slot)
        self.factory.in_flight += 1
        self.factory.busy.add(self)
        # No idle timeout while an answer is pending.
        self.setTimeout(None)  # type: ignore[no-untyped-call]
        return slot

    def _submit(self, payload: bytes) -> None:
        self.messages += 1
        slot = self._enqueue()
        try:
            sink, name = self.factory.sink, self.factory.name
            # Without a gate the sink is called as it always was.
            d = (
                sink.submit(payload, self._peer, name)
                if self.factory.gate is None
                else sink.submit(payload, self._peer, name, session=self._session)
            )
        except Exception:  # the sink must not raise, but a listener never dies of it
            logger.exception("sink_raised", peer=self._peer, listener=self.factory.name)
            d = Deferred()
            d.errback(Failure())  # type: ignore[no-untyped-call]
        d.addBoth(slot.fill).addBoth(lambda _: self._answered(slot))
        if len(self._pending) > self.factory.max_pipelined and not self._paused:
            self._paused = True
            self._t.pauseProducing()

    def _answered(self, slot: _Slot) -> None:
        """An answer is ready: one that closes the connection stops the reading now."""
        if slot.close_after and not self._silent:
            self._stop_reading_for_good()
        self._flush()

    def _taking(self) -> bool:
        """Whether frames are still taken from this connection."""
        return self._reading and not self._silent

    def _stop_reading_for_good(self) -> None:
        self._reading = False
        if not self._paused:
            self._paused = True
            self._t.pauseProducing()

    def _oversize(self, head: bytes) -> None:
        """Queue the sink's reject behind earlier answers; close once it is written."""
        logger.warning(
            "message_too_large",
            peer=self._peer,
            listener=self.factory.name,
            limit=self.factory.max_message_bytes,
        )
        self.messages += 1
        slot = self._enqueue()
        slot.close_after = True
        try:
            slot.fill(self.factory.sink.oversize(head, self._peer, self.factory.name))
        except Exception:  # a listener never dies of its sink
            logger.exception("sink_raised", peer=self._peer, listener=self.factory.name)
            slot.fill(Failure())  # type: ignore[no-untyped-call]
        # Nothing after an oversize frame is read, even before the reject leaves.
        self._stop_reading_for_good()
        self._flush()

    def _flush(self) -> None:
        """Write every answer at the head of the queue that is ready, in order."""
        pending = self._pending
        while pending and pending[0].done and not self._silent:
            slot = pending.popleft()
            self.factory.in_flight -= 1
            if slot.failure is not None:
                logger.warning(
                    "message_not_answered",
                    peer=self._peer,
                    listener=self.factory.name,
                    error_type=slot.failure.type.__name__ if slot.failure.type else "",
                    in_flight=len(pending),
                )
                self._close()
                break
            if slot.value:
                self._t.write(encode_frame(slot.value))
            if slot.close_after:
                self._close()
                break
        if self._silent and pending:
            # Nothing more will be written here; forget answers as they come in
            # (they still count as in flight until the pipeline is done).
            still = deque(slot for slot in pending if not slot.done)
            self.factory.in_flight -= len(pending) - len(still)
            self._pending = pending = still
        if (
            self._paused
            and len(pending) <= self.factory.max_pipelined
            and not self.factory.quiescing
            and self._reading
            and not self._silent
        ):
            self._paused = False
            self._t.resumeProducing()
        if not pending:
            if self._close_when_answered and not self._silent:
                self._close()
            if not self._silent:
                self.setTimeout(self.factory.idle_timeout)  # type: ignore[no-untyped-call]
            self.factory.drained(self)

    def _close(self) -> None:
        """Stop reading and writing, and close after what is already written."""
        self._silent = True
        self.setTimeout(None)  # type: ignore[no-untyped-call]
        self._cancel_frame_deadline()
        if self.transport is not None:
            self._t.loseConnection()

    # -- shutdown -----------------------------------------------------------

    @property
    def idle(self) -> bool:
        """Whether no answer is pending."""
        return not self._pending

    def close(self) -> None:
        """Close the connection after pending writes."""
        self._close()

    def stop_reading(self) -> None:
        """Stop reading new frames (graceful shutdown)."""
        if not self._paused and not self._silent:
            self._paused = True
            self._t.pauseProducing()


# Twisted tells a wrapped protocol that provides IHandshakeListener when TLS
# is up (zope interfaces are untyped).
classImplements(MllpProtocol, IHandshakeListener)


class MllpFactory(Factory):
    """Builds MLLP connections that feed one sink.

    Args:
        sink: where messages go.
        clock: the reactor's clock (injected; tests pass a fake one).
        name: the listener's name, for logs.
        max_message_bytes: the largest message accepted.
        idle_timeout: seconds of silence before a connection is closed.
        max_pipelined: answers one connection may wait for; beyond that it
            stops being read until it is back to this many.
        gate: decides who each connection is before it is read (None: every
            connection is read at once, as the open development mode does).
        tls: the listener speaks TLS: the gate is asked after the handshake.
        max_connections: connections open at once; one more is closed.
        max_connections_per_address: connections from one source address.
        frame_timeout: seconds from a frame's first byte to its end block.
        max_buffered_bytes: bytes of unfinished frames, all connections
            together.
        on_limited: told why whenever a connection is closed by one of the
            limits above (``connections``, ``address``, ``frame_timeout``,
            ``buffer``): the engine counts them.
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
        gate: ConnectionGate | None = None,
        tls: bool = False,
        max_connections: int = 1000,
        max_connections_per_address: int = 100,
        frame_timeout: float = 60.0,
        max_buffered_bytes: int = 256 * 1024 * 1024,
        on_limited: Callable[[str], None] | None = None,
    ) -> None:
        self.sink = sink
        self.gate = gate
        self.tls = tls
        self.clock = clock
        self.name = name
        self.max_message_bytes = max_message_bytes
        self.idle_timeout = idle_timeout
        self.max_pipelined = max_pipelined
        self.max_connections = max_connections
        self.max_connections_per_address = max_connections_per_address
        self.frame_timeout = frame_timeout
        self.max_buffered_bytes = max_buffered_bytes
        self._on_limited = on_limited
        #: bytes of unfinished frames held for all connections
        self.buffered = 0
        #: open connections per source host
        self.per_host: dict[str, int] = {}
        self.connections: set[MllpProtocol] = set()
        # Connections with answers pending, including ones already lost.
        self.busy: set[MllpProtocol] = set()
        self.in_flight = 0
        self.quiescing = False
        self._waiters: dict[MllpProtocol, Deferred[None]] = {}
        self._quiesced: list[Deferred[None]] = []
        self._done = False

    def buildProtocol(self, addr: IAddress | None) -> MllpProtocol:  # type: ignore[override]
        """A new connection."""
        return MllpProtocol(self)

    def limited(self, reason: str) -> None:
        """A connection is closed by a per-peer limit: tell whoever counts."""
        if self._on_limited is not None:
            self._on_limited(reason)

    def drained(self, proto: MllpProtocol) -> None:
        """A connection has no answer pending."""
        self.busy.discard(proto)
        waiter = self._waiters.pop(proto, None)
        if waiter is not None:
            waiter.callback(None)

    def quiesce(self) -> Deferred[None]:
        """Stop reading, let in-flight answers go out, then close every connection.

        New connections are closed as soon as they are made. Calling it again
        returns a Deferred that fires when the first call's does.

        Returns:
            A Deferred that fires once every connection has been told to close.
        """
        result: Deferred[None] = Deferred()
        if self._done:
            result.callback(None)
            return result
        self._quiesced.append(result)
        if self.quiescing:
            return result
        self.quiescing = True
        logger.info(
            "listener_quiescing",
            listener=self.name,
            connections=len(self.connections),
            in_flight=self.in_flight,
        )
        waits: list[Deferred[None]] = []
        for proto in list(self.connections):
            proto.stop_reading()
        for proto in list(self.busy):
            if not proto.idle:
                d: Deferred[None] = Deferred()
                self._waiters[proto] = d
                waits.append(d)

        def close(_: object) -> None:
            for proto in list(self.connections):
                proto.close()
            logger.info("listener_quiesced", listener=self.name)
            self._done = True
            waiting, self._quiesced = self._quiesced, []
            for d in waiting:
                d.callback(None)

        gatherResults(waits).addCallback(close)
        return result
