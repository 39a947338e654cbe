"""Report plumbing shared by every report: tables, CSV, HTML, PDF and charts.

One module so that each report (inventory, patient record, coverage,
recall, ...) only decides *what* it shows, as :class:`Table` s and
:class:`Chart` s, and every front gets the same output:

- :func:`text_table`: the terminal table (tabulate);
- :func:`csv_text` and :func:`write_csv`: the CSV export, one file per table;
- :func:`bar_chart`: a chart as SVG (matplotlib, no global pyplot state, so
  it is safe in threads), written beside the HTML and embedded in it;
- :func:`render_html`: a Jinja2 template from ``handlers/templates/`` with
  autoescaping on (every value a sender stored is escaped);
  ``report.html`` renders any list of tables and charts;
- :func:`html_to_pdf`: the same HTML as PDF (WeasyPrint, which needs
  Debian's pango libraries: ``make system-deps``).

Nothing here reads storage or knows what a report means.
"""

from __future__ import annotations

import base64
import csv
import functools
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "Chart",
    "Table",
    "bar_chart",
    "csv_text",
    "html_to_pdf",
    "long_date",
    "render_html",
    "text_table",
    "write_csv",
]


@dataclass(frozen=True, slots=True)
class Table:
    """One table of a report.

    Attributes:
        name: a short slug, the CSV file's name (``on-hand``).
        title: the heading shown above it.
        columns: the column headings.
        rows: the values, one tuple per row (dates, numbers or text).
        note: a line shown under the heading (what the table counts).
        empty: what to show when there are no rows.
    """

    name: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    note: str = ""
    empty: str = "none"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", self.name):
            raise ValueError(f"table name {self.name!r} is not a slug")
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(
                    f"table {self.name}: a row has {len(row)} values for "
                    f"{len(self.columns)} columns"
                )


@dataclass(frozen=True, slots=True)
class Chart:
    """A chart as SVG text, with the file name it is written under."""

    name: str
    title: str
    svg: str = field(repr=False)

    @property
    def data_uri(self) -> str:
        """The SVG as a ``data:`` URI, for an ``<img>`` in a self-contained page."""
        encoded = base64.b64encode(self.svg.encode("utf-8")).decode("ascii")
        return f"data:image/svg+xml;base64,{encoded}"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def long_date(value: date | None) -> str:
    """A date as a person reads it on paper in the US: ``Mar 6, 2023`` (unambiguous)."""
    if value is None:
        return ""
    return f"{value:%b} {value.day}, {value.year}"


def text_table(table: Table) -> str:
    """The table as the terminal shows it: its title, then aligned columns."""
    from tabulate import tabulate

    head = table.title + (f"\n{table.note}" if table.note else "")
    if not table.rows:
        return f"{head}\n  ({table.empty})"
    body = tabulate(
        [[_cell(v) for v in row] for row in table.rows],
        headers=list(table.columns),
        tablefmt="simple",
        disable_numparse=True,
        colalign=tuple(
            "right"
            if all(isinstance(r[i], int | float) for r in table.rows)
            else "left"
            for i in range(len(table.columns))
        ),
    )
    return f"{head}\n{body}"


def csv_text(table: Table) -> str:
    """The table as CSV: a header row, then one row per row (dates as ISO 8601)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow([_csv_safe(_cell(v)) for v in row])
    return out.getvalue()


def _csv_safe(text: str) -> str:
    """A value a spreadsheet will not run as a formula (OWASP CSV injection)."""
    if text and text[0] in "=+-@\t\r" and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def write_csv(tables: Iterable[Table], directory: Path) -> list[Path]:
    """Write each table to ``directory/<name>.csv``; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables:
        path = directory / f"{table.name}.csv"
        path.write_text(csv_text(table), encoding="utf-8")
        written.append(path)
    return written


def bar_chart(
    name: str,
    title: str,
    categories: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    ylabel: str = "",
    stacked: bool = True,
) -> Chart:
    """A bar chart (stacked by default) of one or more series over categories.

    Args:
        name: the chart's file name without extension.
        title: the chart's title.
        categories: the x-axis labels (months, vaccine groups, ...).
        series: label -> one value per category.
        ylabel: the y-axis label.
        stacked: stack the series (else side by side).
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    for label, values in series.items():
        if len(values) != len(categories):
            raise ValueError(f"chart {name}: series {label!r} has the wrong length")
    fig = Figure(figsize=(7.5, 3.2), dpi=100)
    ax = fig.add_subplot()
    positions = list(range(len(categories)))
    width = 0.8 if stacked or not series else 0.8 / len(series)
    bottom = [0.0] * len(categories)
    palette = ("#1f5f8b", "#e0a526", "#6a9f58", "#b5524a", "#7f6aa8", "#5aa1b8")
    for i, (label, values) in enumerate(series.items()):
        if stacked:
            ax.bar(
                positions,
                values,
                width,
                bottom=bottom,
                label=label,
                color=palette[i % 6],
            )
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        else:
            ax.bar(
                [p + i * width - 0.4 + width / 2 for p in positions],
                values,
                width,
                label=label,
                color=palette[i % 6],
            )
    ax.set_title(title, fontsize=11)
    ax.set_xticks(positions, list(categories), rotation=45, ha="right", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.spines[["top", "right"]].set_visible(False)
    if len(series) > 1:
        ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    out = io.StringIO()
    # A fixed hash salt: the same data gives the same file.
    import matplotlib

    with matplotlib.rc_context({"svg.hashsalt": "cairn", "svg.fonttype": "none"}):
        fig.savefig(out, format="svg", metadata={"Date": None})
    return Chart(name, title, out.getvalue())


@functools.cache
def _environment() -> Any:
    """One Jinja2 environment, built on first use (templates are cached in it)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("handlers", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["cell"] = _cell
    env.filters["longdate"] = long_date
    return env


def render_html(template: str, **context: Any) -> str:
    """Render a template of ``handlers/templates`` (autoescaped, strict about names)."""
    return str(_environment().get_template(template).render(**context))


def html_to_pdf(html: str) -> bytes:
    """The HTML as a PDF (WeasyPrint); fonts come from the system (fontconfig)."""
    from weasyprint import HTML

    pdf = HTML(string=html).write_pdf()
    assert isinstance(pdf, bytes)
    return pdf
