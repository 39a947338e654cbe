"""engine/access.py: the gate of authenticated listeners and the per-organization limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import succeed
from twisted.internet.testing import MemoryReactorClock, StringTransport

from engine.access import ListenerGate, RateLimiter, Session
from engine.app import PipelineSink
from handlers.identity import Principal, Refusal
from handlers.roles import OrgType, Role
from listeners.mllp import MllpFactory
from parsers.mllp import Frame, FrameDecoder, encode_frame
from tests.support.messages import Dose, vxu
from tests.support.mllp import errs, msa_code, segments
from tests.support.registry import build_registry


def _principal(org_id: int = 1, **limits: int) -> Principal:
    return Principal(
        organization_id=org_id,
        organization=f"ORG{org_id}",
        org_type=OrgType.PROVIDER,
        role=Role.PROVIDER,
        region="BAY",
        facility_ids=frozenset({f"FAC{org_id}"}),
        **limits,  # type: ignore[arg-type]
    )


class FakeIdentity:
    """Knows one address and one certificate; records audited refusals."""

    def __init__(self) -> None:
        self.audited: list[tuple[str, ...]] = []

    def principal_for_address(self, address: str) -> Principal | Refusal:
        if address == "10.0.0.1":
            return _principal(1, max_connections=1)
        return Refusal("unknown_address", "not on any allow-list")

    def principal_for_certificate(self, fingerprint: str) -> Principal | Refusal:
        return Refusal("unknown_certificate", "not mapped")

    def audit_refusal(self, who: str, reason: str, detail: str = "") -> None:
        self.audited.append((who, reason, detail))


def _gate(mode: str, identity: FakeIdentity) -> ListenerGate:
    return ListenerGate(
        mode,
        identity,  # type: ignore[arg-type]
        lambda fn, *args: succeed(fn(*args)),
        default_max_connections=5,
    )


def _result(d):
    out = []
    d.addCallback(out.append)
    assert out, "the Deferred has not fired"
    return out[0]


def test_rate_limiter_allows_a_minute_then_refills() -> None:
    """A limit of 3 a minute allows 3 at once, then one more every 20 seconds."""
    clock = MemoryReactorClock()
    limiter = RateLimiter(clock.seconds, 3)
    org = _principal()
    assert [limiter.take(org) for _ in range(4)] == [True, True, True, False]
    clock.advance(20)
    assert limiter.take(org) is True
    assert limiter.take(org) is False
    assert "at most 3 messages a minute" in limiter.refusal_text(org)


def test_rate_limiter_counts_each_organization_apart() -> None:
    """One organization's burst does not use another's allowance; its own limit wins over the default."""
    limiter = RateLimiter(MemoryReactorClock().seconds, 1)
    busy, other = _principal(1), _principal(2, max_messages_per_minute=2)
    assert limiter.take(busy) and not limiter.take(busy)
    assert limiter.take(other) and limiter.take(other) and not limiter.take(other)


def test_gate_ip_admits_known_address_and_refuses_a_stranger() -> None:
    """An allow-listed address is its organization; any other address is closed unread."""
    gate = _gate("ip", FakeIdentity())
    session = _result(gate.admit("10.0.0.1:5000", None, "mllp"))
    assert isinstance(session, Session) and session.principal is not None
    assert session.principal.organization == "ORG1" and session.refusal == ""
    assert _result(gate.admit("192.0.2.7:5000", None, "mllp")) is None


def test_gate_connection_limit_answers_instead_of_dropping() -> None:
    """Beyond its connection limit an organization's connection is admitted but refused message by message."""
    gate = _gate("ip", FakeIdentity())
    first = _result(gate.admit("10.0.0.1:5000", None, "mllp"))
    second = _result(gate.admit("10.0.0.1:5001", None, "mllp"))
    assert first.refusal == ""
    assert "connection limit" in second.refusal and "at most 1" in second.refusal
    gate.release(second)  # an uncounted session changes nothing
    gate.release(first)
    third = _result(gate.admit("10.0.0.1:5002", None, "mllp"))
    assert third.refusal == ""


def test_gate_tls_without_certificate_is_refused_and_audited() -> None:
    """A TLS connection without a client certificate is closed and audited."""
    identity = FakeIdentity()
    gate = _gate("tls", identity)
    assert _result(gate.admit("10.0.0.9:5000", None, "mllp")) is None
    assert identity.audited and "no client certificate" in identity.audited[0][2]


