"""Who is speaking: authentication of users, certificates and addresses, and their administration.

The one service every front asks "who is this?" (MLLP listeners by client
certificate or address, the SOAP service and the web console by username and
password), and the one the CLI changes organizations and users through.
Synchronous and blocking (argon2 takes tens of milliseconds, each call opens
a unit of work): Twisted callers run it in a thread (``deferToThread``).

API (stable; the SOAP service and the HTTP listener depend on it)::

    service = IdentityService(database.transaction, now=clock,
                              max_failures=5, lockout_seconds=900,
                              reading=database.reading)

    service.authenticate(username, password) -> Principal | Refusal
    service.principal_for_certificate(sha256_hex) -> Principal | Refusal
    service.principal_for_address(ip_text) -> Principal | Refusal
    service.principal_of(org_code) -> Principal | None

- :class:`Principal`: ``organization_id``, ``organization`` (its code),
  ``org_type`` (:class:`handlers.roles.OrgType`), ``role``
  (:class:`handlers.roles.Role`), ``region``, ``facility_ids`` (the MSH-4
  values it may send as), ``username`` (empty for a certificate or an
  address), and its limits ``max_messages_per_minute`` /
  ``max_connections`` (None: the configured defaults).
- :class:`Refusal`: ``reason`` (one of :data:`BAD_CREDENTIALS`,
  :data:`DISABLED`, :data:`UNKNOWN_CERTIFICATE`, :data:`UNKNOWN_ADDRESS`)
  and ``text``, a sentence safe to show the caller. A locked account is
  answered ``bad_credentials`` whatever the password (the audit row says
  :data:`LOCKED_OUT`): a different answer to the right password would make
  the lockout a guessing oracle.

An unknown username and a wrong password are the same refusal,
``bad_credentials``, and cost the same: an unknown user's password is
checked against a dummy hash. ``disabled`` and ``locked_out`` are said only
to a caller that gave the right password, so they tell nothing to someone
guessing usernames. After ``max_failures`` wrong passwords in a row the
account is locked for ``lockout_seconds`` (even the right password is then
refused); a good login or a new password clears the count. Every refusal and
every change is an audit row (profile ``AUTH`` or ``ADMIN``); no log line or
audit row ever carries a password or a hash.

Logins and lookups read on a reader (``reading``), outside the writer, and
argon2 runs outside any transaction: a good login with nothing to clear
takes no write transaction, so it never queues behind ingest (SQLite's
BEGIN IMMEDIATE). A write transaction is opened only to count a failure
(the lock state is read again under it, so concurrent failures lock at
exactly ``max_failures``), clear a failure count, rehash, or audit a
refusal.

argon2 costs about half a second of CPU a check here (its default profile,
64 MiB), and the SOAP service authenticates every message. So a successful
check is remembered for ``cache_seconds`` (default 60) as an HMAC of the
username and password under a key made at start-up, never the password:
the same credentials again skip argon2 but still read the account (a
disabled, locked-out or re-passworded account is refused at once). Wrong
passwords are never cached and always cost a full check.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from handlers.roles import OrgType, Role, role_of
from storage import (
    Credential,
    NewAuditEntry,
    NewOrganization,
    Organization,
    UserAccount,
)
from storage.identity import ADDRESS, CERTIFICATE

__all__ = [
    "BAD_CREDENTIALS",
    "DISABLED",
    "LOCKED_OUT",
    "MIN_PASSWORD_LENGTH",
    "UNKNOWN_ADDRESS",
    "UNKNOWN_CERTIFICATE",
    "IdentityError",
    "IdentityService",
    "Principal",
    "Refusal",
]

logger = structlog.get_logger()

BAD_CREDENTIALS = "bad_credentials"
DISABLED = "disabled"
LOCKED_OUT = "locked_out"
UNKNOWN_CERTIFICATE = "unknown_certificate"
UNKNOWN_ADDRESS = "unknown_address"

MIN_PASSWORD_LENGTH = 12

_TEXTS = {
    BAD_CREDENTIALS: "unknown username or wrong password, or the account is "
    "locked after repeated failed logins (try again later)",
    DISABLED: "the account or its organization is disabled",
    LOCKED_OUT: "the account is locked after repeated failed logins; try again later",
    UNKNOWN_CERTIFICATE: "the client certificate is not mapped to an organization",
    UNKNOWN_ADDRESS: "the peer address is not on any organization's allow-list",
}

#: Audit rows of this service have no patient; their region is the
#: organization's, or this when there is none (an unknown username).
_NO_REGION = ""


class IdentityError(ValueError):
    """An administrative change that cannot be made (the text names the field)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated organization (and user, for a password login).

    Attributes:
        organization_id: its row id.
        organization: its code (what operators and the audit trail call it).
        org_type: its CAIR organization type.
        role: what its agreement lets it do (handlers/roles.py).
        region: the region its data belongs to.
        facility_ids: the MSH-4 values (namespace or universal ids) it may
            send as.
        username: the user who logged in; empty for a certificate or address.
        max_messages_per_minute: its message rate limit (None: the default).
        max_connections: its concurrent connection limit (None: the default).
    """

    organization_id: int
    organization: str
    org_type: OrgType
    role: Role
    region: str
    facility_ids: frozenset[str]
    username: str = ""
    max_messages_per_minute: int | None = None
    max_connections: int | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a caller was not authenticated; ``text`` is safe to show it."""

    reason: str
    text: str


