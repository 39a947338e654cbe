"""NDC-coded vaccines: CDC's NDC → CVX crosswalk and the code release it ships in.

A *code release* is a folder laid out like ``shared/codes``: ``ndc-cvx.csv``
(CDC's NDC unit-of-sale and unit-of-use tables joined with the NDC linker),
``cvx.csv``, ``mvx.csv`` and ``cvx-vaccine-group.csv``. CDC's files are never
part of the software: ``cairn codes import PATH`` validates a release with
:func:`load_code_release` and installs it into the data directory.

How an RXA-5 NDC is read (``shared/codes/README.md``, "NDC formats"):

1. with dashes, any labeled shape (4-4-2, 5-3-2, 5-4-1) or the 11-digit 5-4-2
   form: each segment is padded to 5-4-2 and looked up as NDC-11;
2. 11 digits without dashes: looked up as NDC-11;
3. 10 digits without dashes: the shape is unknown, so it is looked up in the
   table's NDC-10 column (dashes removed), never padded by guesswork
   (``5063200101`` is JYNNEOS; padded as 5-4-1 it would be a RabAvert carton);
4. anything else is not an NDC.

Unit-of-sale and unit-of-use NDCs are looked up alike.
"""

from __future__ import annotations

import csv
import enum
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

__all__ = [
    "AMBIGUOUS_NDC_DEFAULTS",
    "RELEASE_FILES",
    "CodeRelease",
    "CodeReleaseError",
    "CodeSource",
    "Finding",
    "NdcMatch",
    "NdcProduct",
    "NdcStatus",
    "VaccineCode",
    "installed_codes",
    "load_code_release",
    "parse_ndc",
    "resolve_vaccine_code",
]

#: The files of a code release, in the order they are checked.
RELEASE_FILES = ("cvx.csv", "mvx.csv", "cvx-vaccine-group.csv", "ndc-cvx.csv")

#: Columns each file must have (others are allowed and ignored).
_REQUIRED_COLUMNS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "cvx.csv": ("cvx", "short_description", "status", "last_updated"),
        "mvx.csv": ("mvx", "manufacturer_name", "status"),
        "cvx-vaccine-group.csv": ("cvx", "vaccine_group"),
        "ndc-cvx.csv": (
            "ndc11",
            "ndc10",
            "cvx",
            "mvx",
            "name",
            "kind",
            "start_date",
            "end_date",
            "last_updated",
        ),
    }
)

#: CDC's CVX and MVX status words, and the lower-case ones Cairn's tables use.
STATUS_WORDS: Mapping[str, str] = MappingProxyType(
    {
        "active": "active",
        "inactive": "inactive",
        "non-us": "non-US",
        "never active": "never active",
        "pending": "pending",
    }
)

#: For an NDC that CDC maps to several CVX codes, the CVX used when the sender
#: sent no CVX. Only the pair CDC actually publishes is listed: the six
#: ENGERIX-B NDCs 58160-0821-xx are CVX 43 (Hep B, adult) and 44 (Hep B,
#: dialysis or immunocompromised, the same product at twice the dose). 43 is
#: the dose on the label; both count toward Hep B, so forecast and
#: de-duplication do not change. Any other set (a future release) is rejected
#: until the sender sends the CVX: the registry does not guess.
AMBIGUOUS_NDC_DEFAULTS: Mapping[frozenset[str], str] = MappingProxyType(
    {frozenset({"43", "44"}): "43"}
)

#: NDC shapes with dashes: (labeler, product, package) lengths.
_DASHED_SHAPES = frozenset({(4, 4, 2), (5, 3, 2), (5, 4, 1), (5, 4, 2)})
_CVX_RE = re.compile(r"\d{1,3}")
_MVX_RE = re.compile(r"[A-Z0-9]{1,4}")
_ISO_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


class CodeReleaseError(ValueError):
    """A code release folder that cannot be used; the message names file, line and column."""


class NdcStatus(enum.Enum):
    """What a lookup found."""

    FOUND = "found"
    UNKNOWN = "unknown"
    """Shaped like an NDC, but not in the table."""
    NOT_NDC = "not an NDC"
    NO_TABLE = "no table"


@dataclass(frozen=True, slots=True)
class NdcProduct:
    """One NDC of the crosswalk (its sale and use rows merged).

    Attributes:
        ndc11: the NDC as 11 digits (5-4-2, no dashes).
        ndc10: the NDC as the labeler wrote it, with dashes.
        cvx: the CVX code(s) CDC maps it to, two digits at least, sorted.
        mvx: the manufacturer code(s) from CDC's NDC linker (may be empty).
        name: the proprietary name.
        kinds: ``sale``, ``use`` or both.
    """

    ndc11: str
    ndc10: str
    cvx: tuple[str, ...]
    mvx: tuple[str, ...]
    name: str
    kinds: frozenset[str]


