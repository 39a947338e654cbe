"""Rows the storage tests store: a journaled message, a patient, a dose."""

from __future__ import annotations

from datetime import UTC, date, datetime

from storage import (
    NewJournalEntry,
    NewPatient,
    NewVaccination,
    UnitOfWork,
)
from tests.support.records import new_vaccination

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def insert_journal(
    uow: UnitOfWork, control_id: str = "C1", sender: str = "CLINIC1", digest: str = ""
) -> int:
    """Journal a VXU from a sender; returns its id."""
    return uow.journal.insert(
        NewJournalEntry(
            sender,
            control_id,
            "VXU^V04",
            NOW,
            b"MSH|raw",
            "127.0.0.1:1",
            "BAY",
            content_digest=digest,
        )
    )


def insert_patient(uow: UnitOfWork, region: str = "BAY", family: str = "Doe") -> int:
    """Store a patient born 2023-01-05; returns its id."""
    return uow.patients.insert(
        NewPatient(
            region=region,
            birth_date=date(2023, 1, 5),
            sex="F",
            family_name=family,
            given_name="Jane",
        )
    )


def new_dose(
    patient_id: int, journal_id: int, filler: str = "F1", region: str = "BAY"
) -> NewVaccination:
    """A Hep B dose given 2024-01-15, identified by its filler id."""
    return new_vaccination(
        region=region,
        patient_id=patient_id,
        journal_id=journal_id,
        filler_id=filler,
        filler_namespace="EHR",
        cvx="08",
        cvx_text="Hep B",
        mvx="MSD",
        administered_on=date(2024, 1, 15),
        administered_at_raw="20240115",
        lot_numbers="L1",
        route="C28161",
        site="LA",
        funding_eligibility="V02",
    )