class IdentityStore(Protocol):
    """The identity repository (storage/identity.py), as this service uses it."""

    def insert_organization(self, org: NewOrganization) -> int: ...
    def set_organization_disabled(
        self, organization_id: int, disabled: bool
    ) -> None: ...
    def get_organization(self, code: str) -> Organization | None: ...
    def get_organization_by_id(self, organization_id: int) -> Organization | None: ...
    def list_organizations(self) -> list[Organization]: ...
    def insert_facility(self, organization_id: int, facility_id: str) -> None: ...
    def find_facility_owner(self, facility_id: str) -> int | None: ...
    def insert_credential(
        self, organization_id: int, kind: str, value: str, label: str, at: datetime
    ) -> int: ...
    def find_credential(self, kind: str, value: str) -> Credential | None: ...
    def list_credentials(
        self, kind: str | None = None, organization_id: int | None = None
    ) -> list[Credential]: ...
    def insert_user(
        self, organization_id: int, username: str, password_hash: str, at: datetime
    ) -> int: ...
    def get_user(self, username: str) -> UserAccount | None: ...
    def lock_user(self, username: str) -> UserAccount | None: ...
    def list_users(self, organization_id: int | None = None) -> list[UserAccount]: ...
    def set_password(self, user_id: int, password_hash: str, at: datetime) -> None: ...
    def set_user_disabled(self, user_id: int, disabled: bool) -> None: ...
    def record_failure(
        self, user_id: int, max_failures: int, lock_until: datetime
    ) -> int: ...
    def record_success(self, user_id: int) -> None: ...


class _Audit(Protocol):
    def insert(self, entry: NewAuditEntry) -> None: ...


class IdentityUnit(Protocol):
    """One transaction's identity and audit stores (a storage UnitOfWork)."""

    @property
    def identity(self) -> IdentityStore: ...

    @property
    def audit(self) -> _Audit: ...


Transaction = Callable[[], AbstractContextManager[IdentityUnit]]


