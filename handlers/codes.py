"""Code tables: CVX, MVX, HL7 and CDC value sets, loaded from CSV data files.

The tables live in ``handlers/tables/*.csv`` (one per table, ``code,text``
plus optional columns), written by the project from public code lists. CVX
and MVX change several times a year: replacing the file adds codes without a
software release.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources

#: Tables whose codes are compared without regard to case.
_CASE_INSENSITIVE = frozenset(
    {
        "MVX",
        "HL70001",
        "HL70136",
        "HL70322",
        "HL70323",
        "HL70441",
        "HL70155",
        "HL70103",
        "HL70163",
        "HL70162",
        "HL70203",
        "HL70063",
        "HL70200",
    }
)


@dataclass(frozen=True, slots=True)
class CodeEntry:
    """One code of a table."""

    code: str
    text: str
    extra: Mapping[str, str] = field(default_factory=dict)


def _normalize(table: str, code: str) -> str:
    code = code.strip()
    if table == "CVX" and code.isdigit():
        return code.lstrip("0").rjust(2, "0") if code.strip("0") else code
    if table in _CASE_INSENSITIVE:
        return code.upper()
    return code


class CodeTables:
    """All code tables, read once."""

    def __init__(self, tables: Mapping[str, Mapping[str, CodeEntry]]) -> None:
        self._tables = tables

    @classmethod
    @functools.cache
    def load(cls) -> CodeTables:
        """Read every packaged table (cached for the life of the process)."""
        tables: dict[str, dict[str, CodeEntry]] = {}
        folder = resources.files("handlers") / "tables"
        for item in folder.iterdir():
            if not item.name.endswith(".csv"):
                continue
            name = item.name[: -len(".csv")]
            text = item.read_text(encoding="utf-8")
            lines = [line for line in text.splitlines() if not line.startswith("#")]
            reader = csv.DictReader(io.StringIO("\n".join(lines)))
            entries: dict[str, CodeEntry] = {}
            for row in reader:
                code = _normalize(name, row.pop("code"))
                label = row.pop("text", "")
                entries[code] = CodeEntry(code, label, dict(row))
            tables[name] = entries
        return cls(tables)

    def names(self) -> frozenset[str]:
        """The names of the loaded tables."""
        return frozenset(self._tables)

    def has(self, table: str, code: str) -> bool:
        """Whether ``code`` is in ``table`` (False for an unknown table)."""
        entries = self._tables.get(table)
        return entries is not None and _normalize(table, code) in entries

    def entry(self, table: str, code: str) -> CodeEntry | None:
        """The entry for a code, or None."""
        entries = self._tables.get(table)
        return None if entries is None else entries.get(_normalize(table, code))

    def text(self, table: str, code: str) -> str:
        """The text of a code, or ``""``."""
        found = self.entry(table, code)
        return found.text if found else ""
