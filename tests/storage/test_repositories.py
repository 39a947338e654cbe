"""Repositories, transactions and savepoints, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from storage import (
    Database,
    JournalLookup,
    NewAuditEntry,
    NewJournalEntry,
    NewNextOfKin,
    NewObservation,
    NewPatient,
    NewVaccination,
    PermanentStorageError,
    TransientStorageError,
    UnitOfWork,
    open_database,
)
from storage.schema import message_journal
from tests.support.messages import CANARY_MRN
from tests.support.records import new_vaccination

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _journal(
    uow: UnitOfWork, control_id: str = "C1", sender: str = "CLINIC1", digest: str = ""
) -> int:
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


def _patient(uow: UnitOfWork, region: str = "BAY", family: str = "Doe") -> int:
    return uow.patients.insert(
        NewPatient(
            region=region,
            birth_date=date(2023, 1, 5),
            sex="F",
            family_name=family,
            given_name="Jane",
        )
    )


def _dose(
    patient_id: int, journal_id: int, filler: str = "F1", region: str = "BAY"
) -> NewVaccination:
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


def test_journal_roundtrip_and_response(db: Database) -> None:
    """A journaled message is found by (sender, control id) with its response."""
    with db.transaction() as uow:
        jid = _journal(uow)
        uow.journal.set_response(jid, b"MSA|AA", "AA", "stored", 0, "BAY")
    with db.transaction() as uow:
        (entry,) = uow.journal.find("CLINIC1", "C1")
    assert (entry.id, entry.response, entry.ack_code, entry.raw) == (
        jid,
        b"MSA|AA",
        "AA",
        b"MSH|raw",
    )
    assert entry.received_at == NOW


def test_savepoint_rolls_back_only_its_block(db: Database) -> None:
    """A failing message inside a group commit leaves the others committed."""
    with db.transaction() as uow:
        with uow.savepoint():
            _journal(uow, "KEEP")
        with pytest.raises(RuntimeError), uow.savepoint():
            _journal(uow, "LOSE")
            raise RuntimeError("boom")
    with db.transaction() as uow:
        assert len(uow.journal.find("CLINIC1", "KEEP")) == 1
        assert uow.journal.find("CLINIC1", "LOSE") == []


def test_transaction_rolls_back_on_error(db: Database) -> None:
    """Nothing is half-stored when the transaction fails."""
    with pytest.raises(RuntimeError), db.transaction() as uow:
        _journal(uow)
        raise RuntimeError("before commit")
    with db.transaction() as uow:
        assert uow.journal.find("CLINIC1", "C1") == []


def test_journal_keeps_every_message_under_a_reused_key(db: Database) -> None:
    """Two messages with the same sender and control id get two rows, newest first."""
    with db.transaction() as uow:
        first = _journal(uow, digest="a" * 64)
        second = _journal(uow, digest="b" * 64)
    with db.transaction() as uow:
        rows = uow.journal.find("CLINIC1", "C1")
    assert [(r.id, r.content_digest) for r in rows] == [
        (second, "b" * 64),
        (first, "a" * 64),
    ]


def test_journal_answers_finds_the_newest_row_with_the_same_digest(
    db: Database,
) -> None:
    """A resend is the newest row with the same key and digest; other digests say reuse."""
    with db.transaction() as uow:
        old = _journal(uow, digest="a" * 64)
        uow.journal.set_response(old, b"MSA|AR|old", "AR", "rejected", 1, "BAY")
        other = _journal(uow, digest="b" * 64)
        uow.journal.set_response(other, b"MSA|AA|other", "AA", "stored", 0, "BAY")
        new = _journal(uow, digest="a" * 64)
        uow.journal.set_response(new, b"MSA|AA|new", "AA", "stored", 0, "BAY")
    with db.transaction() as uow:
        found = uow.journal.answers(
            [
                ("CLINIC1", "C1", "a" * 64),
                ("CLINIC1", "C1", "c" * 64),
                ("CLINIC1", "C2", "a" * 64),
            ]
        )
    same = found[("CLINIC1", "C1", "a" * 64)]
    assert same.resend_of is not None
    assert (same.resend_of.id, same.resend_of.response, same.resend_of.ack_code) == (
        new,
        b"MSA|AA|new",
        "AA",
    )
    assert same.other_content is True
    assert found[("CLINIC1", "C1", "c" * 64)] == JournalLookup(None, True)
    assert found[("CLINIC1", "C2", "a" * 64)] == JournalLookup(None, False)


def test_journal_answers_keep_senders_apart(db: Database) -> None:
    """The same control id from another sender is neither a resend nor a reuse."""
    with db.transaction() as uow:
        _journal(uow, "C1", "CLINIC1", "a" * 64)
        theirs = _journal(uow, "C2", "CLINIC2", "a" * 64)
    with db.transaction() as uow:
        found = uow.journal.answers(
            [("CLINIC2", "C1", "a" * 64), ("CLINIC2", "C2", "b" * 64)]
        )
    assert found[("CLINIC2", "C1", "a" * 64)] == JournalLookup(None, False)
    assert found[("CLINIC2", "C2", "b" * 64)] == JournalLookup(None, True)
    assert theirs > 0


def test_journal_insert_cuts_descriptive_values_to_fit(db: Database) -> None:
    """An over-long peer or message type, even with NUL, never makes recording fail."""
    with db.transaction() as uow:
        jid = uow.journal.insert(
            NewJournalEntry(
                "CLINIC1",
                "C1",
                "VXU^" + "V\x00" * 50,
                NOW,
                b"MSH|raw\x00",
                "p\x00" * 200,
                "BAY",
            )
        )
        uow.journal.set_response(jid, b"MSA|AR", "AR", "x\x00" * 400, 1, "BAY")
    entry = db.journal_get(jid)
    assert entry is not None
    assert (entry.message_type, entry.peer, entry.outcome, entry.raw) == (
        ("VXU^" + "V" * 50)[:20],
        "p" * 80,
        "x" * 300,
        b"MSH|raw\x00",
    )


def test_savepoint_turns_a_refused_value_into_a_permanent_error(db: Database) -> None:
    """A value the database refuses is permanent, and the error quotes no value."""
    with db.transaction() as uow:
        with pytest.raises(PermanentStorageError) as caught, uow.savepoint():
            uow.journal.insert(
                NewJournalEntry(None, CANARY_MRN, "VXU^V04", NOW, b"MSH", "p")  # type: ignore[arg-type]
            )
        _journal(uow, "AFTER")
    # Ours only: PostgreSQL's own DETAIL can echo the failing row, which is
    # why logs carry an exception's type and place, never its text.
    assert CANARY_MRN not in str(caught.value)
    with db.transaction() as uow:
        assert len(uow.journal.find("CLINIC1", "AFTER")) == 1


def test_database_hides_parameters_in_sqlalchemy_errors(db: Database) -> None:
    """Statements run through SQLAlchemy Core keep their bound values out of error text."""
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError) as caught, db.engine.begin() as conn:
        conn.execute(
            message_journal.insert(),
            {
                "sender": None,
                "control_id": CANARY_MRN,
                "message_type": "VXU",
                "received_at": NOW,
                "raw": b"MSH",
            },
        )
    assert "[SQL parameters hidden due to hide_parameters=True]" in str(caught.value)
    assert "[parameters:" not in str(caught.value)


def test_transaction_on_an_unreachable_database_is_a_transient_error(
    tmp_path,
) -> None:
    """A database that cannot be opened is a failure a later attempt can overcome."""
    (tmp_path / "dir.sqlite3").mkdir()
    for url in (
        f"sqlite:///{tmp_path / 'dir.sqlite3'}",
        "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2",
    ):
        db = open_database(url)
        try:
            with pytest.raises(TransientStorageError), db.transaction():
                pass
        finally:
            db.close()


def test_patient_found_by_identifier_within_region(db: Database) -> None:
    """Identifiers match with their authority, and only inside the patient's region."""
    with db.transaction() as uow:
        pid = _patient(uow)
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
        pid = _patient(uow)
        uow.patients.update(
            "BAY", pid, NewPatient(region="BAY", birth_date=None, phone="5551234567")
        )
        record = uow.patients.get("BAY", pid)
    assert record is not None
    assert (record.family_name, record.phone) == ("Doe", "5551234567")


