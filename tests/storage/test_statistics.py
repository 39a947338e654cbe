"""Planner statistics kept current when the PostgreSQL server does not (autovacuum off)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

from sqlalchemy import text

from storage import Database
from storage.schema import patients

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _fill(db: Database, rows: int) -> None:
    with db.engine.begin() as conn:
        if db.backend == "postgresql":
            # Counters reach the shared statistics when this backend reports
            # them; make it report at this transaction's end.
            conn.execute(text("SELECT pg_stat_force_next_flush()"))
        conn.execute(
            patients.insert(),
            [
                {
                    "region": "BAY",
                    "birth_date": date(2020, 1, 1 + i % 28),
                    "family_name": f"Family{i}",
                    "given_name": "Given",
                    "family_key": "F540",
                    "given_key": "G150",
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for i in range(rows)
            ],
        )


def _autovacuum(db: Database) -> str:
    with db.engine.connect() as conn:
        return str(conn.execute(text("SELECT current_setting('autovacuum')")).scalar())


def _analyzed(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT relname FROM pg_stat_user_tables"
                " WHERE schemaname = ANY (current_schemas(false))"
                " AND last_analyze IS NOT NULL"
            )
        )
        return {row[0] for row in rows}


def test_tables_filled_since_their_last_analyze_are_analyzed(db: Database) -> None:
    if db.backend != "postgresql":
        _fill(db, 300)
        assert db.refresh_statistics() == []
        return
    if _autovacuum(db) == "on":
        # The server keeps its own statistics; the engine stays out of it.
        _fill(db, 300)
        assert db.refresh_statistics() == []
        return
    db.refresh_statistics()  # whatever earlier tests left stale
    _fill(db, 300)
    analyzed: list[str] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        analyzed += db.refresh_statistics()
        if any(name.startswith("patients") for name in analyzed):
            break
        time.sleep(0.2)
    patient_tables = {name for name in analyzed if name.startswith("patients")}
    assert patient_tables, f"the filled patients table was not analyzed: {analyzed}"
    assert patient_tables <= _analyzed(db)
    # Just analyzed and unchanged since: nothing to do for it.
    assert not patient_tables & set(db.refresh_statistics())
