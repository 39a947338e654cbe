"""``cairn recall``: patients due or overdue, for letters, calls or messages.

``cairn recall --facility F | --region R --as-of DATE [--vaccine-group G]
[--age MIN..MAX] [--overdue-only] [--format table|csv|json]`` lists (and
records) a run; ``cairn recall mark RUN --method phone [--patient ID ...]``
records that the patients a run listed were contacted, which the next run
shows. The rules are in handlers/recall.py; this only parses and prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from engine.app import open_registry_database
from engine.commands._common import add_database_options, settings_from
from engine.commands._population import (
    CommandError,
    add_requester_options,
    add_scope_options,
    parse_date,
    population_run,
    progress_bar,
    requester_from,
    run_command,
)
from handlers.recall import (
    CONTACT_METHODS,
    RecallCriteria,
    RecallEntry,
    RecallResult,
    RecallService,
    vaccine_group_named,
)
from handlers.reporting import Table, csv_text, text_table


def register(subparsers: Any) -> None:
    """Add the ``recall`` sub-command."""
    parser = subparsers.add_parser(
        "recall",
        help="patients due or overdue as of a date (reminder/recall), recorded per run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_scope_options(parser, required=False)
    parser.add_argument(
        "--vaccine-group",
        metavar="G",
        help="only this vaccine group (e.g. MMR, DTaP/Tdap/Td); seasonal groups (Influenza, COVID-19) are listed only when named here",
    )
    parser.add_argument(
        "--overdue-only",
        action="store_true",
        help="only doses past their past-due date (recall), not merely due (reminder)",
    )
    parser.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="output format (default: a table on the terminal)",
    )
    parser.add_argument(
        "--output", metavar="FILE", help="write the list to FILE instead of stdout"
    )
    parser.set_defaults(func=run_list)
    sub = parser.add_subparsers(dest="recall_command", metavar="ACTION")
    mark = sub.add_parser(
        "mark", help="record that the patients a run listed were contacted"
    )
    mark.add_argument("run", type=int, help="the run id (printed by each run)")
    mark.add_argument(
        "--method",
        required=True,
        choices=CONTACT_METHODS,
        help="how they were contacted",
    )
    mark.add_argument(
        "--patient",
        type=int,
        action="append",
        metavar="ID",
        help="a patient of the run (repeatable; default: every patient it listed)",
    )
    mark.add_argument("--on", metavar="DATE", help="when (YYYY-MM-DD; default today)")
    mark.add_argument(
        "--facility",
        metavar="F",
        default=argparse.SUPPRESS,
        help="the facility that ran the run (the default organization)",
    )
    add_requester_options(mark)
    add_database_options(mark, nested=True)
    mark.set_defaults(func=run_mark)


_COLUMNS = (
    "patient_id",
    "family_name",
    "given_name",
    "birth_date",
    "status",
    "since",
    "due",
)
_CONTACT_COLUMNS = (
    "guardian",
    "relationship",
    "phone",
    "address",
    "no_calls",
)
_LAST_COLUMNS = ("last_contacted", "last_contact_method")


def _row(entry: RecallEntry, contacts: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "patient_id": entry.patient_id,
        "family_name": entry.family_name,
        "given_name": entry.given_name,
        "birth_date": entry.birth_date.isoformat() if entry.birth_date else "",
        "status": entry.status,
        "since": entry.since.isoformat(),
        "due": entry.due_text(),
    }
    if contacts:
        c = entry.contact
        row.update(
            guardian=c.guardian if c else "",
            relationship=c.relationship if c else "",
            phone=c.phone if c else "",
            address=c.address if c else "",
            no_calls="yes" if entry.no_calls else "",
        )
    last = entry.last_contact
    row["last_contacted"] = last.contacted_on.isoformat() if last else ""
    row["last_contact_method"] = last.method if last else ""
    return row


def render(result: RecallResult, fmt: str, contacts: bool) -> str:
    """The list in the format asked (contact columns only for roles that may see them)."""
    columns = _COLUMNS + (_CONTACT_COLUMNS if contacts else ()) + _LAST_COLUMNS
    rows = [_row(e, contacts) for e in result.entries]
    if fmt == "json":
        return (
            json.dumps(
                {
                    "run": result.run.id,
                    "organization": result.run.organization,
                    "region": result.run.region,
                    "facility": result.run.facility,
                    "as_of": result.run.as_of.isoformat(),
                    "considered": result.run.considered,
                    "listed": result.run.listed,
                    "left_out": result.left_out,
                    "patients": rows,
                },
                indent=2,
            )
            + "\n"
        )
    table = Table(
        "recall",
        f"Recall run {result.run.id}: {result.run.listed} of {result.run.considered} patient(s) due or overdue as of {result.run.as_of.isoformat()}",
        columns,
        tuple(tuple(r[c] for c in columns) for r in rows),
        empty="nobody is due",
    )
    return csv_text(table) if fmt == "csv" else text_table(table) + "\n"


def run_list(args: argparse.Namespace) -> int:
    """List (and record) the patients due or overdue."""

    def body() -> int:
        if args.facility is None and args.region is None:
            raise CommandError("one of --facility or --region is required")
        group = vaccine_group_named(args.vaccine_group) if args.vaccine_group else None
        criteria = RecallCriteria(group, args.overdue_only)
        with population_run(args) as run:
            service = RecallService(run.db, run.assessor, lambda: datetime.now(UTC))
            update, close = progress_bar("forecasting")
            try:
                result = service.run(
                    run.scope, run.requester, run.as_of, criteria, update
                )
            finally:
                close()
        text = render(result, args.format, run.requester.sees_contacts)
        if args.output:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                out.write(text)
        else:
            sys.stdout.write(text)
        left = ", ".join(f"{n} {why}" for why, n in result.left_out.items() if n)
        print(
            f"recall run {result.run.id}: {result.run.listed} listed of "
            f"{result.run.considered} patient(s)"
            + (f"; left out: {left}" if left else ""),
            file=sys.stderr,
        )
        return 0

    return run_command(body)


def run_mark(args: argparse.Namespace) -> int:
    """Record contacts against a run."""

    def body() -> int:
        settings = settings_from(args)
        on = (
            parse_date(args.on, "--on")
            if args.on
            else datetime.now(UTC).astimezone().date()
        )
        db = open_registry_database(settings, upgrade=False)
        try:
            requester = requester_from(
                settings, args, getattr(args, "facility", None), db
            )
            # Marking needs no forecast: no assessor.
            service = RecallService(db, None, lambda: datetime.now(UTC))
            count = service.mark(args.run, requester, args.method, on, args.patient)
        finally:
            db.close()
        print(
            f"recorded {count} contact(s) ({args.method}, {on.isoformat()}) against run {args.run}"
        )
        return 0

    return run_command(body)


__all__ = ["register", "render", "run_list", "run_mark"]
