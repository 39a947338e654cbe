"""The CDC SOAP service's glue: who is asking, then the same pipeline as MLLP.

:class:`SoapGateway` is the :class:`listeners.soap.SoapService` the HTTP
listener hands each ``submitSingleMessage`` to. In order:

1. an ``hl7Message`` over ``server.max_message_bytes`` (the MLLP limit) is
   MessageTooLargeFault, before any password is checked;
2. ``username`` and ``password`` are checked by the injected
   ``authenticate`` (argon2, so on a worker thread, never the reactor's;
   the identity service remembers a good login), requests with the same
   credentials in flight together sharing one check (:class:`SharedLogins`);
   any
   refusal (unknown user, wrong password, disabled or locked account,
   disabled organization) is one SecurityFault with one vague text;
3. a ``facilityID``, when given, must be one of the authenticated
   organization's sending-facility ids (SecurityFault otherwise): the
   organization is the sender, as on an authenticated MLLP listener;
4. the HL7 message, with CR terminators, goes to the injected ``submit``
   (the pipeline sink, with the organization), and its ACK or RSP is the
   ``return``. Anything about the HL7 content is answered in HL7, never as
   a fault (REFERENCE §13).

A failure of the pipeline itself (overloaded, the commit failed) is an
UnknownFault telling the sender to resend: no answer claims durability the
message does not have.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Any

import structlog
from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from engine.access import Session
from handlers.identity import Principal, Refusal
from parsers.decoding import decode_message, encode_message
from parsers.soap import (
    SECURITY_TEXT,
    FaultKind,
    SoapFault,
    SubmitSingleMessage,
    hl7_text,
)

logger = structlog.get_logger()

#: Checks a username and password (``IdentityService.authenticate``): the
#: principal, or why not. Blocking (argon2): the gateway runs it on a worker
#: thread.
Authenticate = Callable[[str, str], Principal | Refusal]

#: Hands a raw HL7 message to the pipeline with the organization's session
#: (``PipelineSink.submit``: its rate limit, then the pipeline, where it is
#: the sender); fires with the answer's bytes once the message is durable
#: (b"" when MSH-16 says none).
Submit = Callable[[bytes, str, str, Session], "Deferred[bytes]"]

#: Audits a refusal decided by the gateway: (who, reason, detail, region).
AuditRefusal = Callable[[str, str, str, str], None]

#: Runs a blocking call on a worker thread (``deferToThreadPool``); tests
#: pass a synchronous one.
RunBlocking = Callable[..., "Deferred[Any]"]


class SharedLogins:
    """Requests with the same credentials in flight together share one check.

    The CDC protocol carries the password in every request. The identity
    service remembers a good login (it spares argon2, about half a second
    of CPU, while still reading the account, so disabling takes effect at
    once), but an interface that opens several connections at once would
    send as many first checks as connections, each an argon2 run. Here the
    later ones wait for the check in progress and get its answer, success
    or refusal alike; nothing is kept once it is answered. In-flight checks
    are keyed by an HMAC of username and password under a key drawn at
    start-up, never by the password itself.
    """

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._checking: dict[bytes, list[Deferred[Principal | Refusal]]] = {}

    def login(
        self,
        username: str,
        password: str,
        check: Callable[[], Deferred[Principal | Refusal]],
    ) -> Deferred[Principal | Refusal]:
        """``check()``'s answer, shared with the requests that ask meanwhile."""
        message = username.encode("utf-8") + b"\x00" + password.encode("utf-8")
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        waiting = self._checking.get(digest)
        if waiting is not None:
            mine: Deferred[Principal | Refusal] = Deferred()
            waiting.append(mine)
            return mine
        self._checking[digest] = []

        def checked(
            result: Principal | Refusal | Failure,
        ) -> Principal | Refusal | Failure:
            for waiter in self._checking.pop(digest, []):
                if isinstance(result, Failure):
                    waiter.errback(result)
                else:
                    waiter.callback(result)
            return result

        return check().addBoth(checked)


