"""``cairn messages``: search the message journal and show one message with its response."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from config import Settings
from engine.app import database_url
from engine.commands._common import add_database_options, settings_from
from storage import Database, JournalEntry, StorageError, open_database


def when(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO date or date-time, got {text!r}"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def register(subparsers: Any) -> None:
    """Add the ``messages`` sub-command."""
    parser = subparsers.add_parser("messages", help="search the message journal")
    add_database_options(parser)
    parser.add_argument("--sender", help="sending facility (MSH-4)")
    parser.add_argument("--control-id", help="message control id (MSH-10)")
    parser.add_argument(
        "--type", dest="message_type", help="message type, e.g. VXU or QBP^Q11"
    )
    parser.add_argument(
        "--outcome", choices=["AA", "AE", "AR"], help="acknowledgement code sent"
    )
    parser.add_argument("--since", type=when, help="received at or after (ISO)")
    parser.add_argument("--until", type=when, help="received at or before (ISO)")
    parser.add_argument(
        "--limit", type=int, default=50, help="most rows to list (default 50)"
    )
    parser.set_defaults(func=run_search)
    sub = parser.add_subparsers(dest="messages_command", metavar="ACTION")
    show = sub.add_parser("show", help="print one journaled message and its response")
    show.add_argument(
        "id", type=int, help="journal row id (first column of the listing)"
    )
    add_database_options(show, nested=True)
    show.set_defaults(func=run_show)


def _open(settings: Settings) -> Database:
    """Open the journal's database, or say exactly why it cannot be read.

    The schema check comes first so that the two failures read differently:
    an unreachable server is :class:`storage.DatabaseUnreachable` (fix the
    URL or the server), and only a missing or old schema is
    :class:`storage.SchemaOutOfDate`, which names `cairn db upgrade`.
    """
    db = open_database(database_url(settings))
    try:
        db.check_schema_current()
    except StorageError:
        db.close()
        raise
    return db


def _row(entry: JournalEntry) -> str:
    received = entry.received_at.strftime("%Y-%m-%d %H:%M:%S")
    return f"{entry.id:>8}  {received}  {entry.sender[:20]:<20}  {entry.control_id[:24]:<24}  {entry.message_type:<10}  {entry.ack_code or '--':<3} {entry.outcome[:60]}"


def run_search(args: argparse.Namespace) -> int:
    """List journal rows matching the filters, newest first."""
    settings = settings_from(args)
    try:
        db = _open(settings)
        rows = db.journal_search(
            sender=args.sender,
            control_id=args.control_id,
            message_type=args.message_type,
            ack_code=args.outcome,
            since=args.since,
            until=args.until,
            limit=args.limit,
        )
        db.close()
    except StorageError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    print(
        f"{'id':>8}  {'received (UTC)':<19}  {'sender':<20}  {'control id':<24}  {'type':<10}  ack outcome"
    )
    for entry in rows:
        print(_row(entry))
    print(f"{len(rows)} message(s)")
    return 0


def run_show(args: argparse.Namespace) -> int:
    """Print one message and its response, segments one per line."""
    settings = settings_from(args)
    try:
        db = _open(settings)
        entry = db.journal_get(args.id)
        db.close()
    except StorageError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    if entry is None:
        print(f"cairn: no journal row {args.id}", file=sys.stderr)
        return 1
    print(_row(entry))
    print("--- message")
    print(entry.raw.decode("utf-8", errors="replace").replace("\r", "\n").rstrip())
    print("--- response")
    print(
        (entry.response or b"")
        .decode("utf-8", errors="replace")
        .replace("\r", "\n")
        .rstrip()
        or "(none)"
    )
    return 0
