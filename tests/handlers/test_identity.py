"""The identity service: passwords, lockout, certificates, addresses, administration.

Written as the other party too: a guesser of usernames, a guesser of
passwords, a disabled organization's user, a stranger's address.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher

from handlers.identity import (
    BAD_CREDENTIALS,
    DISABLED,
    LOCKED_OUT,
    UNKNOWN_ADDRESS,
    UNKNOWN_CERTIFICATE,
    IdentityError,
    IdentityService,
    Principal,
    Refusal,
)
from handlers.roles import OrgType, Role

PASSWORD = "correct horse battery staple"


class Clock:
    """A settable UTC clock."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(name="clock")
def _clock() -> Clock:
    return Clock()


@pytest.fixture(name="service")
def _service(db, clock) -> IdentityService:
    service = IdentityService(
        db.transaction,
        now=clock,
        max_failures=3,
        lockout_seconds=600,
        hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
        reading=db.reading,
    )
    service.add_organization(
        "admin",
        code="SUTTER",
        name="Sutter Pediatrics",
        org_type="provider",
        region="SAC",
        facility_ids=["SUTTERPEDS", "2.16.840.1.113883.3.72.5.9.1"],
    )
    service.add_user("admin", "SUTTER", "nurse1", PASSWORD)
    return service


def test_authenticate_returns_the_principal(service):
    """The right password gives the organization, its role, region and facility ids."""
    principal = service.authenticate("nurse1", PASSWORD)
    assert isinstance(principal, Principal)
    assert principal.organization == "SUTTER"
    assert principal.org_type is OrgType.PROVIDER
    assert principal.role is Role.PROVIDER
    assert principal.region == "SAC"
    assert principal.facility_ids == {"SUTTERPEDS", "2.16.840.1.113883.3.72.5.9.1"}
    assert principal.username == "nurse1"


def test_unknown_user_and_wrong_password_are_the_same_refusal(service):
    """A guesser cannot tell an unknown username from a wrong password."""
    unknown = service.authenticate("nobody", PASSWORD)
    wrong = service.authenticate("nurse1", "not the password at all")
    assert unknown == wrong == Refusal(BAD_CREDENTIALS, unknown.text)


def test_lockout_after_repeated_failures(service, clock, db):
    """After max_failures wrong passwords even the right one is refused, until the lockout ends.

    The audit trail says why (locked_out); the answer does not (see below).
    """
    for _ in range(3):
        assert (
            service.authenticate("nurse1", "wrong password!!").reason == BAD_CREDENTIALS
        )
    assert not isinstance(service.authenticate("nurse1", PASSWORD), Principal)
    assert LOCKED_OUT in [row.detail for row in db.audit_search(limit=50)]
    clock.now += timedelta(seconds=601)
    assert isinstance(service.authenticate("nurse1", PASSWORD), Principal)


def test_a_locked_account_is_no_oracle_for_the_right_password(service):
    """The guesser who locked the account keeps guessing: every answer must be the same.

    Failures are not counted while the account is locked, so if the right
    password were answered differently (locked out) from a wrong one (bad
    credentials), the lockout would be an unlimited guessing oracle.
    """
    for _ in range(3):
        service.authenticate("nurse1", "wrong password!!")
    wrong = service.authenticate("nurse1", "another wrong one")
    right = service.authenticate("nurse1", PASSWORD)
    unknown = service.authenticate("nobody", PASSWORD)
    assert not isinstance(right, Principal)
    assert right == wrong == unknown


def test_lockout_is_not_revealed_without_the_password(service):
    """A locked account answers a wrong password as bad credentials, like an unknown user."""
    for _ in range(3):
        service.authenticate("nurse1", "wrong password!!")
    assert service.authenticate("nurse1", "wrong password!!").reason == BAD_CREDENTIALS


def test_good_login_clears_the_failure_count(service):
    """Failures must be in a row to lock an account."""
    for _ in range(2):
        service.authenticate("nurse1", "wrong password!!")
    assert isinstance(service.authenticate("nurse1", PASSWORD), Principal)
    for _ in range(2):
        service.authenticate("nurse1", "wrong password!!")
    assert isinstance(service.authenticate("nurse1", PASSWORD), Principal)


