"""The disclosure audit trail (storage/audit.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from storage import (
    Database,
    NewAuditEntry,
)
from tests.support.stored import NOW, insert_patient


def test_audit_rows_are_searchable(db: Database) -> None:
    """Audit rows are written in the transaction and searched afterwards."""
    with db.transaction() as uow:
        pid = insert_patient(uow)
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
