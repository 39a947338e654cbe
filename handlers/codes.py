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

from handlers.ndc import CodeRelease, NdcMatch, NdcStatus

__all__ = ["CASE_INSENSITIVE", "CDC_GROUP_NAMES", "CodeEntry", "CodeTables"]

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

#: CDC's vaccine-group names (``cvx-vaccine-group.csv``) spelled as the
#: ``group`` column of Cairn's CVX table spells them, so that a CVX code that
#: only an imported release knows falls into the same de-duplication groups.
#: Names not listed are the same in both.
CDC_GROUP_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "Chikungunya": "CHIKUNGUNYA",
        "Ebola": "EBOLA",
        "FLU-Avian-H5": "FLU",
        "H1N1 flu": "FLU",
        "H5N1 flu": "FLU",
        "Japanese encephalitis": "JE",
        "MeningB": "MENB",
        "Orthopoxvirus": "ORTHOPOX",
        "PneumoPCV": "PNEUMO",
        "PneumoPPV": "PNEUMO",
        "TDAP": "DTAP",
        "Td": "DTAP",
        "Tick-borne encephalitis": "TBE",
        "YELLOWFEVER": "YF",
        "cholera": "CHOLERA",
    }
)

#: Why an NDC cannot be looked up when no code release is loaded.
NO_NDC_TABLE = "no NDC table is installed (run `cairn codes import PATH`)"


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
    """All code tables, read once, and the NDC crosswalk when a release is loaded.

    Args:
        tables: entries by table name, then by normalized code.
        release: CDC's code release (NDC crosswalk), if one is loaded.
        no_release: why there is none, for the RXA-5 error of an NDC-only dose.
    """

    def __init__(
        self,
        tables: Mapping[str, Mapping[str, CodeEntry]],
        release: CodeRelease | None = None,
        no_release: str = NO_NDC_TABLE,
    ) -> None:
        self._tables = tables
        self._release = release
        self._no_release = no_release

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

    def with_release(
        self, release: CodeRelease | None, *, reason: str = NO_NDC_TABLE
    ) -> CodeTables:
        """These tables with a code release laid over them.

        The release adds its NDC crosswalk. Its CVX and MVX tables *add to*
        the built-in ones rather than replace them: a code only the release
        knows is added (a CVX with its CDC vaccine groups, renamed by
        :data:`CDC_GROUP_NAMES`), so that a new code needs no software
        release; a code both know keeps its built-in entry whole (text,
        status, groups), which de-duplication and the responses rely on.

        Args:
            release: the release, or None for none.
            reason: why there is none (shown in RXA-5 errors).

        Returns:
            New tables; ``self`` is unchanged.
        """
        if release is None:
            return CodeTables(self._tables, None, reason)
        tables = dict(self._tables)
        cvx = dict(tables.get("CVX", {}))
        for code, (text, status) in release.cvx.items():
            if code in cvx:
                continue
            groups = dict.fromkeys(
                CDC_GROUP_NAMES.get(g, g) for g in release.groups.get(code, ())
            )
            extra = MappingProxyType({"group": ";".join(groups)})
            cvx[code] = CodeEntry(code, text, status, extra)
        mvx = dict(tables.get("MVX", {}))
        for code, (text, status) in release.mvx.items():
            mvx.setdefault(code, CodeEntry(code, text, status))
        tables["CVX"] = MappingProxyType(cvx)
        tables["MVX"] = MappingProxyType(mvx)
        return CodeTables(MappingProxyType(tables), release)

    @property
    def release(self) -> CodeRelease | None:
        """The code release laid over the built-in tables, if any."""
        return self._release

    @property
    def no_release_reason(self) -> str:
        """Why no code release is loaded (meaningful when :attr:`release` is None)."""
        return self._no_release

    def ndc(self, code: str) -> NdcMatch:
        """Look up an RXA-5 NDC in the release's crosswalk."""
        if self._release is None:
            return NdcMatch(NdcStatus.NO_TABLE)
        return self._release.lookup(code)

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
