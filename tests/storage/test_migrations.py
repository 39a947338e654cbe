"""Migrations: an empty database upgrades to head on both backends, matching schema.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from storage import Database, SchemaOutOfDate, open_database
from storage.schema import metadata


def test_migrated_schema_matches_metadata(db: Database) -> None:
    """The head revision and storage/schema.py agree (no autogenerate diff)."""
    with db.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), metadata
        )
    assert diff == []


def test_check_schema_current_passes_at_head(db: Database) -> None:
    """A database at head passes the start-up check."""
    db.check_schema_current()


def test_empty_database_is_reported_out_of_date(tmp_path: Path) -> None:
    """serve refuses an unmigrated database with a message that says what to run."""
    db = open_database(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    with pytest.raises(SchemaOutOfDate, match="run `cairn db upgrade`"):
        db.check_schema_current()
    db.close()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    """The embedded database uses WAL and enforces foreign keys."""
    db = open_database(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2
    db.close()


def test_upgrade_is_idempotent(tmp_path: Path) -> None:
    """Running the upgrade twice is harmless."""
    db = open_database(f"sqlite:///{tmp_path / 'u.sqlite3'}")
    first = db.upgrade()
    assert db.upgrade() == first
    db.close()
