"""The database handle: transactions, schema management, reading and search helpers.

:func:`open_database` builds a :class:`Database` from a URL (the engine set-up
of each backend is in ``storage/dialects.py``); :meth:`Database.transaction`
yields a :class:`~storage.unit_of_work.UnitOfWork`. The repositories live in
one module per topic (journal, patients, doses, observations, review, audit).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    and_,
    delete,
    func,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    OperationalError,
    SQLAlchemyError,
)

from storage import dialects
from storage._records import (
    record_from_row,
)
from storage.backup import BackupInfo, backup_sqlite, restore_sqlite
from storage.errors import (
    SchemaOutOfDate,
    StorageError,
)
from storage.records import (
    AuditEntry,
    JournalEntry,
)
from storage.schema import (
    audit_log,
    inventory_exceptions,
    inventory_transactions,
    match_decisions,
    message_journal,
    observations,
    patient_versions,
    patients,
    vaccinations,
)
from storage.unit_of_work import UnitOfWork, flush_queued, translate_error

#: Every column that points at a journal row. A journal row one of them
#: points at is the provenance of registry data or of an audit row, and
#: ``cairn journal prune`` never deletes it (a test checks that every column
#: of the schema that points at the journal is listed here).
JOURNAL_POINTERS: tuple[Column[Any], ...] = (
    audit_log.c.journal_id,
    vaccinations.c.journal_id,
    observations.c.journal_id,
    patients.c.created_by_journal_id,
    patient_versions.c.journal_id,
    match_decisions.c.journal_id,
    # A dose's draw-down and its exception name the VXU that made them.
    inventory_transactions.c.journal_id,
    inventory_exceptions.c.journal_id,
)

#: Journal rows read (and deleted) at a time by the prune.
PRUNE_CHUNK = 2000


def _unreferenced(backend: str, low: int | None = None, high: int | None = None) -> Any:
    """No pointer column holds the journal row's id (optionally within an id range)."""
    return and_(
        *(
            dialects.not_pointed_at(message_journal.c.id, column, backend, low, high)
            for column in JOURNAL_POINTERS
        )
    )


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

    def worker_url(self) -> str | None:
        """The URL another process opens this database with; None if it cannot.

        For work spread over worker processes (population reports). An
        in-memory SQLite database lives in this process only. The URL keeps
        its password: hand it to a worker, never to a log.
        """
        url = self.engine.url
        if self.backend == dialects.SQLITE and url.database in (None, "", ":memory:"):
            return None
        return url.render_as_string(hide_password=False)

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
                conn.execution_options(**{dialects.READER: True})
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
        return dialects.refresh_statistics(self.engine)

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
        response_contains: bytes | None = None,
        before_id: int | None = None,
        outcome_prefix: str | None = None,
    ) -> list[JournalEntry]:
        """Search the journal, newest first.

        ``response_contains`` keeps rows whose stored response holds those
        bytes (a coarse filter: the caller reads the response to be exact);
        ``before_id`` pages backwards through the journal;
        ``outcome_prefix`` keeps rows whose outcome starts so.
        """
        conds: list[Any] = []
        c = message_journal.c
        if response_contains:
            conds.append(
                dialects.bytes_contain(c.response, response_contains, self.backend)
            )
        if before_id is not None:
            conds.append(c.id < before_id)
        if outcome_prefix:
            conds.append(c.outcome.startswith(outcome_prefix, autoescape=True))
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
            return [
                record_from_row(JournalEntry, row) for row in conn.execute(query).all()
            ]

    def journal_get(self, journal_id: int) -> JournalEntry | None:
        """One journal entry."""
        with self._reading() as conn:
            row = conn.execute(
                select(message_journal).where(message_journal.c.id == journal_id)
            ).first()
            return record_from_row(JournalEntry, row) if row else None

    def journal_patients(self, journal_id: int) -> list[tuple[int, str]]:
        """The patients a journaled message is about: (patient id, region), sorted.

        Found through what the message left: the patient it created, its
        doses, its demographic versions, its matching decisions, and the
        audit rows of the patients a query disclosed. A message that left
        nothing (rejected, test mode) names no one.
        """
        sources = [
            select(patients.c.id, patients.c.region).where(
                patients.c.created_by_journal_id == journal_id
            ),
            select(vaccinations.c.patient_id, vaccinations.c.region).where(
                vaccinations.c.journal_id == journal_id
            ),
            select(patient_versions.c.patient_id, patient_versions.c.region).where(
                patient_versions.c.journal_id == journal_id
            ),
            select(match_decisions.c.patient_id, match_decisions.c.region).where(
                match_decisions.c.journal_id == journal_id,
                match_decisions.c.patient_id.is_not(None),
            ),
            select(audit_log.c.patient_id, audit_log.c.patient_region).where(
                audit_log.c.journal_id == journal_id,
                audit_log.c.patient_id.is_not(None),
                audit_log.c.patient_region.is_not(None),
            ),
        ]
        found: set[tuple[int, str]] = set()
        with self._reading() as conn:
            for query in sources:
                found.update((int(p), str(r)) for p, r in conn.execute(query).all())
        return sorted(found)

    def journal_prune_counts(self, before: datetime) -> tuple[int, int]:
        """(rows received before ``before``, of those the ones nothing points at)."""
        older = message_journal.c.received_at < before
        with self._reading() as conn:
            total = conn.execute(
                select(func.count()).select_from(message_journal).where(older)
            ).scalar_one()
            free = conn.execute(
                select(func.count())
                .select_from(message_journal)
                .where(older, _unreferenced(self.backend))
            ).scalar_one()
        return int(total), int(free)

    def journal_prunable(
        self, before: datetime, after_id: int = 0, limit: int = PRUNE_CHUNK
    ) -> list[JournalEntry]:
        """Journal rows received before ``before`` that nothing points at, by id.

        Args:
            before: the cut-off (rows received strictly before it).
            after_id: page on from this id (exclusive).
            limit: the most rows returned.
        """
        c = message_journal.c
        query = (
            select(message_journal)
            .where(
                c.received_at < before,
                c.id > after_id,
                _unreferenced(self.backend),
            )
            .order_by(c.id)
            .limit(limit)
        )
        with self._reading() as conn:
            return [
                record_from_row(JournalEntry, row) for row in conn.execute(query).all()
            ]

    def journal_delete(self, ids: Sequence[int], before: datetime) -> int:
        """Delete these journal rows, except any a pointer reached meanwhile.

        The pointer check is made again in the DELETE itself, in one
        transaction: a row that gained an audit row (say, someone revealed
        it) after it was read for the archive stays.

        Returns:
            How many rows were deleted.
        """
        if not ids:
            return 0
        c = message_journal.c
        deleted = 0
        try:
            with self.engine.begin() as conn:
                for start in range(0, len(ids), PRUNE_CHUNK):
                    chunk = sorted(ids[start : start + PRUNE_CHUNK])
                    result = conn.execute(
                        delete(message_journal).where(
                            c.id.in_(chunk),
                            c.received_at < before,
                            _unreferenced(self.backend, chunk[0], chunk[-1]),
                        )
                    )
                    deleted += int(result.rowcount or 0)
        except SQLAlchemyError as exc:
            raise translate_error(exc) from exc
        return deleted

    def journal_scan(
        self,
        *,
        sender: str | None = None,
        control_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        batch: int = 500,
    ) -> Iterator[JournalEntry]:
        """Every matching journal row, oldest first, read ``batch`` rows at a time.

        Reports and replay walk a sender's whole history; reading it in
        batches keyed on the row id keeps memory flat and each read short.
        """
        c = message_journal.c
        conds = []
        if sender:
            conds.append(c.sender == sender)
        if control_id:
            conds.append(c.control_id == control_id)
        if since:
            conds.append(c.received_at >= since)
        if until:
            conds.append(c.received_at <= until)
        after = 0
        while True:
            query = (
                select(message_journal)
                .where(and_(c.id > after, *conds))
                .order_by(c.id)
                .limit(batch)
            )
            with self._reading() as conn:
                rows = [
                    record_from_row(JournalEntry, row)
                    for row in conn.execute(query).all()
                ]
            yield from rows
            if len(rows) < batch:
                return
            after = rows[-1].id

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
            return [
                record_from_row(AuditEntry, row) for row in conn.execute(query).all()
            ]

    def backup(self, target: Path) -> BackupInfo:
        """A consistent copy of the live SQLite database (see :mod:`storage.backup`)."""
        return backup_sqlite(self.engine, target)

    def restore(self, backup: Path, *, replace: bool = False) -> BackupInfo:
        """Copy a backup over this SQLite database (the server must be stopped)."""
        self.engine.dispose()
        return restore_sqlite(backup, self.engine, replace=replace)

    def close(self) -> None:
        """Release every connection."""
        self.engine.dispose()


