"""The patient service in-process: matching, other clinics, the lock, conflicts.

Each test plays the other party (another clinic of the region, a clinic that
joined after the lock, a sender whose MRN belongs to someone else, another
region) against the service directly, with no HL7, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from functools import partial

import pytest

from handlers.filing import Origin
from handlers.matching import PatientMatcher
from handlers.patients import FiledPatient, PatientService, PatientSubmission
from storage import Database, NewNextOfKin, NewPatient, PatientRecord, UnitOfWork
from tests.support.messages import (
    CANARY_FAMILY,
    CANARY_GIVEN,
    CANARY_MRN,
    CANARY_STREET,
)

START = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

CHILD = NewPatient(
    region="BAY",
    birth_date=date(2023, 3, 14),
    sex="F",
    family_name=CANARY_FAMILY,
    given_name=CANARY_GIVEN,
    mother_maiden_family="Maiden",
    mother_maiden_given="Mother",
    street=CANARY_STREET,
    city="Sacramento",
    state="CA",
    postal_code="95814",
)

#: Someone else entirely, who was given the same MRN by the same authority.
STRANGER = NewPatient(
    region="BAY",
    birth_date=date(1984, 4, 12),
    sex="M",
    family_name="Winchester",
    given_name="Bobbie",
)

MRN = ((CANARY_MRN, "MYEHR", "MR"),)


class _Registry:
    """Files submissions, one minute apart, each in its own transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.matcher = PatientMatcher()
        self._ticks = itertools.count()
        self.now = START

    def file(
        self,
        submission: PatientSubmission,
        organization: str = "CLINIC1",
        region: str = "BAY",
    ) -> FiledPatient:
        self.now = START + timedelta(minutes=next(self._ticks))
        with self.db.transaction() as uow:
            return self._service(uow).file(
                submission, Origin(region, organization, None, "TEST")
            )

    def _service(self, uow: UnitOfWork) -> PatientService:
        at = self.now
        return PatientService(
            uow.patients,
            uow.review,
            uow.audit,
            uow,
            partial(self.matcher.find, uow.patients),
            lambda: at,
        )

    def get(self, patient_id: int, region: str = "BAY") -> PatientRecord:
        with self.db.transaction() as uow:
            record = uow.patients.get(region, patient_id)
        assert record is not None
        return record

    def actions(self, patient_id: int) -> list[tuple[str, str, str]]:
        """The audit trail of a patient, oldest first: (requester, action, outcome)."""
        return [
            (e.requester, e.action, e.outcome)
            for e in reversed(self.db.audit_search(patient_id=patient_id))
        ]


def _submit(
    patient: NewPatient = CHILD,
    identifiers: tuple[tuple[str, str, str], ...] = MRN,
    **change: object,
) -> PatientSubmission:
    return PatientSubmission(replace(patient, **change), identifiers)  # type: ignore[arg-type]


@pytest.fixture(name="registry")
def _registry(db: Database) -> _Registry:
    return _Registry(db)


def test_patient_service_creates_and_audits_a_new_patient(registry: _Registry) -> None:
    """A first submission creates the patient, scopes a bare identifier to its sender, and audits it."""
    filed = registry.file(_submit(identifiers=(("A1", "", "MR"),)))
    assert filed.created
    assert filed.match.outcome == "none"
    record = registry.get(filed.patient_id)
    assert [(i.value, i.authority, i.submitted_by) for i in record.identifiers] == [
        ("A1", "CLINIC1", "CLINIC1")
    ]
    assert registry.actions(filed.patient_id) == [
        ("CLINIC1", "submitter-added", "new record")
    ]


def test_patient_service_matches_the_same_child_on_its_identifier(
    registry: _Registry,
) -> None:
    """The same identifier and demographics from the same clinic file onto one record."""
    first = registry.file(_submit())
    again = registry.file(_submit(phone="5551234567"))
    assert not again.created
    assert again.patient_id == first.patient_id
    assert registry.get(first.patient_id).phone == "5551234567"


def test_patient_service_other_clinic_only_fills_empty_fields(
    registry: _Registry,
) -> None:
    """Another clinic cannot rewrite the address on file; it may fill the missing phone."""
    first = registry.file(_submit())
    other = registry.file(
        _submit(street="9 Elsewhere Rd", phone="5551234567"), organization="CLINIC2"
    )
    assert other.patient_id == first.patient_id
    record = registry.get(first.patient_id)
    assert (record.street, record.phone) == (CANARY_STREET, "5551234567")
    assert ("CLINIC2", "submitter-added", "added") in registry.actions(first.patient_id)