def test_next_of_kin_are_replaced(db: Database) -> None:
    """Reported next of kin replace the stored ones."""
    with db.transaction() as uow:
        pid = _patient(uow)
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
        pid = _patient(uow)
        for facility in ("CLINIC1", "CLINIC1", "CLINIC2"):
            uow.patients.add_submitter("BAY", pid, facility)
        assert uow.patients.submitters("BAY", pid) == frozenset({"CLINIC1", "CLINIC2"})


def test_vaccination_found_by_filler_updated_and_soft_deleted(db: Database) -> None:
    """A dose is found by sender + ORC-3, updated in place, and soft-deleted but kept."""
    with db.transaction() as uow:
        jid = _journal(uow)
        pid = _patient(uow)
        vid = uow.vaccinations.insert(_dose(pid, jid))
        found = uow.vaccinations.find_by_filler("BAY", "CLINIC1", "EHR", "F1")
        assert found is not None
        assert found.id == vid
        assert uow.vaccinations.find_by_filler("BAY", "CLINIC2", "EHR", "F1") is None
        uow.vaccinations.soft_delete("BAY", vid, NOW)
        assert uow.vaccinations.for_patient("BAY", pid) == []
        kept = uow.vaccinations.for_patient("BAY", pid, include_deleted=True)
        assert kept[0].deleted_at == NOW


