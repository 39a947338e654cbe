"""What a forecast says about a patient, as plain data.

The CDSi forecast service (handlers/forecasting.py) returns a
:class:`ForecastOutcome`; the Z42 encoder (handlers/rsp_body.py), the
patient record, recall, requirements and coverage read it. It lives apart
from the encoder so that services reading a forecast import no HL7.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from handlers.disclosure import PatientView


@dataclass(frozen=True, slots=True)
class DoseEvaluation:
    """The evaluation of one dose for one vaccine group (Z42 evaluation OBX)."""

    vaccine_group: str
    vaccine_group_cvx: str
    series_name: str
    dose_number: str
    valid: bool
    reason: str


@dataclass(frozen=True, slots=True)
class GroupRecommendation:
    """The forecast of one vaccine group (Z42 recommendation OBX)."""

    vaccine_group: str
    vaccine_group_cvx: str
    series_name: str
    status: str
    dose_number: str
    earliest: date | None
    recommended: date | None
    past_due: date | None
    latest: date | None
    reason: str


@dataclass(frozen=True, slots=True)
class ForecastOutcome:
    """Evaluations per stored dose and recommendations per vaccine group."""

    release: str
    evaluations: Mapping[int, tuple[DoseEvaluation, ...]] = field(default_factory=dict)
    recommendations: tuple[GroupRecommendation, ...] = ()


class ForecastService(Protocol):
    """Evaluates a patient's history and forecasts as of a date."""

    def forecast(self, view: PatientView, as_of: date) -> ForecastOutcome:
        """Run the forecast on the doses of a patient view."""