class SoapGateway:
    """``submitSingleMessage``: authenticate, check the facility, run the pipeline.

    Args:
        authenticate: checks credentials (blocking; see :data:`Authenticate`).
        submit: the pipeline (see :data:`Submit`).
        run_blocking: runs ``authenticate`` off the reactor thread.
        max_message_bytes: the largest HL7 message, as for MLLP.
        logins: shares a check among requests with the same credentials
            (None: each request is checked on its own).
        audit: records a refusal decided here (``IdentityService.audit_refusal``:
            who, reason, detail, region); blocking, run like ``authenticate``.
    """

    def __init__(
        self,
        *,
        authenticate: Authenticate,
        submit: Submit,
        run_blocking: RunBlocking,
        max_message_bytes: int,
        logins: SharedLogins | None = None,
        audit: AuditRefusal | None = None,
    ) -> None:
        self._authenticate = authenticate
        self._audit = audit
        self._submit = submit
        self._run_blocking = run_blocking
        self._max = max_message_bytes
        self._logins = logins

    def submit_single_message(
        self, request: SubmitSingleMessage, peer: str, listener: str
    ) -> Deferred[str]:
        """Answer one ``submitSingleMessage``; fails with :class:`SoapFault`."""
        raw = encode_message(hl7_text(request.hl7_message or ""))
        if len(raw) > self._max:
            logger.warning(
                "soap_refused",
                peer=peer,
                listener=listener,
                reason="message too large",
                size=len(raw),
                limit=self._max,
            )
            return _failed(
                SoapFault(
                    FaultKind.MESSAGE_TOO_LARGE,
                    f"the HL7 message is {len(raw):,} bytes; the limit is "
                    f"{self._max:,} bytes",
                )
            )
        username, password = request.username or "", request.password or ""
        if not username or not password:
            logger.warning(
                "soap_refused", peer=peer, listener=listener, reason="no credentials"
            )
            return _failed(SoapFault(FaultKind.SECURITY, SECURITY_TEXT))

        def check() -> Deferred[Principal | Refusal]:
            d: Deferred[Principal | Refusal] = self._run_blocking(
                self._authenticate, username, password
            )
            return d

        checked = (
            self._logins.login(username, password, check)
            if self._logins is not None
            else check()
        )

        def authorised(principal: Principal | Refusal) -> Deferred[bytes]:
            if not isinstance(principal, Principal):
                # The identity service audited it; the caller learns nothing
                # of which part was wrong.
                logger.warning(
                    "soap_refused",
                    peer=peer,
                    listener=listener,
                    reason=principal.reason,
                )
                raise SoapFault(FaultKind.SECURITY, SECURITY_TEXT)
            facility = (request.facility_id or "").strip()
            if facility and facility not in principal.facility_ids:
                return self._refuse_facility(principal, facility, peer, listener)
            return self._submit(raw, peer, listener, Session(principal))

        def answer(payload: bytes) -> str:
            return decode_message(payload).text if payload else ""

        return checked.addCallback(authorised).addCallback(answer)

    def _refuse_facility(
        self, principal: Principal, facility: str, peer: str, listener: str
    ) -> Deferred[bytes]:
        """SecurityFault for a facilityID not of the organization, once it is audited."""
        logger.warning(
            "soap_refused",
            peer=peer,
            listener=listener,
            organization=principal.organization,
            reason="facilityID is not one of the organization's facilities",
        )
        done: Deferred[Any] = (
            self._run_blocking(
                self._audit,
                principal.username or principal.organization,
                "facility_id",
                f"SOAP facilityID {facility[:40]!r} is not a facility id of "
                f"{principal.organization}; peer {peer}",
                principal.region,
            )
            if self._audit is not None
            else succeed(None)
        )

        def refuse(result: object) -> bytes:
            if isinstance(result, Failure):
                logger.error(
                    "audit_failed",
                    peer=peer,
                    listener=listener,
                    error_type=result.type.__name__ if result.type else "",
                )
            raise SoapFault(FaultKind.SECURITY, SECURITY_TEXT)

        return done.addBoth(refuse)


def _failed(fault: SoapFault) -> Deferred[str]:
    d: Deferred[str] = Deferred()
    d.errback(fault)
    return d
