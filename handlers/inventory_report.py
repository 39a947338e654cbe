"""The inventory report as tables, a chart and a page (issue 19 items 1 and 4).

:class:`handlers.inventory.InventoryReport` says what the numbers are; this
module lays them out with the shared plumbing of :mod:`handlers.reporting`:
on hand, expiring, usage by month (with its chart), VFC versus private use,
stock written off, and the exceptions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from handlers.inventory import FUNDING_SOURCES, REASON_TEXT, InventoryReport
from handlers.reporting import Chart, Table, bar_chart, render_html

if TYPE_CHECKING:
    from storage import InventoryLot

__all__ = ["lot_table", "report_html", "report_tables", "usage_chart"]

VaccineName = Callable[[str], str]

_LOT_COLUMNS = (
    "lot id",
    "lot",
    "CVX",
    "vaccine",
    "MVX",
    "funding",
    "expires",
    "on hand",
)


def _no_name(_cvx: str) -> str:
    return ""


def lot_table(
    lots: Sequence[InventoryLot],
    name: str = "on-hand",
    title: str = "On hand",
    vaccine: VaccineName = _no_name,
    note: str = "",
) -> Table:
    """Lots with their quantity on hand (also ``cairn inventory list``)."""
    rows = tuple(
        (
            lot.id,
            lot.lot_number,
            lot.cvx,
            vaccine(lot.cvx),
            lot.mvx,
            lot.funding,
            lot.expires_on,
            lot.on_hand,
        )
        for lot in lots
    )
    return Table(name, title, _LOT_COLUMNS, rows, note=note, empty="no lots")


def report_tables(
    report: InventoryReport, vaccine: VaccineName = _no_name
) -> list[Table]:
    """The report's tables, in the order they are shown."""
    period = f"{report.start.isoformat()} to {report.as_of.isoformat()}"
    usage = Table(
        "usage-by-month",
        "Usage by month",
        ("month", *FUNDING_SOURCES, "total"),
        tuple(
            (m.month, *(m.by_funding.get(f, 0) for f in FUNDING_SOURCES), m.total)
            for m in report.usage
        ),
        note="Doses administered from this inventory (VXU draw-down, net of deleted doses).",
    )
    by_funding = report.administered_by_funding()
    total = sum(by_funding.values())
    funding = Table(
        "funding",
        "VFC versus private use",
        ("funding", "doses administered", "share"),
        tuple(
            (f, n, f"{100 * n / total:.1f}%" if total else "-")
            for f, n in by_funding.items()
        ),
        note=f"Period {period}.",
    )
    written_off = Table(
        "written-off",
        "Wasted, expired and returned",
        ("kind", "doses"),
        tuple((str(k), n) for k, n in report.wasted.items()),
        note=f"Period {period}.",
    )
    exceptions = Table(
        "exceptions",
        "Exceptions",
        ("date", "CVX", "vaccine", "lot", "reason", "dose row"),
        tuple(
            (
                e.occurred_on,
                e.cvx,
                vaccine(e.cvx),
                e.lot_number,
                f"{e.reason}: lot {REASON_TEXT.get(e.reason, '')}",
                e.vaccination_id,
            )
            for e in report.exceptions
        ),
        note="Doses stored without drawing down their lot (the ACK warned at RXA-15).",
        empty="no exceptions",
    )
    return [
        lot_table(report.lots, vaccine=vaccine),
        lot_table(
            report.expiring,
            "expiring",
            f"Expiring within {report.expiring_days} days",
            vaccine,
            note=f"Lots with doses on hand that expire by {_horizon(report)} "
            "(expired lots included).",
        ),
        usage,
        funding,
        written_off,
        exceptions,
    ]


def _horizon(report: InventoryReport) -> str:
    return (report.as_of + timedelta(days=report.expiring_days)).isoformat()


def usage_chart(report: InventoryReport) -> Chart:
    """Doses administered per month, stacked by funding source."""
    return bar_chart(
        "usage-by-month",
        f"Doses administered per month, {report.facility.id}",
        [m.month for m in report.usage],
        {f: [m.by_funding.get(f, 0) for m in report.usage] for f in FUNDING_SOURCES},
        ylabel="doses",
    )


def report_html(
    report: InventoryReport,
    tables: Sequence[Table],
    charts: Sequence[Chart],
    generated: str,
) -> str:
    """The report as one self-contained HTML page (the chart embedded)."""
    return render_html(
        "report.html",
        title=f"Vaccine inventory: {report.facility.id}",
        meta=[
            ("Facility", report.facility.id),
            ("Region", report.facility.region),
            ("As of", report.as_of),
            (
                "Usage period",
                f"{report.start.isoformat()} to {report.as_of.isoformat()}",
            ),
        ],
        tables=tables,
        charts=charts,
        footer=f"Cairn immunization information system. Generated {generated}.",
    )
