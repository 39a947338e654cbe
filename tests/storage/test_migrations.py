"""Migrations: an empty database upgrades to head on both backends, matching schema.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from storage import Database, SchemaOutOfDate, open_database
from storage.migrate import PARTITIONED_TABLES
from storage.schema import metadata


def _is_partition(name: str) -> bool:
    return any(name.startswith(f"{table}_") for table in PARTITIONED_TABLES)


def _partition_diff(item: Any) -> bool:
    """Differences that PostgreSQL's region partitioning explains (migration 0002)."""
    kind, obj = item[0], item[1]
    if kind == "remove_table":
        return _is_partition(obj.name)  # patients_bay, vaccinations_default...
    if kind == "remove_index":
        return _is_partition(
            obj.table.name
        )  # indexes PostgreSQL made on each partition
    if kind in {"add_fk", "remove_fk"}:
        referred = obj.elements[0].column.table.name
        columns = {c.name for c in obj.columns}
        # FKs to the partitioned tables carry the region: (patient_id, region).
        return (
            referred in PARTITIONED_TABLES
            or _is_partition(obj.table.name)
            or "region" in columns
        )
    return False


def test_migrated_schema_matches_metadata(db: Database) -> None:
    """The head revision and storage/schema.py agree (no autogenerate diff).

    On PostgreSQL the only differences allowed are those of the region
    partitioning: the partitions themselves and foreign keys that carry the
    region.
    """
    with db.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), metadata
        )
    if db.backend == "postgresql":
        diff = [d for d in diff if not _partition_diff(d)]
    assert diff == []


def test_postgresql_patient_tables_are_partitioned_and_queries_prune(
    db: Database,
) -> None:
    """On PostgreSQL the patient tables are LIST-partitioned and a region query scans one partition."""
    if db.backend != "postgresql":
        pytest.skip("partitioning is a PostgreSQL feature; SQLite keeps one table")
    db.add_region_partitions(["BAY", "LAO"])
    from sqlalchemy.dialects import postgresql

    from storage.schema import vaccinations

    query = vaccinations.select().where(
        vaccinations.c.region == "BAY", vaccinations.c.patient_id == 1
    )
    sql = str(
        query.compile(
            dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
        )
    )
    with db.engine.connect() as conn:
        kinds = dict(
            conn.execute(
                text(
                    "SELECT c.relname, c.relkind FROM pg_class c WHERE c.relname IN ('patients', 'vaccinations', 'observations')"
                )
            ).all()
        )
        plan = "\n".join(row[0] for row in conn.execute(text("EXPLAIN " + sql)))
    assert kinds == {"patients": "p", "vaccinations": "p", "observations": "p"}
    assert "vaccinations_bay" in plan
    assert "vaccinations_lao" not in plan
    assert "vaccinations_default" not in plan


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


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_name_keys_of_existing_patients_are_filled_in(
    backend: str, tmp_path: Path, pg_databases: Any
) -> None:
    """Migration 0004 computes the blocking keys of patients stored before it."""
    from storage.migrate import upgrade

    url = (
        pg_databases.new_url()
        if backend == "postgresql"
        else f"sqlite:///{tmp_path / 'k.sqlite3'}"
    )
    db = open_database(url)
    try:
        assert upgrade(db.engine, "0003") == "0003"
        with db.engine.begin() as conn:
            for pid, family, given in (
                (1, "García-López", "Ana"),
                (2, "Smyth", ""),
                (3, "", ""),
            ):
                conn.execute(
                    text(
                        "INSERT INTO patients (id, region, birth_date, family_name,"
                        " given_name, created_at, updated_at) VALUES (:id, 'BAY',"
                        " '2020-01-02', :f, :g, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"id": pid, "f": family, "g": given},
                )
        assert upgrade(db.engine, "0004") == "0004"
        with db.engine.connect() as conn:
            keys = conn.execute(
                text("SELECT id, family_key, given_key FROM patients ORDER BY id")
            ).all()
    finally:
        db.close()
    assert [tuple(k) for k in keys] == [
        (1, "G620", "A500"),
        (2, "S530", ""),
        (3, "", ""),
    ]
