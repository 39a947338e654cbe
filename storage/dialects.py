"""Every difference between SQLite and PostgreSQL, in one place.

The rest of storage/ writes one statement for both backends; what they do
differently lives here, named:

- engine set-up: SQLite's pragmas (WAL, foreign keys, ``synchronous``, busy
  timeout) and ``BEGIN IMMEDIATE``; PostgreSQL's pool, pre-ping and psycopg
  driver;
- upserts: ``INSERT … ON CONFLICT DO NOTHING`` is spelt per dialect;
- new ids: SQLite reads ``cursor.lastrowid``, PostgreSQL needs ``RETURNING
  id`` or takes ids from its sequences ahead of time (:class:`IdPool`);
- round trips: PostgreSQL queues statements whose result is not read and
  sends them in one psycopg pipeline; SQLite has no round trips to save;
- locks across engine nodes: PostgreSQL advisory locks; SQLite has a single
  writer already;
- refused values: PostgreSQL's SQLSTATE and SQLite's extended result codes,
  answered in the same words;
- planner statistics and region partitions: PostgreSQL only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Insert,
    LargeBinary,
    Table,
    bindparam,
    event,
    exists,
    func,
    literal,
    select,
    text,
)
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy import insert as sa_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.base import Executable

from storage._sql import Compiled, Runner, Statement

SQLITE = "sqlite"
POSTGRESQL = "postgresql"

#: SQLite ``synchronous`` modes an operator may choose.
SQLITE_SYNCHRONOUS = frozenset({"FULL", "NORMAL", "EXTRA", "OFF"})


# -- engines ---------------------------------------------------------------


#: The execution option that marks a reader connection (Database.reading).
READER = "cairn_reader"


def _sqlite_pragmas(
    synchronous: str, busy_timeout: float
) -> Callable[[Any, Any], None]:
    busy_ms = max(1, round(busy_timeout * 1000))

    def on_connect(dbapi_connection: Any, _connection_record: Any) -> None:
        # Let SQLAlchemy own BEGIN so that SAVEPOINT works with pysqlite.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        # How long a write waits for another process's lock: the statement
        # timeout (after it, the message gets a transient AE).
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        # Sorts and temporary b-trees (the candidate query's UNION) in memory,
        # not in a temporary file: x1.06-1.26 on the writer (issue 18).
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    return on_connect


def create_sqlite_engine(
    url: URL, *, synchronous: str, memory: bool, statement_timeout: float = 10.0
) -> Engine:
    """An SQLite engine: WAL, foreign keys on, ``BEGIN IMMEDIATE`` transactions.

    Args:
        url: the database URL.
        synchronous: one of :data:`SQLITE_SYNCHRONOUS` (checked by the caller).
        memory: whether the database is in memory (one shared connection).
        statement_timeout: seconds a statement waits for the database lock.
    """
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if memory:
        kwargs["poolclass"] = StaticPool
    engine = sa_create_engine(url, hide_parameters=True, **kwargs)
    event.listen(engine, "connect", _sqlite_pragmas(synchronous, statement_timeout))

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front: two writers never
        # deadlock on a read lock they both try to upgrade. A reader
        # (Database.reading) takes none: WAL gives it a snapshot.
        if conn.get_execution_options().get(READER):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class _DeadlineConnection(psycopg.Connection[Any]):
    """A psycopg connection that gives up on a server that does not answer.

    The server's ``statement_timeout`` cancels a slow statement, but a server
    that is frozen (stopped, partitioned away, its disk hung) cancels
    nothing, and psycopg would wait on the socket for ever: every sender
    would hang behind the writer. Every wait for the server here has a
    deadline (``deadline`` seconds, a little longer than the server's own
    timeout so that a live server answers first); past it the connection
    is dropped, which the pool sees as a disconnection, and the caller gets
    an ``OperationalError`` (a transient storage error). A transaction whose
    COMMIT was sent but not answered may still have committed: a resend of
    its message is then recognized as one and answered from the journal.
    """

    deadline: float | None = 35.0

    def wait(
        self,
        gen: Any,
        interval: float = 0.1,
        timeout: float | None = None,
    ) -> Any:
        """Wait for the server, at most ``deadline`` seconds."""
        try:
            return super().wait(
                gen,
                interval=interval,
                timeout=self.deadline if timeout is None else timeout,
            )
        except psycopg.errors._WaitTimeout:
            # Where the server stands is unknown: drop the connection (as
            # psycopg does when a cancel is not answered).
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"the database did not answer within {self.deadline:g} s; "
                "connection closed"
            ) from None


def create_postgresql_engine(
    url: URL,
    *,
    pool_size: int,
    before_core_statement: Callable[..., None],
    statement_timeout: float | None = None,
    connect_timeout: int | None = None,
) -> Engine:
    """A PostgreSQL engine on psycopg 3, with a pool checked before use.

    Args:
        url: the database URL (``postgresql://`` means psycopg).
        pool_size: connections kept (as many again may overflow).
        before_core_statement: called before SQLAlchemy sends a statement on
            a connection (the unit of work sends its pipelined queue first).
        statement_timeout: seconds a statement may run (the server cancels
            it); a second more without any answer and the connection is
            dropped (:class:`_DeadlineConnection`). None: no limit (schema
            migrations, which may rebuild large indexes).
        connect_timeout: seconds to open a connection (None: libpq's default).
    """
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    engine = sa_create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        hide_parameters=True,
    )
    event.listen(engine, "before_cursor_execute", before_core_statement)
    if statement_timeout is None and connect_timeout is None:
        return engine

    @event.listens_for(engine, "do_connect")
    def _connect(
        _dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]
    ) -> Any:
        if connect_timeout is not None:
            cparams.setdefault("connect_timeout", connect_timeout)
        if statement_timeout is None:
            return psycopg.Connection.connect(*cargs, **cparams)
        statement_ms = max(1, round(statement_timeout * 1000))
        options = str(cparams.get("options", ""))
        cparams["options"] = f"{options} -c statement_timeout={statement_ms}".strip()
        conn = _DeadlineConnection.connect(*cargs, **cparams)
        conn.deadline = statement_timeout + 1.0
        return conn

    return engine


# -- the runner's habits ------------------------------------------------------


def runner(conn: Connection) -> Runner:
    """A statement runner for a connection, with its dialect's habits.

    PostgreSQL queues statements whose result is not read (one round trip
    per message); SQLite runs each at once and reads new ids from
    ``lastrowid``.
    """
    postgresql = conn.dialect.name == POSTGRESQL
    return Runner(conn, pipelined=postgresql, lastrowid=not postgresql)


def id_pool(sql: Runner, dialect: Dialect) -> IdPool | None:
    """Ids reserved ahead on PostgreSQL (so inserts can be queued); None on SQLite."""
    return IdPool(sql) if dialect.name == POSTGRESQL else None


class IdPool:
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
        """The next id for a table (``patients``, ``vaccinations``, ``message_journal``)."""
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
    for table in ("patients", "vaccinations", "message_journal")
}


# -- statements spelt per dialect ---------------------------------------------


class PerDialect(Statement):
    """One statement per dialect (SQLite and PostgreSQL spell upserts their own way)."""

    __slots__ = ("_pg", "_sqlite")

    def __init__(self, sqlite_stmt: Executable, pg_stmt: Executable) -> None:
        super().__init__(sqlite_stmt)
        self._sqlite = Statement(sqlite_stmt)
        self._pg = Statement(pg_stmt)

    def on(self, dialect: Dialect) -> Compiled:
        """The statement written for this dialect."""
        if dialect.name == SQLITE:
            return self._sqlite.on(dialect)
        return self._pg.on(dialect)


def insert_ignoring_conflict(
    table: Table, names: Iterable[str], index_elements: Iterable[str]
) -> PerDialect:
    """``INSERT … ON CONFLICT (index_elements) DO NOTHING`` of the named columns."""
    values: dict[str, Any] = {name: bindparam(name) for name in names}
    keys = list(index_elements)
    return PerDialect(
        sqlite_insert(table).values(values).on_conflict_do_nothing(index_elements=keys),
        pg_insert(table).values(values).on_conflict_do_nothing(index_elements=keys),
    )


class InsertReturningId(Statement):
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
        if dialect.name == SQLITE:
            return self._plain.on(dialect)
        return self._returning.on(dialect)


def insert_statement(
    table: Table, names: Iterable[str], returning: bool = True
) -> Statement:
    """INSERT of the named columns; with ``returning``, the new id can be read.

    SQLite reads ``cursor.lastrowid``; PostgreSQL needs ``RETURNING id``
    (compiled per dialect, see :class:`InsertReturningId`).
    """
    stmt = sa_insert(table).values({name: bindparam(name) for name in names})
    return InsertReturningId(stmt, table.c.id if returning else None)


# -- locks across engine nodes --------------------------------------------------

_ADVISORY_LOCKS = (
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0))"
    " FROM unnest(%(keys)s::text[]) AS k"
)


def lock_keys(sql: Runner, dialect: Dialect, keys: Iterable[str]) -> None:
    """Serialize work on the keys across engine nodes until the transaction ends.

    PostgreSQL takes transaction-scoped advisory locks (in sorted order, to
    avoid deadlocks between nodes); SQLite already has a single writer
    (BEGIN IMMEDIATE), so nothing is needed there.
    """
    if dialect.name != POSTGRESQL:
        return
    ordered = sorted(set(keys))
    if ordered:
        # The function scan yields the keys in array order; the statement
        # is queued, and what follows it runs once the locks are held.
        sql.defer_command(_ADVISORY_LOCKS, {"keys": ordered})


# -- refused values ---------------------------------------------------------------

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


def refusal_reason(driver_error: object) -> str | None:
    """Why the database refused a value, in words without the value; None if unknown.

    Args:
        driver_error: the DB-API exception (``DBAPIError.orig``): psycopg's
            carries ``sqlstate``, sqlite3's ``sqlite_errorname``.
    """
    return _PERMANENT_REASONS.get(
        getattr(driver_error, "sqlstate", None) or ""
    ) or _SQLITE_REASONS.get(getattr(driver_error, "sqlite_errorname", None) or "")


# -- planner statistics and partitions -------------------------------------------


def refresh_statistics(engine: Engine) -> list[str]:
    """ANALYZE the tables whose statistics are stale while autovacuum is off.

    PostgreSQL plans from table statistics that autovacuum normally
    gathers. With autovacuum off (some managed or tuned servers), a table
    filled since its last ANALYZE is planned as if empty: the candidate
    query then scans a whole region instead of searching an index. This
    analyzes, in the schemas on the search path, every table whose changes
    since its last ANALYZE pass autovacuum's own default threshold (50 rows
    plus 10 % of the table). It does nothing when autovacuum is on, and
    nothing on SQLite, whose planner needs no statistics for these queries.

    Returns:
        The tables analyzed.
    """
    if engine.dialect.name != POSTGRESQL:
        return []
    with engine.connect() as conn, _without_deadline(conn):
        if conn.execute(text("SELECT current_setting('autovacuum')")).scalar() == "on":
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


@contextmanager
def _without_deadline(conn: Connection) -> Iterator[None]:
    """No statement timeout on this connection for a while (maintenance: ANALYZE).

    A large table's ANALYZE may outlast the timeout meant for one message's
    statements; it runs off the writer, so nobody waits for it.
    """
    driver: Any = conn.connection.dbapi_connection
    if not isinstance(driver, _DeadlineConnection):
        yield
        return
    saved = driver.deadline
    driver.deadline = None
    conn.exec_driver_sql("SET statement_timeout = 0")
    try:
        yield
    finally:
        driver.deadline = saved
        if not conn.closed and not conn.invalidated:
            conn.exec_driver_sql("RESET statement_timeout")
            conn.commit()


def partitions_by_region(dialect: Dialect) -> bool:
    """Whether tables are partitioned per region (PostgreSQL; SQLite has no partitions)."""
    return dialect.name == POSTGRESQL


def bytes_contain(column: Column[Any], needle: bytes, backend: str) -> Any:
    """``column`` (BLOB / bytea) holds ``needle`` somewhere.

    SQLite's ``instr`` and PostgreSQL's ``position`` both search bytes as
    bytes (no collation, no LIKE wildcards, no text decoding).
    """
    if backend == SQLITE:
        return func.instr(column, needle) > 0
    return func.position(literal(needle, LargeBinary).op("IN")(column)) > 0


def not_pointed_at(
    target: Column[Any],
    pointer: Column[Any],
    backend: str,
    low: int | None = None,
    high: int | None = None,
) -> Any:
    """No row holds ``target`` in ``pointer`` (optionally for targets in [low, high]).

    The pointer columns (``journal_id`` and the like) have no index: the
    hot path would pay for one on every insert. So each backend gets the
    form it reads each pointer table once for: SQLite ``NOT IN (SELECT
    …)``, whose subquery it materializes with a temporary index (a
    correlated ``NOT EXISTS`` would scan the table once per row);
    PostgreSQL ``NOT EXISTS``, a hash anti-join that spills to disk when
    large (``NOT IN`` is hashed only while the subquery fits in
    ``work_mem``, and is then re-scanned for every row).
    """
    ranged = (
        [pointer.between(low, high)] if low is not None and high is not None else []
    )
    if backend == SQLITE:
        return target.not_in(select(pointer).where(pointer.is_not(None), *ranged))
    return ~exists().where(pointer == target, *ranged)
