"""The matcher on a real database (SQLite and PostgreSQL): records merged
into another are not candidates of their own; the survivor stands for them,
for VXU matching and for query candidates."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

import pytest

from handlers.matching import NameFrequencyCache, PatientMatcher
from handlers.scoring import name_frequency
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
            uow.patients, "BAY", [], "Okonkwo", "Amara", date(2022, 4, 9), "F"
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
            uow.patients, "BAY", [], "Okonkwo", "Amara", date(2022, 4, 9), "F"
        )
    assert {first, second} <= {c.patient.id for c in apart}


def test_a_vxu_matching_a_merged_record_lands_on_the_survivor(db: Database) -> None:
    with db.transaction() as uow:
        first = uow.patients.insert(_patient("Amara", "4155550101"))
        second = uow.patients.insert(_patient("Amara", "4155550199"))
        uow.patients.link("BAY", second, first, None)
    with db.transaction() as uow:
        result = PatientMatcher().find(uow.patients, "BAY", "CLINIC9", _Incoming())
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
        undated = matcher.find(uow.patients, "BAY", "CLINIC9", _Incoming())
        dated = matcher.find(
            uow.patients, "BAY", "CLINIC9", _Incoming(), date(2026, 12, 1)
        )
    assert undated.candidate_id == later, undated.reasons
    assert dated.candidate_id is None
    assert dated.outcome == "none"


def _stranger(given: str, **changes: object) -> NewPatient:
    """A stored child with a common name, born 2022-04-09, who shares nothing else with ``_Incoming``."""
    return replace(
        NewPatient(
            region="BAY",
            birth_date=date(2022, 4, 9),
            sex="F",
            family_name="Okonkwo",
            given_name=given,
            middle_name="Ngozi",
            mother_maiden_family="Eze",
            phone="5105550199",
            street="77 Palm St",
            postal_code="94601",
        ),
        **changes,
    )


@dataclass(frozen=True)
class _Mother:
    family: str = "Adeyemi"


@dataclass(frozen=True)
class _FullIncoming:
    identifiers: tuple[tuple[str, str, str], ...] = (("NEW1", "CLINIC9", "MR"),)
    birth_date: date = date(2022, 4, 9)
    sex: str = "F"
    multiple_birth: str = ""
    birth_order: int | None = None
    name: _Name = _Name(middle="Chioma")
    mother_maiden_name: _Mother = _Mother()
    phone: str = "4155550101"
    street: str = "12 Mission St"
    postal_code: str = "94110"


def test_name_counts_count_patients_per_name_key(db: Database) -> None:
    """Counts are per Soundex key (similar spellings together), per region, with the total on request."""
    with db.transaction() as uow:
        for family, given in [
            ("Garcia", "Sofia"),
            ("Garza", "Mia"),
            ("GARCÍA", "Sophia"),
            ("Smith", "Sofia"),
        ]:
            uow.patients.insert(replace(_patient(given, ""), family_name=family))
        uow.patients.insert(
            replace(_patient("Sofia", ""), region="NORTH", family_name="Garcia")
        )
    with db.transaction() as uow:
        counts = uow.patients.name_counts(
            "BAY", ["Garcia", "Lee", "---"], ["Sofia"], total=True
        )
        without_total = uow.patients.name_counts("BAY", [], ["Mia"])
    assert counts.total == 4
    assert counts.family == {"Garcia": 3, "Lee": 0}  # a name without a key: left out
    assert counts.given == {"Sofia": 3}  # Sophia shares Sofia's key
    assert without_total.total is None
    assert without_total.given == {"Mia": 1}


def test_matcher_lookalike_stranger_is_not_merged(db: Database) -> None:
    """A stored child with the same common name, birth date and sex but nothing else shared is another child."""
    with db.transaction() as uow:
        for i in range(30):  # make Okonkwo and Amara common in this region
            uow.patients.insert(
                _stranger("Amara", birth_date=date(2010, 1, 1 + i % 28))
            )
        stranger = uow.patients.insert(_stranger("Amara"))
    with db.transaction() as uow:
        result = PatientMatcher().find(uow.patients, "BAY", "CLINIC9", _FullIncoming())
    assert result.outcome == "none", result.reasons
    assert result.candidate_id == stranger
    assert any(r.startswith("mother") and "(-" in r for r in result.reasons)


def test_matcher_the_same_child_from_another_clinic_is_merged(db: Database) -> None:
    """The same child typed by another clinic (a nickname, no address) is still a match."""
    with db.transaction() as uow:
        same = uow.patients.insert(
            _stranger(
                "Amara",
                middle_name="Chioma",
                mother_maiden_family="Adeyemi",
                phone="",
                street="",
                postal_code="",
            )
        )
    with db.transaction() as uow:
        result = PatientMatcher().find(uow.patients, "BAY", "CLINIC9", _FullIncoming())
    assert result.outcome == "match", result.reasons
    assert result.patient_id == same


def test_matcher_finds_a_nickname_with_another_initial_one_digit_off(
    db: Database,
) -> None:
    """Peggy born 2022-04-19 is Margaret born 2022-04-09 when her mother and phone agree.

    On a nearby birth date only patients whose other name shares an initial
    are read: the nickname's full form (another letter) still counts.
    """
    with db.transaction() as uow:
        margaret = uow.patients.insert(
            _stranger(
                "Margaret",
                middle_name="",
                mother_maiden_family="Adeyemi",
                phone="4155550101",
            )
        )
    incoming = replace(
        _FullIncoming(), name=_Name(given="Peggy"), birth_date=date(2022, 4, 19)
    )
    with db.transaction() as uow:
        result = PatientMatcher().find(uow.patients, "BAY", "CLINIC9", incoming)
    assert result.candidate_id == margaret, result.reasons
    assert result.outcome == "match", result.reasons


def test_matcher_neighbours_born_a_digit_apart_are_not_compared(db: Database) -> None:
    """Two children with the same family name born ten days apart, given names unlike, are not even candidates."""
    with db.transaction() as uow:
        uow.patients.insert(
            _stranger(
                "Nkechi",
                birth_date=date(2022, 4, 19),
                mother_maiden_family="Adeyemi",
                phone="4155550101",
                street="12 Mission St",
                postal_code="94110",
            )
        )
    with db.transaction() as uow:
        result = PatientMatcher().find(uow.patients, "BAY", "CLINIC9", _FullIncoming())
    assert result.outcome == "none"
    assert result.candidate_id is None


def test_matcher_boy_and_girl_are_never_merged_automatically(db: Database) -> None:
    """A boy with a near birth date and, by chance, the same mother's maiden name is not merged into a girl."""
    with db.transaction() as uow:
        boy = uow.patients.insert(
            _stranger(
                "Amara",
                sex="M",
                birth_date=date(2022, 4, 8),
                mother_maiden_family="Adeyemi",
            )
        )
    with db.transaction() as uow:
        result = PatientMatcher().find(uow.patients, "BAY", "CLINIC9", _FullIncoming())
    assert result.outcome != "match"
    assert result.candidate_id == boy
    assert "sex differs: not merged without review" in result.reasons


