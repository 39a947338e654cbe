"""Alembic, driven from code: no alembic.ini, the scripts ship in the package."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from storage import dialects
from storage.errors import DatabaseUnreachable

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migration scripts."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest revision the code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _one_line(exc: OperationalError) -> str:
    """The driver's reason on one line (psycopg's spans several), without SQL."""
    reason = " ".join(str(exc.orig).split())
    return f"{exc.orig.__class__.__name__}: {reason[:300]}"


@contextmanager
def _connected(engine: Engine, *, begin: bool = False) -> Iterator[Connection]:
    """A connection; a server that cannot be reached is :class:`DatabaseUnreachable`.

    Only the connect is translated: an error while working on a connection
    that was made says something else and keeps its own type.
    """
    try:
        conn = engine.connect()
    except OperationalError as exc:
        url = engine.url.render_as_string(hide_password=True)
        raise DatabaseUnreachable(url, _one_line(exc)) from exc
    with conn:
        if begin:
            with conn.begin():
                yield conn
        else:
            yield conn


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None when it has no schema).

    Raises:
        DatabaseUnreachable: the database could not be reached.
    """
    with _connected(engine) as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Migrate the database to ``revision``; returns the revision reached.

    Raises:
        DatabaseUnreachable: the database could not be reached.
    """
    config = alembic_config()
    with _connected(engine, begin=True) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    return current_revision(engine) or ""


PARTITIONED_TABLES = ("patients", "vaccinations", "observations")


def partition_name(table: str, region: str) -> str:
    """The partition of a table that holds one region."""
    safe = "".join(ch for ch in region.lower() if ch.isalnum() or ch == "_")
    return f"{table}_{safe}"


def ensure_region_partitions(
    engine: Engine, regions: list[str] | tuple[str, ...]
) -> list[str]:
    """Create the per-region partitions that are missing (PostgreSQL); returns the ones created.

    A region whose rows already sit in the DEFAULT partition keeps them there
    (moving rows between partitions would need the foreign keys released);
    the partition is created for it once that is empty, and the condition is
    reported.
    """
    if not dialects.partitions_by_region(engine.dialect):
        return []
    created: list[str] = []
    with engine.begin() as conn:
        for table in PARTITIONED_TABLES:
            partitioned = conn.exec_driver_sql(
                "SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid WHERE c.relname = %(t)s",
                {"t": table},
            ).first()
            if partitioned is None:
                continue
            for region in regions:
                name = partition_name(table, region)
                exists = conn.exec_driver_sql(
                    "SELECT 1 FROM pg_class WHERE relname = %(n)s", {"n": name}
                ).first()
                if exists is not None:
                    continue
                waiting = conn.exec_driver_sql(
                    f"SELECT 1 FROM {table}_default WHERE region = %(r)s LIMIT 1",  # noqa: S608 - table names are constants
                    {"r": region},
                ).first()
                if waiting is not None:
                    continue
                if not region.replace("_", "").replace("-", "").isalnum():
                    raise ValueError(
                        f"region code {region!r} must be letters, digits, - or _"
                    )
                conn.exec_driver_sql(
                    f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES IN ('{region}')"
                )
                created.append(name)
    return created
