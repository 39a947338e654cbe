"""The hot path's statements, compiled once per dialect and run on the DB-API cursor.

SQLAlchemy Core costs tens of microseconds per ``Connection.execute`` even
for a cached statement (cache key, compiled-cache lookup, parameter and
result set-up). Every VXU runs about twenty statements, so on the ingest path
that machinery cost more than the database itself (``bench/ANALYSIS.md``).

A :class:`Statement` wraps a Core statement written with ``bindparam``; the
first time it runs on a dialect it is compiled (by SQLAlchemy, so the SQL and
the type conversions are exactly what Core would produce) and the SQL text,
the parameter order and the bind and result processors are kept. Later runs
call the driver's cursor directly, inside the same transaction as everything
the ``Connection`` does (the cursor belongs to the same DB-API connection).
Driver errors are re-raised as SQLAlchemy's exceptions, so callers catch the
same ``IntegrityError`` and ``OperationalError`` either way.

Only public, documented SQLAlchemy APIs are used: ``SQLCompiler.positional``,
``positiontup`` and ``bind_names`` for the parameters and their order, ``BindParameter``'s
``required`` and ``effective_value`` for defaults, and
``TypeEngine.dialect_impl(dialect).bind_processor`` / ``result_processor``
for conversions (looked up once per compiled statement, so the hot path pays
nothing for them). ``tests/storage/test_sql.py`` checks, on both backends,
that what this module sends is byte for byte what ``Connection.execute``
sends for the same statement: an upgrade of SQLAlchemy that changes any of
it fails there first. Nothing else in storage/ runs statements this way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, DateTime, LargeBinary
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.base import Executable

Processor = Callable[[Any], Any]

_NO_VALUE = object()


class Compiled:
    """One statement compiled for one dialect."""

    __slots__ = ("bind", "columns", "defaults", "names", "positional", "sql")

    def __init__(
        self,
        stmt: Executable,
        dialect: Dialect,
        columns: Sequence[ColumnElement[Any]],
    ) -> None:
        compiled = stmt.compile(dialect=dialect)  # type: ignore[attr-defined]
        self.sql: str = str(compiled)
        self.positional: bool = bool(compiled.positional)
        # bind_names: every BindParameter and the name it has in the SQL
        # (``binds`` would also hold anonymous keys that are never rendered).
        binds = {name: param for param, name in compiled.bind_names.items()}
        names: list[str] = (
            list(compiled.positiontup) if self.positional else list(binds)
        )
        self.names = tuple(names)
        self.bind: tuple[tuple[int, str, Processor], ...] = tuple(
            (i, name, proc)
            for i, name in enumerate(names)
            if (proc := bind_processor(binds[name].type, dialect)) is not None
        )
        defaults: dict[str, Any] = {}
        for name in names:
            param = binds[name]
            if not param.required:
                defaults[name] = param.effective_value
        self.defaults = defaults
        self.columns: tuple[tuple[int, Processor], ...] = tuple(
            (i, proc)
            for i, column in enumerate(columns)
            if (proc := _result_processor(column, dialect)) is not None
        )

    def params(self, values: Mapping[str, Any]) -> Any:
        """The driver parameters for one execution."""
        defaults = self.defaults
        if self.positional:
            out = [
                values[name] if name in values else defaults[name]
                for name in self.names
            ]
            for i, _name, proc in self.bind:
                out[i] = proc(out[i])
            return out
        named = {
            name: values[name] if name in values else defaults[name]
            for name in self.names
        }
        for _i, name, proc in self.bind:
            named[name] = proc(named[name])
        return named

    def row(self, row: Sequence[Any]) -> list[Any]:
        """A result row with the column types' result processing applied."""
        out = list(row)
        for i, proc in self.columns:
            value = out[i]
            if value is not None:
                out[i] = proc(value)
        return out


def bind_processor(type_: Any, dialect: Dialect) -> Processor | None:
    """The conversion Core applies to a value bound to ``type_`` on a dialect."""
    proc: Processor | None = type_.dialect_impl(dialect).bind_processor(dialect)
    return proc


def _result_processor(column: ColumnElement[Any], dialect: Dialect) -> Processor | None:
    """The column type's result processor, plus the repository conventions.

    SQLite hands back naive datetimes (they were stored as UTC) and psycopg
    may hand back ``memoryview`` for binary columns: records get aware
    datetimes and ``bytes``.
    """
    proc = column.type.dialect_impl(dialect).result_processor(dialect, None)
    if isinstance(column.type, DateTime):
        inner = proc

        def to_utc(value: Any) -> Any:
            if inner is not None:
                value = inner(value)
            if isinstance(value, datetime) and value.tzinfo is None:
                return value.replace(tzinfo=UTC)
            return value

        return to_utc
    if isinstance(column.type, LargeBinary):
        inner_binary = proc

        def to_bytes(value: Any) -> Any:
            if inner_binary is not None:
                value = inner_binary(value)
            return bytes(value) if isinstance(value, memoryview) else value

        return to_bytes
    return proc