def test_matcher_reads_name_frequencies_once_and_caches_them(db: Database) -> None:
    """Term frequencies cost at most one query per VXU, and none once the names are cached."""
    with db.transaction() as uow:
        uow.patients.insert(_stranger("Amara"))
    cache = NameFrequencyCache()
    matcher = PatientMatcher(frequencies=cache)
    with db.transaction() as uow:
        matcher.find(uow.patients, "BAY", "CLINIC9", _FullIncoming())
        assert cache.queries == 1
        matcher.find(uow.patients, "BAY", "CLINIC9", _FullIncoming())
        matcher.find(uow.patients, "BAY", "CLINIC9", replace(_FullIncoming(), sex="M"))
    assert cache.queries == 1


def test_name_frequency_cache_refreshes_after_its_ttl_and_stays_bounded(
    db: Database,
) -> None:
    """A cached count is read again once it is older than the TTL, and the cache never holds more than its size."""
    now = [0.0]
    cache = NameFrequencyCache(size=4, ttl=60.0, clock=lambda: now[0])
    with db.transaction() as uow:
        for i in range(40):
            uow.patients.insert(_stranger("Amara", phone=f"510555{i:04d}"))
        first = cache.get(uow.patients, "BAY", "Okonkwo", "Amara", "Eze")
        cache.get(uow.patients, "BAY", "Okonkwo", "Amara", "Eze")
        assert cache.queries == 1
        for i in range(1000):
            uow.patients.insert(_stranger("Nkechi", family_name=f"Zz{i}"))
        now[0] = 61.0
        later = cache.get(uow.patients, "BAY", "Okonkwo", "Amara", "Eze")
        assert cache.queries == 2
        for name in ("Ada", "Bola", "Chidi", "Dayo"):
            cache.get(uow.patients, "BAY", name, name, "")
    assert len(cache) <= 4
    # 40 of 40 patients, smoothed towards the default; then 40 of 1,040.
    assert first.family > later.family
    assert later.family == pytest.approx(name_frequency(40, 1040))
