"""``cairn requirements``: does a child meet a school or child care requirement set?

``cairn requirements check --set ca-k12-admission --region BAY --as-of DATE
(--patient ID ... | --list FILE) --organization ORG --role school`` answers
met or not met for each patient, with what is missing and the earliest date
each missing dose may be given (from the forecast). ``cairn requirements
sets`` lists the shipped sets with their source and date. The rules are in
handlers/requirements.py; this only parses and prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from engine.commands._population import (
    CommandError,
    add_scope_options,
    population_run,
    run_command,
)
from handlers.population import Assessment, Scope
from handlers.reporting import Table, csv_text, text_table
from handlers.requirements import (
    RequirementResult,
    check,
    load_requirement_set,
    requirement_sets,
)


def register(subparsers: Any) -> None:
    """Add the ``requirements`` sub-command."""
    parser = subparsers.add_parser(
        "requirements",
        help="school and child care immunization requirements (check, sets)",
    )
    sub = parser.add_subparsers(dest="requirements_command", metavar="ACTION")
    sub.required = True
    checking = sub.add_parser(
        "check",
        help="met or not met for a patient or a list, with what is missing and when",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    checking.add_argument(
        "--set",
        required=True,
        metavar="SET",
        help="a shipped set id (cairn requirements sets) or a path to a set's .toml file",
    )
    checking.add_argument(
        "--patient",
        type=int,
        action="append",
        metavar="ID",
        help="a patient's registry id (repeatable)",
    )
    checking.add_argument(
        "--list",
        type=Path,
        metavar="FILE",
        help="a file of registry ids, one a line ('#' starts a comment)",
    )
    checking.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="output format (default: a table on the terminal)",
    )
    add_scope_options(checking, required=True)
    checking.set_defaults(func=run_check)
    listing = sub.add_parser("sets", help="the shipped requirement sets")
    listing.set_defaults(func=run_sets)


def read_list(path: Path) -> list[int]:
    """Registry ids from a file, one a line; a bad line is an error naming it."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"--list: cannot read {path}: {exc}") from None
    ids = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if not text.isdigit() or len(text) > 18:
            raise CommandError(
                f"--list: {path.name} line {number}: {text[:40]!r} is not a registry id"
            )
        ids.append(int(text))
    return ids


def _rows(
    results: list[tuple[Assessment, RequirementResult]],
) -> list[dict[str, Any]]:
    rows = []
    for a, r in results:
        base = {
            "patient_id": a.patient_id,
            "family_name": a.family_name,
            "given_name": a.given_name,
            "birth_date": a.birth_date.isoformat() if a.birth_date else "",
            "set": r.set_id,
            "band": r.band,
            "met": "met" if r.met else "NOT MET",
        }
        if not r.rules:
            rows.append(
                {
                    **base,
                    "rule": "",
                    "counted": "",
                    "missing": "",
                    "earliest": "",
                    "note": "no requirement at this age",
                }
            )
        for rule in r.rules:
            rows.append(
                {
                    **base,
                    "rule": rule.name,
                    "counted": rule.counted,
                    "missing": rule.missing,
                    "earliest": rule.earliest.isoformat() if rule.earliest else "",
                    "note": rule.note,
                }
            )
    return rows


def run_check(args: argparse.Namespace) -> int:
    """Check patients against a set."""

    def body() -> int:
        req = load_requirement_set(args.set)
        ids = list(args.patient or []) + (read_list(args.list) if args.list else [])
        if not ids:
            raise CommandError("give --patient ID or --list FILE")
        with population_run(args) as run:
            scope = Scope(run.scope.region, patient_ids=tuple(ids))
            assessed = run.assessor.assess(
                scope,
                run.requester,
                run.as_of,
                antigens=run.assessor.antigens_for(antigens=req.antigens()),
            )
        results = [(a, check(req, a, run.as_of)) for a in assessed]
        found = {a.patient_id for a in assessed}
        # A patient not found, of another region or locked away is the same
        # answer: nothing tells one from another.
        missing = [pid for pid in dict.fromkeys(ids) if pid not in found]
        rows = _rows(results)
        if args.format == "json":
            document = {
                "set": req.id,
                "source": req.source,
                "source_date": req.source_date,
                "as_of": run.as_of.isoformat(),
                "not_found": missing,
                "results": rows,
            }
            sys.stdout.write(json.dumps(document, indent=2) + "\n")
        elif args.format == "csv":
            columns = tuple(rows[0]) if rows else ("patient_id",)
            table = Table(
                "requirements",
                req.title,
                columns,
                tuple(tuple(r[c] for c in columns) for r in rows),
            )
            sys.stdout.write(csv_text(table))
        else:
            sys.stdout.write(
                text_table(_summary(req.title, req.source, results)) + "\n"
            )
        met = sum(1 for _a, r in results if r.met)
        print(
            f"{met} of {len(results)} patient(s) meet {req.id}"
            + (f"; not found: {', '.join(map(str, missing))}" if missing else ""),
            file=sys.stderr,
        )
        return 0

    return run_command(body)


def _summary(
    title: str, source: str, results: list[tuple[Assessment, RequirementResult]]
) -> Table:
    """One line per patient: met, or what is missing and from when."""
    lines = []
    for a, r in results:
        missing = "; ".join(
            f"{rule.name}: {rule.missing} more"
            + (f" from {rule.earliest.isoformat()}" if rule.earliest else "")
            + f" ({rule.note})"
            for rule in r.rules
            if not rule.met
        )
        lines.append(
            (
                a.patient_id,
                f"{a.family_name}, {a.given_name}",
                r.band or "no requirement at this age",
                "met" if r.met else "NOT MET",
                missing,
            )
        )
    return Table(
        "requirements",
        title,
        (
            "patient",
            "name",
            "band",
            "result",
            "missing (earliest date of the next dose)",
        ),
        tuple(lines),
        note=f"Source: {source}",
        empty="no patient found",
    )


def run_sets(args: argparse.Namespace) -> int:
    """List the shipped sets."""
    for req in requirement_sets().values():
        bands = ", ".join(b.label for b in req.bands)
        print(f"{req.id}: {req.title} ({req.source_date}; grace {req.grace_days} days)")
        print(f"    bands: {bands}")
        print(f"    source: {req.source}")
    return 0
