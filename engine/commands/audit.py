"""``cairn audit``: search the disclosure audit trail."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.app import database_url
from engine.commands._common import add_database_options, settings_from
from engine.commands.messages import when
from storage import StorageError, open_database


def register(subparsers: Any) -> None:
    """Add the ``audit`` sub-command."""
    parser = subparsers.add_parser(
        "audit", help="search the audit trail of disclosures and refused lookups"
    )
    add_database_options(parser)
    parser.add_argument("--requester", help="the organization that asked (MSH-4)")
    parser.add_argument(
        "--patient", type=int, help="the registry's patient id (PID-3 SR)"
    )
    parser.add_argument(
        "--outcome",
        choices=["disclosed", "locked", "not_found", "too_many", "rejected"],
        help="what the lookup gave: disclosed, locked, not_found, too_many or rejected",
    )
    parser.add_argument("--since", type=when, help="at or after (ISO)")
    parser.add_argument("--until", type=when, help="at or before (ISO)")
    parser.add_argument(
        "--limit", type=int, default=100, help="most rows to list (default 100)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """List audit rows, newest first."""
    settings = settings_from(args)
    try:
        db = open_database(database_url(settings))
        rows = db.audit_search(
            requester=args.requester,
            patient_id=args.patient,
            outcome=args.outcome,
            since=args.since,
            until=args.until,
            limit=args.limit,
        )
        db.close()
    except StorageError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    print(
        f"{'id':>8}  {'at (UTC)':<19}  {'requester':<20} {'region':<7} {'patient':>8}  {'outcome':<10} {'profile':<7} message"
    )
    for row in rows:
        patient = str(row.patient_id) if row.patient_id is not None else "-"
        print(
            f"{row.id:>8}  {row.at:%Y-%m-%d %H:%M:%S}  {row.requester[:20]:<20} {row.requester_region:<7} {patient:>8}  {row.outcome:<10} {row.profile:<7} {row.journal_id or '-'}"
        )
    print(f"{len(rows)} audit row(s)")
    return 0
