"""The forecaster's inputs and results: immutable values, each result with its rule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class PatientInput:
    """The patient as the forecaster needs it.

    ``observation_dates`` gives the date of those observations that have one
    (say the date of a transplant, code 171): intervals counted *from a
    relevant observation* start there.
    """

    birth_date: date
    sex: str = "U"
    observations: tuple[str, ...] = ()
    observation_dates: tuple[tuple[str, date], ...] = ()

    def observation_date(self, code: str) -> date | None:
        """The date of an observation, None when it has no date (or is absent)."""
        for observed, when in self.observation_dates:
            if observed == code:
                return when
        return None


@dataclass(frozen=True, slots=True)
class AdministeredDose:
    """A vaccine dose administered: date, CVX and (optionally) MVX."""

    date: date
    cvx: str
    mvx: str | None = None


@dataclass(frozen=True, slots=True)
class DoseEvaluation:
    """How one dose counted toward one antigen's selected series.

    Attributes:
        dose_index: position of the dose in the input.
        antigen: the antigen evaluated.
        status: ``Valid``, ``Not Valid``, ``Extraneous`` or ``Sub-standard``.
        reason: the evaluation reason (``Age: Too Young``...), empty when valid.
        target_dose: the target dose number it was compared with (0 if none).
        series: the series name.
        rule: the rule that decided, for ``--explain``.
    """

    dose_index: int
    antigen: str
    status: str
    reason: str
    target_dose: int
    series: str
    rule: str


@dataclass(frozen=True, slots=True)
class AntigenForecast:
    """The forecast of one antigen from its best series."""

    antigen: str
    series: str
    status: str
    dose_number: int | None
    earliest: date | None
    recommended: date | None
    past_due: date | None
    latest: date | None
    reason: str
    rules: tuple[str, ...] = ()
    #: FORECASTPRIORITY-1: every preferable interval of the forecast target
    #: dose carries the interval priority flag (``override`` in CDC's data),
    #: which changes how a multiple antigen vaccine group takes its earliest
    #: date (MULTIANTVG-1).
    priority: bool = False


@dataclass(frozen=True, slots=True)
class VaccineGroupForecast:
    """The forecast of a vaccine group, combining its antigens."""

    vaccine_group: str
    status: str
    dose_number: int | None
    earliest: date | None
    recommended: date | None
    past_due: date | None
    latest: date | None
    series: str
    reason: str
    antigens: tuple[AntigenForecast, ...]


@dataclass(frozen=True, slots=True)
class ForecastResult:
    """Everything the forecaster decided for one patient as of a date."""

    release_version: str
    assessment_date: date
    dose_evaluations: tuple[DoseEvaluation, ...]
    vaccine_groups: tuple[VaccineGroupForecast, ...]

    def group(self, name: str) -> VaccineGroupForecast | None:
        """The forecast of a vaccine group by name."""
        for group in self.vaccine_groups:
            if group.vaccine_group == name:
                return group
        return None

    def evaluations_for_group(
        self, antigens: tuple[str, ...]
    ) -> dict[int, list[DoseEvaluation]]:
        """Dose evaluations of a group's antigens, by dose index."""
        out: dict[int, list[DoseEvaluation]] = {}
        for ev in self.dose_evaluations:
            if ev.antigen in antigens:
                out.setdefault(ev.dose_index, []).append(ev)
        return out
