"""``cairn journal prune``: archive old journal rows to a file, then delete them.

The archive is gzip-compressed JSON lines (``.jsonl.gz``), written and
flushed to disk before anything is deleted:

- line 1, the header: ``{"format": "cairn-journal-archive", "version": 1,
  "created_at": ISO, "older_than": ISO, "database": URL without password}``;
- then one line per journal row: ``id``, ``sender``, ``control_id``,
  ``message_type``, ``region``, ``received_at`` (ISO, UTC), ``peer``,
  ``ack_code``, ``outcome``, ``error_count``, ``content_digest``, and
  ``raw`` / ``response``: the bytes as received and sent, base64 (the
  response null when there was none).

``zcat FILE | jq`` reads it. It holds whole messages, PHI included: it is
created readable by its owner only.

A row that an audit row, a dose, an observation, a patient, a patient
version or a matching decision points at (``storage.JOURNAL_POINTERS``) is
never deleted: it is the provenance of registry data or of a disclosure.
What a prune removes is the traffic that left nothing behind: rejected
messages, messages that failed, test-mode messages.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.app import database_url
from engine.commands._common import add_database_options, settings_from
from engine.commands.messages import when
from storage import Database, JournalEntry, StorageError, open_database

ARCHIVE_FORMAT = "cairn-journal-archive"
ARCHIVE_VERSION = 1

_AGE = re.compile(r"(\d{1,5})([dw])\Z")


def cutoff(text: str) -> datetime:
    """``--older-than``: an age (``90d``, ``12w``) or an ISO date or date-time."""
    match = _AGE.match(text.strip())
    if match:
        days = int(match.group(1)) * (7 if match.group(2) == "w" else 1)
        return datetime.now(UTC) - timedelta(days=days)
    try:
        return when(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected an age such as 90d or 12w, or an ISO date, got {text!r}"
        ) from None


def register(subparsers: Any) -> None:
    """Add the ``journal`` sub-command."""
    parser = subparsers.add_parser("journal", help="maintain the message journal")
    sub = parser.add_subparsers(dest="journal_command", metavar="ACTION")
    sub.required = True
    prune = sub.add_parser(
        "prune",
        help="archive journal rows older than a cut-off to a .jsonl.gz file, then "
        "delete them (rows that registry data or an audit row points at are kept)",
    )
    prune.add_argument(
        "--older-than",
        type=cutoff,
        required=True,
        metavar="AGE",
        help="rows received before this: an age (90d, 12w) or an ISO date",
    )
    prune.add_argument(
        "--archive",
        type=Path,
        metavar="PATH",
        help="archive file to create (default: DATA_DIR/archive/"
        "journal-<time>.jsonl.gz); it must not exist",
    )
    prune.add_argument(
        "--dry-run",
        action="store_true",
        help="count what would be archived and deleted; change nothing",
    )
    add_database_options(prune)
    prune.set_defaults(func=run_prune)


def _row(entry: JournalEntry) -> dict[str, Any]:
    def b64(data: bytes | None) -> str | None:
        return None if data is None else base64.b64encode(data).decode("ascii")

    return {
        "id": entry.id,
        "sender": entry.sender,
        "control_id": entry.control_id,
        "message_type": entry.message_type,
        "region": entry.region,
        "received_at": entry.received_at.astimezone(UTC).isoformat(),
        "peer": entry.peer,
        "ack_code": entry.ack_code,
        "outcome": entry.outcome,
        "error_count": entry.error_count,
        "content_digest": entry.content_digest,
        "raw": b64(entry.raw),
        "response": b64(entry.response),
    }


def _line(handle: gzip.GzipFile, value: dict[str, Any]) -> None:
    handle.write(json.dumps(value, ensure_ascii=True).encode("ascii") + b"\n")


def write_archive(db: Database, before: datetime, path: Path) -> tuple[list[int], Path]:
    """Write every prunable row to ``path``; returns the ids written.

    Written as ``<path>.partial``, flushed to disk and renamed: a file at
    ``path`` is always a complete archive.
    """
    partial = path.with_name(path.name + ".partial")
    ids: list[int] = []
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as out:
            _line(
                out,
                {
                    "format": ARCHIVE_FORMAT,
                    "version": ARCHIVE_VERSION,
                    "created_at": datetime.now(UTC).isoformat(),
                    "older_than": before.astimezone(UTC).isoformat(),
                    "database": db.url,
                },
            )
            last = 0
            while True:
                rows = db.journal_prunable(before, after_id=last)
                if not rows:
                    break
                for entry in rows:
                    _line(out, _row(entry))
                    ids.append(entry.id)
                last = rows[-1].id
            out.close()
            raw.flush()
            os.fsync(raw.fileno())
        partial.rename(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return ids, path


def read_archive(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The header and rows of an archive (for tests and tools)."""
    with gzip.open(path, "rb") as handle:
        lines = [json.loads(line) for line in handle]
    if not lines or lines[0].get("format") != ARCHIVE_FORMAT:
        raise ValueError(f"{path} is not a {ARCHIVE_FORMAT} file")
    return lines[0], lines[1:]


def run_prune(args: argparse.Namespace) -> int:
    """Archive, then delete, the journal rows older than the cut-off that nothing points at."""
    settings = settings_from(args)
    before: datetime = args.older_than
    path: Path = args.archive or (
        Path(settings.server.data_dir)
        / "archive"
        / f"journal-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.jsonl.gz"
    )
    try:
        db = open_database(database_url(settings))
        try:
            db.check_schema_current()
            older, free = db.journal_prune_counts(before)
            kept = older - free
            if args.dry_run:
                print(
                    f"cairn: {older} journal row(s) received before {before:%Y-%m-%d %H:%M:%S} UTC: "
                    f"{free} would be archived and deleted, {kept} kept (registry data or "
                    "an audit row points at them)"
                )
                return 0
            if path.exists():
                print(
                    f"cairn: {path} exists; choose a new archive path", file=sys.stderr
                )
                return 1
            path.parent.mkdir(parents=True, exist_ok=True)
            ids, path = write_archive(db, before, path)
            deleted = db.journal_delete(ids, before)
        finally:
            db.close()
    except (StorageError, OSError) as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    print(
        f"cairn: archived {len(ids)} journal row(s) to {path}; deleted {deleted}; "
        f"kept {older - deleted} that registry data or an audit row points at"
    )
    return 0
