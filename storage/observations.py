"""Observations (OBX) about doses and patients."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import (
    Connection,
    select,
)

from storage import dialects
from storage._merged import merged_members
from storage._records import (
    field_names,
    fields_of,
    record_from_row,
)
from storage._sql import Runner
from storage.records import (
    NewObservation,
    ObservationRecord,
)
from storage.schema import (
    observations,
)

_OBSERVATION_INSERT = dialects.insert_statement(
    observations, field_names(NewObservation), returning=False
)


class ObservationRepository:
    """Observations (OBX) about doses and patients."""

    def __init__(self, conn: Connection, sql: Runner | None = None) -> None:
        self._conn = conn
        self._sql = sql or dialects.runner(conn)

    def insert_many(self, items: Sequence[NewObservation]) -> None:
        """Store observations in one statement."""
        if items:
            self._sql.defer_many(_OBSERVATION_INSERT, [fields_of(o) for o in items])

    def for_patient(self, region: str, patient_id: int) -> list[ObservationRecord]:
        """The patient's observations, merged records included."""
        members = merged_members(self._sql, region, patient_id)
        rows = self._conn.execute(
            select(observations)
            .where(
                observations.c.region == region, observations.c.patient_id.in_(members)
            )
            .order_by(observations.c.id)
        ).all()
        return [record_from_row(ObservationRecord, row) for row in rows]
