"""The shared report plumbing: terminal tables, CSV, HTML escaping, charts."""

from __future__ import annotations

from datetime import date

import pytest

from handlers.reporting import Table, bar_chart, csv_text, render_html, text_table

TABLE = Table(
    "sample",
    "Sample",
    ("name", "count", "day"),
    (("<script>alert(1)</script>", 3, date(2026, 1, 2)), ('=HYPERLINK("x")', -4, None)),
)


def test_csv_dates_are_iso_and_formulas_are_defused() -> None:
    """A stored value that a spreadsheet would run as a formula is prefixed; numbers stay numbers."""
    assert csv_text(TABLE) == (
        "name,count,day\n"
        "<script>alert(1)</script>,3,2026-01-02\n"
        '"\'=HYPERLINK(""x"")",-4,\n'
    )


def test_text_table_aligns_and_says_when_empty() -> None:
    """Numbers are right-aligned under their heading; an empty table says so."""
    lines = text_table(TABLE).splitlines()
    assert lines[0] == "Sample"
    assert lines[1].split() == ["name", "count", "day"]
    assert lines[3].rstrip().endswith("3  2026-01-02")
    assert text_table(Table("none", "Nothing", ("a",), (), empty="no rows")) == (
        "Nothing\n  (no rows)"
    )


def test_html_escapes_every_value() -> None:
    """A sender's markup is text in the page, never markup."""
    html = render_html(
        "report.html", title="T<b>", meta=[], tables=[TABLE], charts=[], footer=""
    )
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "T&lt;b&gt;" in html


def test_table_rows_must_fit_the_columns() -> None:
    """A row with the wrong number of values is a programming error, caught at once."""
    with pytest.raises(ValueError, match="a row has 1 values for 2 columns"):
        Table("bad", "Bad", ("a", "b"), (("x",),))


def test_bar_chart_is_deterministic_svg() -> None:
    """The same data draws the same SVG (no date, fixed ids), with the categories as text."""
    one = bar_chart(
        "c", "Title", ["2026-01", "2026-02"], {"VFC": [1, 2], "private": [0, 3]}
    )
    two = bar_chart(
        "c", "Title", ["2026-01", "2026-02"], {"VFC": [1, 2], "private": [0, 3]}
    )
    assert one.svg == two.svg
    assert "2026-02" in one.svg and "private" in one.svg
    assert one.data_uri.startswith("data:image/svg+xml;base64,")
