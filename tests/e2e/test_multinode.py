"""Two `cairn serve` processes on one PostgreSQL: one patient, one message, nothing lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.e2e.conftest import ServerProcess, start_server
from tests.support.db import PostgresDatabases
from tests.support.messages import Dose, vxu
from tests.support.mllp import msa_code

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = '[registry]\nunknown_sender = "accept"\nunknown_sender_region = "BAY"\n\n[logging]\nformat = "json"\n'


@pytest.fixture(name="pg_url")
def _pg_url(pg_databases: PostgresDatabases) -> str:
    url = pg_databases.new_url()
    subprocess.run(
        [sys.executable, "-m", "engine.cli", "db", "upgrade", "--database", url],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return url


@pytest.fixture(name="nodes")
def _nodes(
    tmp_path: Path, pg_url: str
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = start_server(tmp_path / "a", "--database", pg_url, config_text=CONFIG)
    b = start_server(tmp_path / "b", "--database", pg_url, config_text=CONFIG)
    try:
        yield a, b
    finally:
        for node in (a, b):
            node.stop()


def _sql(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        return list(conn.execute(query).fetchall())


def _together(*calls: tuple[ServerProcess, bytes]) -> list[bytes]:
    """Send each message to its node at the same moment; return the replies."""
    barrier = threading.Barrier(len(calls))
    replies: list[bytes] = [b""] * len(calls)

    def go(i: int, node: ServerProcess, message: bytes) -> None:
        with node.client() as client:
            barrier.wait()
            replies[i] = client.send_message(message)

    threads = [
        threading.Thread(target=go, args=(i, n, m)) for i, (n, m) in enumerate(calls)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return replies


def test_multinode_same_new_patient_from_two_senders_is_one_patient(
    nodes: tuple[ServerProcess, ServerProcess], pg_url: str
) -> None:
    """Two nodes receiving the same new patient (same state id) at once create one patient."""
    a, b = nodes
    for i in range(15):
        first = vxu(
            control_id=f"A{i}",
            sender="CLINIC1",
            mrn=f"SR{i}",
            authority="CAIR",
            doses=[Dose(filler=f"A{i}")],
        ).encode()
        second = vxu(
            control_id=f"B{i}",
            sender="CLINIC2",
            mrn=f"SR{i}",
            authority="CAIR",
            doses=[Dose(filler=f"B{i}")],
        ).encode()
        assert [msa_code(r) for r in _together((a, first), (b, second))] == ["AA", "AA"]
    assert _sql(pg_url, "SELECT count(*) FROM patients") == [(15,)]
    assert _sql(pg_url, "SELECT count(*) FROM vaccinations") == [(30,)]


def test_multinode_same_message_to_both_nodes_is_stored_once(
    nodes: tuple[ServerProcess, ServerProcess], pg_url: str
) -> None:
    """The same message sent to both nodes at once is journaled and stored once, and both get the same answer."""
    a, b = nodes
    for i in range(15):
        message = vxu(
            control_id=f"SAME{i}",
            sender="CLINIC1",
            mrn=f"M{i}",
            doses=[Dose(filler=f"S{i}")],
        ).encode()
        first, second = _together((a, message), (b, message))
        assert msa_code(first) == "AA"
        assert first == second
    assert _sql(pg_url, "SELECT count(*) FROM message_journal") == [(15,)]
    assert _sql(pg_url, "SELECT count(*) FROM vaccinations") == [(15,)]


def test_multinode_sigkill_one_node_loses_nothing(
    nodes: tuple[ServerProcess, ServerProcess], pg_url: str
) -> None:
    """A node killed mid-burst loses no acknowledged message; resending to the other stores each once."""
    a, b = nodes
    messages = {
        f"K{i}": vxu(
            control_id=f"K{i}", mrn=f"K{i}", doses=[Dose(filler=f"K{i}")]
        ).encode()
        for i in range(200)
    }
    acked: dict[str, str] = {}

    def burst() -> None:
        try:
            with a.client(timeout=20) as client:
                for control_id, message in messages.items():
                    reply = client.send_message(message)
                    if not reply:
                        return
                    acked[control_id] = msa_code(reply)
        except OSError:
            return

    sender = threading.Thread(target=burst)
    sender.start()
    threading.Timer(0.3, lambda: os.kill(a.proc.pid, signal.SIGKILL)).start()
    sender.join(60)
    before = dict(acked)
    assert len(before) < len(messages)
    with b.client() as client:
        for control_id, message in messages.items():
            if control_id not in acked:
                acked[control_id] = msa_code(client.send_message(message))
    journal = dict(_sql(pg_url, "SELECT control_id, ack_code FROM message_journal"))  # type: ignore[arg-type]
    assert set(journal) == set(messages)
    assert all(journal[c] == code for c, code in before.items())
    assert _sql(pg_url, "SELECT count(*) FROM vaccinations") == [(200,)]


def test_multinode_serve_refuses_an_old_schema(
    tmp_path: Path, pg_databases: PostgresDatabases
) -> None:
    """On PostgreSQL, serve does not migrate: against an empty database it exits and says what to run."""
    url = pg_databases.new_url()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(tmp_path),
            "--database",
            url,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "run `cairn db upgrade`" in done.stderr
