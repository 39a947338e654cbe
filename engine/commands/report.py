"""``cairn report``: reports over the journal for operators and interface analysts.

``cairn report quality --sender S [--since D] [--until D]`` prints a sender's
data-quality figures (handlers/quality.py says what each one counts) as a
table, or writes them as CSV, JSON or an HTML page with a chart per section.
It reads the journal only: the registry's tables are not touched and no
patient data is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.app import open_registry_database
from engine.commands._common import add_database_options, settings_from
from engine.commands.messages import when
from handlers.quality import (
    build_quality_report,
    quality_html,
    quality_json,
    quality_tables,
)
from handlers.reporting import csv_text, text_table, write_csv
from storage import StorageError


def register(subparsers: Any) -> None:
    """Add the ``report`` sub-command and its reports."""
    parser = subparsers.add_parser("report", help="reports over the message journal")
    sub = parser.add_subparsers(dest="report_command", metavar="REPORT", required=True)
    quality = sub.add_parser(
        "quality",
        help="a sender's outcomes, top errors and warnings, timeliness and completeness",
    )
    add_database_options(quality)
    quality.add_argument(
        "--sender",
        required=True,
        help="sending facility (MSH-4), as the journal lists it",
    )
    quality.add_argument(
        "--since",
        type=when,
        help="messages received at or after (ISO date or date-time)",
    )
    quality.add_argument(
        "--until",
        type=when,
        help="messages received at or before (ISO date or date-time)",
    )
    quality.add_argument(
        "--format",
        choices=["table", "csv", "json", "html"],
        default="table",
        help="table on the terminal (default), CSV, JSON, or an HTML page with charts",
    )
    quality.add_argument(
        "--output",
        type=Path,
        metavar="PATH",
        help="csv: a directory for one file per section; json and html: a file "
        "(html needs it; csv and json print to the terminal without it)",
    )
    quality.add_argument(
        "--top",
        type=int,
        default=10,
        help="how many kinds of error and of warning to list (default 10)",
    )
    quality.set_defaults(func=run_quality)


def run_quality(args: argparse.Namespace) -> int:
    """Build and print (or write) one sender's data-quality report."""
    if args.format == "html" and args.output is None:
        print("cairn: --output: --format html writes a file; name it", file=sys.stderr)
        return 2
    if args.top < 1:
        print("cairn: --top: must be at least 1", file=sys.stderr)
        return 2
    settings = settings_from(args)
    try:
        db = open_registry_database(settings, upgrade=False)
        try:
            report = build_quality_report(
                args.sender,
                db.journal_scan(sender=args.sender, since=args.since, until=args.until),
                since=args.since,
                until=args.until,
                top=args.top,
            )
        finally:
            db.close()
    except StorageError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    if report.messages == 0:
        print(
            f"cairn: no messages from sender {args.sender!r} in the period "
            "(`cairn messages` lists the senders the journal knows)",
            file=sys.stderr,
        )
        return 1
    return _write(report, args)


def _write(report: Any, args: argparse.Namespace) -> int:
    tables = quality_tables(report)
    if args.format == "table":
        print(f"Data quality of sender {report.sender}")
        for table in tables:
            print()
            print(text_table(table))
    elif args.format == "csv":
        if args.output is None:
            for table in tables:
                print(f"# {table.name}")
                print(csv_text(table))
        else:
            for path in write_csv(tables, args.output):
                print(f"wrote {path}")
    elif args.format == "json":
        text = json.dumps(quality_json(report), indent=2)
        if args.output is None:
            print(text)
        else:
            args.output.write_text(text + "\n", encoding="utf-8")
            print(f"wrote {args.output}")
    else:
        generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(quality_html(report, generated), encoding="utf-8")
        print(f"wrote {args.output}")
    return 0
