"""The database handle, the unit of work, and the repositories.

A :class:`UnitOfWork` is one database transaction; :meth:`UnitOfWork.savepoint`
isolates one message inside it, so several messages can share a commit
(group commit) while a failing one rolls back alone. Repositories speak SQL
through SQLAlchemy Core (the ORM session costs about five times as much per
message) and return frozen dataclasses.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import structlog
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Insert,
    Select,
    Table,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.base import Executable

from storage._sql import Compiled, Runner, Statement, StatementFamily
from storage.errors import (
    PermanentStorageError,
    SchemaOutOfDate,
    StorageError,
    TransientStorageError,
)
from storage.keys import name_key
from storage.records import (
    AuditEntry,
    JournalAnswer,
    JournalEntry,
    JournalLookup,
    NewAuditEntry,
    NewJournalEntry,
    NewMatchDecision,
    NewNextOfKin,
    NewObservation,
    NewPatient,
    NewPatientVersion,
    NewReviewItem,
    NewVaccination,
    NextOfKinRecord,
    ObservationRecord,
    PatientIdentifier,
    PatientRecord,
    PatientVersion,
    ReviewItem,
    Submitter,
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
    patient_versions,
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


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _names(cls: type) -> tuple[str, ...]:
    """A record class's field names (cached: dataclasses.fields is slow)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(cls))
        _FIELD_NAMES[cls] = names
    return names


def _fields(record: Any) -> dict[str, Any]:
    """A record's fields as a dict (shallow: dataclasses.asdict deep-copies)."""
    return {name: getattr(record, name) for name in _names(type(record))}


def _now() -> datetime:
    return datetime.now(UTC)


def _record(cls: type[T], row: Any, **extra: Any) -> T:
    """Build a record dataclass from a SQLAlchemy row, taking the fields the class has."""
    mapping = row._mapping
    values: dict[str, Any] = {}
    for name in _names(cls):
        if name in extra:
            values[name] = extra[name]
        elif name in mapping:
            value = mapping[name]
            if isinstance(value, datetime):
                value = _utc(value)
            elif isinstance(value, memoryview):
                value = bytes(value)
            values[name] = value
    return cls(**values)


def _columns(table: Table, cls: type) -> list[Column[Any]]:
    """The table's columns that a record class has, in the class's field order."""
    return [table.c[name] for name in _names(cls) if name in table.c]


def _select_record(table: Table, cls: type) -> tuple[Select[Any], list[Column[Any]]]:
    columns = _columns(table, cls)
    return select(*columns), columns


def _insert(table: Table, names: Iterable[str], returning: bool = True) -> Statement:
    """INSERT of the named columns, returning the new id (SQLite: lastrowid)."""
    stmt = insert(table).values({name: bindparam(name) for name in names})
    # SQLite reads cursor.lastrowid; PostgreSQL needs RETURNING (compiled per dialect).
    return _DialectInsert(stmt, table.c.id if returning else None)


class _PerDialect(Statement):
    """One statement per dialect (SQLite and PostgreSQL spell upserts their own way)."""

    __slots__ = ("_pg", "_sqlite")

    def __init__(self, sqlite_stmt: Executable, pg_stmt: Executable) -> None:
        super().__init__(sqlite_stmt)
        self._sqlite = Statement(sqlite_stmt)
        self._pg = Statement(pg_stmt)

    def on(self, dialect: Dialect) -> Compiled:
        """The statement written for this dialect."""
        if dialect.name == "sqlite":
            return self._sqlite.on(dialect)
        return self._pg.on(dialect)


class _DialectInsert(Statement):
    """An INSERT that adds ``RETURNING id`` on dialects without lastrowid."""

    __slots__ = ("_plain", "_returning")

    def __init__(self, stmt: Insert, id_column: Column[Any] | None) -> None:
        super().__init__(stmt)
        self._plain = Statement(stmt)
        self._returning = (
            Statement(stmt.returning(id_column), [id_column])
            if id_column is not None
            else self._plain
        )

    def on(self, dialect: Dialect) -> Compiled:
        """The plain INSERT on SQLite, INSERT … RETURNING id elsewhere."""
        if dialect.name == "sqlite":
            return self._plain.on(dialect)
        return self._returning.on(dialect)


def _in_list(column: Column[Any], prefix: str, n: int) -> Any:
    """``column IN (:prefix0, :prefix1, …)`` with one bound parameter per item."""
    return column.in_([bindparam(f"{prefix}{i}") for i in range(n)])


def _in_values(prefix: str, items: Sequence[Any]) -> dict[str, Any]:
    return {f"{prefix}{i}": item for i, item in enumerate(items)}


def _check_positional(table: Table, cls: type, extra: tuple[str, ...] = ()) -> None:
    """Records are built positionally from rows: every field must be a column."""
    missing = [n for n in _names(cls) if n not in table.c and n not in extra]
    if missing:
        raise RuntimeError(f"{cls.__name__} fields without a column: {missing}")


_check_positional(message_journal, JournalEntry)
_check_positional(patients, PatientRecord, ("identifiers",))
_check_positional(vaccinations, VaccinationRecord)


# -- the hot path's statements (compiled once per dialect, see storage/_sql.py) --

