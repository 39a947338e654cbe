"""The database handle, the unit of work, and the repositories.

A :class:`UnitOfWork` is one database transaction; :meth:`UnitOfWork.savepoint`
isolates one message inside it, so several messages can share a commit
(group commit) while a failing one rolls back alone. Repositories speak SQL
through SQLAlchemy Core (the ORM session costs about five times as much per
message) and return frozen dataclasses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import structlog
from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.pool import StaticPool

from storage.errors import DuplicateMessage, SchemaOutOfDate, StorageError
from storage.records import (
    AuditEntry,
    JournalEntry,
    NewAuditEntry,
    NewJournalEntry,
    NewMatchDecision,
    NewNextOfKin,
    NewObservation,
    NewPatient,
    NewReviewItem,
    NewVaccination,
    NextOfKinRecord,
    ObservationRecord,
    PatientIdentifier,
    PatientRecord,
    ReviewItem,
    VaccinationRecord,
)
from storage.schema import (
    audit_log,
    match_decisions,
    message_journal,
    next_of_kin,
    observations,
    patient_identifiers,
    patient_links,
    patient_submitters,
    patients,
    review_items,
    vaccinations,
)

logger = structlog.get_logger()

T = TypeVar("T")


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they were stored as UTC."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _fields(record: Any) -> dict[str, Any]:
    """A record's fields as a dict (shallow: dataclasses.asdict deep-copies)."""
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


def _members(conn: Connection, region: str, patient_id: int) -> list[int]:
    """A patient and the records merged into it (the merged view)."""
    members = [patient_id]
    frontier = [patient_id]
    while frontier:
        rows = conn.execute(
            select(patient_links.c.merged_id).where(
                patient_links.c.region == region,
                patient_links.c.survivor_id.in_(frontier),
                patient_links.c.active.is_(True),
            )
        ).all()
        frontier = [int(r.merged_id) for r in rows if int(r.merged_id) not in members]
        members.extend(frontier)
    return members


def _now() -> datetime:
    return datetime.now(UTC)


def _record(cls: type[T], row: Any, **extra: Any) -> T:
    """Build a record dataclass from a row, taking the fields the class has."""
    mapping = row._mapping
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in extra:
            values[f.name] = extra[f.name]
        elif f.name in mapping:
            value = mapping[f.name]
            if isinstance(value, datetime):
                value = _utc(value)
            elif isinstance(value, memoryview):
                value = bytes(value)
            values[f.name] = value
    return cls(**values)


# Statements with bound parameters compile once and are reused from the cache.
_SET_RESPONSE = (
    update(message_journal)
    .where(message_journal.c.id == bindparam("_id"))
    .values(
        response=bindparam("response"),
        ack_code=bindparam("ack_code"),
        outcome=bindparam("outcome"),
        error_count=bindparam("error_count"),
        region=bindparam("region"),
    )
)


_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