class Statement:
    """A Core statement that runs on the driver cursor once compiled.

    Args:
        stmt: the statement, with ``bindparam`` for every value.
        columns: the columns it returns, in order (for result processing).
    """

    __slots__ = ("_by_dialect", "_columns", "_stmt")

    def __init__(
        self, stmt: Executable, columns: Sequence[ColumnElement[Any]] = ()
    ) -> None:
        self._stmt = stmt
        self._columns = tuple(columns)
        self._by_dialect: dict[str, Compiled] = {}

    def on(self, dialect: Dialect) -> Compiled:
        """The statement compiled for a dialect (compiled on first use)."""
        compiled = self._by_dialect.get(dialect.name)
        if compiled is None:
            compiled = Compiled(self._stmt, dialect, self._columns)
            self._by_dialect[dialect.name] = compiled
        return compiled


class Runner:
    """Runs :class:`Statement` objects on a connection's DB-API cursor.

    Built by ``storage.dialects.runner``, which knows each backend's habits.
    With ``pipelined`` (PostgreSQL), statements whose result nobody reads (``defer``,
    ``defer_many``, ``defer_command``: updates, inserts without RETURNING,
    SAVEPOINT, advisory locks) are queued and sent, in order, together with
    the next statement whose result is needed, in one psycopg pipeline: one
    network round trip instead of one per statement. :meth:`flush` sends the
    queue; the unit of work flushes at the end of every message (so a failing
    statement fails inside that message's savepoint), before commit, and
    before anything runs through SQLAlchemy on the same connection. Without it
    (SQLite: no round trips) nothing is queued. With ``lastrowid``, an
    INSERT's new id is read from the cursor instead of ``RETURNING``.
    """

    __slots__ = (
        "_conn",
        "_cursor",
        "_error",
        "_flushes",
        "_lastrowid",
        "_pipelined",
        "_queue",
        "_side",
        "dialect",
    )

    def __init__(self, conn: Connection, *, pipelined: bool, lastrowid: bool) -> None:
        self._conn = conn
        self.dialect = conn.dialect
        self._cursor: Any = None
        self._side: Any = None
        self._error: type[Exception] = self.dialect.loaded_dbapi.Error
        self._pipelined = pipelined
        self._lastrowid = lastrowid
        self._queue: list[tuple[str, Any, bool]] = []
        self._flushes = 0

    def _driver(self) -> Any:
        # The Connection has already begun the transaction (on SQLite with
        # BEGIN IMMEDIATE); cursors of its driver connection work inside it.
        return self._conn.connection.driver_connection

    def _cur(self) -> Any:
        cursor = self._cursor
        if cursor is None:
            cursor = self._driver().cursor()
            self._cursor = cursor
        return cursor

    def _raise(self, exc: Exception, sql: str, params: Any) -> None:
        # hide_parameters: the parameters are patient data, and the error's
        # text reaches whoever prints it (issue 14, item 7).
        raise DBAPIError.instance(
            sql, params, exc, self._error, hide_parameters=True, dialect=self.dialect
        ) from exc

    def _run(self, sql: str, params: Any, many: bool = False) -> Any:
        """Send a statement (after the queue, in one pipeline); returns the cursor."""
        cursor = self._cur()
        queue = self._queue
        try:
            if queue:
                self._queue = []
                self._flushes += 1
                side = self._side_cursor()
                with self._driver().pipeline():
                    for q_sql, q_params, q_many in queue:
                        _send(side, q_sql, q_params, q_many)
                    _send(cursor, sql, params, many)
            else:
                _send(cursor, sql, params, many)
        except self._error as exc:
            self._raise(exc, sql, params)
        return cursor

    def _side_cursor(self) -> Any:
        side = self._side
        if side is None:
            side = self._driver().cursor()
            self._side = side
        return side

    def flush(self) -> None:
        """Send every queued statement now (one round trip); raises their first error."""
        queue = self._queue
        if not queue:
            return
        self._queue = []
        self._flushes += 1
        side = self._side_cursor()
        try:
            with self._driver().pipeline():
                for sql, params, many in queue:
                    _send(side, sql, params, many)
        except self._error as exc:
            self._raise(exc, queue[0][0], queue[0][1])

    def mark(self) -> tuple[int, int]:
        """Where the queue stands (for :meth:`unsent_since`)."""
        return (self._flushes, len(self._queue))

    def unsent_since(self, mark: tuple[int, int]) -> bool:
        """Drop what was queued since ``mark``; True when none of it reached the database.

        When nothing was sent since the mark (no flush), the queued
        statements are simply forgotten; otherwise every statement still
        queued was queued after the mark and is dropped.
        """
        if not self._pipelined:
            return False
        flushes, length = mark
        if flushes == self._flushes:
            del self._queue[length:]
            return True
        self._queue = []
        return False

    def discard(self) -> None:
        """Drop queued statements (their transaction is rolled back)."""
        self._queue = []

    def execute(self, stmt: Statement, values: Mapping[str, Any]) -> Any:
        """Run a statement; returns the cursor."""
        compiled = stmt.on(self.dialect)
        return self._run(compiled.sql, compiled.params(values))

    def defer(self, stmt: Statement, values: Mapping[str, Any]) -> None:
        """Run a statement whose result is not read (queued on PostgreSQL)."""
        compiled = stmt.on(self.dialect)
        if self._pipelined:
            self._queue.append((compiled.sql, compiled.params(values), False))
        else:
            self._run(compiled.sql, compiled.params(values))

    def command(self, sql: str, params: Any = None) -> Any:
        """Run SQL text in the driver's own paramstyle (SAVEPOINT and the like)."""
        return self._run(sql, params)

    def defer_command(self, sql: str, params: Any = None) -> None:
        """:meth:`command` for a statement whose result is not read."""
        if self._pipelined:
            self._queue.append((sql, params, False))
        else:
            self._run(sql, params)

    def executemany(self, stmt: Statement, rows: Iterable[Mapping[str, Any]]) -> None:
        """Run a statement once per parameter set (the driver batches them)."""
        compiled = stmt.on(self.dialect)
        params = [compiled.params(values) for values in rows]
        if params:
            self._run(compiled.sql, params, many=True)

    def defer_many(self, stmt: Statement, rows: Iterable[Mapping[str, Any]]) -> None:
        """:meth:`executemany` whose result is not read (queued on PostgreSQL)."""
        compiled = stmt.on(self.dialect)
        params = [compiled.params(values) for values in rows]
        if not params:
            return
        if self._pipelined:
            self._queue.append((compiled.sql, params, True))
        else:
            self._run(compiled.sql, params, many=True)

    def one(self, stmt: Statement, values: Mapping[str, Any]) -> list[Any] | None:
        """The first row (processed), or None."""
        row = self.execute(stmt, values).fetchone()
        return stmt.on(self.dialect).row(row) if row is not None else None

    def all(self, stmt: Statement, values: Mapping[str, Any]) -> list[list[Any]]:
        """Every row (processed)."""
        compiled = stmt.on(self.dialect)
        rows = self.execute(stmt, values).fetchall()
        if not compiled.columns:
            return [list(r) for r in rows]
        return [compiled.row(r) for r in rows]

    def scalar(self, stmt: Statement, values: Mapping[str, Any]) -> Any:
        """The first column of the first row, or None."""
        row = self.execute(stmt, values).fetchone()
        return row[0] if row is not None else None

    def insert(self, stmt: Statement, values: Mapping[str, Any]) -> int:
        """Run an INSERT … RETURNING id (or, where the driver has it, read ``lastrowid``)."""
        cursor = self.execute(stmt, values)
        if self._lastrowid:
            return int(cursor.lastrowid)
        return int(cursor.fetchone()[0])

    def close(self) -> None:
        """Release the cursors (queued statements are dropped)."""
        self._queue = []
        for cursor in (self._cursor, self._side):
            if cursor is not None:
                cursor.close()
        self._cursor = self._side = None


def _send(cursor: Any, sql: str, params: Any, many: bool) -> None:
    if many:
        cursor.executemany(sql, params)
    elif params is None:
        cursor.execute(sql)
    else:
        cursor.execute(sql, params)


class StatementFamily:
    """Statements that differ by a shape key (an IN-list length, a set of columns).

    Args:
        build: makes the statement and its result columns for a key.
    """

    __slots__ = ("_build", "_cache")

    def __init__(
        self,
        build: Callable[[Any], tuple[Executable, Sequence[ColumnElement[Any]]]],
    ) -> None:
        self._build = build
        self._cache: dict[Any, Statement] = {}

    def __getitem__(self, key: Any) -> Statement:
        stmt = self._cache.get(key)
        if stmt is None:
            built, columns = self._build(key)
            stmt = Statement(built, columns)
            if len(self._cache) < 2048:
                self._cache[key] = stmt
        return stmt
