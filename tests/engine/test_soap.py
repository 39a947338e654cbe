"""The SOAP gateway's shared logins: concurrent requests, one check; nothing kept after."""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from engine.access import Session
from engine.soap import SharedLogins, SoapGateway
from handlers.identity import BAD_CREDENTIALS, Principal, Refusal
from handlers.roles import OrgType, Role
from parsers.soap import FaultKind, SoapFault, SubmitSingleMessage

ORG = Principal(
    1, "ORG", OrgType.PROVIDER, Role.PROVIDER, "BAY", frozenset({"CLINIC1"})
)
MSG = "MSH|^~\\&|EHR|CLINIC1|CAIRN|CAIRN|20240101||VXU^V04^VXU_V04|1|P|2.5.1\r"
PASSWORD = "right password here"


class _Later:
    """run_blocking that hands back Deferreds the test fires (one per check)."""

    def __init__(self) -> None:
        self.pending: list[Deferred[Principal | Refusal]] = []

    def __call__(self, f: object, *args: object) -> Deferred[Principal | Refusal]:
        d: Deferred[Principal | Refusal] = Deferred()
        self.pending.append(d)
        return d


def _gateway(later: _Later) -> SoapGateway:
    def submit(
        raw: bytes, peer: str, listener: str, session: Session
    ) -> Deferred[bytes]:
        assert session.principal is ORG
        return succeed(b"MSH|^~\\&|CAIRN\rMSA|AA|1\r")

    def authenticate(username: str, password: str) -> Principal | Refusal:
        raise AssertionError("run through run_blocking only")  # pragma: no cover

    return SoapGateway(
        authenticate=authenticate,
        submit=submit,
        run_blocking=later,
        max_message_bytes=4096,
        logins=SharedLogins(),
    )


def _send(gateway: SoapGateway, password: str, answers: list[object]) -> None:
    def keep(result: object) -> None:
        answers.append(result.value if isinstance(result, Failure) else result)

    gateway.submit_single_message(
        SubmitSingleMessage("u", password, "CLINIC1", MSG), "p:1", "soap"
    ).addBoth(keep)


def test_concurrent_requests_with_the_same_credentials_share_one_check() -> None:
    """Eight connections opening at once cost one check, and all get its answer."""
    later = _Later()
    gateway = _gateway(later)
    answers: list[object] = []
    for _ in range(8):
        _send(gateway, PASSWORD, answers)
    assert len(later.pending) == 1
    assert answers == []
    later.pending[0].callback(ORG)
    assert len(answers) == 8
    assert all(isinstance(a, str) and "MSA|AA" in a for a in answers)


def test_nothing_is_kept_once_answered() -> None:
    """The next request after an answer is checked again (the identity service decides, every time)."""
    later = _Later()
    gateway = _gateway(later)
    answers: list[object] = []
    _send(gateway, PASSWORD, answers)
    later.pending[0].callback(ORG)
    _send(gateway, PASSWORD, answers)
    assert len(later.pending) == 2


def test_a_refusal_is_shared_with_the_waiters() -> None:
    """Requests waiting on a refused check are refused too, each with a SecurityFault."""
    later = _Later()
    gateway = _gateway(later)
    answers: list[object] = []
    _send(gateway, "a wrong guess", answers)
    _send(gateway, "a wrong guess", answers)
    later.pending[0].callback(Refusal(BAD_CREDENTIALS, "no"))
    assert [type(a) for a in answers] == [SoapFault, SoapFault]
    assert all(a.kind is FaultKind.SECURITY for a in answers)  # type: ignore[attr-defined]


def test_other_credentials_are_not_shared() -> None:
    """A different password for the same user is its own check: a guess never rides on a login."""
    later = _Later()
    gateway = _gateway(later)
    answers: list[object] = []
    _send(gateway, PASSWORD, answers)
    _send(gateway, "a wrong guess", answers)
    assert len(later.pending) == 2


def test_a_failed_check_fails_every_waiter() -> None:
    """The identity service failing (the database) reaches every waiting request."""
    later = _Later()
    gateway = _gateway(later)
    answers: list[object] = []
    _send(gateway, PASSWORD, answers)
    _send(gateway, PASSWORD, answers)
    later.pending[0].errback(RuntimeError("database gone"))
    assert [type(a) for a in answers] == [RuntimeError, RuntimeError]


def test_shared_logins_hold_no_password() -> None:
    """In-flight checks are keyed by a keyed hash, never the password."""
    logins = SharedLogins()
    logins.login("u", PASSWORD, Deferred)
    assert PASSWORD.encode() not in repr(vars(logins)).encode()
