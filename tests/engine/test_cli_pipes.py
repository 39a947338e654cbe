"""A listing piped into ``head`` ends quietly when the reader goes away."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from storage import NewJournalEntry, open_database


def test_messages_listing_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    """`cairn messages | head -1`: no BrokenPipeError traceback, exit 0."""
    url = f"sqlite:///{tmp_path / 'cairn.sqlite3'}"
    db = open_database(url)
    db.upgrade()
    with db.transaction() as uow:
        for i in range(1500):
            uow.journal.insert(
                NewJournalEntry(
                    sender="CLINIC1",
                    control_id=f"C{i}",
                    message_type="VXU^V04",
                    received_at=datetime(2026, 1, 1, tzinfo=UTC),
                    raw=b"MSH|",
                    peer="test",
                    region="BAY",
                    content_digest="d",
                )
            )
    db.close()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "messages",
            "--database",
            url,
            "--limit",
            "3000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader leaves, as head does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert first.startswith(b"      id")
    assert "Traceback" not in err and "BrokenPipe" not in err
