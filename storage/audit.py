"""The disclosure audit trail."""

from __future__ import annotations

from sqlalchemy import (
    Connection,
)

from storage._records import (
    fields_of,
)
from storage.records import (
    NewAuditEntry,
)
from storage.schema import (
    audit_log,
)


class AuditRepository:
    """The disclosure audit trail."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def insert(self, entry: NewAuditEntry) -> None:
        """Write one audit row."""
        self._conn.execute(audit_log.insert(), fields_of(entry))
