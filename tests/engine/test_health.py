"""/readyz's checks: the database reachable, its schema current, CDSi data loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from twisted.internet.testing import MemoryReactorClock

from engine.health import ReadinessProbe, readiness
from listeners.http import ProbeResult
from storage import Database, open_database
from tests.support.db import PG_ADMIN_URL, PostgresDatabases


def test_ready_when_the_database_answers_at_head_and_cdsi_is_loaded(
    db: Database,
) -> None:
    """Every check passes: ready, and the body names each one."""
    assert readiness(db, "4.64") == (
        True,
        {"database": "ok", "schema": "current", "cdsi": "4.64"},
    )


def test_not_ready_without_cdsi_data(db: Database) -> None:
    """A Z44 would carry no forecast: not ready, and the body says why."""
    ready, body = readiness(db, None)
    assert not ready
    assert body["cdsi"] == "not loaded"
    assert body["database"] == "ok"


def test_not_ready_on_a_database_without_the_schema(tmp_path: Path) -> None:
    """An empty database (never upgraded) is reachable but not current: not ready, with the fix."""
    db = open_database(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    try:
        ready, body = readiness(db, "4.64")
    finally:
        db.close()
    assert not ready
    assert body["database"] == "ok"
    assert body["schema"].startswith("at none, expected ")
    assert "cairn db upgrade" in body["schema"]


def _admin() -> Any:
    return psycopg.connect(
        PG_ADMIN_URL.replace("postgresql+psycopg", "postgresql"), autocommit=True
    )


@pytest.mark.postgres
def test_not_ready_while_the_postgresql_database_is_gone_and_ready_after(
    pg_databases: PostgresDatabases,
) -> None:
    """The registry's database dropped under a running engine: 503 'unreachable'; restored: ready again.

    The fault is real: the database is dropped with its connections killed
    (as when it is lost or its server restarts), not simulated by a stub.
    """
    url = pg_databases.new_url()
    name = url.rsplit("/", 1)[1]
    db = open_database(url, pool_size=2)
    try:
        db.upgrade()
        assert readiness(db, "4.64")[0]
        with _admin() as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        ready, body = readiness(db, "4.64")
        assert not ready
        assert body == {"database": "unreachable", "schema": "unknown", "cdsi": "4.64"}
        assert "postgres" not in repr(body)  # no URL, user or password in the body
        with _admin() as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        db.upgrade()
        assert readiness(db, "4.64") == (
            True,
            {"database": "ok", "schema": "current", "cdsi": "4.64"},
        )
    finally:
        db.close()


class _StuckPool:
    """A thread pool whose work never finishes (a database that does not answer)."""

    def callInThreadWithCallback(self, *args: Any, **kwargs: Any) -> None:
        pass


class _Reactor(MemoryReactorClock):
    def getThreadPool(self) -> _StuckPool:
        return _StuckPool()


def test_a_database_that_does_not_answer_is_unreachable_after_the_timeout(
    tmp_path: Path,
) -> None:
    """/readyz does not hang with the database: after the timeout it answers not ready."""
    reactor = _Reactor()
    db = open_database(f"sqlite:///{tmp_path / 'stuck.sqlite3'}")
    try:
        probe = ReadinessProbe(reactor, db, "4.64", timeout=5.0)
        out: list[ProbeResult] = []
        probe().addCallback(out.append)
        reactor.advance(4.9)
        assert out == []
        reactor.advance(0.2)
    finally:
        db.close()
    assert out == [
        (
            False,
            {
                "database": "unreachable",
                "schema": "unknown",
                "cdsi": "4.64",
                "timeout_seconds": 5.0,
            },
        )
    ]
