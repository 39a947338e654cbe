"""The coverage report's layout: its tables, its chart and its HTML page.

What the figures mean is decided in ``handlers/coverage.py``; how any report
is printed, exported and drawn in ``handlers/reporting.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

from handlers.coverage import CoverageReport
from handlers.reporting import Chart, Table, bar_chart, render_html

__all__ = ["coverage_chart", "coverage_html", "coverage_tables"]


def _scope(report: CoverageReport) -> str:
    return report.facility or f"region {report.region}"


def coverage_tables(report: CoverageReport) -> list[Table]:
    """Up to date per vaccine group, and the requirement set's figure if asked."""
    tables = [
        Table(
            "coverage",
            f"Up to date per vaccine group, {_scope(report)}, ages {report.ages}, as of {report.as_of.isoformat()}",
            ("vaccine group", "patients", "up to date", "%"),
            tuple(
                (
                    row.vaccine_group,
                    row.applicable,
                    row.up_to_date,
                    "" if row.percent is None else row.percent,
                )
                for row in report.rows
            ),
            note=(
                f"{report.cohort} patient(s) in the cohort. Up to date: complete, "
                "immune, or no dose past due on the date (CDSi forecast); "
                "'patients' counts those the group applies to (not aged out, "
                "not recommended, not contraindicated)."
            ),
        )
    ]
    req = report.requirement
    if req is not None:
        tables.append(
            Table(
                "requirement",
                f"Meeting {req.title}",
                ("requirement set", "patients", "met", "%"),
                (
                    (
                        req.set_id,
                        req.checked,
                        req.met,
                        "" if req.percent is None else req.percent,
                    ),
                ),
            )
        )
    left = {k: v for k, v in report.left_out.items() if v}
    if left:
        tables.append(
            Table(
                "left-out",
                "Not counted",
                ("reason", "patients"),
                tuple(sorted(left.items())),
            )
        )
    return tables


def coverage_chart(report: CoverageReport) -> Chart:
    """A bar per vaccine group (and the requirement set): % up to date."""
    rows = [r for r in report.rows if r.percent is not None]
    labels = [r.vaccine_group for r in rows]
    values = [r.percent or 0.0 for r in rows]
    req = report.requirement
    if req is not None and req.percent is not None:
        # One series: a legend would sit on the 100 % bars; the label says it.
        labels.append(f"meets {req.set_id}")
        values.append(req.percent)
    return bar_chart(
        "coverage",
        f"% up to date, {_scope(report)}, ages {report.ages}, {report.as_of.isoformat()}",
        labels,
        {"%": values},
        ylabel="%",
    )


def coverage_html(
    report: CoverageReport,
    tables: Sequence[Table],
    charts: Sequence[Chart],
    generated: str,
) -> str:
    """The report as one self-contained HTML page (the chart embedded)."""
    meta = [
        ("Scope", _scope(report)),
        ("Region", report.region),
        ("Ages", report.ages),
        ("As of", report.as_of),
        ("Patients", report.cohort),
        ("Run by", report.organization),
    ]
    return render_html(
        "report.html",
        title="Immunization coverage",
        meta=meta,
        tables=tables,
        charts=charts,
        footer=f"Cairn immunization information system. Generated {generated}.",
    )
