"""Backup under load, then restore: every message ACKed before the backup began is there.

A real ``cairn serve`` on SQLite ingests VXUs over MLLP on one connection
while ``cairn db backup`` runs in another process; the server keeps
answering throughout. The backup is restored into a new data directory with
``cairn db restore`` and read with ``cairn messages``.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import CONFIG, start_server
from tests.support.messages import CANARIES, Dose, vxu
from tests.support.mllp import msa_code

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _cairn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 120) -> None:
    """Poll until ``condition`` holds; fail naming ``what`` if it never does."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_backup_under_load_then_restore_keeps_every_acked_message(
    tmp_path: Path,
) -> None:
    """Messages ACKed before `cairn db backup` started are in the restored database, with their doses."""
    server = start_server(tmp_path, config_text=CONFIG)
    # A long read (a report, say) holds a snapshot from before the load: the
    # server cannot checkpoint past it, so what it commits stays in the WAL
    # file, which a plain copy of the database file would miss.
    report = sqlite3.connect(server.data_dir / "cairn.sqlite3", isolation_level=None)
    report.execute("BEGIN")
    report.execute("SELECT count(*) FROM message_journal").fetchone()
    acked: list[str] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def load() -> None:
        try:
            with server.client() as client:
                n = 0
                while not stop.is_set():
                    message = vxu(
                        control_id=f"L{n}",
                        mrn=f"LOAD{n}",
                        doses=[Dose(filler=f"LF{n}")],
                    )
                    if msa_code(client.send_message(message.encode())) == "AA":
                        acked.append(f"L{n}")
                    n += 1
        except BaseException as exc:  # reported by the test below
            failures.append(exc)

    sender = threading.Thread(target=load, daemon=True)
    sender.start()
    try:
        _wait_for(lambda: len(acked) >= 20 or bool(failures), "20 ACKs")
        acked_before = list(acked)
        backup = tmp_path / "backup.sqlite3"
        taken = _cairn(
            "--config", str(server.config), "db", "backup", str(backup),
            "--data-dir", str(server.data_dir),
        )  # fmt: skip
        assert taken.returncode == 0, taken.stderr
        report.execute("COMMIT")
        # The server kept answering beside the backup, and after it.
        _wait_for(
            lambda: len(acked) >= len(acked_before) + 20 or bool(failures),
            "20 more ACKs after the backup",
        )
    finally:
        stop.set()
        sender.join(60)
        report.close()
        code = server.stop()
    assert not failures, failures
    assert code == 0
    assert not [c for c in CANARIES if c in "".join(server.output)]

    restored = tmp_path / "restored"
    done = _cairn("db", "restore", str(backup), "--data-dir", str(restored))
    assert done.returncode == 0, done.stderr
    con = sqlite3.connect(restored / "cairn.sqlite3")
    try:
        journal = dict(
            con.execute("SELECT control_id, ack_code FROM message_journal").fetchall()
        )
        fillers = {row[0] for row in con.execute("SELECT filler_id FROM vaccinations")}
        (check,) = con.execute("PRAGMA integrity_check").fetchone()
    finally:
        con.close()
    assert check == "ok"
    assert {c: journal.get(c) for c in acked_before} == dict.fromkeys(
        acked_before, "AA"
    )
    assert {f"LF{c[1:]}" for c in acked_before} <= fillers
    # A copy of one moment: never a message the live database lacks.
    assert set(journal) <= set(acked) | {f"L{len(acked)}"}
    listing = _cairn("messages", "--data-dir", str(restored), "--limit", "1000")
    assert listing.returncode == 0, listing.stderr
    assert f"{len(journal)} message(s)" in listing.stdout
