"""Crash safety: SIGKILL in the middle of a burst loses nothing and stores nothing twice.

Eight senders stream VXUs at a real server; the server is killed with SIGKILL
at a random moment, restarted on the same data directory, and every message
that did not get an answer is sent again. Then every acknowledged message is
in the journal exactly once, every resent one too, and the registry tables
agree with the journal. ``CAIRN_SOAK_RUNS`` raises the number of kill points
(the soak target runs 20).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import threading
from pathlib import Path

import pytest

from bench.synth import Synth
from tests.e2e.conftest import ServerProcess, start_server
from tests.support.mllp import msa_code

pytestmark = pytest.mark.e2e

RUNS = int(os.environ.get("CAIRN_SOAK_RUNS", "3"))
PER_SENDER = 60
SENDERS = 8

CONFIG = '[registry]\nunknown_sender = "accept"\nunknown_sender_region = "BAY"\n\n[logging]\nformat = "json"\n'


def _send_all(
    server: ServerProcess, batches: list[list[tuple[str, bytes]]], acked: dict[str, str]
) -> None:
    """Each sender sends its batch on one connection until done or the server dies."""
    lock = threading.Lock()

    def sender(batch: list[tuple[str, bytes]]) -> None:
        try:
            with server.client(timeout=20) as client:
                for control_id, message in batch:
                    if control_id in acked:
                        continue
                    reply = client.send_message(message)
                    code = msa_code(reply) if reply else ""
                    if not code:
                        return
                    with lock:
                        acked[control_id] = code
        except OSError:
            return

    threads = [threading.Thread(target=sender, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


@pytest.mark.parametrize("run", range(RUNS))
def test_crash_sigkill_mid_burst_loses_nothing(tmp_path: Path, run: int) -> None:
    """Every ACKed message survives a SIGKILL; resends are stored once; tables agree."""
    rng = random.Random(run)
    synth = Synth(seed=100 + run)
    submissions = list(
        synth.traffic(PER_SENDER * SENDERS, duplicate_share=0.0, bad_share=0.02)
    )
    unique = {s.control_id: s.text.encode() for s in submissions}
    items = list(unique.items())
    batches = [items[i::SENDERS] for i in range(SENDERS)]
    acked: dict[str, str] = {}

    server = start_server(tmp_path, config_text=CONFIG)
    killer = threading.Timer(
        rng.uniform(0.2, 0.7), lambda: os.kill(server.proc.pid, signal.SIGKILL)
    )
    killer.start()
    _send_all(server, batches, acked)
    killer.join()
    server.proc.wait(30)
    before_restart = dict(acked)
    assert len(before_restart) < len(unique), (
        "the kill landed in the middle of the burst"
    )

    server = start_server(tmp_path, config_text=CONFIG)
    try:
        _send_all(server, batches, acked)
    finally:
        assert server.stop() == 0

    assert set(acked) == set(unique), (
        "every message is answered once the server is back"
    )
    con = sqlite3.connect(tmp_path / "var" / "cairn.sqlite3")
    try:
        journal = dict(
            con.execute("SELECT control_id, ack_code FROM message_journal").fetchall()
        )
        per_id = con.execute(
            "SELECT control_id, count(*) FROM message_journal GROUP BY sender, control_id HAVING count(*) > 1"
        ).fetchall()
        assert per_id == [], "a (sender, control id) is journaled once"
        for control_id, code in before_restart.items():
            assert journal.get(control_id) == code, (
                f"ACKed before the crash but not durable: {control_id}"
            )
        assert set(journal) == set(unique)
        dup_doses = con.execute(
            "SELECT sending_facility, filler_namespace, filler_id, count(*) FROM vaccinations "
            "WHERE filler_id NOT IN ('', '9999') GROUP BY sending_facility, filler_namespace, filler_id HAVING count(*) > 1"
        ).fetchall()
        assert dup_doses == [], "no dose is stored twice"
        orphans = con.execute(
            "SELECT count(*) FROM vaccinations v LEFT JOIN message_journal j ON j.id = v.journal_id "
            "WHERE j.id IS NULL OR j.ack_code NOT IN ('AA', 'AE')"
        ).fetchone()
        assert orphans == (0,), (
            "every stored dose belongs to an acknowledged journal row"
        )
        unanswered = con.execute(
            "SELECT count(*) FROM message_journal WHERE response IS NULL"
        ).fetchone()
        assert unanswered == (0,), "no journal row is left half-done"
    finally:
        con.close()