@dataclass(frozen=True, slots=True)
class NdcMatch:
    """The result of looking up an RXA-5 NDC.

    Attributes:
        status: what was found.
        ndc: the NDC to store: 11 digits when its padding is known, else the
            digits as received; empty when it is not an NDC.
        product: the crosswalk entry when found.
        release: the release date of the table looked in (``""`` without one).
    """

    status: NdcStatus
    ndc: str = ""
    product: NdcProduct | None = None
    release: str = ""


def _cvx_code(code: str) -> str:
    """CVX as Cairn's CVX table keys it: no leading zeros, padded to two digits."""
    return code.lstrip("0").rjust(2, "0")


def parse_ndc(text: str) -> tuple[str, str] | None:
    """Read an NDC as sent in RXA-5.

    Args:
        text: the code component.

    Returns:
        ``("ndc11", digits)`` when the 11-digit form is known, ``("ndc10",
        digits)`` for 10 digits without dashes (shape unknown), or None when
        the text is not an NDC.
    """
    code = text.strip()
    if "-" in code:
        parts = code.split("-")
        shape = tuple(len(p) for p in parts)
        if shape not in _DASHED_SHAPES or not all(p.isascii() for p in parts):
            return None
        if not all(p.isdigit() for p in parts):
            return None
        return "ndc11", parts[0].rjust(5, "0") + parts[1].rjust(4, "0") + parts[
            2
        ].rjust(2, "0")
    if not (code.isascii() and code.isdigit()):
        return None
    if len(code) == 11:
        return "ndc11", code
    if len(code) == 10:
        return "ndc10", code
    return None


@dataclass(frozen=True)
class CodeRelease:
    """A validated code release: the NDC crosswalk and CDC's CVX, MVX and group tables.

    Attributes:
        release: the newest "last updated" date of the NDC and CVX tables.
        products: crosswalk entries by NDC-11.
        ndc10: NDC-11 by the NDC-10 digits (dashes removed); None when two
            packages share the same digits.
        cvx: ``(short description, status)`` by CVX (two digits at least).
        mvx: ``(manufacturer name, status)`` by MVX.
        groups: CDC vaccine groups by CVX.
        source: the folder it was read from.
    """

    release: str
    products: Mapping[str, NdcProduct]
    ndc10: Mapping[str, str | None]
    cvx: Mapping[str, tuple[str, str]]
    mvx: Mapping[str, tuple[str, str]]
    groups: Mapping[str, tuple[str, ...]]
    source: Path

    def lookup(self, text: str) -> NdcMatch:
        """Find the crosswalk entry for an RXA-5 NDC (see the module docstring)."""
        parsed = parse_ndc(text)
        if parsed is None:
            return NdcMatch(NdcStatus.NOT_NDC, release=self.release)
        form, digits = parsed
        ndc11: str | None = digits
        if form == "ndc10":
            ndc11 = self.ndc10.get(digits)
        product = self.products.get(ndc11) if ndc11 else None
        if product is None:
            return NdcMatch(NdcStatus.UNKNOWN, ndc11 or digits, release=self.release)
        return NdcMatch(NdcStatus.FOUND, product.ndc11, product, self.release)


def installed_codes(data_dir: str | Path) -> Path | None:
    """The code release ``cairn codes import`` installed, or None."""
    current = Path(data_dir) / "codes" / "current"
    return current if current.is_dir() else None


# -- reading and checking a release ------------------------------------------


