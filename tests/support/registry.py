"""The registry in process: the pipeline ``cairn serve`` builds, without the server.

Tests of registry rules (matching, RXA-21, disclosure, queries, validation)
need the same wiring as the server (``engine.app.build_pipeline`` from the
same configuration) but not a subprocess, a socket or a port. An
:class:`InProcessRegistry` offers the ``send`` and ``query`` of the e2e
``ServerProcess``, so a rule asserted through the wire in one test is
asserted the same way here, on the ``db`` fixture (SQLite, then PostgreSQL).

The code tables and the CDSi supporting data are read once per session: they
are immutable, and loading the CDSi XML is the slow part of building a
pipeline.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from config import Settings, load_settings
from engine import app
from engine.metrics import EngineMetrics
from engine.pipeline import Inbound, MessagePipeline
from handlers.identity import Principal
from storage import Database

# The configuration of the e2e servers (tests/e2e/conftest.py): the same text.
from tests.e2e.conftest import CONFIG

SHARED = Path(__file__).resolve().parents[3] / "shared"


@dataclass
class InProcessRegistry:
    """The pipeline of ``cairn serve`` on a test database, answered in process."""

    pipeline: MessagePipeline
    db: Database
    settings: Settings

    def send(
        self,
        message: str | bytes,
        peer: str = "127.0.0.1:1",
        principal: Principal | None = None,
    ) -> bytes:
        """Process one message as the listener would hand it over; return the reply payload.

        ``principal`` is the organization an authenticated listener would
        have established (None: an open listener).
        """
        data = message.encode("utf-8") if isinstance(message, str) else message
        item = Inbound(data, peer, "mllp", principal=principal)
        (outcome,) = self.pipeline.process_batch([item])
        return bytes(outcome.payload)

    def query(
        self, sql: str, params: tuple[object, ...] = ()
    ) -> list[tuple[object, ...]]:
        """Read the database directly (``?`` placeholders; dates as ISO text on both backends)."""
        raw = self.db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            if self.db.engine.dialect.name == "postgresql":
                sql = sql.replace("?", "%s")
            cursor.execute(sql, params)
            rows = cursor.fetchall()
            raw.commit()
        finally:
            raw.close()
        return [
            tuple(v.isoformat() if isinstance(v, date) else v for v in row)
            for row in rows
        ]

    def write(self, sql: str, params: tuple[object, ...] = ()) -> None:
        """Change the database directly, as data stored before today's rules."""
        raw = self.db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            if self.db.engine.dialect.name == "postgresql":
                sql = sql.replace("?", "%s")
            cursor.execute(sql, params)
            raw.commit()
        finally:
            raw.close()


#: Loaded once per session, keyed by where they came from: both are immutable.
_LOADED: dict[tuple[str, str], Any] = {}


def _code_tables(settings: Settings) -> Any:
    key = ("codes", os.environ.get("CAIRN_CODES_DIR", ""))
    if key not in _LOADED:
        _LOADED[key] = _ORIGINAL_CODES(settings)
    return _LOADED[key]


def _forecaster(settings: Settings) -> Any:
    key = (
        "cdsi",
        settings.cdsi.supporting_data or os.environ.get("CAIRN_CDSI_DIR", ""),
    )
    if key not in _LOADED:
        _LOADED[key] = _ORIGINAL_FORECASTER(settings)
    return _LOADED[key]


_ORIGINAL_CODES = app.load_code_tables
_ORIGINAL_FORECASTER = app.load_forecaster


def build_registry(
    db: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    config_text: str = CONFIG,
    metrics: EngineMetrics | None = None,
) -> InProcessRegistry:
    """Build the server's pipeline from ``config_text`` on ``db``.

    Args:
        db: the test database (the ``db`` fixture).
        tmp_path: where the configuration file and data directory go.
        monkeypatch: used to share the code tables and CDSi data per session.
        config_text: the TOML configuration, by default the e2e servers' one.
        metrics: where the pipeline counts (a private registry by default).

    Returns:
        The registry, ready to ``send`` messages to.
    """
    for env, default in (
        ("CAIRN_CDSI_DIR", SHARED / "cdsi" / "supporting-data"),
        ("CAIRN_CODES_DIR", SHARED / "codes"),
    ):
        if not os.environ.get(env) and default.exists():
            monkeypatch.setenv(env, str(default))
    path = tmp_path / "cairn.toml"
    path.write_text(config_text)
    settings = load_settings(path, environ={})
    settings = _with_data_dir(settings, tmp_path / "var")
    monkeypatch.setattr(app, "load_code_tables", _code_tables)
    monkeypatch.setattr(app, "load_forecaster", _forecaster)
    return InProcessRegistry(
        app.build_pipeline(settings, db, metrics=metrics), db, settings
    )


def _with_data_dir(settings: Settings, data_dir: Path) -> Settings:
    from config import with_overrides

    return with_overrides(settings, server={"data_dir": str(data_dir)})
