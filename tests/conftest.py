"""Shared fixtures: paths to the shared reference material, and the PHI canary."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


def shared_path(env: str, default: Path, what: str) -> Path:
    """A path to shared reference material; skip (fail in CI) when it is missing."""
    path = Path(os.environ.get(env, default))
    if not path.exists():
        message = (
            f"{what} not found at {path}: put the project's shared/ folder beside the "
            f"repository or set {env}"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(name="samples_dir")
def _samples_dir() -> Path:
    """The folder of real HL7 sample messages (../shared/hl7/samples)."""
    return shared_path("CAIRN_HL7_SAMPLES", SHARED / "hl7" / "samples", "HL7 samples")


@pytest.fixture(autouse=True)
def _no_phi_in_logs() -> object:
    """Every log event goes through the strict allow-list, and no canary may appear.

    The strict allow-list raises on a key that is not known to be PHI-free;
    the canary check fails a test whose log events contain a test patient's
    name, identifier, phone or street.
    """
    import structlog

    from engine.logging import AllowListProcessor
    from tests.support.messages import CANARIES

    captured: list[dict[str, object]] = []

    def capture(
        _logger: object, _name: str, event_dict: dict[str, object]
    ) -> dict[str, object]:
        captured.append(dict(event_dict))
        raise structlog.DropEvent

    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            AllowListProcessor(strict=True),
            capture,
        ],
        cache_logger_on_first_use=False,
    )
    yield captured
    text = repr(captured)
    leaked = [c for c in CANARIES if c in text]
    assert not leaked, f"patient data in log events: {leaked}"
    structlog.reset_defaults()


@pytest.fixture(scope="session", name="pg_databases")
def _pg_databases_fixture():  # type: ignore[no-untyped-def]
    from tests.support.db import PostgresDatabases

    pg = PostgresDatabases()
    yield pg
    pg.drop_all()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from tests.support.db import SqliteTemplate

    return SqliteTemplate(tmp_path_factory.mktemp("sqlite"))


@pytest.fixture(name="db", params=["sqlite", "postgresql"])
def _db(request: pytest.FixtureRequest, pg_databases, _sqlite_template):  # type: ignore[no-untyped-def]
    """A migrated, empty registry database: SQLite, then PostgreSQL."""
    from tests.support.db import open_test_database

    yield from open_test_database(request.param, pg_databases, _sqlite_template)
