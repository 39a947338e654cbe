"""Observations (storage/observations.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

from storage import (
    Database,
    NewObservation,
)
from tests.support.stored import insert_journal, insert_patient, new_dose


def test_observations_are_stored_for_patient_and_dose(db: Database) -> None:
    """Observations insert in one statement and come back per patient."""
    with db.transaction() as uow:
        jid = insert_journal(uow)
        pid = insert_patient(uow)
        vid = uow.vaccinations.insert(new_dose(pid, jid))
        uow.observations.insert_many(
            [
                NewObservation(
                    "BAY",
                    pid,
                    vid,
                    jid,
                    1,
                    "1",
                    "CE",
                    "64994-7",
                    "Eligibility",
                    "V02",
                    "Medicaid",
                    "HL70064",
                    None,
                ),
                NewObservation(
                    "BAY",
                    pid,
                    None,
                    jid,
                    2,
                    "1",
                    "CE",
                    "59784-9",
                    "Immunity",
                    "38907003",
                    "Varicella",
                    "SCT",
                    date(2020, 1, 1),
                ),
            ]
        )
        rows = uow.observations.for_patient("BAY", pid)
    assert [(o.loinc, o.vaccination_id) for o in rows] == [
        ("64994-7", vid),
        ("59784-9", None),
    ]
