"""What the population commands share (recall, requirements, coverage).

The scope and requester flags, the database and forecaster they open, and
the progress bar; the commands only parse, call a service and print.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

from config import Settings
from engine.app import load_forecaster, open_registry_database
from engine.commands._common import add_database_options, settings_from
from engine.logging import configure_logging
from handlers.population import (
    ROLES,
    PopulationAssessor,
    PopulationError,
    Requester,
    Scope,
    parse_age_range,
)
from handlers.roles import Role, role_of
from storage import Database, StorageError


class CommandError(Exception):
    """A command-line problem: printed as one line, exit status 2."""


def parse_date(text: str, field: str) -> date:
    """An ISO date given on the command line."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{field}: {text!r} is not a date (YYYY-MM-DD)") from None


def add_requester_options(parser: argparse.ArgumentParser) -> None:
    """--organization and --role (the role is enforced when identity lands)."""
    parser.add_argument(
        "--organization",
        metavar="ORG",
        help="the organization asking (a facility id); default: the --facility",
    )
    parser.add_argument(
        "--role",
        choices=ROLES,
        default=None,
        help="the role of an organization no 'cairn org' registration claims (a registered one's comes from its type): requirements (a school or child care) gets no contact details; staff may ask about any facility or region (default provider)",
    )


def add_scope_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """--facility F | --region R, --as-of, --age, --workers and the database flags."""
    where = parser.add_mutually_exclusive_group(required=required)
    where.add_argument(
        "--facility", metavar="F", help="the patients this facility submitted data for"
    )
    where.add_argument("--region", metavar="R", help="every patient of this region")
    parser.add_argument(
        "--as-of",
        metavar="DATE",
        help="the date the forecast is made for (YYYY-MM-DD)",
    )
    parser.add_argument(
        "--age",
        metavar="MIN..MAX",
        help="an age cohort in years (4..6) or months (19m..35m), either end optional",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="worker processes for the forecasts (default: the machine's cores; 0: none)",
    )
    add_requester_options(parser)
    add_database_options(parser)


def region_of(settings: Settings, organization: str) -> str:
    """The region an organization's data belongs to, as the pipeline decides it."""
    region = settings.facility_region(organization)
    if region is not None:
        return region
    if settings.registry.unknown_sender == "accept":
        return settings.registry.unknown_sender_region
    raise CommandError(
        f"--organization: {organization!r} is not a configured facility ([[facilities]])"
    )


@dataclass
class PopulationRun:
    """What a population command works with, opened from settings and flags."""

    db: Database
    assessor: PopulationAssessor
    scope: Scope
    requester: Requester
    as_of: date


def requester_from(
    settings: Settings,
    args: argparse.Namespace,
    default: str | None,
    db: Database,
) -> Requester:
    """The requester the flags name, its role and region enforced when registered.

    A facility id that a registered organization sends as (``cairn org add
    --facility``) takes that organization's role and region, and a
    ``--role`` that says otherwise is refused; a disabled organization asks
    nothing. An unregistered facility (an open registry) takes its region
    from ``[[facilities]]`` and its role from ``--role``.
    """
    organization = args.organization or default
    if not organization:
        raise CommandError("--organization is required (the facility id of who asks)")
    stated = Role(args.role) if args.role else None
    with db.reading() as uow:
        owner = uow.identity.find_facility_owner(organization)
        org = uow.identity.get_organization_by_id(owner) if owner is not None else None
    if org is None:
        return Requester(
            organization, region_of(settings, organization), stated or Role.PROVIDER
        )
    if org.disabled:
        raise CommandError(f"--organization: {org.code} is disabled")
    role = role_of(org.org_type)
    if stated is not None and stated != role:
        raise CommandError(
            f"--role: {organization} belongs to {org.code}, a {org.org_type} organization: its role is {role.value}, not {stated.value}"
        )
    return Requester(organization, org.region, role)


@contextmanager
def population_run(args: argparse.Namespace) -> Iterator[PopulationRun]:
    """Open the database and forecaster and build the scope and requester."""
    if not args.as_of:
        raise CommandError("--as-of is required")
    as_of = parse_date(args.as_of, "--as-of")
    settings = settings_from(args)
    # The list goes to stdout: only warnings may join it (on stdout, as
    # every command logs), not the start-up's info lines.
    configure_logging(settings.logging.format, "warning")
    try:
        ages = parse_age_range(args.age, as_of) if args.age else None
    except PopulationError as exc:
        raise CommandError(str(exc)) from None
    forecasts, why = load_forecaster(settings)
    if forecasts is None:
        raise CommandError(f"the forecast is unavailable: {why}")
    db = open_registry_database(settings, upgrade=False)
    try:
        requester = requester_from(settings, args, args.facility, db)
        if args.facility:
            region = (
                requester.region
                if args.facility == requester.organization
                else region_of(settings, args.facility)
            )
        else:
            region = args.region
        scope = Scope(region, args.facility or None, ages)
        yield PopulationRun(
            db,
            PopulationAssessor(db, forecasts, workers=max(0, args.workers)),
            scope,
            requester,
            as_of,
        )
    finally:
        db.close()


def progress_bar(what: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A tqdm bar on stderr (shown on a terminal only); returns (update, close)."""
    from tqdm import tqdm

    bar = tqdm(total=0, unit="patients", desc=what, file=sys.stderr, disable=None)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
            bar.refresh()
        bar.update(done - bar.n)

    return update, bar.close


def run_command(body: Callable[[], int]) -> int:
    """Run a command body; a bad flag, refused scope or storage error is one line."""
    try:
        return body()
    except (CommandError, PopulationError) as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 2
    except StorageError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
