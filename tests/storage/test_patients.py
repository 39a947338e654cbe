"""Patients, identifiers, next of kin, submitters and matching candidates (storage/patients.py)."""

from __future__ import annotations

from datetime import date

from storage import (
    Database,
    NewNextOfKin,
    NewPatient,
    UnitOfWork,
)
from tests.support.stored import insert_patient


def test_patient_found_by_identifier_within_region(db: Database) -> None:
    """Identifiers match with their authority, and only inside the patient's region."""
    with db.transaction() as uow:
        pid = insert_patient(uow)
        uow.patients.add_identifiers(
            "BAY", pid, [("MRN1", "EHR", "MR"), ("MRN1", "EHR", "MR")]
        )
        found = uow.patients.find_by_identifier("BAY", "MRN1", "EHR")
        assert found is not None
        assert found.id == pid
        assert [i.value for i in found.identifiers] == ["MRN1"]
        assert uow.patients.find_by_identifier("BAY", "MRN1", "OTHER") is None
        assert uow.patients.find_by_identifier("LAO", "MRN1", "EHR") is None


def test_patient_update_keeps_values_not_sent(db: Database) -> None:
    """An update with empty values changes only what was sent."""
    with db.transaction() as uow:
        pid = insert_patient(uow)
        uow.patients.update(
            "BAY", pid, NewPatient(region="BAY", birth_date=None, phone="5551234567")
        )
        record = uow.patients.get("BAY", pid)
    assert record is not None
    assert (record.family_name, record.phone) == ("Doe", "5551234567")


def test_next_of_kin_are_replaced(db: Database) -> None:
    """Reported next of kin replace the stored ones."""
    with db.transaction() as uow:
        pid = insert_patient(uow)
        uow.patients.replace_next_of_kin(
            "BAY", pid, [NewNextOfKin(1, "Doe", "Mary", "MTH")]
        )
        uow.patients.replace_next_of_kin(
            "BAY", pid, [NewNextOfKin(1, "Doe", "John", "FTH")]
        )
        kin = uow.patients.next_of_kin("BAY", pid)
    assert [(k.given_name, k.relationship) for k in kin] == [("John", "FTH")]


def test_submitters_are_recorded_once(db: Database) -> None:
    """Each organization that submitted data for a patient is recorded once."""
    with db.transaction() as uow:
        pid = insert_patient(uow)
        for facility in ("CLINIC1", "CLINIC1", "CLINIC2"):
            uow.patients.add_submitter("BAY", pid, facility)
        assert uow.patients.submitters("BAY", pid) == frozenset({"CLINIC1", "CLINIC2"})


def _born(
    uow: UnitOfWork, family: str, given: str, born: date, region: str = "BAY"
) -> int:
    return uow.patients.insert(
        NewPatient(region=region, birth_date=born, family_name=family, given_name=given)
    )


def test_match_candidates_block_on_name_keys(db: Database) -> None:
    """On the birth date a shared name key; one typo away, a key and the other initial.

    Keys compare either way round, so swapped family and given names still
    meet; on the exact date the same initials (either way round) suffice;
    other regions and merged records never come back. An incoming name with
    no key meets everyone born on the exact date.
    """
    born = date(2021, 3, 14)
    typo = date(2021, 3, 15)
    with db.transaction() as uow:
        same_day_other_names = _born(uow, "Okafor", "Chidi", born)
        same_day_family = _born(uow, "Smith", "Amara", born)
        same_day_initials = _born(uow, "Jaxon", "Sanne", born)  # swapped initials
        _born(uow, "Sadler", "Sanne", born)  # one initial only
        family_hit = _born(uow, "Smyth", "Jonas", typo)
        given_hit = _born(uow, "Sadowski", "Jon", typo)
        swapped = _born(uow, "John", "Smith", typo)
        no_key = _born(uow, "Okafor", "Chidi", typo)
        far_date = _born(uow, "Smith", "John", date(2019, 7, 1))
        _born(uow, "Smith", "John", born, region="LAO")
        merged = _born(uow, "Smith", "John", born)
        uow.patients.link("BAY", merged, same_day_family, None)
        found = uow.patients.find_match_candidates(
            "BAY", born, [born, typo, date(2021, 3, 4)], "Smith", "John"
        )
        keyless = uow.patients.find_match_candidates("BAY", born, [typo], "", "--")
    ids = [record.id for record in found]
    assert ids == sorted(
        {same_day_family, same_day_initials, family_hit, given_hit, swapped}
    )
    assert same_day_other_names not in ids
    assert no_key not in ids and far_date not in ids and merged not in ids
    assert [r.id for r in keyless][:2] == [same_day_other_names, same_day_family]
    assert len(keyless) == 4


def test_match_candidates_follow_a_renamed_patient(db: Database) -> None:
    """An update that changes the name changes the key the patient is found by."""
    born, typo = date(2022, 8, 9), date(2022, 8, 19)
    with db.transaction() as uow:
        pid = _born(uow, "Baker", "Lena", born)
        uow.patients.update(
            "BAY",
            pid,
            NewPatient(region="BAY", birth_date=None, family_name="Wiśniewska"),
        )
        by_new = uow.patients.find_match_candidates(
            "BAY", typo, [born], "Wisniewska", "Lena"
        )
        by_old = uow.patients.find_match_candidates(
            "BAY", typo, [born], "Baker", "Lena"
        )
        without_names = uow.patients.find_match_candidates("BAY", typo, [born], "", "")
    assert [r.id for r in by_new] == [pid]
    assert by_old == [] and without_names == []


def test_match_candidates_one_typo_away_need_a_key_and_the_other_initial(
    db: Database,
) -> None:
    """Two children born a day apart who share only a family name are not compared.

    Born one typo away, Smyth Roberta and Nguyen Jon are other children than
    Smith John (each agrees on one name key only), and are not read; born
    the same day they still are. The same child one typo away is still
    read: a typo in a name, a nickname that starts with another letter
    (given with its forms), or a stored record without a given name.
    """
    born, typo = date(2021, 3, 14), date(2021, 3, 15)
    with db.transaction() as uow:
        neighbours = [
            _born(uow, "Smyth", "Roberta", typo),
            _born(uow, "Nguyen", "Jon", typo),
            _born(uow, "Okafor", "John", typo),
        ]
        same_day = [
            _born(uow, "Smyth", "Roberta", born),
            _born(uow, "Nguyen", "Jon", born),
        ]
        typos = [_born(uow, "Smiht", "John", typo), _born(uow, "Smith", "Jhon", typo)]
        nickname = _born(uow, "Smith", "Bill", typo)
        no_given = _born(uow, "Smith", "", typo)
        plain = uow.patients.find_match_candidates(
            "BAY", born, [typo], "Smith", "William"
        )
        with_forms = uow.patients.find_match_candidates(
            "BAY", born, [typo], "Smith", "William", given_forms=["bill", "will"]
        )
        john = uow.patients.find_match_candidates("BAY", born, [typo], "Smith", "John")
    ids = {record.id for record in john}
    assert not ids & set(neighbours)
    assert set(same_day) | set(typos) | {no_given} <= ids
    assert nickname not in {record.id for record in plain}
    assert nickname in {record.id for record in with_forms}
