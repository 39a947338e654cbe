"""Reported vaccination events (storage/doses.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from storage import Database
from tests.support.stored import NOW, insert_journal, insert_patient, new_dose


def test_vaccination_found_by_filler_updated_and_soft_deleted(db: Database) -> None:
    """A dose is found by sender + ORC-3, updated in place, and soft-deleted but kept."""
    with db.transaction() as uow:
        jid = insert_journal(uow)
        pid = insert_patient(uow)
        vid = uow.vaccinations.insert(new_dose(pid, jid))
        found = uow.vaccinations.find_by_filler("BAY", "CLINIC1", "EHR", "F1")
        assert found is not None
        assert found.id == vid
        assert uow.vaccinations.find_by_filler("BAY", "CLINIC2", "EHR", "F1") is None
        uow.vaccinations.soft_delete("BAY", vid, NOW)
        assert uow.vaccinations.for_patient("BAY", pid) == []
        kept = uow.vaccinations.for_patient("BAY", pid, include_deleted=True)
        assert kept[0].deleted_at == NOW