def test_observations_are_stored_for_patient_and_dose(db: Database) -> None:
    """Observations insert in one statement and come back per patient."""
    with db.transaction() as uow:
        jid = _journal(uow)
        pid = _patient(uow)
        vid = uow.vaccinations.insert(_dose(pid, jid))
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


def test_audit_rows_are_searchable(db: Database) -> None:
    """Audit rows are written in the transaction and searched afterwards."""
    with db.transaction() as uow:
        pid = _patient(uow)
        uow.audit.insert(
            NewAuditEntry(
                NOW,
                "CLINIC1",
                "BAY",
                pid,
                "BAY",
                None,
                "Q1",
                "query",
                "disclosed",
                "Z32",
            )
        )
        uow.audit.insert(
            NewAuditEntry(
                NOW, "CLINIC2", "BAY", pid, "BAY", None, "Q2", "query", "locked", "Z33"
            )
        )
    assert [a.outcome for a in db.audit_search(patient_id=pid)] == [
        "locked",
        "disclosed",
    ]
    assert [a.requester for a in db.audit_search(outcome="locked")] == ["CLINIC2"]


def test_journal_search_filters(db: Database) -> None:
    """The journal is searchable by sender, control id, type and outcome."""
    with db.transaction() as uow:
        a = _journal(uow, "A1")
        _journal(uow, "B1", sender="CLINIC2")
        uow.journal.set_response(a, b"x", "AE", "rejected", 1, "BAY")
    assert [e.control_id for e in db.journal_search(sender="CLINIC2")] == ["B1"]
    assert [e.control_id for e in db.journal_search(ack_code="AE")] == ["A1"]
    assert len(db.journal_search(message_type="VXU")) == 2
    assert db.journal_get(a) is not None


def _born(
    uow: UnitOfWork, family: str, given: str, born: date, region: str = "BAY"
) -> int:
    return uow.patients.insert(
        NewPatient(region=region, birth_date=born, family_name=family, given_name=given)
    )


def test_match_candidates_block_on_name_keys(db: Database) -> None:
    """On the birth date or one typo away: only a shared name key.

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
        family_hit = _born(uow, "Smyth", "Roberta", typo)
        given_hit = _born(uow, "Nguyen", "Jon", typo)
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
            "BAY", typo, [born], "Wisniewska", "Zofia"
        )
        by_old = uow.patients.find_match_candidates(
            "BAY", typo, [born], "Baker", "Zofia"
        )
        without_names = uow.patients.find_match_candidates("BAY", typo, [born], "", "")
    assert [r.id for r in by_new] == [pid]
    assert by_old == [] and without_names == []
