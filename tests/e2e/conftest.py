"""End-to-end fixtures: a real ``cairn serve`` process on an ephemeral port."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest

from tests.support.db import PostgresDatabases
from tests.support.messages import CANARIES
from tests.support.mllp import MllpTestClient

pytestmark = pytest.mark.e2e

CONFIG = """
[registry]
name = "CAIRN"
facility_id = "CAIRN"
unknown_sender = "reject"
unknown_sender_region = "BAY"

[logging]
format = "json"

[[facilities]]
id = "CLINIC1"
region = "BAY"
name = "Test clinic one"

[[facilities]]
id = "CLINIC2"
region = "BAY"
name = "Test clinic two"

[[facilities]]
id = "LACLINIC"
region = "LAO"
name = "Los Angeles clinic"
"""

_LISTENING = re.compile(r"listening for MLLP on ([^:\s]+):(\d+)")


@dataclass
class ServerProcess:
    """A running ``cairn serve`` and what it printed."""

    proc: subprocess.Popen[str]
    host: str
    port: int
    data_dir: Path
    config: Path
    output: list[str] = field(default_factory=list)
    database_url: str = ""

    def client(self, timeout: float = 30.0) -> MllpTestClient:
        """A new MLLP connection to the server."""
        return MllpTestClient(self.host, self.port, timeout)

    def send(self, message: str | bytes) -> bytes:
        """Send one message on a fresh connection and return the reply payload."""
        with self.client() as client:
            data = message.encode("utf-8") if isinstance(message, str) else message
            return bytes(client.send_message(data))

    def query(
        self, sql: str, params: tuple[object, ...] = ()
    ) -> list[tuple[object, ...]]:
        """Read the server's database directly (dates come back as ISO text on both backends)."""
        if not self.database_url:
            con = sqlite3.connect(self.data_dir / "cairn.sqlite3")
            try:
                return con.execute(sql, params).fetchall()
            finally:
                con.close()
        import psycopg

        with psycopg.connect(
            self.database_url.replace("postgresql+psycopg", "postgresql")
        ) as conn:
            rows = conn.execute(sql.replace("?", "%s"), params).fetchall()
        return [
            tuple(v.isoformat() if isinstance(v, date) else v for v in row)
            for row in rows
        ]

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc.poll() is None

    def stop(self) -> int:
        """SIGTERM, wait, and return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return int(self.proc.returncode)


def start_server(
    tmp_path: Path, *extra: str, config_text: str = CONFIG
) -> ServerProcess:
    """Start ``cairn serve`` on port 0 and wait until it listens."""
    data_dir = tmp_path / "var"
    config = tmp_path / "cairn.toml"
    config.write_text(config_text)
    env = dict(os.environ)
    env.pop("CAIRN_DATABASE__URL", None)
    cdsi = Path(
        os.environ.get(
            "CAIRN_CDSI_DIR",
            Path(__file__).resolve().parents[3] / "shared" / "cdsi" / "supporting-data",
        )
    )
    if cdsi.exists():
        env["CAIRN_CDSI_DIR"] = str(cdsi)
    codes = Path(
        os.environ.get(
            "CAIRN_CODES_DIR", Path(__file__).resolve().parents[3] / "shared" / "codes"
        )
    )
    if codes.exists():
        env["CAIRN_CODES_DIR"] = str(codes)
    cmd = [
        sys.executable,
        "-m",
        "engine.cli",
        "--config",
        str(config),
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        str(data_dir),
        *extra,
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stdout is not None
    output: list[str] = []
    deadline = time.monotonic() + 60
    host, port = "", 0
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        output.append(line)
        match = _LISTENING.search(line)
        if match:
            host, port = match.group(1), int(match.group(2))
            break
    if not port:
        proc.kill()
        raise AssertionError("cairn serve did not start:\n" + "".join(output))
    database = ""
    if "--database" in extra:
        database = extra[list(extra).index("--database") + 1]
    server = ServerProcess(proc, host, port, data_dir, config, output, database)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)

    threading.Thread(target=pump, daemon=True).start()
    return server


def _serve(
    backend: str,
    tmp_path: Path,
    pg_databases: PostgresDatabases,
    *,
    config_text: str = CONFIG,
) -> Iterator[ServerProcess]:
    """Start a server on ``backend``; stop it with SIGTERM and check its logs for PHI."""
    extra: list[str] = []
    if backend == "postgresql":
        url = pg_databases.new_url()
        upgraded = subprocess.run(
            [sys.executable, "-m", "engine.cli", "db", "upgrade", "--database", url],
            cwd=Path(__file__).resolve().parents[2],
            check=False,
            capture_output=True,
            text=True,
        )
        assert upgraded.returncode == 0, (
            f"cairn db upgrade failed:\n{upgraded.stdout}\n{upgraded.stderr}"
        )
        extra = ["--database", url]
    server = start_server(tmp_path, *extra, config_text=config_text)
    try:
        yield server
    finally:
        code = server.stop()
        log = "".join(server.output)
        leaked = [c for c in CANARIES if c in log]
        assert not leaked, f"patient data in server logs: {leaked}"
        assert code == 0, f"server exited with {code}:\n{log[-3000:]}"


@pytest.fixture(name="server", params=["sqlite", "postgresql"])
def _server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    """A running server on SQLite, then on PostgreSQL; stopped with SIGTERM, logs checked for PHI."""
    yield from _serve(request.param, tmp_path, request.getfixturevalue("pg_databases"))


@pytest.fixture(name="shared_server", scope="module", params=["sqlite", "postgresql"])
def _shared_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One server per module and backend, for tests that do not interfere.

    Starting ``cairn serve`` is most of an e2e test's time. Tests that share
    it use their own control ids, record numbers and fillers, and assert on
    what they added (rows after the ones they found), never on whole tables.
    """
    yield from _serve(
        request.param,
        tmp_path_factory.mktemp("server"),
        request.getfixturevalue("pg_databases"),
    )
