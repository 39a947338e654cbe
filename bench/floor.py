"""The floor: the least an HL7 engine with Cairn's guarantees must do per message.

A minimal MLLP server, for comparison only (issue 18): MLLP framing, the
message split into segments and MSH into fields, then on one writer thread
and in one transaction per group of queued messages (group commit): a
de-duplication look-up of (sending facility, MSH-10) in a journal and one
journal insert of the raw bytes; commit (SQLite WAL with synchronous=FULL,
or PostgreSQL); then an ACK (MSH + MSA) per message. No validation, no
patient, no doses: every ingest figure of Cairn is reported as a ratio to
this floor, measured in the same run on the same machine, because absolute
figures on a shared 2-core machine are not comparable between runs.

Run: .venv/bin/python -m bench.floor serve --data-dir DIR [--database URL]
     (prints ``listening for MLLP on HOST:PORT`` as ``cairn serve`` does, so
     that :func:`bench.ingest.start_server` can drive it).
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet import protocol
from twisted.internet.defer import Deferred
from twisted.internet.task import react

START, END = b"\x0b", b"\x1c\x0d"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS floor_journal ("
    " id {serial} PRIMARY KEY, sender TEXT NOT NULL, control_id TEXT NOT NULL,"
    " received_at TEXT NOT NULL, raw {blob} NOT NULL, ack_code TEXT NOT NULL)"
)
_INDEX = (
    "CREATE INDEX IF NOT EXISTS floor_journal_key ON floor_journal (sender, control_id)"
)


class _Store:
    """The journal: a look-up and an insert per message, one commit per group."""

    def __init__(self, data_dir: Path, database: str | None) -> None:
        self.postgres = bool(database)
        if database:
            import psycopg

            url = database.replace("postgresql+psycopg://", "postgresql://")
            self.conn: Any = psycopg.connect(url)
            with self.conn.cursor() as cur:
                cur.execute("DROP TABLE IF EXISTS floor_journal")
                cur.execute(_SCHEMA.format(serial="BIGSERIAL", blob="BYTEA"))
                cur.execute(_INDEX)
            self.conn.commit()
            self.mark = "%s"
        else:
            data_dir.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(
                data_dir / "floor.sqlite3",
                isolation_level=None,
                check_same_thread=False,
            )
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute(
                _SCHEMA.format(serial="INTEGER", blob="BLOB").replace(
                    "INTEGER PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT"
                )
            )
            self.conn.execute(_INDEX)
            self.mark = "?"
        find = (
            "SELECT id, ack_code FROM floor_journal WHERE sender = ? AND control_id = ?"
        )
        add = (
            "INSERT INTO floor_journal (sender, control_id, received_at, raw, ack_code)"
            " VALUES (?, ?, ?, ?, 'AA')"
        )
        self.find = find.replace("?", self.mark)
        self.add = add.replace("?", self.mark)

    def write(self, batch: list[tuple[str, str, bytes]]) -> list[str]:
        """Journal a group in one transaction; the ACK code of each message."""
        codes = []
        cur = self.conn.cursor()
        if not self.postgres:
            cur.execute("BEGIN IMMEDIATE")
        now = time.strftime("%Y%m%d%H%M%S")
        for sender, control_id, raw in batch:
            cur.execute(self.find, (sender, control_id))
            if cur.fetchone() is not None:
                codes.append("AA")  # a resend: its original answer, nothing written
                continue
            cur.execute(self.add, (sender, control_id, now, raw))
            codes.append("AA")
        if self.postgres:
            self.conn.commit()
        else:
            cur.execute("COMMIT")
        return codes


def _ack(fields: list[str], code: str, stamp: str) -> bytes:
    control = fields[9] if len(fields) > 9 else ""
    sender_app = fields[2] if len(fields) > 2 else ""
    sender_fac = fields[3] if len(fields) > 3 else ""
    return (
        f"MSH|^~\\&|FLOOR|FLOOR|{sender_app}|{sender_fac}|{stamp}||ACK^V04^ACK|F{control}|P|2.5.1\r"
        f"MSA|{code}|{control}\r"
    ).encode()


class _Writer:
    """One writer thread: group commit of whatever is queued (at most 64)."""

    def __init__(self, store: _Store, answer: Callable[..., None]) -> None:
        self._store = store
        self._answer = answer
        self._queue: queue.Queue[tuple[Any, list[str], bytes]] = queue.Queue()
        threading.Thread(target=self._run, name="floor-writer", daemon=True).start()

    def submit(self, conn: Any, fields: list[str], raw: bytes) -> None:
        self._queue.put((conn, fields, raw))

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < 64:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            rows = [
                (
                    f[3] if len(f) > 3 else "",
                    f[9] if len(f) > 9 else "",
                    raw,
                )
                for _c, f, raw in batch
            ]
            codes = self._store.write(rows)
            stamp = time.strftime("%Y%m%d%H%M%S")
            answers = [
                (c, _ack(f, code, stamp))
                for (c, f, _r), code in zip(batch, codes, strict=True)
            ]
            self._answer(answers)


class _Mllp(protocol.Protocol):
    """MLLP framing: a message between 0x0B and 0x1C 0x0D."""

    def __init__(self, writer: _Writer) -> None:
        self._writer = writer
        self._buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(END)
            if end < 0:
                return
            start = self._buffer.find(START)
            raw = self._buffer[start + 1 : end]
            self._buffer = self._buffer[end + 2 :]
            # The split: segments, then MSH's fields.
            segments = raw.decode("utf-8", "replace").replace("\n", "\r").split("\r")
            msh = next((s for s in segments if s.startswith("MSH")), "")
            self._writer.submit(self, msh.split("|"), raw)

    def send(self, payload: bytes) -> None:
        if self.transport is not None:
            self.transport.write(START + payload + END)


def serve(data_dir: Path, database: str | None, listen: str) -> None:
    """Run the floor server until SIGTERM."""
    host, _, port = listen.rpartition(":")
    store = _Store(data_dir, database)

    def run(reactor: Any) -> Deferred[None]:
        def answer(pairs: list[tuple[_Mllp, bytes]]) -> None:
            def fire() -> None:
                for conn, payload in pairs:
                    conn.send(payload)

            reactor.callFromThread(fire)

        writer = _Writer(store, answer)
        factory = protocol.Factory.forProtocol(lambda: _Mllp(writer))  # type: ignore[arg-type,return-value]
        bound = reactor.listenTCP(int(port), factory, interface=host).getHost()
        print(f"listening for MLLP on {bound.host}:{bound.port}", flush=True)
        return Deferred()  # until SIGTERM stops the reactor

    try:
        react(run)
    finally:
        with contextlib.suppress(Exception):
            store.conn.close()


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="run the floor server")
    run.add_argument(
        "--data-dir", type=Path, required=True, help="SQLite file's folder"
    )
    run.add_argument("--database", default=None, help="PostgreSQL URL (default SQLite)")
    run.add_argument("--listen", default="127.0.0.1:0", help="host:port (0: any port)")
    args = parser.parse_args()
    serve(args.data_dir, args.database, args.listen)


if __name__ == "__main__":
    main()
