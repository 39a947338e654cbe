"""The matcher on a real database (SQLite and PostgreSQL): records merged
into another are not candidates of their own; the survivor stands for them,
for VXU matching and for query candidates."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

from handlers.matching import PatientMatcher
from storage import Database, NewPatient


def _patient(given: str, mrn_phone: str) -> NewPatient:
    return NewPatient(
        region="BAY",
        birth_date=date(2022, 4, 9),
        sex="F",
        family_name="Okonkwo",
        given_name=given,
        mother_maiden_family="Adeyemi",
        phone=mrn_phone,
    )


@dataclass(frozen=True)
class _Name:
    family: str = "Okonkwo"
    given: str = "Amara"
    middle: str = ""


@dataclass(frozen=True)
class _Incoming:
    identifiers: tuple[tuple[str, str, str], ...] = (("NEW1", "CLINIC9", "MR"),)
    birth_date: date = date(2022, 4, 9)
    sex: str = "F"
    multiple_birth: str = ""
    birth_order: int | None = None
    name: _Name = _Name()


def test_query_candidates_collapse_merged_records_to_the_survivor(
    db: Database,
) -> None:
    with db.transaction() as uow:
        first = uow.patients.insert(_patient("Amara", "4155550101"))
        second = uow.patients.insert(_patient("Amara", "4155550199"))
        other = uow.patients.insert(_patient("Amarachi", "4155550101"))
        uow.patients.link("BAY", second, first, None)
    matcher = PatientMatcher()
    with db.transaction() as uow:
        found = matcher.search(
            uow, "BAY", [], "Okonkwo", "Amara", date(2022, 4, 9), "F"
        )
    ids = [c.patient.id for c in found]
    assert ids.count(first) == 1, "two records of one merged patient: one candidate"
    assert second not in ids
    assert found[0].patient.id == first
    assert found[0].outcome == "match"
    assert other not in ids
    with db.transaction() as uow:
        uow.patients.unlink("BAY", second)
        apart = matcher.search(
            uow, "BAY", [], "Okonkwo", "Amara", date(2022, 4, 9), "F"
        )
    assert {first, second} <= {c.patient.id for c in apart}


def test_a_vxu_matching_a_merged_record_lands_on_the_survivor(db: Database) -> None:
    with db.transaction() as uow:
        first = uow.patients.insert(_patient("Amara", "4155550101"))
        second = uow.patients.insert(_patient("Amara", "4155550199"))
        uow.patients.link("BAY", second, first, None)
    with db.transaction() as uow:
        result = PatientMatcher().find(uow, "BAY", "CLINIC9", _Incoming())
    assert result.outcome == "match", result.reasons
    assert result.patient_id == first
    assert result.candidate_id == first


def test_nearby_birth_dates_still_to_come_are_not_searched(db: Database) -> None:
    # 2022-04-09 one digit off in the year's last digit is 2028-04-09: on a
    # message dated 2026 no stored patient can have been born then.
    with db.transaction() as uow:
        later = uow.patients.insert(
            replace(_patient("Amara", "4155550101"), birth_date=date(2028, 4, 9))
        )
    matcher = PatientMatcher()
    with db.transaction() as uow:
        undated = matcher.find(uow, "BAY", "CLINIC9", _Incoming())
        dated = matcher.find(uow, "BAY", "CLINIC9", _Incoming(), date(2026, 12, 1))
    assert undated.candidate_id == later, undated.reasons
    assert dated.candidate_id is None
    assert dated.outcome == "none"
