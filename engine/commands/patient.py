"""``cairn patient history``: every demographic version of a patient, and who sent it.

Each VXU keeps what its sender said about the patient (``submitted``) and,
when the registry's record changed, the record as it then stood
(``stored``): nothing another clinic sent is lost, and a wrong change can be
traced to the message that made it (``cairn messages show JOURNAL``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.app import database_url
from engine.commands._common import add_database_options, settings_from
from storage import PatientVersion, StorageError, open_database


def register(subparsers: Any) -> None:
    """Add the ``patient`` sub-command."""
    parser = subparsers.add_parser(
        "patient", help="a patient's demographic history (every version, who sent it)"
    )
    sub = parser.add_subparsers(dest="patient_command", metavar="ACTION")
    sub.required = True
    history = sub.add_parser(
        "history", help="every version of a patient's demographics, oldest first"
    )
    history.add_argument("id", type=int, help="the patient's registry id (PID-3 SR)")
    history.add_argument(
        "--region", required=True, help="the region that holds the patient, e.g. BAY"
    )
    add_database_options(history)
    history.set_defaults(func=run_history)


def _describe(version: PatientVersion, before: dict[str, Any] | None) -> list[str]:
    """The fields of a version: all of the first, then only what changed."""
    lines = []
    for name, value in sorted(version.demographics.items()):
        if value in ("", None):
            continue
        if before is not None and before.get(name) == value:
            continue
        was = before.get(name) if before is not None else None
        change = f" (was {was})" if was not in ("", None) else ""
        lines.append(f"    {name}: {value}{change}")
    return lines


def run_history(args: argparse.Namespace) -> int:
    """Print every demographic version of one patient."""
    settings = settings_from(args)
    try:
        db = open_database(database_url(settings))
        with db.transaction() as uow:
            versions = uow.patients.versions(args.region, args.id)
        db.close()
    except StorageError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    if not versions:
        print(
            f"cairn: no versions of patient {args.id} in region {args.region}",
            file=sys.stderr,
        )
        return 1
    last: dict[str, dict[str, Any]] = {}
    for version in versions:
        key = f"{version.kind}:{version.sender}"
        journal = f" message {version.journal_id}" if version.journal_id else ""
        print(
            f"{version.recorded_at:%Y-%m-%d %H:%M:%S} {version.kind:<9} "
            f"from {version.sender}{journal}"
        )
        lines = _describe(version, last.get(key))
        print("\n".join(lines) if lines else "    (no change)")
        last[key] = dict(version.demographics)
    print(f"{len(versions)} version(s)")
    return 0