def test_sink_answers_ar_naming_the_limit(
    db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message over its organization's rate or on a connection over the limit gets AR naming the limit; nothing is journaled."""
    registry = build_registry(db, tmp_path, monkeypatch)
    clock = MemoryReactorClock()
    limiter = RateLimiter(clock.seconds, 1)
    sink = PipelineSink(clock, registry.pipeline, max_batch=8, limiter=limiter)
    org = _principal(1)
    assert limiter.take(org)  # the minute's allowance is used
    message = vxu(control_id="OVER1", sender="FAC1", doses=[Dose()])
    reply = _result(
        sink.submit(message.encode(), "10.0.0.1:1", "mllp", session=Session(org))
    )
    assert msa_code(reply) == "AR"
    assert next(s for s in segments(reply) if s[0] == "MSA")[2] == "OVER1"
    assert (
        "rate limit" in errs(reply)[0][8] and "1 messages a minute" in errs(reply)[0][8]
    )
    full = Session(org, refusal="connection limit: at most 1")
    reply = _result(sink.submit(message.encode(), "10.0.0.1:2", "mllp", session=full))
    assert msa_code(reply) == "AR" and "connection limit" in errs(reply)[0][8]
    assert registry.query("SELECT count(*) FROM message_journal") == [(0,)]


class SwitchableIdentity(FakeIdentity):
    """An identity whose one organization can be disabled, and that counts look-ups."""

    def __init__(self) -> None:
        super().__init__()
        self.disabled = False
        self.look_ups = 0

    def principal_for_address(self, address: str) -> Principal | Refusal:
        self.look_ups += 1
        if self.disabled:
            return Refusal("disabled", "the account or its organization is disabled")
        return _principal(1, max_connections=2)


def test_gate_revalidation_revokes_an_open_session_of_a_disabled_organization() -> None:
    """Disabling an organization reaches its open connection: the next look-up marks it refused, once."""
    identity = SwitchableIdentity()
    gate = _gate("ip", identity)
    session = _result(gate.admit("10.0.0.1:5000", None, "mllp"))
    _result(gate.revalidate())
    assert session.refusal == ""
    identity.disabled = True
    _result(gate.revalidate())
    assert "not authorized" in session.refusal and "ORG1" in session.refusal
    looked = identity.look_ups
    _result(gate.revalidate())
    assert identity.look_ups == looked, "a revoked session is not looked up again"
    gate.release(session)
    assert gate.open_connections(_principal(1)) == 0


def test_gate_revalidation_survives_a_failed_look_up() -> None:
    """The database away during a revalidation changes nothing and does not stop the loop."""
    from twisted.internet.defer import fail

    identity = SwitchableIdentity()
    gate = ListenerGate(
        "ip",
        identity,  # type: ignore[arg-type]
        lambda fn, *args: (
            succeed(fn(*args)) if fn != getattr(fn, "__self__", None) else None
        ),
        default_max_connections=5,
    )
    session = _result(gate.admit("10.0.0.1:5000", None, "mllp"))
    gate._in_thread = lambda fn, *args: fail(RuntimeError("database away"))  # type: ignore[method-assign]
    assert _result(gate.revalidate()) is None
    assert session.refusal == ""


def decode_frames(written: bytes) -> list[bytes]:
    """The whole frames written to a transport (a partial one would be missing)."""
    decoder = FrameDecoder(1024 * 1024)
    frames = [e.payload for e in decoder.feed(written) if isinstance(e, Frame)]
    assert not decoder.in_frame, "an answer was cut short"
    return frames


def _listen(gate: ListenerGate, sink: PipelineSink, port: int):
    """One connection from 10.0.0.1 through the real gate and sink, on test transports."""
    factory = MllpFactory(sink, MemoryReactorClock(), name="mllp", gate=gate)
    proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 2575))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.1", port))
    proto.makeConnection(transport)
    return proto, transport


def test_refused_sessions_are_closed_after_their_ar_and_a_rate_limited_one_is_not(
    db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the connection limit or revoked, the AR is written whole and the socket closed; over the rate it stays open.

    Before, every refused connection stayed open until the idle timeout:
    an organization could hold any number of sockets past its limit, and a
    disabled one keep its connections.
    """
    registry = build_registry(db, tmp_path, monkeypatch)
    clock = MemoryReactorClock()
    limiter = RateLimiter(clock.seconds, 1)
    sink = PipelineSink(clock, registry.pipeline, max_batch=8, limiter=limiter)
    identity = SwitchableIdentity()  # ORG1 may have 2 connections
    gate = _gate("ip", identity)
    message = vxu(control_id="LIM1", sender="FAC1", doses=[Dose()]).encode()
    first, first_t = _listen(gate, sink, 40001)
    _second, second_t = _listen(gate, sink, 40002)
    third, third_t = _listen(gate, sink, 40003)  # one over the limit

    third.dataReceived(encode_frame(message))
    reply = decode_frames(third_t.value())
    assert len(reply) == 1 and msa_code(reply[0]) == "AR"
    assert "connection limit" in errs(reply[0])[0][8]
    assert third_t.disconnecting
    third.connectionLost(None)
    assert gate.open_connections(_principal(1)) == 2

    # The minute's allowance used: over the rate, AR, the connection stays.
    assert limiter.take(_principal(1))
    first.dataReceived(encode_frame(message))
    first.dataReceived(encode_frame(message))
    replies = decode_frames(first_t.value())
    assert [msa_code(r) for r in replies] == ["AR", "AR"]
    assert "rate limit" in errs(replies[1])[0][8]
    assert not first_t.disconnecting

    # The organization disabled: the next message of an open connection is
    # answered AR saying so, then the connection is closed.
    identity.disabled = True
    _result(gate.revalidate())
    first_t.clear()
    first.dataReceived(encode_frame(message) + encode_frame(message))
    replies = decode_frames(first_t.value())
    assert len(replies) == 1 and "not authorized" in errs(replies[0])[0][8]
    assert first_t.disconnecting
    assert not second_t.disconnecting, "closed only once it has been answered"
    assert registry.query("SELECT count(*) FROM message_journal") == [(0,)]
