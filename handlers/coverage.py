"""Coverage: of the patients of an age cohort, how many are up to date, per vaccine group.

The rules, in one place:

- The cohort is the patients of a region (or of one facility in it) whose age
  on the date is in the range asked, as the requester may see them
  (``handlers.disclosure``: a locked record hidden from the requester is not
  counted; a locked record it submitted counts with its own data only).
  Deceased patients and patients no longer followed (registry status
  ``I``, ``L``, ``M``, ``P``) are left out of every figure.
- **Up to date** in a vaccine group, from the CDSi forecast as of the date:
  the group is ``Complete`` or ``Immune``, or ``Not Complete`` with no dose
  past due (its past-due date, if any, after the date). A group the forecast
  calls ``Aged Out``, ``Not Recommended`` or ``Contraindicated`` does not
  apply to the patient, who is then not in that group's denominator.
- **Meeting a requirement set**: the share of the cohort
  ``handlers.requirements.check`` finds met.
- Percentages are of whole counts, rounded to one decimal at display.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from handlers.population import (
    GroupStatus,
    PopulationAssessor,
    Requester,
    Scope,
)
from handlers.recall import INACTIVE_STATUSES
from handlers.requirements import RequirementSet, check

__all__ = [
    "CHILDHOOD_GROUPS",
    "CoverageReport",
    "CoverageRow",
    "CoverageService",
    "RequirementCoverage",
    "up_to_date",
]

#: The vaccine groups a coverage report shows by default: the childhood
#: and adolescent schedule (seasonal and travel vaccines left out).
CHILDHOOD_GROUPS: tuple[str, ...] = (
    "DTaP/Tdap/Td",
    "Polio",
    "MMR",
    "HepB",
    "Hib",
    "Pneumococcal",
    "Varicella",
    "HepA",
    "Rotavirus",
    "Meningococcal",
    "HPV",
)

#: Forecast statuses that take a patient out of a group's denominator.
NOT_APPLICABLE = frozenset({"Aged Out", "Not Recommended", "Contraindicated"})


def up_to_date(group: GroupStatus, as_of: date) -> bool | None:
    """Whether a group is up to date as of a date; None when it does not apply."""
    if group.status in NOT_APPLICABLE:
        return None
    if group.status != "Not Complete":
        return True
    return group.past_due is None or group.past_due > as_of


def _percent(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


@dataclass(frozen=True, slots=True)
class CoverageRow:
    """One vaccine group: patients it applies to, and how many are up to date."""

    vaccine_group: str
    applicable: int
    up_to_date: int

    @property
    def percent(self) -> float | None:
        """Up to date, % of those it applies to (None when it applies to nobody)."""
        return _percent(self.up_to_date, self.applicable)


@dataclass(frozen=True, slots=True)
class RequirementCoverage:
    """How many of the cohort meet a requirement set."""

    set_id: str
    title: str
    checked: int
    met: int

    @property
    def percent(self) -> float | None:
        """Meeting the set, % of the cohort."""
        return _percent(self.met, self.checked)


@dataclass(frozen=True, slots=True)
class CoverageReport:
    """A coverage report: the cohort, each group's figures, the requirement's.

    Attributes:
        cohort: patients counted (visible, alive, followed).
        left_out: patients of the cohort not counted, by reason.
    """

    region: str
    facility: str | None
    organization: str
    as_of: date
    ages: str
    cohort: int
    rows: tuple[CoverageRow, ...]
    requirement: RequirementCoverage | None
    left_out: dict[str, int]


class CoverageService:
    """Computes coverage reports from the forecast of every patient in scope."""

    def __init__(self, assessor: PopulationAssessor) -> None:
        self._assessor = assessor

    def report(
        self,
        scope: Scope,
        requester: Requester,
        as_of: date,
        *,
        groups: Sequence[str] = CHILDHOOD_GROUPS,
        requirement: RequirementSet | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> CoverageReport:
        """The coverage of the patients in scope as of ``as_of``."""
        antigens = self._assessor.antigens_for(
            groups, requirement.antigens() if requirement is not None else ()
        )
        assessments = self._assessor.each(
            scope, requester, as_of, progress, antigens=antigens
        )
        left_out = {"deceased": 0, "inactive": 0}
        applicable = dict.fromkeys(groups, 0)
        current = dict.fromkeys(groups, 0)
        cohort = met = 0
        for a in assessments:
            if a.deceased:
                left_out["deceased"] += 1
                continue
            if a.registry_status in INACTIVE_STATUSES:
                left_out["inactive"] += 1
                continue
            cohort += 1
            for name in groups:
                group = a.group(name)
                verdict = up_to_date(group, as_of) if group is not None else None
                if verdict is None:
                    continue
                applicable[name] += 1
                current[name] += int(verdict)
            if requirement is not None and check(requirement, a, as_of).met:
                met += 1
        return CoverageReport(
            scope.region,
            scope.facility,
            requester.organization,
            as_of,
            scope.ages.text if scope.ages else "all ages",
            cohort,
            tuple(CoverageRow(g, applicable[g], current[g]) for g in groups),
            RequirementCoverage(requirement.id, requirement.title, cohort, met)
            if requirement is not None
            else None,
            left_out,
        )
