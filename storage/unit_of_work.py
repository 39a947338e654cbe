"""One transaction, its savepoints and locks, and the repositories inside it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    Connection,
)
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from storage import dialects
from storage.audit import AuditRepository
from storage.cohort import CohortRepository
from storage.doses import VaccinationRepository
from storage.errors import (
    PermanentStorageError,
    StorageError,
    TransientStorageError,
)
from storage.identity import IdentityRepository
from storage.inventory import InventoryRepository
from storage.journal import JournalRepository
from storage.observations import ObservationRepository
from storage.patients import PatientRepository
from storage.recall import RecallRepository
from storage.review import ReviewRepository


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
        reason = dialects.refusal_reason(orig)
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
        self._sql = sql = dialects.runner(conn)
        # Statements run through SQLAlchemy first send what the runner queued.
        conn.info[_RUNNER] = sql
        # PostgreSQL: ids reserved ahead so that inserts can be queued.
        ids = dialects.id_pool(sql, conn.dialect)
        self.journal = JournalRepository(conn, sql, ids)
        self.patients = PatientRepository(conn, sql, ids)
        self.vaccinations = VaccinationRepository(conn, sql, ids)
        self.observations = ObservationRepository(conn, sql)
        self.audit = AuditRepository(conn, sql)
        self.review = ReviewRepository(conn, sql)
        self.identity = IdentityRepository(conn)
        self.inventory = InventoryRepository(conn, sql)
        self.cohort = CohortRepository(conn, sql)
        self.recall = RecallRepository(conn, sql)
        self._savepoints = 0

    def lock(self, keys: Iterable[str]) -> None:
        """Serialize work on the same keys across engine nodes until this transaction ends.

        PostgreSQL takes transaction-scoped advisory locks (in sorted order, to
        avoid deadlocks between nodes); SQLite already has a single writer
        (BEGIN IMMEDIATE), so nothing is needed there.
        """
        dialects.lock_keys(self._sql, self.connection.dialect, keys)

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


def flush_queued(conn: Connection, *_args: Any) -> None:
    """Before SQLAlchemy runs a statement, send what the unit of work queued.

    The one joint between the two ways a transaction runs statements: on
    PostgreSQL the runner (storage/_sql.py) queues statements whose result
    nobody reads, and a statement that SQLAlchemy then runs on the same
    connection (a cold-path read, a merge) must see their effects. It is the
    engine's ``before_cursor_execute`` hook, registered by
    ``storage.dialects.create_postgresql_engine``; SQLite's runner queues
    nothing, so SQLite needs no hook.
    """
    runner = conn.info.get(_RUNNER)
    if runner is not None:
        runner.flush()