class JournalRepository:
    """The message journal: raw messages, responses and outcomes."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def find(self, sender: str, control_id: str) -> JournalEntry | None:
        """The entry for (sending facility, MSH-10), if any."""
        row = self._conn.execute(
            select(message_journal).where(
                message_journal.c.sender == sender,
                message_journal.c.control_id == control_id,
            )
        ).first()
        return _record(JournalEntry, row) if row else None

    def insert(self, entry: NewJournalEntry) -> int:
        """Journal a received message; raises DuplicateMessage on a resend race."""
        try:
            result = self._conn.execute(
                message_journal.insert(),
                dict(_fields(entry), outcome="received"),
            )
        except IntegrityError as exc:
            raise DuplicateMessage(entry.sender, entry.control_id) from exc
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def set_response(
        self,
        journal_id: int,
        response: bytes,
        ack_code: str,
        outcome: str,
        error_count: int,
        region: str | None,
    ) -> None:
        """Store the response and outcome of a journaled message."""
        self._conn.execute(
            _SET_RESPONSE,
            {
                "_id": journal_id,
                "response": response,
                "ack_code": ack_code,
                "outcome": outcome[:300],
                "error_count": error_count,
                "region": region,
            },
        )


class PatientRepository:
    """Patients, their identifiers, next of kin and submitting organizations."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def _load(self, rows: Sequence[Any]) -> list[PatientRecord]:
        if not rows:
            return []
        ids = [row.id for row in rows]
        idents: dict[int, list[PatientIdentifier]] = {}
        for ident in self._conn.execute(
            select(
                patient_identifiers.c.patient_id,
                patient_identifiers.c.value,
                patient_identifiers.c.authority,
                patient_identifiers.c.type_code,
            )
            .where(patient_identifiers.c.patient_id.in_(ids))
            .order_by(patient_identifiers.c.id)
        ):
            idents.setdefault(ident.patient_id, []).append(
                PatientIdentifier(ident.value, ident.authority, ident.type_code)
            )
        return [
            _record(PatientRecord, row, identifiers=tuple(idents.get(row.id, ())))
            for row in rows
        ]

    def get(self, region: str, patient_id: int) -> PatientRecord | None:
        """A patient by id, within a region."""
        rows = self._conn.execute(
            select(patients).where(
                patients.c.region == region, patients.c.id == patient_id
            )
        ).all()
        loaded = self._load(rows)
        return loaded[0] if loaded else None

    def find_by_identifier(
        self, region: str, value: str, authority: str
    ) -> PatientRecord | None:
        """The patient holding this identifier from this assigning authority."""
        row = self._conn.execute(
            select(patient_identifiers.c.patient_id).where(
                patient_identifiers.c.region == region,
                patient_identifiers.c.authority == authority,
                patient_identifiers.c.value == value,
            )
        ).first()
        return (
            self.get(region, self.survivor(region, int(row.patient_id)))
            if row
            else None
        )

    def find_by_birth_date(self, region: str, birth_date: date) -> list[PatientRecord]:
        """Every patient of a region born on a date (matching candidates)."""
        rows = self._conn.execute(
            select(patients)
            .where(patients.c.region == region, patients.c.birth_date == birth_date)
            .order_by(patients.c.id)
            .limit(500)
        ).all()
        return self._load(rows)

    def insert(self, patient: NewPatient) -> int:
        """Store a new patient."""
        now = _now()
        result = self._conn.execute(
            patients.insert(),
            dict(_fields(patient), created_at=now, updated_at=now),
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def update(self, region: str, patient_id: int, patient: NewPatient) -> None:
        """Refresh demographics: values that are sent win, empty ones change nothing."""
        values = {
            k: v
            for k, v in _fields(patient).items()
            if v not in ("", None) and k not in {"region", "created_by_journal_id"}
        }
        values["updated_at"] = _now()
        self._conn.execute(
            update(patients)
            .where(patients.c.region == region, patients.c.id == patient_id)
            .values(**values)
        )

    def add_identifiers(
        self, region: str, patient_id: int, identifiers: Iterable[tuple[str, str, str]]
    ) -> None:
        """Attach identifiers (value, authority, type); ones already held are skipped."""
        for value, authority, type_code in identifiers:
            exists = self._conn.execute(
                select(patient_identifiers.c.patient_id).where(
                    patient_identifiers.c.region == region,
                    patient_identifiers.c.authority == authority,
                    patient_identifiers.c.value == value,
                )
            ).first()
            if exists is None:
                self._conn.execute(
                    patient_identifiers.insert(),
                    {
                        "patient_id": patient_id,
                        "region": region,
                        "value": value,
                        "authority": authority,
                        "type_code": type_code,
                    },
                )

    def replace_next_of_kin(
        self, region: str, patient_id: int, kin: Sequence[NewNextOfKin]
    ) -> None:
        """Replace the patient's next of kin with the ones just reported."""
        self._conn.execute(
            delete(next_of_kin).where(
                next_of_kin.c.region == region, next_of_kin.c.patient_id == patient_id
            )
        )
        if kin:
            self._conn.execute(
                insert(next_of_kin),
                [dict(_fields(k), patient_id=patient_id, region=region) for k in kin],
            )

    def next_of_kin(self, region: str, patient_id: int) -> list[NextOfKinRecord]:
        """The patient's next of kin."""
        rows = self._conn.execute(
            select(next_of_kin)
            .where(
                next_of_kin.c.region == region, next_of_kin.c.patient_id == patient_id
            )
            .order_by(next_of_kin.c.sequence)
        ).all()
        return [_record(NextOfKinRecord, row) for row in rows]

    def add_submitter(self, region: str, patient_id: int, facility: str) -> None:
        """Record that an organization submitted data for the patient (lock ownership)."""
        exists = self._conn.execute(
            select(patient_submitters.c.facility).where(
                patient_submitters.c.patient_id == patient_id,
                patient_submitters.c.facility == facility,
            )
        ).first()
        if exists is None:
            self._conn.execute(
                patient_submitters.insert(),
                {
                    "patient_id": patient_id,
                    "facility": facility,
                    "region": region,
                    "first_seen": _now(),
                },
            )

    def submitters(self, region: str, patient_id: int) -> frozenset[str]:
        """The organizations that submitted data for the patient."""
        rows = self._conn.execute(
            select(patient_submitters.c.facility).where(
                patient_submitters.c.region == region,
                patient_submitters.c.patient_id == patient_id,
            )
        )
        return frozenset(row.facility for row in rows)

    def find_by_birth_dates(
        self, region: str, birth_dates: Iterable[date]
    ) -> list[PatientRecord]:
        """Patients of a region born on any of the dates (scored-matching candidates), merged ones excluded."""
        dates = sorted(set(birth_dates))
        if not dates:
            return []
        merged = select(patient_links.c.merged_id).where(
            patient_links.c.region == region, patient_links.c.active.is_(True)
        )
        rows = self._conn.execute(
            select(patients)
            .where(
                patients.c.region == region,
                patients.c.birth_date.in_(dates),
                patients.c.id.not_in(merged),
            )
            .order_by(patients.c.id)
            .limit(500)
        ).all()
        return self._load(rows)

    def survivor(self, region: str, patient_id: int) -> int:
        """The patient a merged record reads through (itself when not merged)."""
        seen = {patient_id}
        current = patient_id
        while True:
            row = self._conn.execute(
                select(patient_links.c.survivor_id).where(
                    patient_links.c.region == region,
                    patient_links.c.merged_id == current,
                    patient_links.c.active.is_(True),
                )
            ).first()
            if row is None or row.survivor_id in seen:
                return current
            current = int(row.survivor_id)
            seen.add(current)

    def merged_into(self, region: str, survivor_id: int) -> list[int]:
        """The survivor and every record merged into it (the merged view's members)."""
        return _members(self._conn, region, survivor_id)

    def link(
        self, region: str, merged_id: int, survivor_id: int, review_id: int | None
    ) -> None:
        """Merge: ``merged_id`` now reads through ``survivor_id``; both records stay."""
        self._conn.execute(
            delete(patient_links).where(patient_links.c.merged_id == merged_id)
        )
        self._conn.execute(
            patient_links.insert(),
            {
                "merged_id": merged_id,
                "region": region,
                "survivor_id": survivor_id,
                "review_id": review_id,
                "active": True,
                "created_at": _now(),
            },
        )

    def unlink(self, region: str, merged_id: int) -> bool:
        """Undo a merge; returns whether there was one."""
        result = self._conn.execute(
            update(patient_links)
            .where(
                patient_links.c.region == region,
                patient_links.c.merged_id == merged_id,
                patient_links.c.active.is_(True),
            )
            .values(active=False)
        )
        return bool(result.rowcount)

    def record_decision(self, decision: NewMatchDecision) -> None:
        """Store one matching decision and its reasons."""
        self._conn.execute(match_decisions.insert(), _fields(decision))

    def count(self, region: str) -> int:
        """How many patients a region holds."""
        return int(
            self._conn.execute(
                select(func.count())
                .select_from(patients)
                .where(patients.c.region == region)
            ).scalar_one()
        )


class VaccinationRepository:
    """Reported vaccination events."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def find_by_filler(
        self, region: str, sending_facility: str, filler_namespace: str, filler_id: str
    ) -> VaccinationRecord | None:
        """The dose a sender identified by ORC-3 (deleted ones included)."""
        row = self._conn.execute(
            select(vaccinations)
            .where(
                vaccinations.c.region == region,
                vaccinations.c.sending_facility == sending_facility,
                vaccinations.c.filler_namespace == filler_namespace,
                vaccinations.c.filler_id == filler_id,
            )
            .order_by(vaccinations.c.id.desc())
        ).first()
        return _record(VaccinationRecord, row) if row else None

    def insert(self, vaccination: NewVaccination) -> int:
        """Store a reported vaccination event."""
        now = _now()
        result = self._conn.execute(
            vaccinations.insert(),
            dict(_fields(vaccination), created_at=now, updated_at=now),
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def update(
        self, region: str, vaccination_id: int, vaccination: NewVaccination
    ) -> None:
        """Replace a stored event with its sender's newer version (and undelete it)."""
        values = _fields(vaccination)
        values.pop("region")
        self._conn.execute(
            update(vaccinations)
            .where(vaccinations.c.region == region, vaccinations.c.id == vaccination_id)
            .values(**values, updated_at=_now(), deleted_at=None)
        )

    def soft_delete(self, region: str, vaccination_id: int, when: datetime) -> None:
        """Take a dose out of the consolidated view; the record of it stays."""
        self._conn.execute(
            update(vaccinations)
            .where(vaccinations.c.region == region, vaccinations.c.id == vaccination_id)
            .values(deleted_at=when, updated_at=when)
        )

    def for_patient(
        self,
        region: str,
        patient_id: int,
        include_deleted: bool = False,
        consolidated: bool = True,
    ) -> list[VaccinationRecord]:
        """The patient's vaccination events, oldest first, merged records included.

        The consolidated view (the default) leaves out records marked as
        duplicates of another; every record stays stored.
        """
        members = _members(self._conn, region, patient_id)
        query = select(vaccinations).where(
            vaccinations.c.region == region, vaccinations.c.patient_id.in_(members)
        )
        if not include_deleted:
            query = query.where(vaccinations.c.deleted_at.is_(None))
        if consolidated:
            query = query.where(vaccinations.c.duplicate_of.is_(None))
        rows = self._conn.execute(
            query.order_by(vaccinations.c.administered_on, vaccinations.c.id)
        ).all()
        return [_record(VaccinationRecord, row) for row in rows]

    def get(self, region: str, vaccination_id: int) -> VaccinationRecord | None:
        """One stored record (deleted or duplicate ones included)."""
        row = self._conn.execute(
            select(vaccinations).where(
                vaccinations.c.region == region, vaccinations.c.id == vaccination_id
            )
        ).first()
        return _record(VaccinationRecord, row) if row else None

    def mark_duplicate(
        self, region: str, vaccination_id: int, of_id: int | None, reason: str
    ) -> None:
        """Take a record out of (or, with None, back into) the consolidated view."""
        self._conn.execute(
            update(vaccinations)
            .where(vaccinations.c.region == region, vaccinations.c.id == vaccination_id)
            .values(duplicate_of=of_id, dedup_reason=reason[:200], updated_at=_now())
        )


class ReviewRepository:
    """The review queue: possible patient matches and unsure dose duplicates."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def insert(self, item: NewReviewItem) -> int:
        """Queue a pair for review."""
        result = self._conn.execute(review_items.insert(), _fields(item))
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def get(self, review_id: int) -> ReviewItem | None:
        """One item."""
        row = self._conn.execute(
            select(review_items).where(review_items.c.id == review_id)
        ).first()
        return _record(ReviewItem, row) if row else None

    def list(
        self, status: str = "open", kind: str | None = None, limit: int = 100
    ) -> list[ReviewItem]:
        """Items by status, oldest first."""
        query = select(review_items).where(review_items.c.status == status)
        if kind:
            query = query.where(review_items.c.kind == kind)
        rows = self._conn.execute(query.order_by(review_items.c.id).limit(limit)).all()
        return [_record(ReviewItem, row) for row in rows]

    def decide(self, review_id: int, status: str, who: str) -> None:
        """Record a decision (merged, separated, same, different)."""
        self._conn.execute(
            update(review_items)
            .where(review_items.c.id == review_id)
            .values(status=status, decided_at=_now(), decided_by=who[:80])
        )


class ObservationRepository:
    """Observations (OBX) about doses and patients."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def insert_many(self, items: Sequence[NewObservation]) -> None:
        """Store observations in one statement."""
        if items:
            self._conn.execute(insert(observations), [_fields(o) for o in items])

    def for_patient(self, region: str, patient_id: int) -> list[ObservationRecord]:
        """The patient's observations, merged records included."""
        members = _members(self._conn, region, patient_id)
        rows = self._conn.execute(
            select(observations)
            .where(
                observations.c.region == region, observations.c.patient_id.in_(members)
            )
            .order_by(observations.c.id)
        ).all()
        return [_record(ObservationRecord, row) for row in rows]


class AuditRepository:
    """The disclosure audit trail."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def insert(self, entry: NewAuditEntry) -> None:
        """Write one audit row."""
        self._conn.execute(audit_log.insert(), _fields(entry))


class UnitOfWork:
    """One transaction and the repositories that work inside it."""

    def __init__(self, conn: Connection) -> None:
        self.connection = conn
        self.journal = JournalRepository(conn)
        self.patients = PatientRepository(conn)
        self.vaccinations = VaccinationRepository(conn)
        self.observations = ObservationRepository(conn)
        self.audit = AuditRepository(conn)
        self.review = ReviewRepository(conn)

    def lock(self, keys: Iterable[str]) -> None:
        """Serialize work on the same keys across engine nodes until this transaction ends.

        PostgreSQL takes transaction-scoped advisory locks (in sorted order, to
        avoid deadlocks between nodes); SQLite already has a single writer
        (BEGIN IMMEDIATE), so nothing is needed there.
        """
        if self.connection.dialect.name != "postgresql":
            return
        for key in sorted(set(keys)):
            self.connection.execute(_ADVISORY_LOCK, {"key": key})

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Run a block in a savepoint: on an exception only the block rolls back."""
        nested = self.connection.begin_nested()
        try:
            yield
        except BaseException:
            nested.rollback()
            raise
        else:
            nested.commit()


def _sqlite_pragmas(synchronous: str) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy own BEGIN so that SAVEPOINT works with pysqlite.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    return on_connect


class Database:
    """The registry's database: transactions, schema management and read helpers.

    Use :func:`open_database` to build one.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.backend = engine.dialect.name

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A read-only connection; a missing schema is a StorageError that says what to run."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise StorageError(
                f"cannot read {self.url}: {exc.orig.__class__.__name__}: {exc.orig} (is the schema created? run `cairn db upgrade`)"
            ) from exc

    @property
    def url(self) -> str:
        """The database URL without password."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def transaction(self) -> Iterator[UnitOfWork]:
        """One transaction: committed when the block ends, rolled back on an exception."""
        try:
            with self.engine.begin() as conn:
                yield UnitOfWork(conn)
        except OperationalError as exc:
            raise StorageError(
                f"database unavailable: {exc.orig.__class__.__name__}"
            ) from exc

    def upgrade(self, regions: Sequence[str] = ()) -> str:
        """Migrate the schema to the newest revision and create region partitions; returns the revision."""
        from storage.migrate import ensure_region_partitions, upgrade

        revision = upgrade(self.engine)
        if regions:
            ensure_region_partitions(self.engine, tuple(regions))
        return revision

    def add_region_partitions(self, regions: Sequence[str]) -> list[str]:
        """Create the partitions of new regions (PostgreSQL); returns their names."""
        from storage.migrate import ensure_region_partitions

        return ensure_region_partitions(self.engine, tuple(regions))

    def check_schema_current(self) -> None:
        """Raise SchemaOutOfDate unless the schema is at the newest revision."""
        from storage.migrate import current_revision, head_revision

        current, head = current_revision(self.engine), head_revision()
        if current != head:
            raise SchemaOutOfDate(current, head)

    def journal_search(
        self,
        *,
        sender: str | None = None,
        control_id: str | None = None,
        message_type: str | None = None,
        ack_code: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
    ) -> list[JournalEntry]:
        """Search the journal, newest first."""
        conds = []
        c = message_journal.c
        if sender:
            conds.append(c.sender == sender)
        if control_id:
            conds.append(c.control_id == control_id)
        if message_type:
            conds.append(c.message_type.like(f"{message_type}%"))
        if ack_code:
            conds.append(c.ack_code == ack_code)
        if since:
            conds.append(c.received_at >= since)
        if until:
            conds.append(c.received_at <= until)
        query = select(message_journal).order_by(c.id.desc()).limit(limit)
        if conds:
            query = query.where(and_(*conds))
        with self._reading() as conn:
            return [_record(JournalEntry, row) for row in conn.execute(query).all()]

    def journal_get(self, journal_id: int) -> JournalEntry | None:
        """One journal entry."""
        with self._reading() as conn:
            row = conn.execute(
                select(message_journal).where(message_journal.c.id == journal_id)
            ).first()
            return _record(JournalEntry, row) if row else None

    def audit_search(
        self,
        *,
        requester: str | None = None,
        patient_id: int | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Search the audit trail, newest first."""
        c = audit_log.c
        conds = []
        if requester:
            conds.append(c.requester == requester)
        if patient_id is not None:
            conds.append(c.patient_id == patient_id)
        if outcome:
            conds.append(c.outcome == outcome)
        if since:
            conds.append(c.at >= since)
        if until:
            conds.append(c.at <= until)
        query = select(audit_log).order_by(c.id.desc()).limit(limit)
        if conds:
            query = query.where(and_(*conds))
        with self._reading() as conn:
            return [_record(AuditEntry, row) for row in conn.execute(query).all()]

    def close(self) -> None:
        """Release every connection."""
        self.engine.dispose()


def open_database(
    url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 8
) -> Database:
    """Open a database by URL (SQLite file, in-memory SQLite, or PostgreSQL via psycopg).

    Raises:
        StorageError: when the URL is not usable.
    """
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise StorageError(f"invalid database URL: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        if sqlite_synchronous.upper() not in {"FULL", "NORMAL", "EXTRA", "OFF"}:
            raise StorageError(
                f"invalid SQLite synchronous mode {sqlite_synchronous!r}"
            )
        memory = parsed.database in (None, "", ":memory:")
        if not memory and parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
        if memory:
            kwargs["poolclass"] = StaticPool
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas(sqlite_synchronous.upper()))

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # IMMEDIATE takes the write lock up front: two writers never
            # deadlock on a read lock they both try to upgrade.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    elif parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(
            parsed, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
        )
    else:
        raise StorageError(
            f"unsupported database backend {parsed.get_backend_name()!r} (use sqlite or postgresql)"
        )
    return Database(engine)