def test_patient_service_keeps_a_version_of_each_change(registry: _Registry) -> None:
    """The submitter's own change is audited and the record as it then stands kept."""
    first = registry.file(_submit())
    registry.file(_submit(street="1 New St"))
    with registry.db.transaction() as uow:
        versions = uow.patients.versions("BAY", first.patient_id)
    assert [v.kind for v in versions] == ["submitted", "stored", "submitted"]
    assert versions[1].demographics["street"] == "1 New St"
    assert ("CLINIC1", "demographics", "changed") in registry.actions(first.patient_id)


def test_patient_service_lock_is_set_by_any_submitter(registry: _Registry) -> None:
    """A clinic that never submitted before may still lock the record at once."""
    first = registry.file(_submit())
    registry.file(_submit(protection="Y"), organization="CLINIC2")
    record = registry.get(first.patient_id)
    assert record.protection == "Y"
    assert record.locked_at is not None
    assert ("CLINIC2", "lock-set", "set") in registry.actions(first.patient_id)


def test_patient_service_lock_clear_refused_to_a_clinic_that_joined_after(
    registry: _Registry,
) -> None:
    """A clinic that first submitted after the lock cannot clear it; it is told and audited."""
    first = registry.file(_submit(protection="Y"))
    late = registry.file(_submit(protection="N"), organization="CLINIC2")
    assert late.lock_clear_refused
    assert registry.get(first.patient_id).protection == "Y"
    assert ("CLINIC2", "lock-clear-refused", "refused") in registry.actions(
        first.patient_id
    )


def test_patient_service_lock_cleared_by_a_submitter_from_before_it(
    registry: _Registry,
) -> None:
    """The clinic that submitted before another locked the record may clear the lock."""
    first = registry.file(_submit())
    registry.file(_submit(protection="Y"), organization="CLINIC2")
    cleared = registry.file(_submit(protection="N"))
    assert not cleared.lock_clear_refused
    assert registry.get(first.patient_id).protection == "N"
    assert ("CLINIC1", "lock-cleared", "cleared") in registry.actions(first.patient_id)


def test_patient_service_identifier_conflict_is_held_for_review(
    registry: _Registry,
) -> None:
    """Another person sent under a stored child's MRN is not filed onto that child."""
    child = registry.file(_submit())
    stranger = registry.file(_submit(STRANGER), organization="CLINIC2")
    assert stranger.patient_id != child.patient_id
    assert stranger.match.conflict_id == child.patient_id
    record = registry.get(child.patient_id)
    assert (record.family_name, record.birth_date) == (CANARY_FAMILY, CHILD.birth_date)
    with registry.db.transaction() as uow:
        items = uow.review.list("open", "patient")
    assert [(i.left_id, i.right_id) for i in items] == [
        (stranger.patient_id, child.patient_id)
    ]
    assert ("CLINIC2", "identifier-conflict", "held") in registry.actions(
        child.patient_id
    )


def test_patient_service_region_sees_only_its_own_patients(
    registry: _Registry,
) -> None:
    """The same child sent to another region is that region's own record."""
    bay = registry.file(_submit())
    lao = registry.file(_submit(), organization="LACLINIC", region="LAO")
    assert lao.created
    assert registry.get(lao.patient_id, "LAO").region == "LAO"
    assert registry.get(bay.patient_id).region == "BAY"


def test_patient_service_next_of_kin_kept_per_submitter(registry: _Registry) -> None:
    """Next of kin are stored as the submitter's own."""
    kin = NewNextOfKin(sequence=1, family_name="Maiden", relationship="MTH")
    filed = registry.file(PatientSubmission(CHILD, MRN, (kin,)))
    with registry.db.transaction() as uow:
        stored = uow.patients.next_of_kin("BAY", filed.patient_id)
    assert [(k.family_name, k.submitted_by) for k in stored] == [("Maiden", "CLINIC1")]


def test_patient_service_region_and_journal_come_from_the_origin(
    registry: _Registry,
) -> None:
    """A submission naming another region is filed in the filer's own region."""
    filed = registry.file(_submit(region="LAO"))
    assert registry.get(filed.patient_id, "BAY").region == "BAY"


def test_patient_submission_refuses_a_missing_birth_date() -> None:
    """A patient with no birth date cannot be filed."""
    with pytest.raises(ValueError, match="birth date"):
        _submit(birth_date=None)