def open_database(
    url: str,
    *,
    sqlite_synchronous: str = "FULL",
    pool_size: int = 8,
    statement_timeout: float | None = None,
    connect_timeout: int | None = None,
) -> Database:
    """Open a database by URL (SQLite file, in-memory SQLite, or PostgreSQL via psycopg).

    Engines are created with ``hide_parameters``: a statement's bound values
    (names, identifiers, birth dates) never appear in an error's text.

    ``statement_timeout`` bounds how long one statement may take (PostgreSQL:
    cancelled by the server, or the connection dropped when the server does
    not answer at all; SQLite: the wait for the database lock), and
    ``connect_timeout`` how long opening a PostgreSQL connection may take: a
    frozen database gives a transient error, not a hang. None (the default,
    for the CLI's maintenance commands): SQLite waits 10 s for the lock,
    PostgreSQL has no limit.

    Raises:
        StorageError: when the URL is not usable.
    """
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise StorageError(f"invalid database URL: {exc}") from exc
    if parsed.get_backend_name() == dialects.SQLITE:
        synchronous = sqlite_synchronous.upper()
        if synchronous not in dialects.SQLITE_SYNCHRONOUS:
            raise StorageError(
                f"invalid SQLite synchronous mode {sqlite_synchronous!r}"
            )
        memory = parsed.database in (None, "", ":memory:")
        if not memory and parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = dialects.create_sqlite_engine(
            parsed,
            synchronous=synchronous,
            memory=memory,
            statement_timeout=10.0 if statement_timeout is None else statement_timeout,
        )
    elif parsed.get_backend_name() == dialects.POSTGRESQL:
        engine = dialects.create_postgresql_engine(
            parsed,
            pool_size=pool_size,
            before_core_statement=flush_queued,
            statement_timeout=statement_timeout,
            connect_timeout=connect_timeout,
        )
    else:
        raise StorageError(
            f"unsupported database backend {parsed.get_backend_name()!r} (use sqlite or postgresql)"
        )
    return Database(engine)