_JOURNAL_COLUMNS = _columns(message_journal, JournalEntry)
_JOURNAL_FIND = Statement(
    select(*_JOURNAL_COLUMNS)
    .where(
        message_journal.c.sender == bindparam("sender"),
        message_journal.c.control_id == bindparam("control_id"),
    )
    .order_by(message_journal.c.id.desc()),
    _JOURNAL_COLUMNS,
)
# Per (sender, control id, content digest): the newest row. Several rows may
# share a key (a reused control id with other content is a new message), so
# the look-up groups them; the answer itself is read by id, and only for a
# resend. ``sender IN (…) AND control_id IN (…)``, exact pairs kept in
# Python: SQLite searches the index for that form, while for a row-value IN
# list it scans the whole index.
_JOURNAL_DIGESTS = StatementFamily(
    lambda shape: (
        select(
            message_journal.c.sender,
            message_journal.c.control_id,
            message_journal.c.content_digest,
            func.max(message_journal.c.id),
        )
        .where(
            _in_list(message_journal.c.sender, "s", shape[0]),
            _in_list(message_journal.c.control_id, "c", shape[1]),
        )
        .group_by(
            message_journal.c.sender,
            message_journal.c.control_id,
            message_journal.c.content_digest,
        ),
        [],
    )
)
_JOURNAL_ANSWERS = StatementFamily(
    lambda n: (
        select(
            message_journal.c.id,
            message_journal.c.response,
            message_journal.c.ack_code,
        ).where(_in_list(message_journal.c.id, "i", n)),
        [message_journal.c.id, message_journal.c.response, message_journal.c.ack_code],
    )
)
_JOURNAL_INSERT = _insert(
    message_journal, [*_names(NewJournalEntry), "outcome"], returning=True
)
_SET_RESPONSE = Statement(
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

_PATIENT_COLUMNS = _columns(patients, PatientRecord)
_PATIENT_GET = Statement(
    select(*_PATIENT_COLUMNS).where(
        patients.c.region == bindparam("region"), patients.c.id == bindparam("id")
    ),
    _PATIENT_COLUMNS,
)
_PATIENT_BY_BIRTH_DATE = Statement(
    select(*_PATIENT_COLUMNS)
    .where(
        patients.c.region == bindparam("region"),
        patients.c.birth_date == bindparam("birth_date"),
    )
    .order_by(patients.c.id)
    .limit(500),
    _PATIENT_COLUMNS,
)
#: Not merged into another record. Correlated on the primary key, so each
#: candidate costs one index probe however many merges the region holds (a
#: ``NOT IN`` list would read every active link of the region per search).
_LIVE = ~exists().where(
    patient_links.c.merged_id == patients.c.id, patient_links.c.active.is_(True)
)

#: More candidates than this are a data problem (a default birth date), not
#: people to compare one by one.
_CANDIDATE_LIMIT = 1000


def _match_candidates(shape: tuple[int, int, bool, int]) -> Any:
    """Born on one of the dates with a name key in common, or on the date with the initials.

    Two index look-ups (region+family_key+birth_date, region+given_key+
    birth_date) and, with ``initials``, the exact date's patients filtered
    in the database by their initials (region+birth_date), in one UNION
    ALL; merged records excluded. Shape (0, 0, False, limit) is the fallback
    for a name without a key: everyone born on the exact date. At most
    ``limit`` rows, lowest ids first.
    """
    n_dates, n_keys, initials, limit = shape
    live = _LIVE
    if not n_keys:
        return (
            select(*_PATIENT_COLUMNS)
            .where(
                patients.c.region == bindparam("region"),
                patients.c.birth_date == bindparam("exact"),
                live,
            )
            .order_by(patients.c.id)
            .limit(limit)
        )
    parts = [
        select(*_PATIENT_COLUMNS).where(
            patients.c.region == bindparam("region"),
            _in_list(key, "k", n_keys),
            _in_list(patients.c.birth_date, "d", n_dates),
            live,
        )
        for key in (patients.c.family_key, patients.c.given_key)
    ]
    if initials:
        family_initial = func.substr(patients.c.family_key, 1, 1)
        given_initial = func.substr(patients.c.given_key, 1, 1)
        parts.append(
            select(*_PATIENT_COLUMNS).where(
                patients.c.region == bindparam("region"),
                patients.c.birth_date == bindparam("exact"),
                or_(
                    and_(
                        family_initial == bindparam("fi"),
                        given_initial == bindparam("gi"),
                    ),
                    and_(
                        family_initial == bindparam("gi"),
                        given_initial == bindparam("fi"),
                    ),
                ),
                live,
            )
        )
    both = union_all(*parts).subquery()
    return select(*both.c).order_by(both.c.id).limit(limit)


_MATCH_CANDIDATES = StatementFamily(
    lambda shape: (_match_candidates(shape), _PATIENT_COLUMNS)
)


@dataclasses.dataclass(frozen=True, slots=True)
class NameCounts:
    """How many patients of a region share each name key (term frequencies).

    ``family`` and ``given`` map each name asked about to the number of the
    region's patients whose family (or given) name has the same blocking key
    (storage/keys.py); a name without a key is left out. ``total`` is the
    number of patients in the region, or None when it was not asked for.
    """

    total: int | None
    family: dict[str, int]
    given: dict[str, int]


def _name_counts(shape: tuple[int, int, bool]) -> Any:
    """Per-key patient counts and, optionally, the region's total, in one UNION ALL.

    Each arm is a range of the (region, family_key, birth_date) or (region,
    given_key, birth_date) index, counted without reading the table on
    PostgreSQL (index-only scan) or SQLite (covering index).
    """
    n_family, n_given, total = shape
    parts = []
    for kind, key, n, prefix in (
        ("f", patients.c.family_key, n_family, "f"),
        ("g", patients.c.given_key, n_given, "g"),
    ):
        if n:
            parts.append(
                select(
                    literal(kind).label("kind"),
                    key.label("key"),
                    func.count().label("n"),
                )
                .where(
                    patients.c.region == bindparam("region"), _in_list(key, prefix, n)
                )
                .group_by(key)
            )
    if total:
        parts.append(
            select(
                literal("t").label("kind"),
                literal("").label("key"),
                func.count().label("n"),
            ).where(patients.c.region == bindparam("region"))
        )
    return union_all(*parts) if len(parts) > 1 else parts[0]


_NAME_COUNTS = StatementFamily(lambda shape: (_name_counts(shape), []))

_IDENTIFIER_COLUMNS = [
    patient_identifiers.c.patient_id,
    patient_identifiers.c.value,
    patient_identifiers.c.authority,
    patient_identifiers.c.type_code,
    patient_identifiers.c.submitted_by,
]
_IDENTIFIERS_OF = StatementFamily(
    lambda n: (
        select(*_IDENTIFIER_COLUMNS)
        .where(_in_list(patient_identifiers.c.patient_id, "p", n))
        .order_by(patient_identifiers.c.id),
        _IDENTIFIER_COLUMNS,
    )
)
_IDENTIFIER_OWNER = Statement(
    select(patient_identifiers.c.patient_id)
    .where(
        patient_identifiers.c.region == bindparam("region"),
        patient_identifiers.c.authority == bindparam("authority"),
        patient_identifiers.c.value == bindparam("value"),
    )
    .limit(1)
)
_IDENTIFIER_COLUMNS_IN = [
    "patient_id",
    "region",
    "value",
    "authority",
    "type_code",
    "submitted_by",
]
#: Identifiers already held (by this or another patient) are skipped: one
#: statement instead of a look-up and an insert.
_IDENTIFIER_INSERT_NEW = _PerDialect(
    sqlite_insert(patient_identifiers)
    .values({name: bindparam(name) for name in _IDENTIFIER_COLUMNS_IN})
    .on_conflict_do_nothing(index_elements=["region", "authority", "value"]),
    pg_insert(patient_identifiers)
    .values({name: bindparam(name) for name in _IDENTIFIER_COLUMNS_IN})
    .on_conflict_do_nothing(index_elements=["region", "authority", "value"]),
)
_PATIENT_KEYS = ("family_key", "given_key")


def _with_name_keys(values: dict[str, Any]) -> dict[str, Any]:
    """Add the blocking key of each name being written (insert or update)."""
    for name, key in (("family_name", "family_key"), ("given_name", "given_key")):
        if name in values:
            values[key] = name_key(values[name])
    return values


_PATIENT_INSERT = _insert(
    patients,
    [*_names(NewPatient), *_PATIENT_KEYS, "created_at", "updated_at"],
    returning=True,
)
_PATIENT_INSERT_WITH_ID = _insert(
    patients,
    ["id", *_names(NewPatient), *_PATIENT_KEYS, "created_at", "updated_at"],
    returning=False,
)
_PATIENT_UPDATE = StatementFamily(
    lambda names: (
        update(patients)
        .where(
            patients.c.region == bindparam("_region"), patients.c.id == bindparam("_id")
        )
        .values({name: bindparam(name) for name in names}),
        [],
    )
)
_KIN_DELETE = Statement(
    delete(next_of_kin).where(
        next_of_kin.c.region == bindparam("region"),
        next_of_kin.c.patient_id == bindparam("patient_id"),
        next_of_kin.c.submitted_by.in_([bindparam("by"), ""]),
    )
)
_KIN_INSERT = _insert(
    next_of_kin,
    [
        *(n for n in _names(NewNextOfKin) if n != "submitted_by"),
        "patient_id",
        "region",
        "submitted_by",
    ],
    returning=False,
)
_SUBMITTER_COLUMNS_IN = ["patient_id", "facility", "region", "first_seen"]
_SUBMITTER_INSERT_NEW = _PerDialect(
    sqlite_insert(patient_submitters)
    .values({name: bindparam(name) for name in _SUBMITTER_COLUMNS_IN})
    .on_conflict_do_nothing(index_elements=["patient_id", "facility"]),
    pg_insert(patient_submitters)
    .values({name: bindparam(name) for name in _SUBMITTER_COLUMNS_IN})
    .on_conflict_do_nothing(index_elements=["patient_id", "facility"]),
)
_SURVIVOR = Statement(
    select(patient_links.c.survivor_id)
    .where(
        patient_links.c.region == bindparam("region"),
        patient_links.c.merged_id == bindparam("merged_id"),
        patient_links.c.active.is_(True),
    )
    .limit(1)
)
_MERGED_INTO = StatementFamily(
    lambda n: (
        select(patient_links.c.merged_id).where(
            patient_links.c.region == bindparam("region"),
            _in_list(patient_links.c.survivor_id, "s", n),
            patient_links.c.active.is_(True),
        ),
        [],
    )
)
_DECISION_INSERT = _insert(match_decisions, _names(NewMatchDecision), returning=False)
_VERSION_INSERT = _insert(patient_versions, _names(NewPatientVersion), returning=False)

_VACCINATION_COLUMNS = _columns(vaccinations, VaccinationRecord)
_VACCINATION_BY_FILLER = Statement(
    select(*_VACCINATION_COLUMNS)
    .where(
        vaccinations.c.region == bindparam("region"),
        vaccinations.c.sending_facility == bindparam("sending_facility"),
        vaccinations.c.filler_namespace == bindparam("filler_namespace"),
        vaccinations.c.filler_id == bindparam("filler_id"),
    )
    .order_by(vaccinations.c.id.desc())
    .limit(1),
    _VACCINATION_COLUMNS,
)
# One exact-match arm per ORC-3 (UNION ALL): every arm is an index search on
# SQLite and PostgreSQL alike, whatever the planner's statistics say (an IN
# list on the last index column was a filter over all of a sender's doses on
# a freshly loaded PostgreSQL table).
_VACCINATIONS_BY_FILLERS = StatementFamily(
    lambda n: (
        union_all(
            *(
                select(*_VACCINATION_COLUMNS).where(
                    vaccinations.c.region == bindparam("region"),
                    vaccinations.c.sending_facility == bindparam("sending_facility"),
                    vaccinations.c.filler_namespace == bindparam(f"n{i}"),
                    vaccinations.c.filler_id == bindparam(f"f{i}"),
                )
                for i in range(n)
            )
        )
        if n > 1
        else select(*_VACCINATION_COLUMNS).where(
            vaccinations.c.region == bindparam("region"),
            vaccinations.c.sending_facility == bindparam("sending_facility"),
            vaccinations.c.filler_namespace == bindparam("n0"),
            vaccinations.c.filler_id == bindparam("f0"),
        ),
        _VACCINATION_COLUMNS,
    )
)
_VACCINATION_GET = Statement(
    select(*_VACCINATION_COLUMNS).where(
        vaccinations.c.region == bindparam("region"),
        vaccinations.c.id == bindparam("id"),
    ),
    _VACCINATION_COLUMNS,
)
_VACCINATION_INSERT = _insert(
    vaccinations,
    [*_names(NewVaccination), "created_at", "updated_at"],
    returning=True,
)
_VACCINATION_INSERT_WITH_ID = _insert(
    vaccinations,
    ["id", *_names(NewVaccination), "created_at", "updated_at"],
    returning=False,
)
_VACCINATION_UPDATE = Statement(
    update(vaccinations)
    .where(
        vaccinations.c.region == bindparam("_region"),
        vaccinations.c.id == bindparam("_id"),
    )
    .values(
        {
            **{
                name: bindparam(name)
                for name in _names(NewVaccination)
                if name != "region"
            },
            "updated_at": bindparam("updated_at"),
            "deleted_at": None,
        }
    )
)
_VACCINATION_SOFT_DELETE = Statement(
    update(vaccinations)
    .where(
        vaccinations.c.region == bindparam("_region"),
        vaccinations.c.id == bindparam("_id"),
    )
    .values(deleted_at=bindparam("when"), updated_at=bindparam("when"))
)
_VACCINATION_MARK_DUPLICATE = Statement(
    update(vaccinations)
    .where(
        vaccinations.c.region == bindparam("_region"),
        vaccinations.c.id == bindparam("_id"),
    )
    .values(
        duplicate_of=bindparam("of_id"),
        dedup_reason=bindparam("reason"),
        updated_at=bindparam("updated_at"),
    )
)


def _vaccinations_for(key: tuple[int, bool, bool]) -> tuple[Any, list[Column[Any]]]:
    n, include_deleted, consolidated = key
    query = select(*_VACCINATION_COLUMNS).where(
        vaccinations.c.region == bindparam("region"),
        _in_list(vaccinations.c.patient_id, "p", n),
    )
    if not include_deleted:
        query = query.where(vaccinations.c.deleted_at.is_(None))
    if consolidated:
        query = query.where(vaccinations.c.duplicate_of.is_(None))
    return (
        query.order_by(vaccinations.c.administered_on, vaccinations.c.id),
        _VACCINATION_COLUMNS,
    )


_VACCINATIONS_FOR = StatementFamily(_vaccinations_for)
_OBSERVATION_INSERT = _insert(observations, _names(NewObservation), returning=False)
_REVIEW_INSERT = _insert(review_items, _names(NewReviewItem), returning=True)
_ADVISORY_LOCKS = (
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0))"
    " FROM unnest(%(keys)s::text[]) AS k"
)


