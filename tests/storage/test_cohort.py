"""storage.cohort: the bulk reads give what the per-patient reads give, on both backends."""

from __future__ import annotations

from datetime import UTC, date, datetime

from storage import Database, NewNextOfKin, NewObservation, NewPatient
from tests.support.records import new_vaccination

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def _patient(
    uow, region: str = "BAY", born: date = date(2021, 1, 1), family: str = "Doe"
) -> int:
    return uow.patients.insert(
        NewPatient(region=region, birth_date=born, family_name=family, given_name="Al")
    )


def test_histories_match_the_per_patient_reads(db: Database) -> None:
    """Merged records' doses, deleted and duplicate doses, kin and observations: as for_patient reads them."""
    with db.transaction() as uow:
        survivor = _patient(uow)
        merged = _patient(uow, family="Doh")
        other = _patient(uow, family="Roe")
        uow.patients.add_submitter("BAY", survivor, "CLINIC1", WHEN)
        uow.patients.add_submitter("BAY", merged, "CLINIC2", WHEN)
        uow.patients.replace_next_of_kin(
            "BAY",
            survivor,
            [NewNextOfKin(1, "Doe", "Ma", "MTH", phone="5105550100")],
            "CLINIC1",
        )
        kept = uow.vaccinations.insert(
            new_vaccination(patient_id=survivor, journal_id=None, filler_id="a")
        )
        uow.vaccinations.insert(
            new_vaccination(
                patient_id=merged,
                journal_id=None,
                filler_id="b",
                administered_on=date(2022, 1, 1),
            )
        )
        gone = uow.vaccinations.insert(
            new_vaccination(patient_id=survivor, journal_id=None, filler_id="c")
        )
        twin = uow.vaccinations.insert(
            new_vaccination(patient_id=survivor, journal_id=None, filler_id="d")
        )
        uow.observations.insert_many(
            [
                NewObservation(
                    "BAY",
                    merged,
                    None,
                    None,
                    1,
                    "",
                    "CE",
                    "59784-9",
                    "",
                    "X",
                    "",
                    "",
                    None,
                )
            ]
        )
        uow.vaccinations.insert(
            new_vaccination(patient_id=other, journal_id=None, filler_id="e")
        )
        uow.vaccinations.soft_delete("BAY", gone, WHEN)
        uow.vaccinations.mark_duplicate("BAY", twin, kept, "same event")
        uow.patients.link("BAY", merged, survivor, None)
    with db.reading() as uow:
        ids = uow.cohort.patient_ids("BAY")
        (history, rest) = uow.cohort.histories("BAY", [survivor, other])
        expected_doses = uow.vaccinations.for_patient("BAY", survivor)
        expected_obs = uow.observations.for_patient("BAY", survivor)
        expected_kin = uow.patients.next_of_kin("BAY", survivor)
        # The merged view's submitters are every member's, as access_of reads them.
        expected_submitters = frozenset().union(
            *(
                uow.patients.submitters("BAY", m)
                for m in uow.patients.merged_into("BAY", survivor)
            )
        )
    # The merged record is not a patient of its own any more.
    assert ids == [survivor, other]
    assert [d.filler_id for d in history.doses] == ["b", "a"]
    assert [d.id for d in history.doses] == [d.id for d in expected_doses]
    assert [o.id for o in history.observations] == [o.id for o in expected_obs]
    assert history.next_of_kin == tuple(expected_kin)
    assert history.submitters == expected_submitters == {"CLINIC1", "CLINIC2"}
    assert not history.locked_member
    assert [d.filler_id for d in rest.doses] == ["e"]


def test_patient_ids_by_region_facility_and_birth_dates(db: Database) -> None:
    """Only the region asked, the facility's patients, the birth-date bounds (after, on or before)."""
    with db.transaction() as uow:
        a = _patient(uow, born=date(2020, 5, 1))
        b = _patient(uow, born=date(2022, 5, 1))
        c = _patient(uow, region="SAC", born=date(2020, 5, 1))
        uow.patients.add_submitter("BAY", a, "CLINIC1", WHEN)
        uow.patients.add_submitter("BAY", b, "CLINIC2", WHEN)
        uow.patients.add_submitter("SAC", c, "CLINIC1", WHEN)
    with db.reading() as uow:
        assert uow.cohort.patient_ids("BAY") == [a, b]
        assert uow.cohort.patient_ids("BAY", facility="CLINIC1") == [a]
        assert uow.cohort.patient_ids("SAC", facility="CLINIC1") == [c]
        assert uow.cohort.patient_ids("BAY", born_after=date(2020, 5, 1)) == [b]
        assert uow.cohort.patient_ids("BAY", born_on_or_before=date(2020, 5, 1)) == [a]
        # Another region's id asked for by this region is not read.
        assert uow.cohort.histories("BAY", [c]) == []
