"""Code tables: CVX, MVX, HL7 and CDC value sets, loaded from CSV data files.

The tables live in ``handlers/tables/<NAME>.csv``, one per table, written by
the project from public code lists. Each file starts with ``#`` comment lines
naming its source, then a header row ``code,text`` plus optional columns:
``status`` (``active`` when absent) and any others, which land in
:attr:`CodeEntry.extra`. CVX and MVX change several times a year: replacing
their files adds codes without a software release (REFERENCE §10, NIST marks
them "dynamic").

Code comparison, per table:

* every code is stripped of surrounding blanks before lookup;
* ``CVX``: a numeric code loses its leading zeros and is padded back to two
  digits, so ``"3"``, ``"03"`` and ``"003"`` all find ``03``;
* tables in :data:`CASE_INSENSITIVE` (MVX and the HL7 tables whose codes are
  letters, such as 0001 sex or 0322 completion status) compare upper-cased:
  senders write ``msd`` or ``cp`` and mean the same thing;
* all other tables (CDCREC race and ethnicity, LOINC, SNOMED, VXC, NCIT,
  numeric HL7 tables) compare exactly.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType

__all__ = ["CASE_INSENSITIVE", "CodeEntry", "CodeTables"]

#: Tables whose codes are compared without regard to case.
CASE_INSENSITIVE = frozenset(
    {
        "MVX",
        "HL70001",
        "HL70008",
        "HL70063",
        "HL70103",
        "HL70136",
        "HL70155",
        "HL70162",
        "HL70163",
        "HL70190",
        "HL70200",
        "HL70201",
        "HL70202",
        "HL70203",
        "HL70208",
        "HL70322",
        "HL70323",
        "HL70441",
        "HL70516",
    }
)

#: Status given to rows of a table without a ``status`` column.
DEFAULT_STATUS = "active"


@dataclass(frozen=True, slots=True)
class CodeEntry:
    """One code of a table.

    Attributes:
        code: the code as written in the table (CVX two digits at least).
        text: its description.
        status: ``active``, ``inactive``, ``non-US``, ``never active`` or
            ``pending`` (CVX, MVX); ``active`` or ``deprecated`` elsewhere.
        extra: the row's other columns (for CVX: ``kind``, ``group``).
    """

    code: str
    text: str
    status: str = DEFAULT_STATUS
    extra: Mapping[str, str] = field(default_factory=dict)


def _normalize(table: str, code: str) -> str:
    code = code.strip()
    if table == "CVX" and code.isdigit():
        return code.lstrip("0").rjust(2, "0") if code.strip("0") else code
    if table in CASE_INSENSITIVE:
        return code.upper()
    return code


def _read_table(name: str, text: str) -> dict[str, CodeEntry]:
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    entries: dict[str, CodeEntry] = {}
    for row in csv.DictReader(io.StringIO("\n".join(lines))):
        raw = row.pop("code", None)
        if raw is None or not raw.strip():
            continue
        code = _normalize(name, raw)
        label = (row.pop("text", "") or "").strip()
        status = (row.pop("status", "") or "").strip() or DEFAULT_STATUS
        extra = {key: (value or "").strip() for key, value in row.items() if key}
        entries[code] = CodeEntry(code, label, status, MappingProxyType(extra))
    return entries


class CodeTables:
    """All code tables, read once.

    Args:
        tables: entries by table name, then by normalized code.
    """

    def __init__(self, tables: Mapping[str, Mapping[str, CodeEntry]]) -> None:
        self._tables = tables

    @classmethod
    @functools.cache
    def load(cls) -> CodeTables:
        """Read every packaged table (cached for the life of the process).

        Returns:
            The tables found in ``handlers/tables/*.csv``.
        """
        tables: dict[str, Mapping[str, CodeEntry]] = {}
        folder = resources.files("handlers") / "tables"
        for item in folder.iterdir():
            if not item.name.endswith(".csv"):
                continue
            name = item.name[: -len(".csv")]
            tables[name] = MappingProxyType(
                _read_table(name, item.read_text(encoding="utf-8"))
            )
        return cls(MappingProxyType(tables))

    def names(self) -> frozenset[str]:
        """The names of the loaded tables."""
        return frozenset(self._tables)

    def codes(self, table: str) -> frozenset[str]:
        """Every (normalized) code of ``table``; empty for an unknown table."""
        return frozenset(self._tables.get(table, {}))

    def has(self, table: str, code: str) -> bool:
        """Whether ``code`` is in ``table`` (False for an unknown table)."""
        entries = self._tables.get(table)
        return entries is not None and _normalize(table, code) in entries

    def entry(self, table: str, code: str) -> CodeEntry | None:
        """The entry for a code, or None."""
        entries = self._tables.get(table)
        return None if entries is None else entries.get(_normalize(table, code))

    def text(self, table: str, code: str) -> str:
        """The text of a code, or ``""`` when the table or code is unknown."""
        found = self.entry(table, code)
        return found.text if found else ""
