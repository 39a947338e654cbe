"""CDSi date arithmetic: durations like ``6 months - 4 days`` added to dates.

The logic specification (chapter 4, "Calculate date") adds years and months
by the calendar, then weeks and days; a day that does not exist in the
resulting month (say 31 February) moves to the first day of the next month.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, timedelta

_TERM = re.compile(r"([+-]?)\s*(\d+)\s*(year|month|week|day)s?", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Duration:
    """A parsed CDSi duration: months (years folded in) and days (weeks folded in)."""

    months: int
    days: int
    text: str

    def add_to(self, start: date) -> date:
        """The date this duration after (or before, for negatives) ``start``."""
        return add_duration(start, self.months, self.days)


def add_duration(start: date, months: int, days: int) -> date:
    """Add calendar months, then days, the CDSi way."""
    if months:
        total = start.year * 12 + (start.month - 1) + months
        year, month = divmod(total, 12)
        month += 1
        try:
            moved = date(year, month, start.day)
        except ValueError:
            # CDSi: a day past the month's end rolls to the 1st of the next month.
            year2, month2 = (year + 1, 1) if month == 12 else (year, month + 1)
            moved = date(year2, month2, 1)
    else:
        moved = start
    return moved + timedelta(days=days) if days else moved


@functools.cache
def parse_duration(text: str) -> Duration | None:
    """Parse ``6 weeks - 4 days`` style text; None for empty or ``n/a``."""
    cleaned = (text or "").strip()
    if not cleaned or cleaned.lower() in {"n/a", "na"}:
        return None
    months = days = 0
    found = False
    sign = 1
    for match in _TERM.finditer(cleaned):
        found = True
        if match.group(1) == "-":
            sign = -1
        elif match.group(1) == "+":
            sign = 1
        value = int(match.group(2)) * sign
        unit = match.group(3).lower()
        if unit == "year":
            months += 12 * value
        elif unit == "month":
            months += value
        elif unit == "week":
            days += 7 * value
        else:
            days += value
    if not found:
        raise ValueError(f"not a CDSi duration: {text!r}")
    return Duration(months, days, cleaned)


def parse_cdsi_date(text: str | None) -> date | None:
    """Parse a supporting-data date (``YYYYMMDD``); None when empty."""
    value = (text or "").strip()
    if not value:
        return None
    if len(value) == 8 and value.isdigit():
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    if "/" in value:
        month, day, year = value.split("/")
        return date(int(year), int(month), int(day))
    return date.fromisoformat(value)


@functools.lru_cache(maxsize=65536)
def offset(start: date, text: str | None) -> date | None:
    """``start`` plus a duration text, or None when the text is empty."""
    duration = parse_duration(text or "")
    return duration.add_to(start) if duration else None
