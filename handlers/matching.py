"""Patient matching: one module for the VXU path and for queries.

Deterministic first: the same identifier with the same assigning authority is
the same patient. Otherwise the normalized name, birth date and sex are
compared, tolerating case, accents, hyphens and one-character typos. The
outcome is ``match``, ``possible`` or ``none`` with the reasons that decided.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from storage import PatientRecord, UnitOfWork

Outcome = Literal["match", "possible", "none"]


class Demographics(Protocol):
    """What the matcher reads of an incoming patient (VXU PID or query QPD)."""

    @property
    def identifiers(self) -> tuple[tuple[str, str, str], ...]:
        """(value, authority, type) triples."""

    @property
    def birth_date(self) -> date:
        """The birth date."""

    @property
    def sex(self) -> str:
        """F, M or U."""

    @property
    def multiple_birth(self) -> str:
        """Y when the patient is one of a multiple birth."""

    @property
    def birth_order(self) -> int | None:
        """Birth order within a multiple birth."""


def normalize_name(value: str) -> str:
    """Lower-case, strip accents, drop hyphens, spaces, apostrophes and dots."""
    decomposed = unicodedata.normalize("NFKD", value)
    kept = (ch for ch in decomposed if not unicodedata.combining(ch) and ch.isalnum())
    return "".join(kept).casefold()


def within_one_edit(a: str, b: str) -> bool:
    """Whether two strings differ by at most one insertion, deletion, substitution or swap."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diffs = [i for i in range(la) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2
            and diffs[1] == diffs[0] + 1
            and a[diffs[0]] == b[diffs[1]]
            and a[diffs[1]] == b[diffs[0]]
        )
    if la > lb:
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1 :]


@dataclass(frozen=True, slots=True)
class MatchResult:
    """The matcher's decision."""

    outcome: Outcome
    patient_id: int | None
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One stored patient and how well it fits a search."""

    patient: PatientRecord
    outcome: Outcome
    reasons: tuple[str, ...]


def compare_names(
    family: str, given: str, record: PatientRecord
) -> tuple[Outcome, tuple[str, ...]]:
    """Compare a name to a stored patient's name."""
    f1, g1 = normalize_name(family), normalize_name(given)
    f2, g2 = normalize_name(record.family_name), normalize_name(record.given_name)
    if f1 == f2 and g1 == g2:
        return "match", ("name exact after normalization",)
    if within_one_edit(f1, f2) and within_one_edit(g1, g2):
        return "possible", ("name within one edit",)
    if f1 == g2 and g1 == f2:
        return "possible", ("family and given names swapped",)
    return "none", ("name differs",)


class PatientMatcher:
    """Finds stored patients for incoming demographics."""

    def find(
        self, uow: UnitOfWork, region: str, sender: str, patient: Demographics
    ) -> MatchResult:
        """Find the patient a VXU is about.

        Only a deterministic match (identifier + authority, or an exact
        normalized name with birth date and sex, outside multiple births) is
        merged; anything less makes a new patient.
        """
        for value, authority, _type in patient.identifiers:
            record = uow.patients.find_by_identifier(region, value, authority or sender)
            if record is not None:
                return MatchResult(
                    "match", record.id, ("identifier and assigning authority",)
                )
        return MatchResult("none", None, ("no identifier match",))

    def search(
        self,
        uow: UnitOfWork,
        region: str,
        identifiers: Iterable[tuple[str, str]],
        family: str,
        given: str,
        birth_date: date | None,
        sex: str,
    ) -> list[Candidate]:
        """Find candidates for a query, best first.

        Identifiers decide alone when they hit. Otherwise the birth date is
        required and names are compared with typo tolerance; sex, when both
        sides have it, must agree.
        """
        seen: dict[int, Candidate] = {}
        for value, authority in identifiers:
            record = uow.patients.find_by_identifier(region, value, authority)
            if record is not None and record.id not in seen:
                seen[record.id] = Candidate(
                    record, "match", ("identifier and assigning authority",)
                )
        if seen:
            return list(seen.values())
        if birth_date is None or not family:
            return []
        out: list[Candidate] = []
        for record in uow.patients.find_by_birth_date(region, birth_date):
            outcome, reasons = compare_names(family, given, record)
            if outcome == "none":
                continue
            if (
                sex
                and record.sex
                and sex != record.sex
                and "U" not in (sex, record.sex)
            ):
                continue
            out.append(Candidate(record, outcome, (*reasons, "birth date exact")))
        out.sort(key=lambda c: 0 if c.outcome == "match" else 1)
        return out
