"""Reported vaccination events (doses): RXA-21 writes and de-duplication marks."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    bindparam,
    select,
    union_all,
    update,
)

from storage import dialects
from storage._merged import merged_members
from storage._records import (
    check_positional,
    field_names,
    fields_of,
    in_list,
    in_values,
    record_columns,
    utc_now,
)
from storage._sql import Runner, Statement, StatementFamily
from storage.records import (
    NewVaccination,
    VaccinationRecord,
)
from storage.schema import (
    vaccinations,
)

check_positional(vaccinations, VaccinationRecord)

_VACCINATION_COLUMNS = record_columns(vaccinations, VaccinationRecord)
_VACCINATION_BY_FILLER = Statement(
    select(*_VACCINATION_COLUMNS)
    .where(
        vaccinations.c.region == bindparam("region"),
        vaccinations.c.sending_facility == bindparam("sending_facility"),
        vaccinations.c.filler_namespace == bindparam("filler_namespace"),
        vaccinations.c.filler_id == bindparam("filler_id"),
    )
    .order_by(vaccinations.c.id.desc())
    .limit(1),
    _VACCINATION_COLUMNS,
)
# One exact-match arm per ORC-3 (UNION ALL): every arm is an index search on
# SQLite and PostgreSQL alike, whatever the planner's statistics say (an IN
# list on the last index column was a filter over all of a sender's doses on
# a freshly loaded PostgreSQL table).
_VACCINATIONS_BY_FILLERS = StatementFamily(
    lambda n: (
        union_all(
            *(
                select(*_VACCINATION_COLUMNS).where(
                    vaccinations.c.region == bindparam("region"),
                    vaccinations.c.sending_facility == bindparam("sending_facility"),
                    vaccinations.c.filler_namespace == bindparam(f"n{i}"),
                    vaccinations.c.filler_id == bindparam(f"f{i}"),
                )
                for i in range(n)
            )
        )
        if n > 1
        else select(*_VACCINATION_COLUMNS).where(
            vaccinations.c.region == bindparam("region"),
            vaccinations.c.sending_facility == bindparam("sending_facility"),
            vaccinations.c.filler_namespace == bindparam("n0"),
            vaccinations.c.filler_id == bindparam("f0"),
        ),
        _VACCINATION_COLUMNS,
    )
)
_VACCINATION_GET = Statement(
    select(*_VACCINATION_COLUMNS).where(
        vaccinations.c.region == bindparam("region"),
        vaccinations.c.id == bindparam("id"),
    ),
    _VACCINATION_COLUMNS,
)
_VACCINATION_INSERT = dialects.insert_statement(
    vaccinations,
    [*field_names(NewVaccination), "created_at", "updated_at"],
    returning=True,
)
_VACCINATION_INSERT_WITH_ID = dialects.insert_statement(
    vaccinations,
    ["id", *field_names(NewVaccination), "created_at", "updated_at"],
    returning=False,
)
_VACCINATION_UPDATE = Statement(
    update(vaccinations)
    .where(
        vaccinations.c.region == bindparam("_region"),
        vaccinations.c.id == bindparam("_id"),
    )
    .values(
        {
            **{
                name: bindparam(name)
                for name in field_names(NewVaccination)
                if name != "region"
            },
            "updated_at": bindparam("updated_at"),
            "deleted_at": None,
        }
    )
)
_VACCINATION_SOFT_DELETE = Statement(
    update(vaccinations)
    .where(
        vaccinations.c.region == bindparam("_region"),
        vaccinations.c.id == bindparam("_id"),
    )
    .values(deleted_at=bindparam("when"), updated_at=bindparam("when"))
)
_VACCINATION_MARK_DUPLICATE = Statement(
    update(vaccinations)
    .where(
        vaccinations.c.region == bindparam("_region"),
        vaccinations.c.id == bindparam("_id"),
    )
    .values(
        duplicate_of=bindparam("of_id"),
        dedup_reason=bindparam("reason"),
        updated_at=bindparam("updated_at"),
    )
)


def _vaccinations_for(key: tuple[int, bool, bool]) -> tuple[Any, list[Column[Any]]]:
    n, include_deleted, consolidated = key
    query = select(*_VACCINATION_COLUMNS).where(
        vaccinations.c.region == bindparam("region"),
        in_list(vaccinations.c.patient_id, "p", n),
    )
    if not include_deleted:
        query = query.where(vaccinations.c.deleted_at.is_(None))
    if consolidated:
        query = query.where(vaccinations.c.duplicate_of.is_(None))
    return (
        query.order_by(vaccinations.c.administered_on, vaccinations.c.id),
        _VACCINATION_COLUMNS,
    )


_VACCINATIONS_FOR = StatementFamily(_vaccinations_for)


class VaccinationRepository:
    """Reported vaccination events."""

    def __init__(
        self,
        conn: Connection,
        sql: Runner | None = None,
        ids: dialects.IdPool | None = None,
    ) -> None:
        self._conn = conn
        self._sql = sql or dialects.runner(conn)
        self._ids = ids

    def find_by_filler(
        self, region: str, sending_facility: str, filler_namespace: str, filler_id: str
    ) -> VaccinationRecord | None:
        """The dose a sender identified by ORC-3 (deleted ones included)."""
        row = self._sql.one(
            _VACCINATION_BY_FILLER,
            {
                "region": region,
                "sending_facility": sending_facility,
                "filler_namespace": filler_namespace,
                "filler_id": filler_id,
            },
        )
        return VaccinationRecord(*row) if row else None

    def find_by_fillers(
        self, region: str, sending_facility: str, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], VaccinationRecord]:
        """:meth:`find_by_filler` for several (namespace, filler id) keys in one query.

        Returns the newest record per key; keys with no record are left out.
        """
        wanted = sorted(set(keys))
        found: dict[tuple[str, str], VaccinationRecord] = {}
        for start in range(0, len(wanted), 50):
            chunk = wanted[start : start + 50]
            values: dict[str, Any] = {
                "region": region,
                "sending_facility": sending_facility,
            }
            for i, (namespace, filler_id) in enumerate(chunk):
                values[f"n{i}"] = namespace
                values[f"f{i}"] = filler_id
            for row in self._sql.all(_VACCINATIONS_BY_FILLERS[len(chunk)], values):
                record = VaccinationRecord(*row)
                key = (record.filler_namespace, record.filler_id)
                if key not in found or found[key].id < record.id:
                    found[key] = record
        return found

    def insert(self, vaccination: NewVaccination) -> int:
        """Store a reported vaccination event."""
        return self.add(vaccination).id

    def add(self, vaccination: NewVaccination) -> VaccinationRecord:
        """Store a reported vaccination event; returns it as stored."""
        now = utc_now()
        values = fields_of(vaccination)
        values["created_at"] = now
        values["updated_at"] = now
        if self._ids is not None:
            new_id = self._ids.take("vaccinations")
            self._sql.defer(_VACCINATION_INSERT_WITH_ID, {"id": new_id, **values})
        else:
            new_id = self._sql.insert(_VACCINATION_INSERT, values)
        return VaccinationRecord(
            id=new_id, **values, deleted_at=None, duplicate_of=None, dedup_reason=""
        )

    def update(
        self, region: str, vaccination_id: int, vaccination: NewVaccination
    ) -> None:
        """Replace a stored event with its sender's newer version (and undelete it)."""
        values = fields_of(vaccination)
        values.pop("region")
        values["updated_at"] = utc_now()
        values["_region"] = region
        values["_id"] = vaccination_id
        self._sql.defer(_VACCINATION_UPDATE, values)

    def soft_delete(self, region: str, vaccination_id: int, when: datetime) -> None:
        """Take a dose out of the consolidated view; the record of it stays."""
        self._sql.defer(
            _VACCINATION_SOFT_DELETE,
            {"_region": region, "_id": vaccination_id, "when": when},
        )

    def for_patient(
        self,
        region: str,
        patient_id: int,
        include_deleted: bool = False,
        consolidated: bool = True,
    ) -> list[VaccinationRecord]:
        """The patient's vaccination events, oldest first, merged records included.

        The consolidated view (the default) leaves out records marked as
        duplicates of another; every record stays stored.
        """
        members = merged_members(self._sql, region, patient_id)
        rows = self._sql.all(
            _VACCINATIONS_FOR[(len(members), include_deleted, consolidated)],
            {"region": region, **in_values("p", members)},
        )
        return [VaccinationRecord(*row) for row in rows]

    def get(self, region: str, vaccination_id: int) -> VaccinationRecord | None:
        """One stored record (deleted or duplicate ones included)."""
        row = self._sql.one(_VACCINATION_GET, {"region": region, "id": vaccination_id})
        return VaccinationRecord(*row) if row else None

    def mark_duplicate(
        self, region: str, vaccination_id: int, of_id: int | None, reason: str
    ) -> None:
        """Take a record out of (or, with None, back into) the consolidated view."""
        self._sql.defer(
            _VACCINATION_MARK_DUPLICATE,
            {
                "_region": region,
                "_id": vaccination_id,
                "of_id": of_id,
                "reason": reason[:200],
                "updated_at": utc_now(),
            },
        )
