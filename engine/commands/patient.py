"""``cairn patient history | record``: a patient's demographic versions, and its immunization record.

``record`` writes the printable immunization record ("yellow card") as HTML
or PDF through :class:`handlers.patient_record.PatientRecordService`: the
same disclosure rules and forecast as a Z44, and an audit row.

``history``: every demographic version of a patient, and who sent it.

Each VXU keeps what its sender said about the patient (``submitted``) and,
when the registry's record changed, the record as it then stood
(``stored``): nothing another clinic sent is lost, and a wrong change can be
traced to the message that made it (``cairn messages show JOURNAL``).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from config import Settings
from engine.app import database_url, load_forecaster
from engine.commands._common import add_database_options, settings_from
from handlers.codes import CodeTables
from handlers.patient_record import PatientRecordService, RecordAnswer, Requester
from handlers.reporting import html_to_pdf, text_table, write_csv
from handlers.roles import role_of, view_of
from storage import PatientVersion, StorageError, UnitOfWork, open_database


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
    register_record(sub)


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


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (YYYY-MM-DD)"
        ) from None


def register_record(sub: Any) -> None:
    """Add ``patient record``."""
    record = sub.add_parser(
        "record",
        help="the patient's immunization record (history, validity, forecast) as HTML or PDF",
    )
    record.add_argument("id", type=int, help="the patient's registry id (PID-3 SR)")
    record.add_argument(
        "--region", required=True, help="the region that holds the patient, e.g. BAY"
    )
    record.add_argument(
        "--organization",
        required=True,
        help="who asks, by facility id (MSH-4): an organization's (cairn org) or a "
        "configured [[facilities]] id; a locked record shows only what it "
        "reported, another region's nothing, a school's no contact details",
    )
    record.add_argument(
        "--format",
        choices=["html", "pdf"],
        default="pdf",
        help="html or pdf (default pdf)",
    )
    record.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        metavar="FILE",
        help="the file to write",
    )
    record.add_argument(
        "--csv",
        type=Path,
        metavar="DIR",
        help="also write the history and the forecast as CSV files here",
    )
    record.add_argument(
        "--as-of",
        type=_day,
        help="the date of the evaluation and forecast (default today, UTC)",
    )
    add_database_options(record)
    record.set_defaults(func=run_record)


def _requester(uow: UnitOfWork, settings: Settings, facility: str) -> Requester | str:
    """Who asks: the organization a facility id belongs to, else a configured facility.

    Returns:
        The requester, or why the facility id cannot ask.
    """
    regions = tuple(r.code for r in settings.regions)
    owner = uow.identity.find_facility_owner(facility)
    org = uow.identity.get_organization_by_id(owner) if owner is not None else None
    if org is not None:
        if org.disabled:
            return (
                f"--organization: {facility} belongs to {org.code}, which is disabled"
            )
        scope = view_of(role_of(org.org_type))
        region = org.region
    else:
        configured = {f.id: f.region for f in settings.facilities}
        if facility not in configured:
            return (
                f"--organization: {facility} is neither an organization's facility id "
                "(cairn org) nor a configured facility ([[facilities]])"
            )
        scope, region = "full", configured[facility]
    visible = regions if settings.registry.statewide else (region,)
    return Requester(facility, region, visible or (region,), scope)


def run_record(args: argparse.Namespace) -> int:
    """Write one patient's immunization record, audited, for one organization."""
    settings = settings_from(args)
    forecaster, why = load_forecaster(settings)
    codes = CodeTables.load()
    service = PatientRecordService(forecaster, codes.text, settings.registry.name, why)
    now = datetime.now(UTC)
    try:
        db = open_database(database_url(settings))
        try:
            with db.transaction() as uow:
                requester = _requester(uow, settings, args.organization)
                answer = (
                    RecordAnswer(None, requester)
                    if isinstance(requester, str)
                    else service.read(
                        uow,
                        requester,
                        args.region,
                        args.id,
                        args.as_of or now.date(),
                        now,
                    )
                )
        finally:
            db.close()
    except StorageError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    if answer.record is None:
        print(f"cairn: {answer.refusal}", file=sys.stderr)
        return 1
    html = answer.record.html(now)
    tables = answer.record.tables()
    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        if args.format == "html":
            args.output.write_text(html, encoding="utf-8")
        else:
            args.output.write_bytes(html_to_pdf(html))
        written = write_csv(tables, args.csv) if args.csv else []
    except OSError as exc:
        print(f"cairn: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    for table in tables:
        print(text_table(table))
        print()
    for path in [args.output, *written]:
        print(f"wrote {path}")
    return 0