class IdentityService:
    """Authenticates users, certificates and addresses; administers organizations and users.

    Args:
        transaction: opens one transaction (``Database.transaction``).
        now: the clock (UTC).
        max_failures: wrong passwords in a row that lock an account.
        lockout_seconds: how long a locked account stays locked.
        hasher: the argon2 hasher (tests pass cheap parameters).
        cache_seconds: how long a successful check spares the next ones
            with the same credentials (0: never).
        monotonic: the clock of that cache (seconds).
        reading: opens a read-only unit of work outside the writer
            (``Database.reading``) for what only reads; without it, reads
            take ``transaction`` too.
    """

    def __init__(
        self,
        transaction: Transaction,
        *,
        now: Callable[[], datetime],
        max_failures: int = 5,
        lockout_seconds: float = 900.0,
        hasher: PasswordHasher | None = None,
        cache_seconds: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
        reading: Transaction | None = None,
    ) -> None:
        self._cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._cache_key = secrets.token_bytes(32)
        #: HMAC of (username, password) -> (expiry, the hash it was checked against)
        self._verified: dict[bytes, tuple[float, str]] = {}
        self._cache_lock = threading.Lock()
        self._transaction = transaction
        self._reading = reading or transaction
        self._now = now
        self._max_failures = max_failures
        self._lockout = timedelta(seconds=lockout_seconds)
        self._hasher = hasher or PasswordHasher()
        # An unknown user's password is checked against this, so that an
        # unknown username costs what a wrong password does.
        self._dummy_hash = self._hasher.hash("cairn-dummy-password-never-used")

    # -- authentication --------------------------------------------------------

    def authenticate(self, username: str, password: str) -> Principal | Refusal:
        """Check a username and password; the principal, or why not.

        The account is read on a reader and the password checked outside any
        transaction; a write transaction is opened only when something must
        change (a failure counted, a lockout, a failure count cleared, a
        rehash, an audit row for a refusal), so that a good login never
        waits for the ingest writer nor holds it up.
        """
        now = self._now()
        key = hmac.digest(
            self._cache_key, f"{username}\0{password}".encode(), hashlib.sha256
        )
        with self._reading() as uow:
            user = uow.identity.get_user(username) if 0 < len(username) <= 80 else None
            org = (
                None
                if user is None
                else uow.identity.get_organization_by_id(user.organization_id)
            )
        stored = user.password_hash if user else None
        # Same argon2 work whether the user exists or not (the dummy hash).
        good = self._remembered(key, stored) or self._verify(stored, password)
        if user is None:
            with self._transaction() as wuow:
                return self._refuse(wuow, username, _NO_REGION, BAD_CREDENTIALS, now)
        assert org is not None  # a foreign key
        if not good:
            return self._count_failure(user.id, username, org, now)
        if _locked(user, now):
            # Answered as a wrong password: failures are not counted while
            # locked, so a different answer to the right password would let
            # the guesser who locked it go on guessing. The audit row says
            # locked_out.
            with self._transaction() as wuow:
                return self._refuse(
                    wuow, username, org.region, LOCKED_OUT, now, shown=BAD_CREDENTIALS
                )
        if user.disabled or org.disabled:
            with self._transaction() as wuow:
                return self._refuse(wuow, username, org.region, DISABLED, now)
        rehash = (
            self._hasher.hash(password)
            if self._hasher.check_needs_rehash(user.password_hash)
            else None
        )
        if user.failed_attempts == 0 and rehash is None:
            self._remember(key, user.password_hash)
            return _principal(org, username)
        with self._transaction() as wuow:
            # Read again under the write lock: a concurrent failure may have
            # locked the account, or an operator disabled it, since.
            fresh = wuow.identity.lock_user(username)
            if fresh is None or fresh.id != user.id:
                return self._refuse(wuow, username, org.region, BAD_CREDENTIALS, now)
            if fresh.password_hash != user.password_hash:
                # Re-passworded meanwhile: what was checked is no longer the password.
                return self._refuse(wuow, username, org.region, BAD_CREDENTIALS, now)
            if _locked(fresh, now):
                return self._refuse(
                    wuow, username, org.region, LOCKED_OUT, now, shown=BAD_CREDENTIALS
                )
            if fresh.disabled:
                return self._refuse(wuow, username, org.region, DISABLED, now)
            wuow.identity.record_success(user.id)
            if rehash is not None:
                wuow.identity.set_password(user.id, rehash, now)
        if rehash is None:
            self._remember(key, user.password_hash)
        return _principal(org, username)

    def _count_failure(
        self, user_id: int, username: str, org: Organization, now: datetime
    ) -> Refusal:
        """Record a wrong password in a write transaction, locking at ``max_failures``.

        Whether the account is already locked is decided again here, with
        the user's row locked (``lock_user``), so that concurrent wrong
        passwords are each counted once and the account locks at exactly
        ``max_failures``.
        """
        with self._transaction() as uow:
            store = uow.identity
            fresh = store.lock_user(username)
            if fresh is not None and fresh.id == user_id and not _locked(fresh, now):
                count = store.record_failure(
                    user_id, self._max_failures, now + self._lockout
                )
                if count >= self._max_failures:
                    logger.warning(
                        "account_locked_out", organization=org.code, failures=count
                    )
                    self._audit(uow, username, org.region, "lockout", "locked", now)
            return self._refuse(uow, username, org.region, BAD_CREDENTIALS, now)

    def _remembered(self, key: bytes, stored: str | None) -> bool:
        """Whether these credentials were checked against this very hash lately."""
        if stored is None or self._cache_seconds <= 0:
            return False
        with self._cache_lock:
            found = self._verified.get(key)
            if found is None:
                return False
            expiry, checked_hash = found
            if expiry < self._monotonic() or not hmac.compare_digest(
                checked_hash, stored
            ):
                del self._verified[key]
                return False
            return True

    def _remember(self, key: bytes, stored: str) -> None:
        if self._cache_seconds <= 0:
            return
        now = self._monotonic()
        with self._cache_lock:
            if len(self._verified) > 10_000:
                # Bounded: forget the expired ones, else everything.
                live = {k: v for k, v in self._verified.items() if v[0] >= now}
                self._verified = live if len(live) <= 10_000 else {}
            self._verified[key] = (now + self._cache_seconds, stored)

    def _verify(self, stored: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored or self._dummy_hash, password) and (
                stored is not None
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def principal_for_certificate(self, fingerprint: str) -> Principal | Refusal:
        """The organization a verified client certificate (SHA-256, hex) is mapped to."""
        return self._by_credential(
            CERTIFICATE, normalize_fingerprint(fingerprint), UNKNOWN_CERTIFICATE
        )

    def principal_for_address(self, address: str) -> Principal | Refusal:
        """The organization whose allow-list holds a peer address."""
        now = self._now()
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            ip = None
        org: Organization | None = None
        with self._reading() as uow:
            if ip is not None:
                # The most specific network wins (a /32 inside a shared /24).
                best: tuple[int, Credential] | None = None
                for cred in uow.identity.list_credentials(ADDRESS):
                    network = ipaddress.ip_network(cred.value)
                    if ip in network and (best is None or network.prefixlen > best[0]):
                        best = (network.prefixlen, cred)
                if best is not None:
                    org = uow.identity.get_organization_by_id(best[1].organization_id)
                    assert org is not None
        if org is not None and not org.disabled:
            return _principal(org)
        with self._transaction() as wuow:
            if org is not None:
                return self._refuse(wuow, org.code, org.region, DISABLED, now)
            return self._refuse(wuow, address[:80], _NO_REGION, UNKNOWN_ADDRESS, now)

    def _by_credential(
        self, kind: str, value: str, unknown: str
    ) -> Principal | Refusal:
        now = self._now()
        with self._reading() as uow:
            cred = uow.identity.find_credential(kind, value)
            org = (
                None
                if cred is None
                else uow.identity.get_organization_by_id(cred.organization_id)
            )
        if cred is not None and org is not None and not org.disabled:
            return _principal(org)
        with self._transaction() as wuow:
            if org is None:
                return self._refuse(wuow, value[:80], _NO_REGION, unknown, now)
            return self._refuse(wuow, org.code, org.region, DISABLED, now)

    def principal_of(self, code: str) -> Principal | None:
        """An enabled organization's principal by code (in-process fronts, tests)."""
        with self._reading() as uow:
            org = uow.identity.get_organization(code)
            return None if org is None or org.disabled else _principal(org)

    def principal_for_facility(self, facility_id: str) -> Principal | None:
        """The enabled organization owning a sending-facility id, as a principal.

        For fronts that file journaled messages again (replay): the
        organization an authenticated listener would have found for them.
        """
        with self._reading() as uow:
            owner = uow.identity.find_facility_owner(facility_id)
            org = None if owner is None else uow.identity.get_organization_by_id(owner)
            return None if org is None or org.disabled else _principal(org)

    def refusal(self, reason: str) -> Refusal:
        """The refusal with its standard text (for fronts that refuse on their own)."""
        return Refusal(reason, _TEXTS[reason])

    def audit_refusal(
        self, who: str, reason: str, detail: str = "", region: str = _NO_REGION
    ) -> None:
        """Audit a refusal decided outside this service (a TLS handshake, a limit)."""
        with self._transaction() as uow:
            self._audit(
                uow,
                who,
                region,
                "authenticate",
                "refused",
                self._now(),
                detail or reason,
            )

    def _refuse(
        self,
        uow: IdentityUnit,
        who: str,
        region: str,
        reason: str,
        now: datetime,
        *,
        shown: str = "",
    ) -> Refusal:
        """Log and audit ``reason``; answer ``shown`` (the reason itself by default)."""
        logger.info("authentication_refused", reason=reason)
        self._audit(uow, who, region, "authenticate", "refused", now, reason)
        answer = shown or reason
        return Refusal(answer, _TEXTS[answer])

    @staticmethod
    def _audit(
        uow: IdentityUnit,
        who: str,
        region: str,
        action: str,
        outcome: str,
        at: datetime,
        detail: str = "",
        profile: str = "AUTH",
    ) -> None:
        uow.audit.insert(
            NewAuditEntry(
                at=at,
                requester=who[:180],
                requester_region=region[:16],
                patient_id=None,
                patient_region=None,
                journal_id=None,
                query_tag="",
                action=action[:20],
                outcome=outcome[:20],
                profile=profile,
                detail=detail[:300],
            )
        )

    # -- administration (the CLI, the console) -----------------------------------

    def add_organization(
        self,
        actor: str,
        *,
        code: str,
        name: str,
        org_type: str,
        region: str,
        facility_ids: Sequence[str] = (),
        max_messages_per_minute: int | None = None,
        max_connections: int | None = None,
    ) -> Organization:
        """Register an organization with its facility ids (audited)."""
        if not code or len(code) > 80 or not code.isprintable() or " " in code:
            raise IdentityError(
                "code: expected 1 to 80 printable characters, no spaces"
            )
        try:
            OrgType(org_type)
        except ValueError:
            known = ", ".join(t.value for t in OrgType)
            raise IdentityError(
                f"type: unknown organization type {org_type!r} (known: {known})"
            ) from None
        for label, limit in (
            ("max-messages-per-minute", max_messages_per_minute),
            ("max-connections", max_connections),
        ):
            if limit is not None and limit < 1:
                raise IdentityError(f"{label}: expected at least 1, got {limit}")
        now = self._now()
        with self._transaction() as uow:
            store = uow.identity
            if store.get_organization(code) is not None:
                raise IdentityError(f"code: organization {code!r} already exists")
            org_id = store.insert_organization(
                NewOrganization(
                    code=code,
                    name=name[:200],
                    org_type=org_type,
                    region=region,
                    created_at=now,
                    max_messages_per_minute=max_messages_per_minute,
                    max_connections=max_connections,
                )
            )
            self._add_facilities(store, org_id, facility_ids)
            self._audit(
                uow,
                actor,
                region,
                "org-add",
                "changed",
                now,
                f"organization {code} ({org_type}), facilities {len(facility_ids)}",
                "ADMIN",
            )
            org = store.get_organization_by_id(org_id)
            assert org is not None
            return org

    @staticmethod
    def _add_facilities(
        store: IdentityStore, org_id: int, facility_ids: Iterable[str]
    ) -> None:
        for facility in facility_ids:
            if not facility or len(facility) > 180 or not facility.isprintable():
                raise IdentityError(
                    f"facility: expected 1 to 180 printable characters, got {facility!r}"
                )
            owner = store.find_facility_owner(facility)
            if owner is not None:
                raise IdentityError(
                    f"facility: {facility!r} already belongs to an organization"
                )
            store.insert_facility(org_id, facility)

    def add_facilities(
        self, actor: str, code: str, facility_ids: Sequence[str]
    ) -> None:
        """Give an organization more facility ids (audited)."""
        now = self._now()
        with self._transaction() as uow:
            org = self._org(uow, code)
            self._add_facilities(uow.identity, org.id, facility_ids)
            self._audit(
                uow,
                actor,
                org.region,
                "org-facility",
                "changed",
                now,
                f"organization {code}: facilities {', '.join(facility_ids)}"[:300],
                "ADMIN",
            )

    def add_certificate(
        self, actor: str, code: str, fingerprint: str, label: str = ""
    ) -> None:
        """Map a client certificate (SHA-256 fingerprint) to an organization (audited)."""
        value = normalize_fingerprint(fingerprint)
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise IdentityError(
                "certificate: expected a SHA-256 fingerprint (64 hex digits)"
            )
        self._add_credential(actor, code, CERTIFICATE, value, label)

    def allow_address(
        self, actor: str, code: str, network: str, label: str = ""
    ) -> None:
        """Put an address or network (CIDR) on an organization's allow-list (audited)."""
        try:
            value = str(ipaddress.ip_network(network, strict=True))
        except ValueError as exc:
            raise IdentityError(f"address: {exc}") from None
        self._add_credential(actor, code, ADDRESS, value, label)

    def _add_credential(
        self, actor: str, code: str, kind: str, value: str, label: str
    ) -> None:
        now = self._now()
        with self._transaction() as uow:
            org = self._org(uow, code)
            existing = uow.identity.find_credential(kind, value)
            if existing is not None:
                raise IdentityError(
                    f"{kind}: {value} is already mapped to an organization"
                )
            uow.identity.insert_credential(org.id, kind, value, label, now)
            self._audit(
                uow,
                actor,
                org.region,
                f"org-{kind}"[:20],
                "changed",
                now,
                f"organization {code}: {kind} {value}",
                "ADMIN",
            )

    def credentials(self, code: str) -> list[Credential]:
        """An organization's certificate and address credentials."""
        with self._transaction() as uow:
            org = self._org(uow, code)
            return uow.identity.list_credentials(organization_id=org.id)

    def set_organization_disabled(
        self, actor: str, code: str, disabled: bool = True
    ) -> None:
        """Disable an organization: none of its users, certificates or addresses work (audited)."""
        now = self._now()
        with self._transaction() as uow:
            org = self._org(uow, code)
            uow.identity.set_organization_disabled(org.id, disabled)
            self._audit(
                uow,
                actor,
                org.region,
                "org-disable" if disabled else "org-enable",
                "changed",
                now,
                f"organization {code}",
                "ADMIN",
            )

    def organizations(self) -> list[Organization]:
        """Every organization."""
        with self._transaction() as uow:
            return uow.identity.list_organizations()

    def organization(self, code: str) -> Organization:
        """One organization (``IdentityError`` when unknown)."""
        with self._transaction() as uow:
            return self._org(uow, code)

    def add_user(self, actor: str, code: str, username: str, password: str) -> None:
        """Create a user of an organization (audited; the password is hashed)."""
        _check_username(username)
        _check_password(password)
        password_hash = self._hasher.hash(password)
        now = self._now()
        with self._transaction() as uow:
            org = self._org(uow, code)
            if uow.identity.get_user(username) is not None:
                raise IdentityError(f"username: {username!r} already exists")
            uow.identity.insert_user(org.id, username, password_hash, now)
            self._audit(
                uow,
                actor,
                org.region,
                "user-add",
                "changed",
                now,
                f"user {username} of organization {code}",
                "ADMIN",
            )

    def set_password(self, actor: str, username: str, password: str) -> None:
        """Replace a user's password (audited); clears a lockout."""
        _check_password(password)
        password_hash = self._hasher.hash(password)
        now = self._now()
        with self._transaction() as uow:
            user, org = self._user(uow, username)
            uow.identity.set_password(user.id, password_hash, now)
            self._audit(
                uow,
                actor,
                org.region,
                "user-passwd",
                "changed",
                now,
                f"user {username}",
                "ADMIN",
            )

    def set_user_disabled(
        self, actor: str, username: str, disabled: bool = True
    ) -> None:
        """Disable (or enable) a user (audited)."""
        now = self._now()
        with self._transaction() as uow:
            user, org = self._user(uow, username)
            uow.identity.set_user_disabled(user.id, disabled)
            self._audit(
                uow,
                actor,
                org.region,
                "user-disable" if disabled else "user-enable",
                "changed",
                now,
                f"user {username}",
                "ADMIN",
            )

    def users(self, code: str | None = None) -> list[tuple[UserAccount, Organization]]:
        """Users (of one organization, or all) with their organization."""
        with self._transaction() as uow:
            org_id = self._org(uow, code).id if code else None
            found = []
            for user in uow.identity.list_users(org_id):
                org = uow.identity.get_organization_by_id(user.organization_id)
                assert org is not None
                found.append((user, org))
            return found

    @staticmethod
    def _org(uow: IdentityUnit, code: str) -> Organization:
        org = uow.identity.get_organization(code)
        if org is None:
            raise IdentityError(f"organization: unknown organization {code!r}")
        return org

    @staticmethod
    def _user(uow: IdentityUnit, username: str) -> tuple[UserAccount, Organization]:
        user = uow.identity.get_user(username)
        if user is None:
            raise IdentityError(f"username: unknown user {username!r}")
        org = uow.identity.get_organization_by_id(user.organization_id)
        assert org is not None
        return user, org


def normalize_fingerprint(fingerprint: str) -> str:
    """A SHA-256 fingerprint as lower-case hex without colons."""
    return fingerprint.replace(":", "").replace(" ", "").strip().lower()


def _locked(user: UserAccount, now: datetime) -> bool:
    return user.locked_until is not None and user.locked_until > now


def _principal(org: Organization, username: str = "") -> Principal:
    org_type = OrgType(org.org_type)
    return Principal(
        organization_id=org.id,
        organization=org.code,
        org_type=org_type,
        role=role_of(org_type),
        region=org.region,
        facility_ids=frozenset(org.facility_ids),
        username=username,
        max_messages_per_minute=org.max_messages_per_minute,
        max_connections=org.max_connections,
    )


def _check_username(username: str) -> None:
    if not 1 <= len(username) <= 80 or not username.isprintable() or " " in username:
        raise IdentityError(
            "username: expected 1 to 80 printable characters, no spaces"
        )


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise IdentityError(
            f"password: expected at least {MIN_PASSWORD_LENGTH} characters"
        )
    if len(password) > 1024:
        raise IdentityError("password: expected at most 1024 characters")