def _rows(folder: Path, name: str) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of one CSV with their line numbers; errors name the file and line."""
    path = folder / name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CodeReleaseError(f"{name}: not found in {folder}") from None
    except OSError as exc:
        raise CodeReleaseError(f"{name}: cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise CodeReleaseError(f"{name}: line {line}: not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if not header:
            raise CodeReleaseError(f"{name}: line 1: empty file, no header row")
        header = [h.strip() for h in header]
        for column in _REQUIRED_COLUMNS[name]:
            if column not in header:
                raise CodeReleaseError(
                    f"{name}: line 1: column {column!r} is missing from the header"
                )
        count = 0
        for fields in reader:
            if not fields:
                continue
            if len(fields) != len(header):
                raise CodeReleaseError(
                    f"{name}: line {reader.line_num}: {len(fields)} fields, the header has {len(header)}"
                )
            count += 1
            yield (
                reader.line_num,
                {k: v.strip() for k, v in zip(header, fields, strict=True)},
            )
        if not count:
            raise CodeReleaseError(f"{name}: no rows after the header")
    except csv.Error as exc:
        raise CodeReleaseError(f"{name}: line {reader.line_num}: {exc}") from None


def _bad(name: str, line: int, column: str, value: str, why: str) -> CodeReleaseError:
    shown = value if len(value) <= 40 else value[:40] + "…"
    return CodeReleaseError(f"{name}: line {line}: column {column}: {shown!r} {why}")


def _status(name: str, line: int, value: str) -> str:
    status = STATUS_WORDS.get(value.lower())
    if status is None:
        raise _bad(name, line, "status", value, "is not a CDC status word")
    return status


def _date(name: str, line: int, column: str, value: str, *, required: bool) -> str:
    if not value and not required:
        return ""
    try:
        if not _ISO_DATE_RE.fullmatch(value):
            raise ValueError
        date.fromisoformat(value)
    except ValueError:
        raise _bad(name, line, column, value, "is not a date YYYY-MM-DD") from None
    return value


def _read_cvx(folder: Path) -> tuple[dict[str, tuple[str, str]], str]:
    name = "cvx.csv"
    table: dict[str, tuple[str, str]] = {}
    newest = ""
    for line, row in _rows(folder, name):
        code = row["cvx"]
        if not _CVX_RE.fullmatch(code):
            raise _bad(name, line, "cvx", code, "is not a CVX code (1-3 digits)")
        key = _cvx_code(code)
        if key in table:
            raise _bad(name, line, "cvx", code, "is listed twice")
        table[key] = (row["short_description"], _status(name, line, row["status"]))
        updated = _date(name, line, "last_updated", row["last_updated"], required=False)
        newest = max(newest, updated)
    return table, newest


def _read_mvx(folder: Path) -> dict[str, tuple[str, str]]:
    name = "mvx.csv"
    table: dict[str, tuple[str, str]] = {}
    for line, row in _rows(folder, name):
        code = row["mvx"].upper()
        if not _MVX_RE.fullmatch(code):
            raise _bad(name, line, "mvx", row["mvx"], "is not an MVX code")
        if code in table:
            raise _bad(name, line, "mvx", code, "is listed twice")
        table[code] = (row["manufacturer_name"], _status(name, line, row["status"]))
    return table


def _read_groups(
    folder: Path, cvx: Mapping[str, tuple[str, str]]
) -> dict[str, tuple[str, ...]]:
    name = "cvx-vaccine-group.csv"
    groups: dict[str, list[str]] = {}
    for line, row in _rows(folder, name):
        code = row["cvx"]
        if not _CVX_RE.fullmatch(code) or _cvx_code(code) not in cvx:
            raise _bad(name, line, "cvx", code, "is not a code of cvx.csv")
        if not row["vaccine_group"]:
            raise _bad(name, line, "vaccine_group", "", "is empty")
        groups.setdefault(_cvx_code(code), []).append(row["vaccine_group"])
    return {code: tuple(names) for code, names in groups.items()}


def _ndc10_digits(name: str, line: int, value: str, ndc11: str) -> str:
    parts = value.split("-")
    parsed = parse_ndc(value)
    if len(parts) != 3 or parsed is None or tuple(map(len, parts)) == (5, 4, 2):
        raise _bad(name, line, "ndc10", value, "is not a 10-digit NDC with dashes")
    if parsed[1] != ndc11:
        raise _bad(name, line, "ndc10", value, f"does not pad to ndc11 {ndc11}")
    return "".join(parts)


def _read_ndc(
    folder: Path, cvx: Mapping[str, tuple[str, str]]
) -> tuple[dict[str, NdcProduct], dict[str, str | None], str]:
    name = "ndc-cvx.csv"
    merged: dict[str, NdcProduct] = {}
    by_ndc10: dict[str, str | None] = {}
    newest = ""
    for line, row in _rows(folder, name):
        ndc11 = row["ndc11"]
        if not (len(ndc11) == 11 and ndc11.isascii() and ndc11.isdigit()):
            raise _bad(name, line, "ndc11", ndc11, "is not 11 digits")
        digits10 = _ndc10_digits(name, line, row["ndc10"], ndc11)
        code = row["cvx"]
        if not _CVX_RE.fullmatch(code):
            raise _bad(name, line, "cvx", code, "is not a CVX code (1-3 digits)")
        if _cvx_code(code) not in cvx:
            raise _bad(name, line, "cvx", code, "is not in cvx.csv")
        mvx = tuple(m.strip().upper() for m in row["mvx"].split(";") if m.strip())
        for m in mvx:
            if not _MVX_RE.fullmatch(m):
                raise _bad(name, line, "mvx", row["mvx"], "is not an MVX code")
        if row["kind"] not in {"sale", "use"}:
            raise _bad(name, line, "kind", row["kind"], "is not sale or use")
        _date(name, line, "start_date", row["start_date"], required=False)
        _date(name, line, "end_date", row["end_date"], required=False)
        newest = max(
            newest,
            _date(name, line, "last_updated", row["last_updated"], required=False),
        )
        before = merged.get(ndc11)
        if before is None:
            merged[ndc11] = NdcProduct(
                ndc11,
                row["ndc10"],
                (_cvx_code(code),),
                mvx,
                row["name"],
                frozenset({row["kind"]}),
            )
        else:
            merged[ndc11] = NdcProduct(
                ndc11,
                before.ndc10,
                tuple(sorted({*before.cvx, _cvx_code(code)}, key=int)),
                tuple(sorted({*before.mvx, *mvx})),
                before.name,
                before.kinds | {row["kind"]},
            )
        seen = by_ndc10.get(digits10, ndc11)
        by_ndc10[digits10] = ndc11 if seen == ndc11 else None
    return merged, by_ndc10, newest


def load_code_release(folder: str | Path) -> CodeRelease:
    """Read and check a code release folder.

    Every row is checked: codes have the right shape, dates are ISO dates,
    every CVX of the crosswalk and of the group table is in ``cvx.csv``, and
    each NDC-10 pads to its NDC-11.

    Args:
        folder: a folder laid out like ``shared/codes``.

    Returns:
        The release.

    Raises:
        CodeReleaseError: naming the file, line and column at fault.
    """
    path = Path(folder)
    if not path.is_dir():
        raise CodeReleaseError(f"{path}: not a folder")
    cvx, cvx_updated = _read_cvx(path)
    mvx = _read_mvx(path)
    groups = _read_groups(path, cvx)
    products, ndc10, ndc_updated = _read_ndc(path, cvx)
    return CodeRelease(
        release=max(cvx_updated, ndc_updated),
        products=MappingProxyType(products),
        ndc10=MappingProxyType(ndc10),
        cvx=MappingProxyType(cvx),
        mvx=MappingProxyType(mvx),
        groups=MappingProxyType(groups),
        source=path,
    )


# -- the RXA-5 decision -------------------------------------------------------


class CodeSource(Protocol):
    """What :func:`resolve_vaccine_code` needs of the code tables."""

    def has(self, table: str, code: str) -> bool:
        """Whether ``code`` is in ``table``."""

    def text(self, table: str, code: str) -> str:
        """The text of a code, or ``""``."""

    def ndc(self, code: str) -> NdcMatch:
        """Look up an NDC in the crosswalk."""

    @property
    def no_release_reason(self) -> str:
        """Why no crosswalk is loaded."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One RXA-5 finding, as the validator reports it.

    Attributes:
        reject: whether the dose is rejected (an error) or kept (a warning).
        hl7_code: ERR-3 (HL7 table 0357).
        app_code: ERR-5 (CDC table 0533).
        text: the reason, naming RXA-5 and the NDC (a product code, not PHI).
    """

    reject: bool
    hl7_code: str
    app_code: str
    text: str


@dataclass(frozen=True, slots=True)
class VaccineCode:
    """RXA-5 after the NDC rules: the codes to store and what to report.

    Attributes:
        cvx: the CVX to store (unchanged when the sender's CVX stands).
        cvx_text: its text.
        ndc: the NDC to store (11 digits when known; ``""`` when none or not an NDC).
        mvx: the manufacturer the NDC names, when it names exactly one.
        findings: warnings and errors at RXA-5.
    """

    cvx: str
    cvx_text: str
    ndc: str
    mvx: str
    findings: tuple[Finding, ...] = ()


def _shown(ndc: str) -> str:
    """An NDC as it may appear in an ERR: printable ASCII, at most 20 characters."""
    clean = "".join(c if c.isascii() and c.isprintable() else "?" for c in ndc.strip())
    return clean if len(clean) <= 20 else clean[:20] + "..."


def resolve_vaccine_code(
    cvx: str, cvx_text: str, ndc: str, codes: CodeSource
) -> VaccineCode:
    """Apply the NDC rules to the CVX and NDC picked out of RXA-5's two triplets.

    The rules (README, "NDC-coded vaccines"):

    * no NDC: nothing changes; the CVX rules apply as before;
    * an NDC alone: its CVX from the crosswalk is stored with it; unknown, not
      an NDC, or no crosswalk installed: the dose is rejected (without a CVX
      it can be neither forecast nor de-duplicated);
    * an NDC CDC maps to several CVX codes, alone: the CVX of
      :data:`AMBIGUOUS_NDC_DEFAULTS` with a warning, or rejected when the set
      has no stated default;
    * a CVX and an NDC that agree: both stored;
    * a CVX and an NDC that disagree: the CVX wins, with a warning;
    * a valid CVX beside an unknown NDC or a code that is not an NDC: a warning;
    * an unknown CVX beside a known NDC: the NDC's CVX is used, with a warning.

    Args:
        cvx: the CVX of RXA-5 (``""`` when none was sent).
        cvx_text: the text sent with it.
        ndc: the NDC of RXA-5 (``""`` when none was sent).
        codes: the code tables and crosswalk.

    Returns:
        The codes to store and the findings to report.
    """
    if not ndc.strip():
        return VaccineCode(cvx, cvx_text, "", "")
    match = codes.ndc(ndc)
    shown = _shown(ndc)
    cvx_ok = bool(cvx) and codes.has("CVX", cvx)
    product = match.product
    mvx = product.mvx[0] if product is not None and len(product.mvx) == 1 else ""
    if match.status is NdcStatus.NO_TABLE:
        stored = parse_ndc(ndc)
        kept = stored[1] if stored is not None else ""
        if cvx:
            return VaccineCode(cvx, cvx_text, kept, "")
        return VaccineCode(
            "",
            "",
            kept,
            "",
            (
                Finding(
                    True,
                    "103",
                    "5",
                    f"RXA-5 (administered code) has only the NDC {shown} and {codes.no_release_reason}; send the CVX as well",
                ),
            ),
        )
    if match.status is NdcStatus.NOT_NDC:
        finding = Finding(
            not cvx,
            "102",
            "4",
            f"RXA-5 (administered code) NDC {shown} is not an NDC (10 or 11 digits, or three dashed segments)"
            + ("; ignored" if cvx else ""),
        )
        return VaccineCode(cvx, cvx_text, "", "", (finding,))
    if product is None:  # well-formed, but not in CDC's table
        unknown = f"RXA-5 (administered code) NDC {shown} is not in CDC's NDC table (release {match.release})"
        if cvx:
            return VaccineCode(
                cvx, cvx_text, match.ndc, "", (Finding(False, "103", "5", unknown),)
            )
        return VaccineCode(
            "",
            "",
            match.ndc,
            "",
            (
                Finding(
                    True,
                    "103",
                    "5",
                    f"{unknown}; without a CVX the dose can be neither forecast nor de-duplicated",
                ),
            ),
        )
    mapped = "/".join(product.cvx)
    if cvx_ok:
        if _key(cvx) in product.cvx:
            return VaccineCode(cvx, cvx_text, match.ndc, mvx)
        disagree = Finding(
            False,
            "102",
            "3",
            f"RXA-5 (administered code) NDC {shown} is CVX {mapped} in CDC's NDC table, not the CVX {cvx} sent; the CVX was kept",
        )
        return VaccineCode(cvx, cvx_text, match.ndc, "", (disagree,))
    findings: list[Finding] = []
    if cvx:
        findings.append(
            Finding(
                False,
                "103",
                "5",
                f"RXA-5 (administered code) CVX {_shown(cvx)} is not a known CVX code; the CVX of NDC {shown} was used",
            )
        )
    chosen = product.cvx[0] if len(product.cvx) == 1 else ""
    if not chosen:
        chosen = AMBIGUOUS_NDC_DEFAULTS.get(frozenset(product.cvx), "")
        if not chosen:
            findings.append(
                Finding(
                    True,
                    "103",
                    "5",
                    f"RXA-5 (administered code) NDC {shown} is CVX {mapped} in CDC's NDC table; send the CVX as well",
                )
            )
            return VaccineCode("", "", match.ndc, mvx, tuple(findings))
        findings.append(
            Finding(
                False,
                "102",
                "3",
                f"RXA-5 (administered code) NDC {shown} is CVX {mapped} in CDC's NDC table; CVX {chosen} assumed (send the CVX to say otherwise)",
            )
        )
    return VaccineCode(
        chosen, codes.text("CVX", chosen), match.ndc, mvx, tuple(findings)
    )


def _key(cvx: str) -> str:
    return _cvx_code(cvx) if cvx.isdigit() else cvx
