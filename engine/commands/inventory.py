"""``cairn inventory receive|adjust|transfer|list|report``: a facility's vaccine stock.

Each action works on one facility's inventory (``--facility``; its region
comes from the configuration's ``[[facilities]]``, or ``--region`` for a
facility not configured). Organizations and their roles arrive with issue
17; until then the facility is a parameter, and the command acts for it.
The rules are :class:`handlers.inventory.InventoryService`'s; the report's
layout is :mod:`handlers.inventory_report`'s, rendered by
:mod:`handlers.reporting`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from config import Settings
from engine.app import database_url
from engine.commands._common import add_database_options, settings_from
from handlers.codes import CodeTables
from handlers.inventory import (
    ADJUSTMENTS,
    FUNDING_SOURCES,
    Facility,
    InventoryError,
    InventoryService,
)
from handlers.inventory_report import lot_table, report_html, report_tables, usage_chart
from handlers.reporting import text_table, write_csv
from storage import StorageError, UnitOfWork, open_database


class _CommandError(Exception):
    """A bad argument: the message is printed on one line."""


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (YYYY-MM-DD)"
        ) from None


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--facility",
        required=True,
        help="the facility whose inventory this is (its MSH-4 / RXA-11 id)",
    )
    parser.add_argument(
        "--region",
        help="the facility's region (default: from the configuration's [[facilities]])",
    )
    add_database_options(parser)


def register(subparsers: Any) -> None:
    """Add the ``inventory`` sub-command."""
    parser = subparsers.add_parser(
        "inventory", help="a facility's vaccine lots: receipts, adjustments, report"
    )
    sub = parser.add_subparsers(dest="inventory_command", metavar="ACTION")
    sub.required = True

    receive = sub.add_parser("receive", help="record doses received (creates the lot)")
    _common(receive)
    receive.add_argument("--cvx", required=True, help="the vaccine's CVX code, e.g. 03")
    receive.add_argument(
        "--mvx", default="", help="the manufacturer's MVX code, e.g. MSD"
    )
    receive.add_argument("--lot", required=True, help="the lot number as printed")
    receive.add_argument(
        "--expires",
        required=True,
        type=_day,
        help="the lot's expiration date (YYYY-MM-DD)",
    )
    receive.add_argument(
        "--funding",
        required=True,
        choices=FUNDING_SOURCES,
        help="whose stock: VFC, state or private (kept apart even under one lot number)",
    )
    receive.add_argument(
        "--quantity", required=True, type=int, help="doses received (a positive number)"
    )
    receive.add_argument(
        "--unit", default="doses", help="the unit counted (default doses)"
    )
    receive.add_argument(
        "--on", type=_day, help="the day received (default today, UTC)"
    )
    receive.set_defaults(func=run_receive)

    adjust = sub.add_parser(
        "adjust", help="record doses wasted, expired, returned, or an adjustment"
    )
    _common(adjust)
    adjust.add_argument(
        "--lot-id",
        required=True,
        type=int,
        help="the lot (first column of inventory list)",
    )
    adjust.add_argument(
        "--kind",
        required=True,
        choices=[str(k) for k in ADJUSTMENTS],
        help="wasted, expired, returned (doses taken out) or adjusted (signed, with --reason)",
    )
    adjust.add_argument(
        "--quantity",
        required=True,
        type=int,
        help="doses taken out; for 'adjusted', the signed change (e.g. -2 or 3)",
    )
    adjust.add_argument("--reason", default="", help="why (required for 'adjusted')")
    adjust.add_argument(
        "--on", type=_day, help="the day it happened (default today, UTC)"
    )
    adjust.set_defaults(func=run_adjust)

    transfer = sub.add_parser(
        "transfer", help="move doses of a lot to another facility"
    )
    _common(transfer)
    transfer.add_argument(
        "--lot-id",
        required=True,
        type=int,
        help="the lot (first column of inventory list)",
    )
    transfer.add_argument(
        "--to", required=True, help="the receiving facility (same region)"
    )
    transfer.add_argument(
        "--quantity",
        required=True,
        type=int,
        help="doses transferred (a positive number)",
    )
    transfer.add_argument(
        "--on", type=_day, help="the day transferred (default today, UTC)"
    )
    transfer.set_defaults(func=run_transfer)

    listing = sub.add_parser("list", help="every lot with its quantity on hand")
    _common(listing)
    listing.add_argument(
        "--csv", type=Path, metavar="DIR", help="also write on-hand.csv here"
    )
    listing.set_defaults(func=run_list)

    report = sub.add_parser(
        "report",
        help="on hand, expiring lots, usage by month, VFC versus private, exceptions",
    )
    _common(report)
    report.add_argument(
        "--as-of", type=_day, help="the report date (default today, UTC)"
    )
    report.add_argument(
        "--from",
        dest="start",
        type=_day,
        help="first day of the usage period (default: twelve months to --as-of)",
    )
    report.add_argument(
        "--expiring-days",
        type=int,
        default=30,
        help="lots expiring within this many days of --as-of (default 30)",
    )
    report.add_argument(
        "--csv", type=Path, metavar="DIR", help="write one CSV file per table here"
    )
    report.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="write the report as HTML (with the usage chart, also saved beside it as SVG)",
    )
    report.set_defaults(func=run_report)


def _facility(
    settings: Settings, uow: UnitOfWork, facility: str, region: str | None
) -> Facility:
    """A facility id and its region: its organization's (cairn org), else the configuration's."""
    owner = uow.identity.find_facility_owner(facility)
    org = uow.identity.get_organization_by_id(owner) if owner is not None else None
    configured = {f.id: f.region for f in settings.facilities}
    known = org.region if org is not None else configured.get(facility)
    if known is None and not region:
        raise _CommandError(
            f"--facility: {facility} is neither an organization's facility id "
            "(cairn org) nor a configured facility; give --region"
        )
    if known is not None and region and region != known:
        raise _CommandError(
            f"--region: facility {facility} belongs to region {known}, not {region}"
        )
    return Facility(known or region or "", facility)


def _run(
    args: argparse.Namespace,
    body: Callable[[InventoryService, Facility, Settings, UnitOfWork], int],
    *,
    write: bool,
) -> int:
    """Open the database, run ``body`` in one transaction, print errors as one line."""
    try:
        settings = settings_from(args)
        db = open_database(database_url(settings))
        try:
            with _unit(db, write) as uow:
                facility = _facility(settings, uow, args.facility, args.region)
                service = InventoryService(
                    uow.inventory, uow, lambda: datetime.now(UTC)
                )
                return body(service, facility, settings, uow)
        finally:
            db.close()
    except (InventoryError, _CommandError, StorageError) as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"cairn: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1


@contextmanager
def _unit(db: Any, write: bool) -> Iterator[UnitOfWork]:
    with db.transaction() if write else db.reading() as uow:
        yield uow


def _today(given: date | None) -> date:
    return given or datetime.now(UTC).date()


def _vaccine_names() -> Callable[[str], str]:
    tables = CodeTables.load()
    return lambda cvx: tables.text("CVX", cvx)


def run_receive(args: argparse.Namespace) -> int:
    """Record a receipt."""

    def body(
        service: InventoryService, facility: Facility, _s: Settings, _u: UnitOfWork
    ) -> int:
        lot = service.receive(
            facility,
            cvx=args.cvx,
            mvx=args.mvx,
            lot_number=args.lot,
            expires_on=args.expires,
            funding=args.funding,
            quantity=args.quantity,
            on=_today(args.on),
            by="cli",
            unit=args.unit,
        )
        print(
            f"received {args.quantity} {lot.unit} of lot {lot.lot_number} "
            f"(lot id {lot.id}, {lot.funding}); on hand {lot.on_hand}"
        )
        return 0

    return _run(args, body, write=True)


def run_adjust(args: argparse.Namespace) -> int:
    """Record wastage, expiry, a return or an adjustment."""

    def body(
        service: InventoryService, facility: Facility, _s: Settings, _u: UnitOfWork
    ) -> int:
        lot = service.adjust(
            facility,
            args.lot_id,
            args.kind,
            args.quantity,
            on=_today(args.on),
            by="cli",
            reason=args.reason,
        )
        print(
            f"{args.kind}: lot {lot.lot_number} (lot id {lot.id}); on hand {lot.on_hand}"
        )
        return 0

    return _run(args, body, write=True)


def run_transfer(args: argparse.Namespace) -> int:
    """Move doses to another facility."""

    def body(
        service: InventoryService,
        facility: Facility,
        settings: Settings,
        uow: UnitOfWork,
    ) -> int:
        to = _facility(settings, uow, args.to, facility.region)
        sent, received = service.transfer(
            facility, args.lot_id, to, args.quantity, on=_today(args.on), by="cli"
        )
        print(
            f"transferred {args.quantity} of lot {sent.lot_number} to {to.id}: "
            f"on hand {sent.on_hand} at {facility.id}, {received.on_hand} at {to.id} "
            f"(lot id {received.id})"
        )
        return 0

    return _run(args, body, write=True)


def run_list(args: argparse.Namespace) -> int:
    """Print every lot with its quantity on hand."""

    def body(
        service: InventoryService, facility: Facility, _s: Settings, _u: UnitOfWork
    ) -> int:
        table = lot_table(
            service.lots(facility),
            title=f"Lots of {facility.id} ({facility.region})",
            vaccine=_vaccine_names(),
        )
        print(text_table(table))
        if args.csv:
            for path in write_csv([table], args.csv):
                print(f"wrote {path}")
        return 0

    return _run(args, body, write=False)


def run_report(args: argparse.Namespace) -> int:
    """Print the inventory report; write its CSV files and HTML page on request."""

    def body(
        service: InventoryService, facility: Facility, _s: Settings, _u: UnitOfWork
    ) -> int:
        report = service.report(
            facility,
            _today(args.as_of),
            expiring_days=args.expiring_days,
            start=args.start,
        )
        tables = report_tables(report, _vaccine_names())
        print(
            f"Vaccine inventory of {facility.id} ({facility.region}) as of {report.as_of}"
        )
        for table in tables:
            print()
            print(text_table(table))
        if args.csv:
            for path in write_csv(tables, args.csv):
                print(f"wrote {path}")
        if args.html:
            chart = usage_chart(report)
            args.html.parent.mkdir(parents=True, exist_ok=True)
            svg = args.html.with_name(f"{args.html.stem}-{chart.name}.svg")
            svg.write_text(chart.svg, encoding="utf-8")
            generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
            args.html.write_text(
                report_html(report, tables, [chart], generated), encoding="utf-8"
            )
            print(f"wrote {args.html} and {svg}")
        return 0

    return _run(args, body, write=False)
