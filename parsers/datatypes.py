"""HL7 v2 primitive data types the registry reads: DT, TS (DTM) and NM."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

_TS = re.compile(
    r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d{1,4})?([+-]\d{4})?\Z"
)
_NM = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)\Z")


@dataclass(frozen=True, slots=True)
class ParsedDate:
    """The outcome of reading a DT/TS value.

    Exactly one of ``value`` and ``problem`` is set for a non-empty input; both
    are empty for an empty input.
    """

    value: date | None
    problem: str = ""
    precision: int = 0


def parse_date(raw: str, *, require_day: bool = True) -> ParsedDate:
    """Read the date part of an HL7 DT or TS value.

    Args:
        raw: e.g. ``20120814``, ``201207010822+0700``.
        require_day: whether year and month alone are a problem (TS_NZ and
            DT_D in the guide require a full date).

    Returns:
        The date, or a readable problem (no patient data in it: only the
        shape is described).
    """
    text = raw.strip()
    if not text:
        return ParsedDate(None)
    match = _TS.match(text)
    if match is None:
        return ParsedDate(None, "is not an HL7 date (expected YYYYMMDD)")
    year, month, day = match.group(1), match.group(2), match.group(3)
    precision = 1 + (month is not None) + (day is not None)
    if require_day and day is None:
        return ParsedDate(None, "is not a full date (expected YYYYMMDD)", precision)
    try:
        value = date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        return ParsedDate(None, "is not a valid calendar date", precision)
    if value.year < 1850:
        return ParsedDate(None, "is before 1850", precision)
    return ParsedDate(value, "", precision)


def is_number(raw: str) -> bool:
    """Whether a value is an HL7 NM (optionally signed decimal)."""
    return bool(_NM.match(raw.strip()))
