"""The dose service in-process: RXA-21 add, update, delete, ownership, de-duplication.

Each test plays the other party (another clinic deleting or updating a dose
it did not report, a clinic aiming its own dose id at another child, two
clinics reporting one event) against the service directly, with no HL7, on
SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from handlers.codes import CodeTables
from handlers.dedup import DoseDeduplicator
from handlers.doses import DoseOutcome, DoseReport, DoseService
from handlers.filing import Origin
from storage import (
    Database,
    NewObservation,
    NewPatient,
    NewVaccination,
    UnitOfWork,
    VaccinationRecord,
)
from tests.support.messages import CANARY_FAMILY
from tests.support.records import new_vaccination

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module", name="dedup")
def _dedup() -> DoseDeduplicator:
    return DoseDeduplicator(CodeTables.load())


class _Registry:
    """Reports doses for patients of region BAY, each call in its own transaction."""

    def __init__(self, db: Database, dedup: DoseDeduplicator) -> None:
        self.db = db
        self.dedup = dedup

    def patient(self, family: str = CANARY_FAMILY) -> int:
        with self.db.transaction() as uow:
            return uow.patients.insert(
                NewPatient("BAY", date(2023, 3, 14), family_name=family)
            )

    def report(
        self,
        patient_id: int,
        *reports: DoseReport | NewVaccination,
        organization: str = "CLINIC1",
    ) -> list[DoseOutcome]:
        with self.db.transaction() as uow:
            return self._service(uow).report(
                patient_id,
                [r if isinstance(r, DoseReport) else DoseReport(r) for r in reports],
                Origin("BAY", organization, None, "TEST"),
            )

    def _service(self, uow: UnitOfWork) -> DoseService:
        return DoseService(
            uow.vaccinations,
            uow.patients,
            uow.observations,
            uow.review,
            uow.audit,
            self.dedup,
            lambda: NOW,
            review_score=0.25,
        )

    def doses(self, patient_id: int) -> list[VaccinationRecord]:
        """The patient's consolidated doses."""
        with self.db.transaction() as uow:
            return uow.vaccinations.for_patient("BAY", patient_id)

    def every_record(self, patient_id: int) -> list[VaccinationRecord]:
        with self.db.transaction() as uow:
            return uow.vaccinations.for_patient(
                "BAY", patient_id, include_deleted=True, consolidated=False
            )


@pytest.fixture(name="registry")
def _registry(db: Database, dedup: DoseDeduplicator) -> _Registry:
    return _Registry(db, dedup)


def _dose(**change: object) -> NewVaccination:
    """CLINIC1's DTaP dose F1 for patient 0 (the service files it onto the patient)."""
    return new_vaccination(patient_id=0, journal_id=None, **change)


def test_dose_service_adds_a_new_dose(registry: _Registry) -> None:
    """A reported dose is stored as the reporter's, for the patient."""
    patient = registry.patient()
    (outcome,) = registry.report(patient, _dose())
    assert outcome.action == "added"
    (stored,) = registry.doses(patient)
    assert (stored.id, stored.sending_facility, stored.filler_id) == (
        outcome.vaccination_id,
        "CLINIC1",
        "F1",
    )


def test_dose_service_another_clinic_cannot_delete_a_dose(registry: _Registry) -> None:
    """A delete of CLINIC1's dose id sent by CLINIC2 is refused and deletes nothing."""
    patient = registry.patient()
    registry.report(patient, _dose())
    (outcome,) = registry.report(
        patient,
        _dose(action_code="D", sending_facility="CLINIC2"),
        organization="CLINIC2",
    )
    assert outcome.action == "refused"
    assert [d.filler_id for d in registry.doses(patient)] == ["F1"]


def test_dose_service_another_clinic_cannot_update_a_dose(registry: _Registry) -> None:
    """An update of CLINIC1's dose sent by CLINIC2 is refused; the dose keeps its lot."""
    patient = registry.patient()
    registry.report(patient, _dose())
    (outcome,) = registry.report(
        patient, _dose(action_code="U", lot_numbers="FORGED"), organization="CLINIC2"
    )
    assert outcome.action == "refused"
    assert [d.lot_numbers for d in registry.every_record(patient)] == ["LOT1"]