class _IdPool:
    """Row ids taken from PostgreSQL's sequences ahead of time, several per round trip.

    With the id known before the row is written, an INSERT needs no
    RETURNING and joins the runner's queue (one round trip per message, not
    one per row). Ids are taken in ascending order, so rows keep the order in
    which they were added; ids reserved but not used leave gaps, as a rolled
    back insert always has.
    """

    __slots__ = ("_free", "_size", "_sql")

    def __init__(self, sql: Runner, size: int = 16) -> None:
        self._sql = sql
        self._size = size
        self._free: dict[str, list[int]] = {}

    def take(self, table: str) -> int:
        """The next id for a table (one of the constants below)."""
        free = self._free.get(table)
        if not free:
            rows = self._sql.command(_NEXT_IDS[table], {"n": self._size}).fetchall()
            free = sorted((int(r[0]) for r in rows), reverse=True)
            self._free[table] = free
        return free.pop()


_NEXT_IDS = {
    table: (
        f"SELECT nextval(pg_get_serial_sequence('{table}', 'id'))"  # noqa: S608 - constant table names
        " FROM generate_series(1, %(n)s)"
    )
    for table in ("patients", "vaccinations")
}


def _members(sql: Runner, region: str, patient_id: int) -> list[int]:
    """A patient and the records merged into it (the merged view)."""
    members = [patient_id]
    frontier = [patient_id]
    while frontier:
        rows = sql.all(
            _MERGED_INTO[len(frontier)],
            {"region": region, **_in_values("s", frontier)},
        )
        frontier = [int(r[0]) for r in rows if int(r[0]) not in members]
        members.extend(frontier)
    return members


