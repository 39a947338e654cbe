"""Database fixtures: every storage test runs on SQLite and on PostgreSQL.

PostgreSQL is the server on 127.0.0.1:5432 (trust auth, user postgres,
database ``test``). Each test session creates its own database from there and
drops it at the end. Outside CI the PostgreSQL cases skip with a message when
no server answers; with ``CI=true`` they must run.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import Database, open_database

PG_ADMIN_URL = os.environ.get(
    "CAIRN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _pg_admin() -> object | None:
    try:
        import psycopg

        return psycopg.connect(
            PG_ADMIN_URL.replace("postgresql+psycopg", "postgresql"),
            autocommit=True,
            connect_timeout=3,
        )
    except Exception:
        return None


class PostgresDatabases:
    """Creates throwaway PostgreSQL databases for one test session."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.available: bool | None = None

    def require(self) -> None:
        """Skip (or fail in CI) when no PostgreSQL server answers."""
        if self.available is None:
            conn = _pg_admin()
            self.available = conn is not None
            if conn is not None:
                conn.close()  # type: ignore[attr-defined]
        if not self.available:
            message = f"PostgreSQL not reachable at {PG_ADMIN_URL}; start it or set CAIRN_TEST_PG"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)

    def new_url(self) -> str:
        """A fresh, empty database's URL."""
        self.require()
        name = f"cairn_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"
        conn = _pg_admin()
        assert conn is not None
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[attr-defined]
        conn.close()  # type: ignore[attr-defined]
        self.created.append(name)
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        return f"{base}/{name}"

    def session_url(self) -> str:
        """One database per test session, migrated once; tests empty it before use."""
        if not hasattr(self, "_session_url"):
            url = self.new_url()
            db = open_database(url, pool_size=2)
            db.upgrade()
            db.close()
            self._session_url = url
        return self._session_url

    def drop_all(self) -> None:
        """Drop every database this session created."""
        if not self.created:
            return
        conn = _pg_admin()
        if conn is None:
            return
        for name in self.created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
        conn.close()  # type: ignore[attr-defined]


class SqliteTemplate:
    """An upgraded SQLite file built once per session and copied per test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.template: Path | None = None

    def new_url(self) -> str:
        """A fresh database file at the head revision."""
        if self.template is None:
            self.template = self.root / "template.sqlite3"
            db = open_database(f"sqlite:///{self.template}")
            db.upgrade()
            db.close()
        target = self.root / f"{uuid.uuid4().hex}.sqlite3"
        shutil.copyfile(self.template, target)
        return f"sqlite:///{target}"


def empty_tables(db: Database) -> None:
    """Remove every row (PostgreSQL session database reused across tests)."""
    from sqlalchemy import text

    from storage.schema import metadata

    names = ", ".join(t.name for t in metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


def open_test_database(
    kind: str, pg: PostgresDatabases, sqlite: SqliteTemplate
) -> Iterator[Database]:
    """Open (and afterwards close) a migrated database of the given kind."""
    if kind == "postgresql":
        db = open_database(pg.session_url(), pool_size=2)
        empty_tables(db)
    else:
        db = open_database(sqlite.new_url())
    try:
        yield db
    finally:
        db.close()
