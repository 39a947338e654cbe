"""Builders of storage records for tests: one complete default, changed per test."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from storage import NewVaccination

_DOSE = NewVaccination(
    region="BAY",
    patient_id=1,
    journal_id=1,
    sending_facility="CLINIC1",
    filler_id="F1",
    filler_namespace="CLINIC1",
    placer_id="",
    cvx="20",
    cvx_text="DTaP",
    ndc="",
    mvx="PMC",
    administered_on=date(2023, 6, 1),
    administered_at_raw="20230601",
    amount="0.5",
    units="mL",
    lot_numbers="LOT1",
    lot_expiration=None,
    information_source="00",
    completion_status="CP",
    action_code="A",
    refusal_reason="",
    administering_provider="",
    administered_location="",
    route="",
    site="",
    funding_eligibility="",
    funding_source="",
)


def new_vaccination(**change: object) -> NewVaccination:
    """A complete administered DTaP dose, with the given fields changed."""
    return replace(_DOSE, **change)  # type: ignore[arg-type]