#: The longest sending facility and control id the journal can key on. A
#: longer one cannot be journaled: the pipeline rejects it, naming the field.
JOURNAL_KEY_LIMITS: dict[str, int] = {
    "sender": int(message_journal.c.sender.type.length),  # type: ignore[attr-defined]
    "control_id": int(message_journal.c.control_id.type.length),  # type: ignore[attr-defined]
}


def _descriptive(value: str, column: Column[Any]) -> str:
    """A descriptive value cut to fit its column, without NUL (PostgreSQL refuses it).

    Used for what only describes a message (peer, message type, outcome): the
    journal must record every message, whatever its header holds.
    """
    length: int = column.type.length  # type: ignore[attr-defined]
    return value.replace("\x00", "")[:length]


class JournalRepository:
    """The message journal: raw messages, responses and outcomes.

    Every received message has its own row. Several rows may share a
    (sending facility, MSH-10) key: a resend is recognised by the key *and*
    the content digest, so a reused control id with other content is a new
    message (DESIGN.md, "Durability and idempotency"). Callers serialize work
    on one key with :meth:`UnitOfWork.lock`.
    """

    def __init__(self, conn: Connection, sql: Runner | None = None) -> None:
        self._conn = conn
        self._sql = sql or Runner(conn)

    def find(self, sender: str, control_id: str) -> list[JournalEntry]:
        """Every entry for (sending facility, MSH-10), newest first."""
        rows = self._sql.all(
            _JOURNAL_FIND, {"sender": sender, "control_id": control_id}
        )
        return [JournalEntry(*row) for row in rows]

    def answers(
        self, messages: Iterable[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], JournalLookup]:
        """Look several received messages up at once.

        Args:
            messages: (sending facility, MSH-10, content digest) triples.

        Returns:
            For every triple asked: the newest row with the same key and
            digest, with its stored answer (a resend), and whether rows with
            the same key hold other content (a reused control id).
        """
        wanted = sorted(set(messages))
        keys = sorted({(sender, control) for sender, control, _d in wanted})
        newest: dict[tuple[str, str, str], int] = {}
        digests: dict[tuple[str, str], set[str]] = {}
        for start in range(0, len(keys), 200):
            chunk = set(keys[start : start + 200])
            senders = sorted({sender for sender, _c in chunk})
            controls = sorted({control_id for _s, control_id in chunk})
            values = {**_in_values("s", senders), **_in_values("c", controls)}
            for sender, control_id, digest, id_ in self._sql.all(
                _JOURNAL_DIGESTS[(len(senders), len(controls))], values
            ):
                if (sender, control_id) in chunk:
                    newest[(sender, control_id, digest)] = int(id_)
                    digests.setdefault((sender, control_id), set()).add(digest)
        hits = sorted({newest[m] for m in wanted if m in newest})
        stored: dict[int, JournalAnswer] = {}
        for start in range(0, len(hits), 200):
            ids = hits[start : start + 200]
            for id_, response, ack_code in self._sql.all(
                _JOURNAL_ANSWERS[len(ids)], _in_values("i", ids)
            ):
                stored[int(id_)] = JournalAnswer(int(id_), response, ack_code)
        found: dict[tuple[str, str, str], JournalLookup] = {}
        for sender, control_id, digest in wanted:
            row = newest.get((sender, control_id, digest))
            others = digests.get((sender, control_id), set()) - {digest}
            found[(sender, control_id, digest)] = JournalLookup(
                stored.get(row) if row is not None else None, bool(others)
            )
        return found

    def insert(self, entry: NewJournalEntry) -> int:
        """Journal a received message as a new row; returns its id.

        Descriptive values (peer, message type) are cut to their columns, so
        that recording a message never fails for them; the key (sender,
        control id) must already fit :data:`JOURNAL_KEY_LIMITS`.
        """
        values = _fields(entry)
        values["peer"] = _descriptive(entry.peer, message_journal.c.peer)
        values["message_type"] = _descriptive(
            entry.message_type, message_journal.c.message_type
        )
        values["outcome"] = "received"
        return self._sql.insert(_JOURNAL_INSERT, values)

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
        self._sql.defer(
            _SET_RESPONSE,
            {
                "_id": journal_id,
                "response": response,
                "ack_code": ack_code,
                "outcome": _descriptive(outcome, message_journal.c.outcome),
                "error_count": error_count,
                "region": region,
            },
        )


