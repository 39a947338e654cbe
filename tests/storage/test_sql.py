"""The hot path's statement runner (storage/_sql.py) against SQLAlchemy Core itself.

storage/_sql.py compiles each statement once with SQLAlchemy and then calls
the driver's cursor directly. These tests pin what it relies on, on both
backends: the SQL, the parameter order and the type conversions it sends
must be exactly what ``Connection.execute`` sends for the same statement,
and rows must come back as Core returns them. An upgrade of SQLAlchemy that
changes any of it fails here, not in production.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, bindparam, event, select, update
from sqlalchemy.sql.base import Executable

from storage import Database, NewJournalEntry
from storage._sql import Statement
from storage.dialects import runner
from storage.schema import message_journal, patient_links, vaccinations

NOW = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)

#: Binds in the WHERE clause in another order than the values are given,
#: a DateTime and a LargeBinary value, and a LIMIT whose bound value is a
#: default (not required).
_JOURNAL_READ = (
    select(
        message_journal.c.id,
        message_journal.c.received_at,
        message_journal.c.raw,
        message_journal.c.sender,
    )
    .where(
        message_journal.c.received_at >= bindparam("since"),
        message_journal.c.raw == bindparam("raw"),
        message_journal.c.sender == bindparam("sender"),
    )
    .order_by(message_journal.c.id)
    .limit(5)
)
#: Boolean and DateTime conversions in SET, a bind in WHERE.
_LINK_UPDATE = (
    update(patient_links)
    .where(patient_links.c.merged_id == bindparam("_id"))
    .values(active=bindparam("active"), created_at=bindparam("when"))
)
#: An IN list of bound values and a Date.
_DOSES_READ = select(vaccinations.c.id).where(
    vaccinations.c.region == bindparam("region"),
    vaccinations.c.patient_id.in_([bindparam("p0"), bindparam("p1")]),
    vaccinations.c.administered_on <= bindparam("on"),
)

_CASES: list[tuple[str, Executable, dict[str, Any]]] = [
    (
        "journal_read",
        _JOURNAL_READ,
        {"sender": "CLINIC1", "raw": b"MSH|\x00\xff", "since": NOW},
    ),
    ("link_update", _LINK_UPDATE, {"when": NOW, "active": False, "_id": 7}),
    (
        "doses_read",
        _DOSES_READ,
        {"on": NOW.date(), "p1": 2, "p0": 1, "region": "R1"},
    ),
]


@pytest.fixture(name="conn")
def _conn(db: Database) -> Iterator[Connection]:
    with db.engine.begin() as conn:
        yield conn


def _sent_by_core(
    conn: Connection, stmt: Executable, values: Mapping[str, Any]
) -> tuple[str, Any]:
    """The SQL and driver parameters SQLAlchemy Core sends for a statement."""
    sent: list[tuple[str, Any]] = []

    def capture(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any
    ) -> None:
        sent.append((statement, parameters))

    event.listen(conn, "before_cursor_execute", capture)
    try:
        conn.execute(stmt, dict(values))
    finally:
        event.remove(conn, "before_cursor_execute", capture)
    assert len(sent) == 1
    return sent[0]


def _plain(value: Any) -> Any:
    """A driver wrapper (psycopg's ``Binary``) as its class name and value."""
    wrapped = getattr(value, "obj", None)
    return (type(value).__name__, wrapped) if wrapped is not None else value


def _as_sent(params: Any) -> Any:
    """Driver parameters in a comparable form (a sequence or a mapping)."""
    if isinstance(params, Mapping):
        return {name: _plain(value) for name, value in params.items()}
    return tuple(_plain(value) for value in params)


@pytest.mark.parametrize(
    ("_name", "stmt", "values"), _CASES, ids=[c[0] for c in _CASES]
)
def test_statement_sends_what_core_sends(
    conn: Connection, _name: str, stmt: Executable, values: dict[str, Any]
) -> None:
    """A compiled statement's SQL and converted parameters equal Core's, on both backends."""
    core_sql, core_params = _sent_by_core(conn, stmt, values)
    compiled = Statement(stmt).on(conn.dialect)
    assert compiled.sql == core_sql
    assert _as_sent(compiled.params(values)) == _as_sent(core_params)


def test_statement_is_positional_on_sqlite_and_named_on_postgresql(
    conn: Connection,
) -> None:
    """SQLite's qmark style yields parameters in placeholder order, psycopg's a mapping."""
    compiled = Statement(_JOURNAL_READ).on(conn.dialect)
    params = compiled.params({"sender": "S", "raw": b"x", "since": NOW})
    if conn.dialect.name == "sqlite":
        assert compiled.positional
        # The WHERE order, then LIMIT and OFFSET (bound with their defaults).
        assert compiled.names[:3] == ("since", "raw", "sender")
        assert params[2:] == ["S", 5, 0]
    else:
        assert not compiled.positional
        assert set(params) == {"since", "raw", "sender", "param_1"}
        assert (params["sender"], params["param_1"]) == ("S", 5)


def test_statement_missing_value_is_an_error(conn: Connection) -> None:
    """A required bind without a value fails before anything is sent."""
    compiled = Statement(_JOURNAL_READ).on(conn.dialect)
    with pytest.raises(KeyError, match="since"):
        compiled.params({"sender": "S", "raw": b"x"})


def test_runner_rows_match_core_rows(db: Database) -> None:
    """Rows read on the cursor carry Core's conversions: aware UTC datetimes and bytes."""
    raw = b"MSH|^~\\&|\x00\xfe\r"
    with db.transaction() as uow:
        uow.journal.insert(NewJournalEntry("CLINIC1", "C1", "VXU^V04", NOW, raw))
    values = {"sender": "CLINIC1", "raw": raw, "since": NOW}
    with db.engine.begin() as conn:
        core = conn.execute(_JOURNAL_READ, values).one()
        sql = runner(conn)
        try:
            ours = sql.one(
                Statement(_JOURNAL_READ, list(_JOURNAL_READ.selected_columns)), values
            )
        finally:
            sql.close()
    assert ours is not None
    core_when = core.received_at
    if core_when.tzinfo is None:
        core_when = core_when.replace(tzinfo=UTC)
    assert ours == [core.id, core_when, bytes(core.raw), "CLINIC1"]
    assert ours[1] == NOW
    assert isinstance(ours[2], bytes)
