"""Who is speaking: organizations, their facility ids and credentials, and users.

Cold path (an operator's command, a connection being opened, a login): plain
SQLAlchemy Core inside the unit of work's transaction. A password hash is
stored and handed to the identity service, never anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, insert, select, update

from storage._records import utc
from storage.schema import (
    organization_credentials,
    organization_facilities,
    organizations,
    users,
)

__all__ = [
    "Credential",
    "IdentityRepository",
    "NewOrganization",
    "Organization",
    "UserAccount",
]

#: ``organization_credentials.kind`` values.
CERTIFICATE = "certificate"
ADDRESS = "address"


@dataclass(frozen=True, slots=True)
class NewOrganization:
    """An organization to register."""

    code: str
    name: str
    org_type: str
    region: str
    created_at: datetime
    max_messages_per_minute: int | None = None
    max_connections: int | None = None


@dataclass(frozen=True, slots=True)
class Organization:
    """A stored organization with its facility ids."""

    id: int
    code: str
    name: str
    org_type: str
    region: str
    disabled: bool
    max_messages_per_minute: int | None
    max_connections: int | None
    created_at: datetime
    facility_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Credential:
    """A certificate fingerprint or an address range that identifies an organization."""

    id: int
    organization_id: int
    kind: str
    value: str
    label: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class UserAccount:
    """A stored user (the hash goes to the identity service only)."""

    id: int
    organization_id: int
    username: str
    password_hash: str
    disabled: bool
    failed_attempts: int
    locked_until: datetime | None
    created_at: datetime
    password_changed_at: datetime

    def __repr__(self) -> str:
        # Never let a hash reach a log line or a traceback through repr().
        return f"UserAccount(id={self.id}, username={self.username!r})"


class IdentityRepository:
    """Organizations, facility ids, credentials and users, in one transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    # -- organizations -------------------------------------------------------

    def insert_organization(self, org: NewOrganization) -> int:
        """Register an organization; returns its id."""
        result = self._conn.execute(
            insert(organizations).values(
                code=org.code,
                name=org.name,
                org_type=org.org_type,
                region=org.region,
                max_messages_per_minute=org.max_messages_per_minute,
                max_connections=org.max_connections,
                created_at=org.created_at,
            )
        )
        assert result.inserted_primary_key is not None
        return int(result.inserted_primary_key[0])

    def set_organization_disabled(self, organization_id: int, disabled: bool) -> None:
        """Disable (or enable again) an organization."""
        self._conn.execute(
            update(organizations)
            .where(organizations.c.id == organization_id)
            .values(disabled=disabled)
        )

    def get_organization(self, code: str) -> Organization | None:
        """An organization by code, with its facility ids."""
        row = self._conn.execute(
            select(organizations).where(organizations.c.code == code)
        ).first()
        return self._organization(row) if row else None

    def get_organization_by_id(self, organization_id: int) -> Organization | None:
        """An organization by id, with its facility ids."""
        row = self._conn.execute(
            select(organizations).where(organizations.c.id == organization_id)
        ).first()
        return self._organization(row) if row else None

    def list_organizations(self) -> list[Organization]:
        """Every organization, by code."""
        rows = self._conn.execute(
            select(organizations).order_by(organizations.c.code)
        ).all()
        return [self._organization(row) for row in rows]

    def _organization(self, row: object) -> Organization:
        m = row._mapping  # type: ignore[attr-defined]
        facilities = self._conn.execute(
            select(organization_facilities.c.facility_id)
            .where(organization_facilities.c.organization_id == m["id"])
            .order_by(organization_facilities.c.facility_id)
        ).scalars()
        created = utc(m["created_at"])
        assert created is not None
        return Organization(
            id=int(m["id"]),
            code=m["code"],
            name=m["name"],
            org_type=m["org_type"],
            region=m["region"],
            disabled=bool(m["disabled"]),
            max_messages_per_minute=m["max_messages_per_minute"],
            max_connections=m["max_connections"],
            created_at=created,
            facility_ids=tuple(facilities),
        )

    # -- facility ids ----------------------------------------------------------

    def insert_facility(self, organization_id: int, facility_id: str) -> None:
        """Give an organization a facility id (unique across organizations)."""
        self._conn.execute(
            insert(organization_facilities).values(
                facility_id=facility_id, organization_id=organization_id
            )
        )

    def find_facility_owner(self, facility_id: str) -> int | None:
        """The organization a facility id belongs to."""
        value = self._conn.execute(
            select(organization_facilities.c.organization_id).where(
                organization_facilities.c.facility_id == facility_id
            )
        ).scalar()
        return None if value is None else int(value)

    # -- credentials -------------------------------------------------------------

    def insert_credential(
        self, organization_id: int, kind: str, value: str, label: str, at: datetime
    ) -> int:
        """Map a certificate fingerprint or an address range to an organization."""
        result = self._conn.execute(
            insert(organization_credentials).values(
                organization_id=organization_id,
                kind=kind,
                value=value,
                label=label[:200],
                created_at=at,
            )
        )
        assert result.inserted_primary_key is not None
        return int(result.inserted_primary_key[0])

    def find_credential(self, kind: str, value: str) -> Credential | None:
        """The credential of a kind with exactly this value."""
        row = self._conn.execute(
            select(organization_credentials).where(
                organization_credentials.c.kind == kind,
                organization_credentials.c.value == value,
            )
        ).first()
        return self._credential(row) if row else None

    def list_credentials(
        self, kind: str | None = None, organization_id: int | None = None
    ) -> list[Credential]:
        """Credentials, optionally of one kind or one organization."""
        query = select(organization_credentials).order_by(organization_credentials.c.id)
        if kind is not None:
            query = query.where(organization_credentials.c.kind == kind)
        if organization_id is not None:
            query = query.where(
                organization_credentials.c.organization_id == organization_id
            )
        return [self._credential(row) for row in self._conn.execute(query).all()]

    @staticmethod
    def _credential(row: object) -> Credential:
        m = row._mapping  # type: ignore[attr-defined]
        created = utc(m["created_at"])
        assert created is not None
        return Credential(
            int(m["id"]),
            int(m["organization_id"]),
            m["kind"],
            m["value"],
            m["label"],
            created,
        )

    # -- users ---------------------------------------------------------------------

    def insert_user(
        self, organization_id: int, username: str, password_hash: str, at: datetime
    ) -> int:
        """Create a user; returns its id."""
        result = self._conn.execute(
            insert(users).values(
                organization_id=organization_id,
                username=username,
                password_hash=password_hash,
                created_at=at,
                password_changed_at=at,
            )
        )
        assert result.inserted_primary_key is not None
        return int(result.inserted_primary_key[0])

    def get_user(self, username: str) -> UserAccount | None:
        """A user by username."""
        row = self._conn.execute(
            select(users).where(users.c.username == username)
        ).first()
        return self._user(row) if row else None

    def lock_user(self, username: str) -> UserAccount | None:
        """A user by username, its row locked until the transaction ends.

        For a read-then-write that must see concurrent writers' results
        (counting failed logins): PostgreSQL ``SELECT ... FOR UPDATE``;
        SQLite's write transaction (BEGIN IMMEDIATE) already excludes every
        other writer, and SQLAlchemy leaves the clause out there.
        """
        row = self._conn.execute(
            select(users).where(users.c.username == username).with_for_update()
        ).first()
        return self._user(row) if row else None

    def list_users(self, organization_id: int | None = None) -> list[UserAccount]:
        """Users, optionally of one organization, by username."""
        query = select(users).order_by(users.c.username)
        if organization_id is not None:
            query = query.where(users.c.organization_id == organization_id)
        return [self._user(row) for row in self._conn.execute(query).all()]

    def set_password(self, user_id: int, password_hash: str, at: datetime) -> None:
        """Replace a user's password hash; clears failures and any lockout."""
        self._conn.execute(
            update(users)
            .where(users.c.id == user_id)
            .values(
                password_hash=password_hash,
                password_changed_at=at,
                failed_attempts=0,
                locked_until=None,
            )
        )

    def set_user_disabled(self, user_id: int, disabled: bool) -> None:
        """Disable (or enable again) a user."""
        self._conn.execute(
            update(users).where(users.c.id == user_id).values(disabled=disabled)
        )

    def record_failure(
        self, user_id: int, max_failures: int, lock_until: datetime
    ) -> int:
        """Count a failed login, locking the account at ``max_failures``; returns the count.

        The increment is done by the database (``failed_attempts + 1``), so
        that concurrent failures on several nodes all count.
        """
        c = users.c
        self._conn.execute(
            update(users)
            .where(c.id == user_id)
            .values(failed_attempts=c.failed_attempts + 1)
        )
        count = int(
            self._conn.execute(
                select(func.coalesce(c.failed_attempts, 0)).where(c.id == user_id)
            ).scalar_one()
        )
        if count >= max_failures:
            self._conn.execute(
                update(users)
                .where(c.id == user_id)
                .values(locked_until=lock_until, failed_attempts=0)
            )
        return count

    def record_success(self, user_id: int) -> None:
        """Forget earlier failures after a good login."""
        self._conn.execute(
            update(users)
            .where(users.c.id == user_id, users.c.failed_attempts != 0)
            .values(failed_attempts=0)
        )

    @staticmethod
    def _user(row: object) -> UserAccount:
        m = row._mapping  # type: ignore[attr-defined]
        created = utc(m["created_at"])
        changed = utc(m["password_changed_at"])
        assert created is not None
        assert changed is not None
        return UserAccount(
            id=int(m["id"]),
            organization_id=int(m["organization_id"]),
            username=m["username"],
            password_hash=m["password_hash"],
            disabled=bool(m["disabled"]),
            failed_attempts=int(m["failed_attempts"]),
            locked_until=utc(m["locked_until"]),
            created_at=created,
            password_changed_at=changed,
        )
