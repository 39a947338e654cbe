"""``cairn messages``: search the message journal and show one message with its response."""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any

from config import Settings
from engine.app import database_url
from engine.commands._common import add_database_options, settings_from
from engine.pipeline import NOT_STORED
from parsers import decode_message
from parsers.acks import read_errors
from parsers.journal_view import mask_message
from parsers.tokenizer import has_control_character
from storage import (
    Database,
    JournalEntry,
    NewAuditEntry,
    StorageError,
    open_database,
)

#: The audit action of a revealed journal row (``cairn audit`` shows it).
REVEAL_ACTION = "journal-reveal"
#: HL7 table 0357 codes are 0 and 100-207; a few digits, nothing else.
_ERROR_CODE = re.compile(r"\d{1,4}\Z")


def when(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO date or date-time, got {text!r}"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def error_code(text: str) -> str:
    """An HL7 error code (ERR-3, table 0357) as given to ``--error``."""
    if not _ERROR_CODE.match(text):
        raise argparse.ArgumentTypeError(
            f"expected an HL7 error code such as 103 (ERR-3, table 0357), got {text!r}"
        )
    return text


def reason(text: str) -> str:
    """The reason for revealing a message: one line, 1 to 300 characters."""
    value = text.strip()
    if not value or len(value) > 300 or has_control_character(value):
        raise argparse.ArgumentTypeError(
            "expected one line of 1 to 300 characters saying why (it is audited)"
        )
    return value


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
    parser.add_argument(
        "--error",
        type=error_code,
        metavar="CODE",
        help="only messages whose answer has an ERR with this HL7 code in ERR-3 "
        "(table 0357), e.g. 103 (table value not found)",
    )
    parser.add_argument(
        "--test",
        action="store_true",
        help="only test-mode messages (MSH-11 T/D, a test sender or the test "
        "listener): validated and answered, not stored",
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
    show.add_argument(
        "--reveal",
        action="store_true",
        help="show names, birth dates, addresses, phones and identifiers "
        "(masked by default); writes an audit row; needs --reason",
    )
    show.add_argument(
        "--reason",
        type=reason,
        help="why the message is revealed (kept in the audit row)",
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


def _search(db: Database, args: argparse.Namespace) -> list[JournalEntry]:
    """The rows the filters select; with ``--error``, read each answer's ERR-3.

    The database keeps the answers as sent (in the sender's delimiters), so
    it narrows the search to answers holding the code's digits, and each
    one is then read with the parsers to keep those with an ERR whose
    ERR-3 is the code. Pages go back through the journal until ``--limit``
    rows are found: the same result on SQLite and PostgreSQL.
    """
    code: str | None = getattr(args, "error", None)
    filters: dict[str, Any] = {
        "sender": args.sender,
        "control_id": args.control_id,
        "message_type": args.message_type,
        "ack_code": args.outcome,
        "since": args.since,
        "until": args.until,
        "outcome_prefix": NOT_STORED if getattr(args, "test", False) else None,
    }
    if code is None:
        return db.journal_search(**filters, limit=args.limit)
    found: list[JournalEntry] = []
    before: int | None = None
    page_size = max(args.limit, 200)
    while len(found) < args.limit:
        page = db.journal_search(
            **filters,
            limit=page_size,
            response_contains=code.encode("ascii"),
            before_id=before,
        )
        for entry in page:
            if any(err.hl7_code == code for err in read_errors(entry.response or b"")):
                found.append(entry)
        if len(page) < page_size:
            break
        before = page[-1].id
    return found[: args.limit]


def run_search(args: argparse.Namespace) -> int:
    """List journal rows matching the filters, newest first."""
    settings = settings_from(args)
    try:
        db = _open(settings)
        rows = _search(db, args)
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


def _operator() -> str:
    """Who is at the keyboard: the OS user, and who ran sudo when someone did."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name (a container's bare uid)
        user = f"uid {os.getuid()}"
    invoker = os.environ.get("SUDO_USER", "")
    return f"{invoker} (as {user})" if invoker and invoker != user else user


def _shown(data: bytes | None, reveal: bool) -> str:
    """A journaled message or answer for the terminal, masked unless revealed."""
    if not data:
        return "(none)"
    text = decode_message(data).text
    if not reveal:
        masked = mask_message(text)
        if masked is None:
            return (
                f"({len(data)} bytes that cannot be read as HL7: hidden, since "
                "nothing in them can be masked by position; --reveal shows them)"
            )
        text = masked
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip()


def _audit_reveal(db: Database, entry: JournalEntry, why: str) -> None:
    """Record who revealed which journal row and why, before anything is shown.

    One row per patient the message is about (what it created, changed or
    disclosed), so that ``cairn audit --patient ID`` accounts for the
    reveal too; one row without a patient when it left nothing behind.
    """
    about: list[tuple[int | None, str | None]] = list(db.journal_patients(entry.id))
    who, now = _operator()[:180], datetime.now(UTC)
    with db.transaction() as uow:
        for patient_id, region in about or [(None, entry.region)]:
            uow.audit.insert(
                NewAuditEntry(
                    at=now,
                    requester=who,
                    requester_region=entry.region or "",
                    patient_id=patient_id,
                    patient_region=region,
                    journal_id=entry.id,
                    query_tag="",
                    action=REVEAL_ACTION,
                    outcome="disclosed",
                    profile="",
                    detail=why[:300],
                )
            )


def run_show(args: argparse.Namespace) -> int:
    """Print one message and its response, segments one per line, PHI masked.

    ``--reveal`` prints them as stored; it needs ``--reason``, and the audit
    row (the OS user, the journal row, the reason) is committed before
    anything is printed: no audit row, no reveal.
    """
    if args.reveal and not args.reason:
        print(
            "cairn: --reveal needs --reason TEXT (why the message is shown "
            "unmasked; it is kept in the audit row)",
            file=sys.stderr,
        )
        return 2
    settings = settings_from(args)
    try:
        db = _open(settings)
        entry = db.journal_get(args.id)
        if entry is not None and args.reveal:
            _audit_reveal(db, entry, args.reason)
        db.close()
    except StorageError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    if entry is None:
        print(f"cairn: no journal row {args.id}", file=sys.stderr)
        return 1
    print(_row(entry))
    if not args.reveal:
        print(
            "(names, birth dates, addresses, phones and identifiers masked as ***; "
            "--reveal --reason TEXT shows them, audited)"
        )
    print("--- message")
    if entry.raw_size is not None:
        print(
            f"(journaled by its head: the first {len(entry.raw):,} of "
            f"{entry.raw_size:,} bytes received, and its digest {entry.content_digest})"
        )
    print(_shown(entry.raw, args.reveal))
    print("--- response")
    print(_shown(entry.response, args.reveal))
    return 0
