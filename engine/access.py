"""Who may speak on a listener, and how much: the gate of authenticated listeners and the per-organization limits.

An authenticated listener (``server.auth = "tls"`` or ``"ip"``) admits a
connection only once the identity service (handlers/identity.py) has
mapped its client certificate or its address to an enabled organization;
anything else is closed unread and audited. The organization becomes the
connection's :class:`Session` and goes with every message to the pipeline,
which takes it as the sender (an MSH-4 not among its facility ids is
refused there).

Limits per organization (issue 17, item 5), counted on this node:

- concurrent connections: a connection beyond the limit is admitted, but
  its first message is answered AR with an ERR naming the limit (never a
  silent drop), so the sender's interface shows why, and the connection is
  closed once that AR is written (it cannot sit on a socket until the idle
  timeout);
- messages a minute: a token bucket holding one minute's allowance, filled
  continuously; a message finding it empty is answered AR naming the limit,
  and nothing is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from engine.tls import peer_certificate_of
from handlers.identity import IdentityService, Principal, Refusal

__all__ = ["ListenerGate", "RateLimiter", "Session"]

logger = structlog.get_logger()

#: Runs a blocking call off the reactor thread (deferToThreadPool, bound).
InThread = Callable[..., "Deferred[Any]"]


@dataclass(eq=False)
class Session:
    """One admitted connection: who it is, and why its messages are refused, if they are."""

    principal: Principal | None
    #: non-empty: every message of the connection gets AR with this text
    refusal: str = ""
    counted: bool = field(default=False, repr=False)
    #: what admitted it: the certificate fingerprint or the peer address
    credential: str = field(default="", repr=False)


class RateLimiter:
    """Messages a minute per organization, as a token bucket per organization.

    Args:
        clock: seconds (the reactor's ``seconds``).
        default_per_minute: the limit of an organization without its own.
    """

    def __init__(self, clock: Callable[[], float], default_per_minute: int) -> None:
        self._clock = clock
        self._default = default_per_minute
        self._buckets: dict[int, tuple[float, float]] = {}

    def limit_of(self, principal: Principal) -> int:
        """The organization's messages-a-minute limit."""
        return principal.max_messages_per_minute or self._default

    def take(self, principal: Principal) -> bool:
        """Count one message; False when the organization is over its limit."""
        limit = self.limit_of(principal)
        now = self._clock()
        tokens, since = self._buckets.get(principal.organization_id, (limit, now))
        tokens = min(limit, tokens + (now - since) * limit / 60.0)
        if tokens < 1.0:
            self._buckets[principal.organization_id] = (tokens, now)
            return False
        self._buckets[principal.organization_id] = (tokens - 1.0, now)
        return True

    def refusal_text(self, principal: Principal) -> str:
        """The ERR text of a message over the rate limit."""
        return (
            f"rate limit: organization {principal.organization} may send at most "
            f"{self.limit_of(principal)} messages a minute; this message was "
            "rejected and nothing was stored: send it again later"
        )


class ListenerGate:
    """Admits the connections of an authenticated listener (listeners.mllp.ConnectionGate).

    Args:
        mode: ``tls`` (client certificate) or ``ip`` (address allow-list).
        identity: maps certificates and addresses to organizations.
        in_thread: runs the identity service's blocking look-ups off the
            reactor thread.
        default_max_connections: the concurrent-connection limit of an
            organization without its own.
    """

    def __init__(
        self,
        mode: str,
        identity: IdentityService,
        in_thread: InThread,
        *,
        default_max_connections: int,
    ) -> None:
        assert mode in {"tls", "ip"}
        self.mode = mode
        self._identity = identity
        self._in_thread = in_thread
        self._default_max = default_max_connections
        self._open: dict[int, int] = {}
        #: admitted sessions still open, checked again by :meth:`revalidate`
        self._sessions: set[Session] = set()

    def admit(
        self, peer: str, certificate: object | None, listener: str
    ) -> Deferred[object | None]:
        """Fire with the connection's :class:`Session`, or None to close it unread."""
        if self.mode == "tls":
            described = peer_certificate_of(certificate)
            if described is None:
                # OpenSSL already refuses a TLS client without a certificate;
                # this is the belt to its braces.
                self.handshake_refused(peer, "no client certificate", "")
                return succeed(None)
            credential = described.fingerprint
        else:
            credential = peer.rsplit(":", 1)[0].strip("[]")
        d = self._in_thread(self._look_up, credential)
        return d.addCallback(self._session, peer, listener, credential)

    def _look_up(self, credential: str) -> Principal | Refusal:
        """The organization of a certificate fingerprint or an address (blocking)."""
        if self.mode == "tls":
            return self._identity.principal_for_certificate(credential)
        return self._identity.principal_for_address(credential)

    def _session(
        self, found: Principal | Refusal, peer: str, listener: str, credential: str
    ) -> Session | None:
        if isinstance(found, Refusal):
            # The identity service has audited it.
            logger.warning(
                "connection_refused",
                peer=peer,
                listener=listener,
                auth=self.mode,
                reason=found.reason,
            )
            return None
        limit = found.max_connections or self._default_max
        count = self._open.get(found.organization_id, 0)
        session = Session(found, credential=credential)
        self._sessions.add(session)
        if count >= limit:
            logger.warning(
                "connection_limit_reached",
                peer=peer,
                listener=listener,
                organization=found.organization,
                max_connections=limit,
            )
            session.refusal = (
                f"connection limit: organization {found.organization} may have at "
                f"most {limit} connections open at once; this message was rejected "
                "and nothing was stored: close another connection and send it again"
            )
            return session
        self._open[found.organization_id] = count + 1
        session.counted = True
        logger.info(
            "connection_authenticated",
            peer=peer,
            listener=listener,
            auth=self.mode,
            organization=found.organization,
        )
        return session

    def release(self, session: object) -> None:
        """An admitted connection closed: it no longer counts against its limit."""
        if not isinstance(session, Session):
            return
        self._sessions.discard(session)
        if not session.counted:
            return
        assert session.principal is not None
        key = session.principal.organization_id
        self._open[key] = max(0, self._open.get(key, 0) - 1)
        session.counted = False

    def revalidate(self) -> Deferred[None]:
        """Look every open session's credential up again (an organization disabled, a credential removed).

        Run every ``identity.revalidate_seconds`` by the engine. A session
        whose organization is no longer authorized has its next message
        answered AR saying so, then its connection is closed; one whose
        organization changed (facility ids, limits) carries the new principal. Each credential is looked up once.
        """
        # A session already refused (over its limit, or revoked) stays so.
        live = [s for s in self._sessions if not s.refusal]
        credentials = sorted({s.credential for s in live})
        if not credentials:
            return succeed(None)

        def look_up_all() -> dict[str, Principal | Refusal]:
            return {c: self._look_up(c) for c in credentials}

        def apply(found: dict[str, Principal | Refusal]) -> None:
            for session in live:
                now = found.get(session.credential)
                if isinstance(now, Principal):
                    session.principal = now
                elif now is not None and session.principal is not None:
                    logger.warning(
                        "session_revoked",
                        organization=session.principal.organization,
                        auth=self.mode,
                        reason=now.reason,
                    )
                    session.refusal = (
                        f"not authorized: {now.text} (organization "
                        f"{session.principal.organization}); this message was "
                        "rejected and nothing was stored"
                    )

        d: Deferred[dict[str, Principal | Refusal]] = self._in_thread(look_up_all)
        # A failed look-up (the database away) keeps the sessions as they
        # are and is tried again next time; the loop must not stop.
        return d.addCallbacks(apply, _revalidation_failed)

    def open_connections(self, principal: Principal) -> int:
        """The organization's admitted connections on this listener."""
        return self._open.get(principal.organization_id, 0)

    def handshake_refused(self, peer: str, reason: str, fingerprint: str) -> None:
        """A TLS handshake refused a client certificate: audit it (off the reactor)."""
        detail = f"{reason}; peer {peer}" + (
            f"; certificate sha256 {fingerprint}" if fingerprint else ""
        )
        d = self._in_thread(
            self._identity.audit_refusal, peer or "unknown peer", "tls", detail
        )
        d.addErrback(_audit_failed, peer)


def _revalidation_failed(failure: Failure) -> None:
    logger.warning(
        "revalidation_failed",
        error_type=failure.type.__name__ if failure.type else "",
    )


def _audit_failed(failure: Failure, peer: str) -> None:
    logger.warning(
        "audit_failed",
        peer=peer,
        error_type=failure.type.__name__ if failure.type else "",
    )