def test_dose_service_reporter_naming_another_clinic_stays_itself(
    registry: _Registry,
) -> None:
    """A report that claims to be CLINIC1's but comes from CLINIC2 is stored as CLINIC2's."""
    patient = registry.patient()
    registry.report(patient, _dose(), organization="CLINIC2")
    (stored,) = registry.doses(patient)
    assert stored.sending_facility == "CLINIC2"


def test_dose_service_own_dose_id_cannot_reach_another_child(
    registry: _Registry,
) -> None:
    """A clinic's update of its dose id under another patient is refused."""
    first, second = registry.patient(), registry.patient("Other")
    registry.report(first, _dose())
    (outcome,) = registry.report(second, _dose(action_code="U", cvx="10"))
    assert outcome.action == "refused"
    assert registry.doses(second) == []
    assert [d.cvx for d in registry.doses(first)] == ["20"]


def test_dose_service_owner_updates_its_dose(registry: _Registry) -> None:
    """The reporting clinic's update replaces its dose in place."""
    patient = registry.patient()
    (added,) = registry.report(patient, _dose())
    (updated,) = registry.report(patient, _dose(action_code="U", lot_numbers="LOT2"))
    assert (updated.action, updated.vaccination_id) == (
        "updated",
        added.vaccination_id,
    )
    assert [d.lot_numbers for d in registry.doses(patient)] == ["LOT2"]


def test_dose_service_add_of_a_known_dose_id_updates_it(registry: _Registry) -> None:
    """An add resent with the same dose id is the same dose, not a second one."""
    patient = registry.patient()
    registry.report(patient, _dose())
    (again,) = registry.report(patient, _dose(amount="1.0"))
    assert again.action == "updated"
    assert len(registry.every_record(patient)) == 1


def test_dose_service_owner_delete_is_soft_and_audited(registry: _Registry) -> None:
    """The owner's delete hides the dose, keeps the record and audits who removed it."""
    patient = registry.patient()
    (added,) = registry.report(patient, _dose())
    (deleted,) = registry.report(patient, _dose(action_code="D"))
    assert (deleted.action, deleted.vaccination_id) == (
        "deleted",
        added.vaccination_id,
    )
    assert registry.doses(patient) == []
    (kept,) = registry.every_record(patient)
    assert kept.deleted_at is not None
    audit = registry.db.audit_search(patient_id=patient)
    assert [(e.requester, e.action, e.outcome) for e in audit] == [
        ("CLINIC1", "delete-dose", "soft-deleted")
    ]


def test_dose_service_placeholder_ids_identify_nothing(registry: _Registry) -> None:
    """Two doses with the placeholder id 9999 are two reports, not an update."""
    patient = registry.patient()
    outcomes = registry.report(
        patient,
        _dose(filler_id="9999", cvx="20"),
        _dose(filler_id="9999", cvx="10", administered_on=date(2023, 9, 1)),
    )
    assert [o.action for o in outcomes] == ["added", "added"]
    assert len(registry.doses(patient)) == 2


def test_dose_service_same_event_from_two_clinics_is_one_dose(
    registry: _Registry,
) -> None:
    """The same DTaP on the same day from two clinics is stored twice and shown once."""
    patient = registry.patient()
    registry.report(patient, _dose())
    registry.report(patient, _dose(filler_id="X9"), organization="CLINIC2")
    assert len(registry.every_record(patient)) == 2
    (shown,) = registry.doses(patient)
    assert shown.sending_facility == "CLINIC1"


def test_dose_service_unsure_pair_goes_to_review(registry: _Registry) -> None:
    """Two administered doses ten days apart from one clinic's history are left to a person."""
    patient = registry.patient()
    registry.report(patient, _dose(information_source="01"))
    registry.report(
        patient,
        _dose(
            filler_id="X9", information_source="01", administered_on=date(2023, 6, 11)
        ),
        organization="CLINIC2",
    )
    with registry.db.transaction() as uow:
        items = uow.review.list("open", "dose")
    assert [(i.kind, i.score) for i in items] == [("dose", 0.25)]
    assert len(registry.doses(patient)) == 2


