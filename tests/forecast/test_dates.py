"""CDSi date arithmetic."""

from __future__ import annotations

from datetime import date

import pytest

from forecast.dates import add_duration, offset, parse_cdsi_date, parse_duration


def test_dates_add_months_then_days() -> None:
    """'6 months - 4 days' adds six calendar months, then subtracts four days."""
    assert offset(date(2024, 1, 15), "6 months - 4 days") == date(2024, 7, 11)


def test_dates_missing_day_rolls_to_first_of_next_month() -> None:
    """31 January + 1 month is 1 March (CDSi), not 28 February."""
    assert add_duration(date(2023, 1, 31), 1, 0) == date(2023, 3, 1)


def test_dates_weeks_and_years() -> None:
    """Weeks are seven days; years are twelve months."""
    assert offset(date(2020, 2, 29), "1 year") == date(2021, 3, 1)
    assert offset(date(2024, 1, 1), "4 months + 4 weeks") == date(2024, 5, 29)


def test_dates_empty_duration_is_none() -> None:
    """An empty field means no constraint."""
    assert parse_duration("") is None
    assert offset(date(2024, 1, 1), "") is None


def test_dates_rejects_garbage() -> None:
    """A duration without a unit is an error."""
    with pytest.raises(ValueError, match="not a CDSi duration"):
        parse_duration("soon")


def test_dates_supporting_data_formats() -> None:
    """Supporting data writes dates as YYYYMMDD or MM/DD/YYYY."""
    assert parse_cdsi_date("20250827") == date(2025, 8, 27)
    assert parse_cdsi_date("01/01/1957") == date(1957, 1, 1)
    assert parse_cdsi_date("") is None