class PatientRepository:
    """Patients, their identifiers, next of kin and submitting organizations."""

    def __init__(
        self, conn: Connection, sql: Runner | None = None, ids: _IdPool | None = None
    ) -> None:
        self._conn = conn
        self._sql = sql or Runner(conn)
        self._ids = ids

    def _load(self, rows: Sequence[Sequence[Any]]) -> list[PatientRecord]:
        """Records from processed patient rows, with their identifiers (one query)."""
        if not rows:
            return []
        idents: dict[int, list[PatientIdentifier]] = {}
        ids = [row[0] for row in rows]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for patient_id, value, authority, type_code, by in self._sql.all(
                _IDENTIFIERS_OF[len(chunk)], _in_values("p", chunk)
            ):
                idents.setdefault(patient_id, []).append(
                    PatientIdentifier(value, authority, type_code, by)
                )
        return [
            PatientRecord(*row, identifiers=tuple(idents.get(row[0], ())))  # type: ignore[misc]
            for row in rows
        ]

    def get(self, region: str, patient_id: int) -> PatientRecord | None:
        """A patient by id, within a region."""
        row = self._sql.one(_PATIENT_GET, {"region": region, "id": patient_id})
        if row is None:
            return None
        return self._load([row])[0]

    def find_by_identifier(
        self, region: str, value: str, authority: str
    ) -> PatientRecord | None:
        """The patient holding this identifier from this assigning authority."""
        owner = self._sql.scalar(
            _IDENTIFIER_OWNER,
            {"region": region, "authority": authority, "value": value},
        )
        return (
            self.get(region, self.survivor(region, int(owner)))
            if owner is not None
            else None
        )

    def find_by_birth_date(self, region: str, birth_date: date) -> list[PatientRecord]:
        """Every patient of a region born on a date (matching candidates)."""
        return self._load(
            self._sql.all(
                _PATIENT_BY_BIRTH_DATE, {"region": region, "birth_date": birth_date}
            )
        )

    def insert(self, patient: NewPatient) -> int:
        """Store a new patient."""
        now = _now()
        values = _with_name_keys(_fields(patient))
        values["created_at"] = now
        values["updated_at"] = now
        if self._ids is not None:
            values["id"] = new_id = self._ids.take("patients")
            self._sql.defer(_PATIENT_INSERT_WITH_ID, values)
            return new_id
        return self._sql.insert(_PATIENT_INSERT, values)

    def update(self, region: str, patient_id: int, patient: NewPatient) -> None:
        """Refresh demographics: values that are sent win, empty ones change nothing."""
        values = {
            k: v
            for k, v in _fields(patient).items()
            if v not in ("", None) and k not in {"region", "created_by_journal_id"}
        }
        _with_name_keys(values)
        values["updated_at"] = _now()
        values["_region"] = region
        values["_id"] = patient_id
        names = tuple(k for k in values if not k.startswith("_"))
        self._sql.defer(_PATIENT_UPDATE[names], values)

    def add_identifiers(
        self,
        region: str,
        patient_id: int,
        identifiers: Iterable[tuple[str, str, str]],
        submitted_by: str = "",
    ) -> None:
        """Attach identifiers (value, authority, type); ones already held are skipped."""
        for value, authority, type_code in identifiers:
            self._sql.defer(
                _IDENTIFIER_INSERT_NEW,
                {
                    "patient_id": patient_id,
                    "region": region,
                    "value": value,
                    "authority": authority,
                    "type_code": type_code,
                    "submitted_by": submitted_by,
                },
            )

    def replace_next_of_kin(
        self,
        region: str,
        patient_id: int,
        kin: Sequence[NewNextOfKin],
        submitted_by: str = "",
    ) -> None:
        """Replace the next of kin this sender reported with the ones just reported.

        Other organizations' next of kin stay: each sender replaces its own
        (rows stored before the sender was recorded count as anyone's).
        """
        self._sql.defer(
            _KIN_DELETE,
            {"region": region, "patient_id": patient_id, "by": submitted_by},
        )
        if kin:
            self._sql.defer_many(
                _KIN_INSERT,
                [
                    dict(
                        _fields(k),
                        patient_id=patient_id,
                        region=region,
                        submitted_by=submitted_by,
                    )
                    for k in kin
                ],
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

    def add_submitter(
        self,
        region: str,
        patient_id: int,
        facility: str,
        when: datetime | None = None,
    ) -> None:
        """Record that an organization submitted data for the patient (lock ownership).

        ``when`` is the moment of its first submission (the message's arrival);
        an organization already recorded keeps its first moment.
        """
        self._sql.defer(
            _SUBMITTER_INSERT_NEW,
            {
                "patient_id": patient_id,
                "facility": facility,
                "region": region,
                "first_seen": when or _now(),
            },
        )

    def submitters(self, region: str, patient_id: int) -> frozenset[str]:
        """The organizations that submitted data for the patient."""
        return frozenset(s.facility for s in self.submitters_since(region, patient_id))

    def submitters_since(self, region: str, patient_id: int) -> list[Submitter]:
        """The organizations that submitted data for the patient, with since when."""
        self._sql.flush()
        rows = self._conn.execute(
            select(
                patient_submitters.c.facility, patient_submitters.c.first_seen
            ).where(
                patient_submitters.c.region == region,
                patient_submitters.c.patient_id == patient_id,
            )
        )
        return [Submitter(row.facility, _utc(row.first_seen) or _now()) for row in rows]

    def insert_version(self, version: NewPatientVersion) -> None:
        """Keep one demographic version (what a sender said, or what was stored)."""
        values = _fields(version)
        values["demographics"] = json.dumps(dict(version.demographics), sort_keys=True)
        self._sql.defer(_VERSION_INSERT, values)

    def versions(self, region: str, patient_id: int) -> list[PatientVersion]:
        """Every demographic version of a patient, oldest first."""
        self._sql.flush()
        rows = self._conn.execute(
            select(patient_versions)
            .where(
                patient_versions.c.region == region,
                patient_versions.c.patient_id == patient_id,
            )
            .order_by(patient_versions.c.id)
        ).all()
        return [
            _record(PatientVersion, row, demographics=json.loads(row.demographics))
            for row in rows
        ]

    def find_match_candidates(
        self,
        region: str,
        birth_date: date,
        nearby_dates: Iterable[date],
        family: str,
        given: str,
        limit: int = _CANDIDATE_LIMIT,
    ) -> list[PatientRecord]:
        """Scored-matching candidates, read by blocking keys rather than whole dates.

        Patients born on ``birth_date`` or on one of the ``nearby_dates`` (one
        typing error away) whose family or given name key equals the key of
        either incoming name (so a swapped name still meets its record), and
        patients born on ``birth_date`` with the same initials, either way
        round (two records that each have a typo in another name). When
        neither incoming name has a key, everyone born on ``birth_date``.
        Ordered by id, each patient once, at most ``limit`` rows read. See
        storage/keys.py.
        """
        family_key, given_key = name_key(family), name_key(given)
        keys = sorted({k for k in (family_key, given_key) if k})
        params: dict[str, Any] = {"region": region}
        if keys:
            dates = sorted(set(nearby_dates) | {birth_date})
            params.update(_in_values("d", dates))
            params.update(_in_values("k", keys))
            initials = bool(family_key and given_key)
            if initials:
                params.update(exact=birth_date, fi=family_key[0], gi=given_key[0])
            shape: tuple[int, int, bool, int] = (
                len(dates),
                len(keys),
                initials,
                limit,
            )
        else:
            params["exact"] = birth_date
            shape = (0, 0, False, limit)
        rows = self._sql.all(_MATCH_CANDIDATES[shape], params)
        seen: set[int] = set()
        unique = []
        for row in rows:
            if row[0] not in seen:
                seen.add(row[0])
                unique.append(row)
        return self._load(unique)

    def name_counts(
        self,
        region: str,
        family: Iterable[str] = (),
        given: Iterable[str] = (),
        *,
        total: bool = False,
    ) -> NameCounts:
        """How common each name is in the region: patients sharing its name key.

        Term frequencies for matching: the share of the region's patients who
        have a name is how often two strangers agree on it. Counted per
        blocking key (storage/keys.py), so similar spellings count together
        (Garcia with Garza): a common name is never taken for a rare one.
        One statement; ``total`` adds the region's patient count to it.

        Args:
            region: the region whose patients are counted.
            family: family names (a mother's maiden name is a family name).
            given: given names.
            total: whether to count the region's patients as well.
        """
        family_keys = {name: name_key(name) for name in family}
        given_keys = {name: name_key(name) for name in given}
        fkeys = sorted({k for k in family_keys.values() if k})
        gkeys = sorted({k for k in given_keys.values() if k})
        if not (fkeys or gkeys or total):
            return NameCounts(None, {}, {})
        params: dict[str, Any] = {"region": region}
        params.update(_in_values("f", fkeys))
        params.update(_in_values("g", gkeys))
        counts: dict[tuple[str, str], int] = {}
        region_total: int | None = None
        for kind, key, n in self._sql.all(
            _NAME_COUNTS[(len(fkeys), len(gkeys), total)], params
        ):
            if kind == "t":
                region_total = int(n)
            else:
                counts[(kind, key)] = int(n)
        return NameCounts(
            region_total,
            {n: counts.get(("f", k), 0) for n, k in family_keys.items() if k},
            {n: counts.get(("g", k), 0) for n, k in given_keys.items() if k},
        )

    def survivor(self, region: str, patient_id: int) -> int:
        """The patient a merged record reads through (itself when not merged)."""
        seen = {patient_id}
        current = patient_id
        while True:
            survivor = self._sql.scalar(
                _SURVIVOR, {"region": region, "merged_id": current}
            )
            if survivor is None or survivor in seen:
                return current
            current = int(survivor)
            seen.add(current)

    def merged_into(self, region: str, survivor_id: int) -> list[int]:
        """The survivor and every record merged into it (the merged view's members)."""
        return _members(self._sql, region, survivor_id)

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
        self._sql.defer(_DECISION_INSERT, _fields(decision))

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

    def __init__(
        self, conn: Connection, sql: Runner | None = None, ids: _IdPool | None = None
    ) -> None:
        self._conn = conn
        self._sql = sql or Runner(conn)
        self._ids = ids

    def find_by_filler(
        self, region: str, sending_facility: str, filler_namespace: str, filler_id: str
    ) -> VaccinationRecord | None:
        """The dose a sender identified by ORC-3 (deleted ones included)."""
        row = self._sql.one(
            _VACCINATION_BY_FILLER,
            {
                "region": region,
                "sending_facility": sending_facility,
                "filler_namespace": filler_namespace,
                "filler_id": filler_id,
            },
        )
        return VaccinationRecord(*row) if row else None

    def find_by_fillers(
        self, region: str, sending_facility: str, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], VaccinationRecord]:
        """:meth:`find_by_filler` for several (namespace, filler id) keys in one query.

        Returns the newest record per key; keys with no record are left out.
        """
        wanted = sorted(set(keys))
        found: dict[tuple[str, str], VaccinationRecord] = {}
        for start in range(0, len(wanted), 50):
            chunk = wanted[start : start + 50]
            values: dict[str, Any] = {
                "region": region,
                "sending_facility": sending_facility,
            }
            for i, (namespace, filler_id) in enumerate(chunk):
                values[f"n{i}"] = namespace
                values[f"f{i}"] = filler_id
            for row in self._sql.all(_VACCINATIONS_BY_FILLERS[len(chunk)], values):
                record = VaccinationRecord(*row)
                key = (record.filler_namespace, record.filler_id)
                if key not in found or found[key].id < record.id:
                    found[key] = record
        return found

    def insert(self, vaccination: NewVaccination) -> int:
        """Store a reported vaccination event."""
        return self.add(vaccination).id

    def add(self, vaccination: NewVaccination) -> VaccinationRecord:
        """Store a reported vaccination event; returns it as stored."""
        now = _now()
        values = _fields(vaccination)
        values["created_at"] = now
        values["updated_at"] = now
        if self._ids is not None:
            new_id = self._ids.take("vaccinations")
            self._sql.defer(_VACCINATION_INSERT_WITH_ID, {"id": new_id, **values})
        else:
            new_id = self._sql.insert(_VACCINATION_INSERT, values)
        return VaccinationRecord(
            id=new_id, **values, deleted_at=None, duplicate_of=None, dedup_reason=""
        )

    def update(
        self, region: str, vaccination_id: int, vaccination: NewVaccination
    ) -> None:
        """Replace a stored event with its sender's newer version (and undelete it)."""
        values = _fields(vaccination)
        values.pop("region")
        values["updated_at"] = _now()
        values["_region"] = region
        values["_id"] = vaccination_id
        self._sql.defer(_VACCINATION_UPDATE, values)

    def soft_delete(self, region: str, vaccination_id: int, when: datetime) -> None:
        """Take a dose out of the consolidated view; the record of it stays."""
        self._sql.defer(
            _VACCINATION_SOFT_DELETE,
            {"_region": region, "_id": vaccination_id, "when": when},
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
        members = _members(self._sql, region, patient_id)
        rows = self._sql.all(
            _VACCINATIONS_FOR[(len(members), include_deleted, consolidated)],
            {"region": region, **_in_values("p", members)},
        )
        return [VaccinationRecord(*row) for row in rows]

    def get(self, region: str, vaccination_id: int) -> VaccinationRecord | None:
        """One stored record (deleted or duplicate ones included)."""
        row = self._sql.one(_VACCINATION_GET, {"region": region, "id": vaccination_id})
        return VaccinationRecord(*row) if row else None

    def mark_duplicate(
        self, region: str, vaccination_id: int, of_id: int | None, reason: str
    ) -> None:
        """Take a record out of (or, with None, back into) the consolidated view."""
        self._sql.defer(
            _VACCINATION_MARK_DUPLICATE,
            {
                "_region": region,
                "_id": vaccination_id,
                "of_id": of_id,
                "reason": reason[:200],
                "updated_at": _now(),
            },
        )


class ReviewRepository:
    """The review queue: possible patient matches and unsure dose duplicates."""

    def __init__(self, conn: Connection, sql: Runner | None = None) -> None:
        self._conn = conn
        self._sql = sql or Runner(conn)

    def insert(self, item: NewReviewItem) -> int:
        """Queue a pair for review."""
        return self._sql.insert(_REVIEW_INSERT, _fields(item))

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

    def __init__(self, conn: Connection, sql: Runner | None = None) -> None:
        self._conn = conn
        self._sql = sql or Runner(conn)

    def insert_many(self, items: Sequence[NewObservation]) -> None:
        """Store observations in one statement."""
        if items:
            self._sql.defer_many(_OBSERVATION_INSERT, [_fields(o) for o in items])

    def for_patient(self, region: str, patient_id: int) -> list[ObservationRecord]:
        """The patient's observations, merged records included."""
        members = _members(self._sql, region, patient_id)
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


#: SQLSTATE classes and codes (PostgreSQL appendix A) and what they mean for a
#: sender, in words that carry no value from the message.
_PERMANENT_REASONS = {
    "22001": "a value is longer than its column allows",
    "22021": "a value is not valid text in the database's encoding",
    "22P05": "a value holds a character the database cannot store",
    "22003": "a number is out of range",
    "22007": "a date or time is not valid",
    "22008": "a date or time is out of range",
    "23502": "a required value is missing",
    "23503": "a value refers to a record that does not exist",
    "23505": "a value that must be unique is already stored",
}
#: The same for SQLite's extended result codes, so that both backends answer
#: a refused value in the same words.
_SQLITE_REASONS = {
    "SQLITE_TOOBIG": "a value is longer than its column allows",
    "SQLITE_CONSTRAINT_NOTNULL": _PERMANENT_REASONS["23502"],
    "SQLITE_CONSTRAINT_FOREIGNKEY": _PERMANENT_REASONS["23503"],
    "SQLITE_CONSTRAINT_UNIQUE": _PERMANENT_REASONS["23505"],
    "SQLITE_CONSTRAINT_PRIMARYKEY": _PERMANENT_REASONS["23505"],
}


def translate_error(exc: BaseException) -> BaseException:
    """The storage error for a database failure; anything else unchanged.

    A failure that a later attempt can overcome (the database unreachable,
    a pool time-out, a lock or serialization conflict: SQLAlchemy's
    ``OperationalError`` family) is a :class:`TransientStorageError`; a value
    the database refuses (``DataError``, ``IntegrityError``) is a
    :class:`PermanentStorageError`, since the same message would fail the
    same way. Other driver errors (a programming error, an internal one) are
    ours, not the sender's: they stay transient, so that a fixed release can
    take the resend. Neither error keeps the driver's text or the bound
    parameters: both can hold patient data.
    """
    if isinstance(exc, StorageError) or not isinstance(exc, SQLAlchemyError):
        return exc
    if isinstance(exc, DataError | IntegrityError):
        orig = getattr(exc, "orig", None)
        reason = _PERMANENT_REASONS.get(
            getattr(orig, "sqlstate", None) or ""
        ) or _SQLITE_REASONS.get(getattr(orig, "sqlite_errorname", None) or "")
        if reason is None:
            # psycopg refuses a NUL before sending (no SQLSTATE); its text
            # is fixed and carries no value.
            reason = (
                "a value holds a NUL character, which the database cannot store"
                if "NUL (0x00)" in str(orig or "")
                else "the database refused a value"
            )
        return PermanentStorageError(reason)
    if isinstance(exc, DBAPIError) and not isinstance(exc, OperationalError):
        name = type(exc).__name__
        return TransientStorageError(f"database error ({name})")
    if isinstance(exc, OperationalError | DisconnectionError | PoolTimeout):
        return TransientStorageError(f"database unavailable ({type(exc).__name__})")
    return TransientStorageError(f"database error ({type(exc).__name__})")


class UnitOfWork:
    """One transaction and the repositories that work inside it.

    The hot path's statements run on the connection's DB-API cursor
    (``storage/_sql.py``), everything else through SQLAlchemy Core; both work
    in the same transaction.
    """

    def __init__(self, conn: Connection) -> None:
        self.connection = conn
        self._sql = sql = Runner(conn)
        # Statements run through SQLAlchemy first send what the runner queued.
        conn.info[_RUNNER] = sql
        # PostgreSQL: ids reserved ahead so that inserts can be queued.
        ids = _IdPool(sql) if conn.dialect.name == "postgresql" else None
        self.journal = JournalRepository(conn, sql)
        self.patients = PatientRepository(conn, sql, ids)
        self.vaccinations = VaccinationRepository(conn, sql, ids)
        self.observations = ObservationRepository(conn, sql)
        self.audit = AuditRepository(conn)
        self.review = ReviewRepository(conn, sql)
        self._postgresql = conn.dialect.name == "postgresql"
        self._savepoints = 0

    def lock(self, keys: Iterable[str]) -> None:
        """Serialize work on the same keys across engine nodes until this transaction ends.

        PostgreSQL takes transaction-scoped advisory locks (in sorted order, to
        avoid deadlocks between nodes); SQLite already has a single writer
        (BEGIN IMMEDIATE), so nothing is needed there.
        """
        if not self._postgresql:
            return
        ordered = sorted(set(keys))
        if ordered:
            # The function scan yields the keys in array order; the statement
            # is queued, and what follows it runs once the locks are held.
            self._sql.defer_command(_ADVISORY_LOCKS, {"keys": ordered})

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Run a block in a savepoint: on an exception only the block rolls back.

        The SAVEPOINT statements go straight to the driver: SQLAlchemy's
        ``begin_nested`` cost more than the rest of a message's statements.
        """
        self._savepoints += 1
        name = f"cairn_sp{self._savepoints}"
        sql = self._sql
        mark = sql.mark()
        sql.defer_command(f"SAVEPOINT {name}")
        try:
            yield
            # Queued statements fail here, inside the savepoint, if at all.
            sql.flush()
        except BaseException as exc:
            if not sql.unsent_since(mark):
                sql.command(f"ROLLBACK TO SAVEPOINT {name}")
                sql.defer_command(f"RELEASE SAVEPOINT {name}")
            translated = translate_error(exc)
            if translated is exc:
                raise
            raise translated from exc
        else:
            sql.defer_command(f"RELEASE SAVEPOINT {name}")
        finally:
            self._savepoints -= 1

    def flush(self) -> None:
        """Send the statements queued for PostgreSQL's pipeline (see storage/_sql.py)."""
        self._sql.flush()

    def close(self) -> None:
        """Release the DB-API cursors (the transaction itself ends with its block)."""
        self.connection.info.pop(_RUNNER, None)
        self._sql.close()


_RUNNER = "cairn_runner"
#: The execution option that marks a reader connection (Database.reading).
_READER = "cairn_reader"


def _flush_queued(conn: Connection, *_args: Any) -> None:
    """Before SQLAlchemy runs a statement, send what the unit of work queued."""
    runner = conn.info.get(_RUNNER)
    if runner is not None:
        runner.flush()


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
    def reading(self) -> Iterator[UnitOfWork]:
        """A read-only unit of work on its own connection, outside any writer.

        For queries that must not wait for ingest, nor ingest for them: SQLite
        (WAL) begins a plain deferred transaction, a snapshot beside the
        writer; PostgreSQL a READ ONLY transaction on another pooled
        connection. Nothing done in it is kept: it is rolled back at the end.
        """
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{_READER: True})
                with conn.begin() as trans:
                    if self.backend == "postgresql":
                        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                    uow = UnitOfWork(conn)
                    try:
                        yield uow
                    finally:
                        uow.close()
                        trans.rollback()
        except SQLAlchemyError as exc:
            raise translate_error(exc) from exc

    @contextmanager
    def transaction(self) -> Iterator[UnitOfWork]:
        """One transaction: committed when the block ends, rolled back on an exception."""
        try:
            with self.engine.begin() as conn:
                uow = UnitOfWork(conn)
                try:
                    yield uow
                    uow.flush()
                finally:
                    uow.close()
        except SQLAlchemyError as exc:
            raise translate_error(exc) from exc

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

    def refresh_statistics(self) -> list[str]:
        """Keep the planner's statistics current where nothing else does.

        PostgreSQL plans from table statistics that autovacuum normally
        gathers. With autovacuum off (some managed or tuned servers), a
        table filled since its last ANALYZE is planned as if empty: the
        candidate query then scans a whole region instead of searching an
        index. This analyzes, in the schemas on the search path, every table
        whose changes since its last ANALYZE pass autovacuum's own default
        threshold (50 rows plus 10 % of the table). It does nothing when
        autovacuum is on, and nothing on SQLite, whose planner needs no
        statistics for these queries.

        Returns:
            The tables analyzed.
        """
        if self.backend != "postgresql":
            return []
        with self.engine.connect() as conn:
            if (
                conn.execute(text("SELECT current_setting('autovacuum')")).scalar()
                == "on"
            ):
                return []
            rows = conn.execute(
                text(
                    "SELECT schemaname, relname FROM pg_stat_user_tables"
                    " WHERE schemaname = ANY (current_schemas(false))"
                    " AND n_mod_since_analyze > 50 + 0.1 * n_live_tup"
                    " ORDER BY relname"
                )
            ).all()
            analyzed = []
            for schema, table in rows:
                quoted = conn.dialect.identifier_preparer.quote
                conn.execute(text(f"ANALYZE {quoted(schema)}.{quoted(table)}"))
                analyzed.append(table)
            conn.commit()
        return analyzed

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

    Engines are created with ``hide_parameters``: a statement's bound values
    (names, identifiers, birth dates) never appear in an error's text.

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
        engine = create_engine(parsed, hide_parameters=True, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas(sqlite_synchronous.upper()))

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # IMMEDIATE takes the write lock up front: two writers never
            # deadlock on a read lock they both try to upgrade. A reader
            # (Database.reading) takes none: WAL gives it a snapshot.
            if conn.get_execution_options().get(_READER):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

    elif parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            hide_parameters=True,
        )
        event.listen(engine, "before_cursor_execute", _flush_queued)
    else:
        raise StorageError(
            f"unsupported database backend {parsed.get_backend_name()!r} (use sqlite or postgresql)"
        )
    return Database(engine)