def test_dose_service_refused_report_keeps_the_others(registry: _Registry) -> None:
    """A refused report among others refuses only itself, in its place."""
    patient = registry.patient()
    outcomes = registry.report(
        patient,
        _dose(filler_id="A1"),
        _dose(filler_id="NOPE", action_code="D"),
        _dose(filler_id="A2", cvx="10"),
    )
    assert [o.action for o in outcomes] == ["added", "refused", "added"]


def _observation(loinc: str) -> NewObservation:
    return NewObservation(
        region="BAY",
        patient_id=0,
        vaccination_id=None,
        journal_id=None,
        set_id=1,
        sub_id="1",
        value_type="CE",
        loinc=loinc,
        loinc_text="",
        value_code="V02",
        value_text="",
        value_system="HL70064",
        observed_on=None,
    )


def test_dose_service_files_observations_with_their_dose(registry: _Registry) -> None:
    """A dose's observations go with the stored dose; a report with no dose is about the patient."""
    patient = registry.patient()
    outcomes = registry.report(
        patient,
        DoseReport(_dose(), (_observation("64994-7"),)),
        DoseReport(None, (_observation("59784-9"),)),
    )
    assert [o.action for o in outcomes] == ["added", "observed"]
    with registry.db.transaction() as uow:
        stored = uow.observations.for_patient("BAY", patient)
    assert sorted((o.loinc, o.vaccination_id, o.patient_id) for o in stored) == [
        ("59784-9", None, patient),
        ("64994-7", outcomes[0].vaccination_id, patient),
    ]


def test_dose_service_compares_within_the_widest_group_window(db: Database) -> None:
    """A group window wider than the default still finds its pair among many doses.

    Only doses within the widest window are compared (the view is read in
    date order); one 40 days apart, inside DTaP's own 40-day window, is
    still the same event, while the other doses of the year are skipped.
    """
    registry = _Registry(
        db, DoseDeduplicator(CodeTables.load(), group_windows={"DTAP": 40})
    )
    patient = registry.patient()
    far = [
        _dose(filler_id=f"Y{i}", cvx="03", administered_on=date(2022, 1 + i, 1))
        for i in range(10)
    ]
    registry.report(patient, *far, _dose(information_source="01", lot_numbers=""))
    registry.report(
        patient,
        _dose(
            filler_id="X9",
            information_source="00",
            lot_numbers="",
            administered_on=date(2023, 7, 11),
        ),
        organization="CLINIC2",
    )
    shown = [d for d in registry.doses(patient) if d.cvx != "03"]
    assert [(d.sending_facility, d.administered_on) for d in shown] == [
        ("CLINIC2", date(2023, 7, 11))
    ]


class _CountingDeduplicator(DoseDeduplicator):
    """Counts the comparisons the service asks for."""

    calls = 0

    def compare(self, new: NewVaccination, other: VaccinationRecord):  # type: ignore[no-untyped-def]
        type(self).calls += 1
        return super().compare(new, other)


def test_dose_service_compares_each_new_dose_with_its_window_only(
    db: Database,
) -> None:
    """A VXU of many doses a month apart costs comparisons linear in its size.

    Each new dose is compared with the doses within the widest window, not
    with every dose of the patient (which made one message of n doses cost
    n squared comparisons).
    """
    _CountingDeduplicator.calls = 0
    registry = _Registry(db, _CountingDeduplicator(CodeTables.load()))
    patient = registry.patient()
    doses = [
        _dose(
            filler_id=f"M{i}",
            lot_numbers=f"LOT{i}",
            administered_on=date(2010, 1, 1) + timedelta(days=31 * i),
        )
        for i in range(120)
    ]
    outcomes = registry.report(patient, *doses)
    assert [o.action for o in outcomes] == ["added"] * 120
    # 31 days apart, a 23-day window: no neighbour is within it.
    assert _CountingDeduplicator.calls == 0
