"""``cairn coverage``: % up to date per vaccine group for an age cohort, and % meeting a set.

``cairn coverage --facility F | --region R --as-of DATE --age 4..6
[--requirements ca-k12-admission] [--csv DIR] [--html FILE]`` prints the
table, writes it as CSV, and writes an HTML report with the chart embedded
(the chart's SVG is written beside it). The rules are in handlers/coverage.py.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.commands._population import (
    add_scope_options,
    population_run,
    progress_bar,
    run_command,
)
from handlers.coverage import CoverageService
from handlers.coverage_report import coverage_chart, coverage_html, coverage_tables
from handlers.reporting import text_table, write_csv
from handlers.requirements import load_requirement_set


def register(subparsers: Any) -> None:
    """Add the ``coverage`` sub-command."""
    parser = subparsers.add_parser(
        "coverage",
        help="% up to date per vaccine group for an age cohort, and % meeting a requirement set",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_scope_options(parser, required=True)
    parser.add_argument(
        "--requirements",
        metavar="SET",
        help="also the % meeting this requirement set (e.g. ca-k12-admission)",
    )
    parser.add_argument(
        "--csv", type=Path, metavar="DIR", help="write each table as DIR/<table>.csv"
    )
    parser.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="write the HTML report (chart embedded; the SVG beside it)",
    )
    parser.set_defaults(func=run_coverage)


def run_coverage(args: argparse.Namespace) -> int:
    """Compute and print (and export) the coverage report."""

    def body() -> int:
        requirement = (
            load_requirement_set(args.requirements) if args.requirements else None
        )
        with population_run(args) as run:
            update, close = progress_bar("forecasting")
            try:
                report = CoverageService(run.assessor).report(
                    run.scope,
                    run.requester,
                    run.as_of,
                    requirement=requirement,
                    progress=update,
                )
            finally:
                close()
        tables = coverage_tables(report)
        for table in tables:
            print(text_table(table))
            print()
        if args.csv:
            for path in write_csv(tables, args.csv):
                print(f"wrote {path}", file=sys.stderr)
        if args.html:
            chart = coverage_chart(report)
            generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
            args.html.parent.mkdir(parents=True, exist_ok=True)
            args.html.write_text(
                coverage_html(report, tables, [chart], generated), encoding="utf-8"
            )
            svg = args.html.with_name(f"{chart.name}.svg")
            svg.write_text(chart.svg, encoding="utf-8")
            print(f"wrote {args.html} and {svg}", file=sys.stderr)
        return 0

    return run_command(body)
