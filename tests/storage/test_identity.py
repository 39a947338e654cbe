"""The identity repository: organizations, facility ids, credentials, users, failures, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage import Database, NewOrganization, PermanentStorageError

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _org(db: Database, code: str = "SUTTER", *facilities: str) -> int:
    with db.transaction() as uow:
        org_id = uow.identity.insert_organization(
            NewOrganization(code, "Sutter", "provider", "SAC", NOW, max_connections=3)
        )
        for facility in facilities:
            uow.identity.insert_facility(org_id, facility)
    return org_id


def test_identity_organization_round_trip_with_facilities(db: Database) -> None:
    """An organization comes back with its facility ids, limits and times in UTC."""
    org_id = _org(db, "SUTTER", "SUTTERPEDS", "2.16.840.1.113883.3.72.5.9.1")
    with db.transaction() as uow:
        org = uow.identity.get_organization("SUTTER")
        assert uow.identity.get_organization_by_id(org_id) == org
        assert uow.identity.find_facility_owner("SUTTERPEDS") == org_id
        assert uow.identity.find_facility_owner("OTHER") is None
    assert org is not None
    assert org.facility_ids == ("2.16.840.1.113883.3.72.5.9.1", "SUTTERPEDS")
    assert (org.org_type, org.region, org.disabled) == ("provider", "SAC", False)
    assert (org.max_connections, org.max_messages_per_minute) == (3, None)
    assert org.created_at == NOW


def test_identity_facility_id_is_unique_across_organizations(db: Database) -> None:
    """The database itself refuses a second owner of a facility id."""
    _org(db, "SUTTER", "CLINIC1")
    with pytest.raises(PermanentStorageError):
        _org(db, "SPOOF", "CLINIC1")
    with db.transaction() as uow:
        assert uow.identity.get_organization("SPOOF") is None


def test_identity_credential_is_unique_per_kind(db: Database) -> None:
    """One certificate fingerprint or network maps to one organization."""
    org_id = _org(db)
    with db.transaction() as uow:
        uow.identity.insert_credential(org_id, "certificate", "ab" * 32, "a.pem", NOW)
        uow.identity.insert_credential(org_id, "address", "10.0.0.0/8", "", NOW)
    with pytest.raises(PermanentStorageError), db.transaction() as uow:
        uow.identity.insert_credential(org_id, "certificate", "ab" * 32, "", NOW)
    with db.transaction() as uow:
        found = uow.identity.find_credential("certificate", "ab" * 32)
        assert found is not None and found.organization_id == org_id
        assert [
            c.kind for c in uow.identity.list_credentials(organization_id=org_id)
        ] == [
            "certificate",
            "address",
        ]
        assert len(uow.identity.list_credentials("address")) == 1


def test_identity_failures_lock_at_the_limit_and_success_clears(db: Database) -> None:
    """Failures are counted by the database; the limit sets locked_until and restarts the count."""
    org_id = _org(db)
    until = NOW + timedelta(minutes=15)
    with db.transaction() as uow:
        user_id = uow.identity.insert_user(org_id, "nurse1", "$argon2id$x", NOW)
        assert [uow.identity.record_failure(user_id, 3, until) for _ in range(2)] == [
            1,
            2,
        ]
        uow.identity.record_success(user_id)
        assert [uow.identity.record_failure(user_id, 3, until) for _ in range(3)] == [
            1,
            2,
            3,
        ]
        user = uow.identity.get_user("nurse1")
    assert user is not None
    assert user.locked_until == until and user.failed_attempts == 0


def test_identity_set_password_clears_the_lockout(db: Database) -> None:
    """A new password resets failures and lockout."""
    org_id = _org(db)
    with db.transaction() as uow:
        user_id = uow.identity.insert_user(org_id, "nurse1", "$argon2id$old", NOW)
        uow.identity.record_failure(user_id, 1, NOW + timedelta(hours=1))
        uow.identity.set_password(user_id, "$argon2id$new", NOW + timedelta(minutes=1))
        uow.identity.set_user_disabled(user_id, True)
        user = uow.identity.get_user("nurse1")
    assert user is not None
    assert (user.password_hash, user.locked_until, user.disabled) == (
        "$argon2id$new",
        None,
        True,
    )
    assert "$argon2id" not in repr(user)


def test_identity_username_is_unique(db: Database) -> None:
    """Two users cannot share a login name, even in different organizations."""
    first, second = _org(db, "A"), _org(db, "B")
    with db.transaction() as uow:
        uow.identity.insert_user(first, "shared", "h", NOW)
    with pytest.raises(PermanentStorageError), db.transaction() as uow:
        uow.identity.insert_user(second, "shared", "h", NOW)
