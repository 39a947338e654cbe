"""storage/dialects.py: each SQLite/PostgreSQL difference gives the same answer."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select, text

from storage import Database, NewPatient
from storage.dialects import (
    SQLITE,
    id_pool,
    insert_ignoring_conflict,
    lock_keys,
    partitions_by_region,
    refusal_reason,
    runner,
)
from storage.schema import patient_identifiers


class _Recorder:
    """Stands in for a statement runner: records the commands it is given."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, Any]] = []

    def defer_command(self, sql: str, params: Any = None) -> None:
        self.commands.append((sql, params))


def _patient(db: Database) -> int:
    with db.transaction() as uow:
        return uow.patients.insert(
            NewPatient(region="BAY", birth_date=date(2023, 1, 5), family_name="Doe")
        )


def test_refusal_reason_same_words_on_both_backends() -> None:
    """A unique violation reads the same from PostgreSQL's SQLSTATE and SQLite's code."""
    postgresql = refusal_reason(SimpleNamespace(sqlstate="23505"))
    sqlite = refusal_reason(
        SimpleNamespace(sqlite_errorname="SQLITE_CONSTRAINT_UNIQUE")
    )
    assert postgresql == sqlite == "a value that must be unique is already stored"


def test_refusal_reason_unknown_code_is_none() -> None:
    """A code without a known meaning gives no reason (the caller words it)."""
    assert refusal_reason(SimpleNamespace(sqlstate="99999")) is None
    assert refusal_reason(ValueError("no code at all")) is None


def test_insert_ignoring_conflict_keeps_the_first_row(db: Database) -> None:
    """The second insert of the same identifier changes nothing, on both backends."""
    pid = _patient(db)
    stmt = insert_ignoring_conflict(
        patient_identifiers,
        ["patient_id", "region", "value", "authority", "type_code", "submitted_by"],
        ["region", "authority", "value"],
    )
    with db.engine.begin() as conn:
        sql = runner(conn)
        for type_code, by in (("MR", "CLINIC1"), ("PI", "CLINIC2")):
            sql.defer(
                stmt,
                {
                    "patient_id": pid,
                    "region": "BAY",
                    "value": "12345",
                    "authority": "CLINIC",
                    "type_code": type_code,
                    "submitted_by": by,
                },
            )
        sql.flush()
        sql.close()
        rows = conn.execute(
            select(patient_identifiers.c.type_code, patient_identifiers.c.submitted_by)
        ).all()
    assert [tuple(r) for r in rows] == [("MR", "CLINIC1")]


def test_lock_keys_sorted_once_on_postgresql_nothing_on_sqlite(db: Database) -> None:
    """PostgreSQL locks each key once in sorted order; SQLite's single writer needs none."""
    recorder = _Recorder()
    dialect = db.engine.dialect
    lock_keys(recorder, dialect, ["b", "a", "b"])  # type: ignore[arg-type]
    lock_keys(recorder, dialect, [])  # type: ignore[arg-type]
    if dialect.name == SQLITE:
        assert recorder.commands == []
    else:
        ((sql, params),) = recorder.commands
        assert "pg_advisory_xact_lock" in sql
        assert params == {"keys": ["a", "b"]}


def test_lock_keys_hold_advisory_locks_until_the_transaction_ends(db: Database) -> None:
    """On PostgreSQL the transaction holds one advisory lock per key; SQLite runs on."""
    with db.transaction() as uow:
        uow.lock(["CLINIC1|C1", "CLINIC1|C2", "CLINIC1|C1"])
        uow.flush()
        if db.backend == SQLITE:
            held = None
        else:
            held = uow.connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                    " AND pid = pg_backend_pid()"
                )
            ).scalar_one()
    assert held == (None if db.backend == SQLITE else 2)


def test_runner_queues_only_where_round_trips_cost(db: Database) -> None:
    """PostgreSQL queues a statement whose result is unread; SQLite sends it at once."""
    with db.engine.begin() as conn:
        sql = runner(conn)
        mark = sql.mark()
        sql.defer_command("SELECT 1")
        queued = sql.unsent_since(mark)
        sql.close()
    assert queued is (db.backend != SQLITE)


def test_id_pool_gives_ascending_ids_on_postgresql_only(db: Database) -> None:
    """PostgreSQL reserves ids ahead, in ascending order; SQLite reads lastrowid instead."""
    with db.engine.begin() as conn:
        sql = runner(conn)
        pool = id_pool(sql, conn.dialect)
        ids = [] if pool is None else [pool.take("patients") for _ in range(20)]
        sql.close()
    if db.backend == SQLITE:
        assert pool is None
    else:
        assert ids == sorted(ids)
        assert len(set(ids)) == 20


def test_partitions_by_region_only_on_postgresql(db: Database) -> None:
    """Region partitions are a PostgreSQL feature; SQLite keeps one table per kind."""
    assert partitions_by_region(db.engine.dialect) is (db.backend != SQLITE)


def test_postgresql_statement_timeout_is_a_transient_error(pg_databases) -> None:  # type: ignore[no-untyped-def]
    """A statement past database.statement_timeout_seconds is cancelled: a transient error.

    The server cancels it (statement_timeout); the unit of work reports
    that a resend can succeed, and the connection is usable again after.
    """
    from storage import TransientStorageError, open_database

    pg_databases.require()
    db = open_database(pg_databases.new_url(), statement_timeout=0.2, connect_timeout=5)
    try:
        with pytest.raises(TransientStorageError), db.transaction() as uow:
            uow.connection.exec_driver_sql("SELECT pg_sleep(5)")
        with db.transaction() as uow:
            assert uow.connection.exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        db.close()


def test_postgresql_statistics_refresh_is_not_cut_by_the_statement_timeout(
    pg_databases,  # type: ignore[no-untyped-def]
) -> None:
    """ANALYZE (maintenance, off the writer) runs without the messages' statement timeout."""
    from storage import open_database
    from storage.dialects import _without_deadline

    pg_databases.require()
    db = open_database(pg_databases.new_url(), statement_timeout=0.2, connect_timeout=5)
    try:
        with db.engine.connect() as conn:
            with _without_deadline(conn):
                conn.exec_driver_sql("SELECT pg_sleep(0.5)")
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "200ms"
    finally:
        db.close()
