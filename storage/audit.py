"""The disclosure audit trail."""

from __future__ import annotations

from sqlalchemy import Connection

from storage import dialects
from storage._records import field_names, fields_of
from storage._sql import Runner
from storage.records import NewAuditEntry
from storage.schema import audit_log

#: Compiled once, run on the fast path and queued with the message's other
#: writes (an audit row is written for every new patient and every query).
_AUDIT_INSERT = dialects.insert_statement(
    audit_log, field_names(NewAuditEntry), returning=False
)


class AuditRepository:
    """The disclosure audit trail."""

    def __init__(self, conn: Connection, sql: Runner | None = None) -> None:
        self._conn = conn
        self._sql = sql or dialects.runner(conn)

    def insert(self, entry: NewAuditEntry) -> None:
        """Write one audit row (sent with the transaction's next round trip)."""
        self._sql.defer(_AUDIT_INSERT, fields_of(entry))