def test_disabled_user_and_disabled_organization_are_refused(service):
    """Disabling a user or its organization stops its logins."""
    service.set_user_disabled("admin", "nurse1")
    assert service.authenticate("nurse1", PASSWORD).reason == DISABLED
    service.set_user_disabled("admin", "nurse1", disabled=False)
    service.set_organization_disabled("admin", "SUTTER")
    assert service.authenticate("nurse1", PASSWORD).reason == DISABLED


def test_new_password_replaces_the_old_and_clears_a_lockout(service):
    """`cairn user passwd` unlocks the account; the old password no longer works."""
    for _ in range(3):
        service.authenticate("nurse1", "wrong password!!")
    service.set_password("admin", "nurse1", "a brand new passphrase")
    assert service.authenticate("nurse1", PASSWORD).reason == BAD_CREDENTIALS
    assert isinstance(
        service.authenticate("nurse1", "a brand new passphrase"), Principal
    )


def test_password_and_hash_never_stored_or_audited_in_clear(service, db):
    """The users table holds an argon2 hash; no audit row carries the password or hash."""
    service.authenticate("nurse1", "wrong password!!")
    with db.transaction() as uow:
        user = uow.identity.get_user("nurse1")
    assert user is not None
    assert user.password_hash.startswith("$argon2")
    assert PASSWORD not in user.password_hash
    assert user.password_hash not in repr(user)
    for row in db.audit_search(limit=100):
        for text in (row.detail, row.requester, row.action):
            assert PASSWORD not in text
            assert "wrong password" not in text
            assert "$argon2" not in text


def test_every_change_and_refusal_is_audited(service, db):
    """Organization and user changes are ADMIN rows; refused logins AUTH rows."""
    service.authenticate("nobody", "whatever it is!!")
    rows = db.audit_search(limit=100)
    actions = {(r.profile, r.action, r.outcome) for r in rows}
    assert ("ADMIN", "org-add", "changed") in actions
    assert ("ADMIN", "user-add", "changed") in actions
    assert ("AUTH", "authenticate", "refused") in actions


def test_short_password_is_refused(service):
    """A password shorter than the minimum is refused, naming the field."""
    with pytest.raises(IdentityError, match="password"):
        service.add_user("admin", "SUTTER", "nurse2", "short")


def test_facility_id_belongs_to_one_organization(service):
    """A second organization cannot claim a facility id that is taken."""
    with pytest.raises(IdentityError, match="SUTTERPEDS"):
        service.add_organization(
            "admin",
            code="SPOOF",
            name="Spoofer",
            org_type="provider",
            region="BAY",
            facility_ids=["SUTTERPEDS"],
        )


def test_unknown_organization_type_is_refused(service):
    """The type must be one of CAIR's organization types."""
    with pytest.raises(IdentityError, match="type"):
        service.add_organization(
            "admin", code="X", name="", org_type="hospital", region="BAY"
        )


def test_certificate_maps_to_its_organization(service):
    """A mapped fingerprint gives the organization; an unmapped one is refused."""
    fingerprint = "AB:" * 31 + "AB"
    service.add_certificate("admin", "SUTTER", fingerprint)
    principal = service.principal_for_certificate("ab" * 32)
    assert isinstance(principal, Principal)
    assert principal.organization == "SUTTER"
    assert principal.username == ""
    assert service.principal_for_certificate("cd" * 32).reason == UNKNOWN_CERTIFICATE


def test_address_allow_list_most_specific_network_wins(service):
    """An address on two allow-lists belongs to the narrower network's organization."""
    service.add_organization(
        "admin",
        code="SCHOOL1",
        name="",
        org_type="school",
        region="SAC",
        facility_ids=["SCHOOL1"],
    )
    service.allow_address("admin", "SUTTER", "10.1.0.0/16")
    service.allow_address("admin", "SCHOOL1", "10.1.2.3/32")
    school = service.principal_for_address("10.1.2.3")
    sutter = service.principal_for_address("10.1.9.9")
    assert isinstance(school, Principal) and school.role is Role.REQUIREMENTS
    assert isinstance(sutter, Principal) and sutter.organization == "SUTTER"
    assert service.principal_for_address("192.0.2.1").reason == UNKNOWN_ADDRESS
    assert service.principal_for_address("not an address").reason == UNKNOWN_ADDRESS


def test_disabled_organization_certificate_is_refused(service):
    """Disabling an organization stops its certificate too."""
    service.add_certificate("admin", "SUTTER", "ab" * 32)
    service.set_organization_disabled("admin", "SUTTER")
    assert service.principal_for_certificate("ab" * 32).reason == DISABLED


class CountingHasher(PasswordHasher):
    """A cheap hasher that counts full password checks."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.checks = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.checks += 1
        return super().verify(hash, password)


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(name="cached")
def _cached(db, clock) -> tuple[IdentityService, CountingHasher, Ticks]:
    hasher, ticks = CountingHasher(), Ticks()
    service = IdentityService(
        db.transaction,
        now=clock,
        max_failures=3,
        hasher=hasher,
        cache_seconds=60,
        monotonic=ticks,
        reading=db.reading,
    )
    service.add_organization(
        "admin",
        code="SUTTER",
        name="",
        org_type="provider",
        region="SAC",
        facility_ids=["SUTTERPEDS"],
    )
    service.add_user("admin", "SUTTER", "nurse1", PASSWORD)
    return service, hasher, ticks


def test_good_credentials_are_checked_once_a_minute(cached):
    """The SOAP service authenticates every message: the same good credentials cost one argon2 check a minute."""
    service, hasher, ticks = cached
    before = hasher.checks
    for _ in range(5):
        assert isinstance(service.authenticate("nurse1", PASSWORD), Principal)
    assert hasher.checks == before + 1
    ticks.now += 61
    assert isinstance(service.authenticate("nurse1", PASSWORD), Principal)
    assert hasher.checks == before + 2


def test_wrong_password_is_never_spared_a_check(cached):
    """A wrong password always costs a full check, cached good ones or not."""
    service, hasher, _ticks = cached
    service.authenticate("nurse1", PASSWORD)
    before = hasher.checks
    for _ in range(2):
        assert service.authenticate("nurse1", PASSWORD + "x").reason == BAD_CREDENTIALS
    assert hasher.checks == before + 2


def test_cached_credentials_still_see_disable_lockout_and_new_password(cached):
    """A remembered login is refused at once when the user is disabled or the password changes."""
    service, _hasher, _ticks = cached
    assert isinstance(service.authenticate("nurse1", PASSWORD), Principal)
    service.set_user_disabled("admin", "nurse1")
    assert service.authenticate("nurse1", PASSWORD).reason == DISABLED
    service.set_user_disabled("admin", "nurse1", disabled=False)
    service.set_password("admin", "nurse1", "a brand new passphrase")
    assert service.authenticate("nurse1", PASSWORD).reason == BAD_CREDENTIALS


# -- logins read outside the writer ------------------------------------------------


class CountingWrites:
    """A transaction factory that counts the write transactions it opens."""

    def __init__(self, transaction: Callable) -> None:
        self._transaction = transaction
        self.opened = 0
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self) -> Iterator:
        with self._lock:
            self.opened += 1
        with self._transaction() as uow:
            yield uow


@pytest.fixture(name="counted")
def _counted(db, clock) -> tuple[IdentityService, CountingWrites]:
    writes = CountingWrites(db.transaction)
    service = IdentityService(
        writes,
        now=clock,
        max_failures=3,
        lockout_seconds=600,
        hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
        cache_seconds=0,
        reading=db.reading,
    )
    service.add_organization(
        "admin",
        code="SUTTER",
        name="",
        org_type="provider",
        region="SAC",
        facility_ids=["SUTTERPEDS"],
    )
    service.add_user("admin", "SUTTER", "nurse1", PASSWORD)
    service.add_certificate("admin", "SUTTER", "ab" * 32)
    service.allow_address("admin", "SUTTER", "10.1.2.0/24")
    return service, writes


def test_good_login_takes_no_write_transaction(counted):
    """A good login that changes nothing only reads; one after failures writes once to clear them."""
    service, writes = counted
    before = writes.opened
    for _ in range(3):
        assert isinstance(service.authenticate("nurse1", PASSWORD), Principal)
    assert writes.opened == before
    assert service.authenticate("nurse1", "wrong password!!").reason == BAD_CREDENTIALS
    assert writes.opened == before + 1
    assert isinstance(service.authenticate("nurse1", PASSWORD), Principal)
    assert writes.opened == before + 2  # the failure count cleared
    assert isinstance(service.authenticate("nurse1", PASSWORD), Principal)
    assert writes.opened == before + 2


def test_lookups_only_read_but_refusals_are_still_audited(counted, db):
    """Certificates, addresses and codes are read outside the writer; a refusal is written."""
    service, writes = counted
    before = writes.opened
    assert isinstance(service.principal_for_certificate("AB" * 32), Principal)
    assert isinstance(service.principal_for_address("10.1.2.3"), Principal)
    assert service.principal_of("SUTTER") is not None
    assert service.principal_for_facility("SUTTERPEDS") is not None
    assert writes.opened == before
    assert service.principal_for_certificate("cd" * 32).reason == UNKNOWN_CERTIFICATE
    assert service.principal_for_address("192.0.2.9").reason == UNKNOWN_ADDRESS
    assert service.authenticate("nobody", PASSWORD).reason == BAD_CREDENTIALS
    assert writes.opened == before + 3
    refused = [
        r.detail
        for r in db.audit_search(limit=100)
        if (r.profile, r.action, r.outcome) == ("AUTH", "authenticate", "refused")
    ]
    assert sorted(refused) == sorted(
        [UNKNOWN_CERTIFICATE, UNKNOWN_ADDRESS, BAD_CREDENTIALS]
    )


def test_login_succeeds_while_another_connection_holds_the_write_lock(service, db):
    """SQLite: a login does not queue behind the ingest writer (BEGIN IMMEDIATE held elsewhere)."""
    if db.backend != "sqlite":
        pytest.skip("SQLite's database-wide write lock")
    assert isinstance(service.authenticate("nurse1", PASSWORD), Principal)
    writer = sqlite3.connect(db.engine.url.database, isolation_level=None, timeout=0)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE organizations SET name = name")
        found = service.authenticate("nurse1", PASSWORD)
        assert isinstance(found, Principal)
        assert found.organization == "SUTTER"
        assert service.principal_of("SUTTER") is not None
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def _concurrently(service: IdentityService, count: int, password: str) -> list:
    barrier = threading.Barrier(count)
    results: list = []

    def attempt() -> None:
        barrier.wait()
        results.append(service.authenticate("nurse1", password))

    threads = [threading.Thread(target=attempt) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_wrong_passwords_lock_out_at_exactly_max_failures(service, db):
    """Wrong passwords at once are each counted: N-1 leave the account open, N lock it once."""
    results = _concurrently(service, 2, "wrong password!!")
    assert [r.reason for r in results] == [BAD_CREDENTIALS] * 2
    with db.reading() as uow:
        user = uow.identity.get_user("nurse1")
    assert user is not None
    assert user.failed_attempts == 2
    assert user.locked_until is None
    assert isinstance(service.authenticate("nurse1", PASSWORD), Principal)

    results = _concurrently(service, 6, "wrong password!!")
    assert [r.reason for r in results] == [BAD_CREDENTIALS] * 6
    # Locked: the right password is refused like a wrong one (no oracle);
    # the audit row says locked_out.
    assert service.authenticate("nurse1", PASSWORD).reason == BAD_CREDENTIALS
    assert LOCKED_OUT in [r.detail for r in db.audit_search(limit=200)]
    lockouts = [
        r
        for r in db.audit_search(limit=200)
        if (r.profile, r.action, r.outcome) == ("AUTH", "lockout", "locked")
    ]
    assert len(lockouts) == 1
