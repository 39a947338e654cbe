"""What replay reads and changes: each message's doses, each message's patient.

``cairn replay`` re-runs journaled messages on a scratch database and compares
what each message left behind there with what it left in the registry. Both
sides are read with :class:`ReplayStore`; applying a replay's differences
(dose rows added, withdrawn, or de-duplicated differently) goes through it
too, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, select, update

from storage.schema import (
    observations,
    patient_links,
    patient_versions,
    vaccinations,
)


@dataclass(frozen=True, slots=True)
class MessageDose:
    """One dose row a message stored, with what replay compares."""

    id: int
    journal_id: int
    patient_id: int
    cvx: str
    administered_on: date
    lot_numbers: str
    filler_id: str
    information_source: str
    completion_status: str
    deleted: bool
    duplicate_of: int | None

    @property
    def key(self) -> tuple[str, date, str, str, str, str]:
        """What makes two runs' rows the same dose (row ids differ between databases)."""
        return (
            self.cvx,
            self.administered_on,
            self.lot_numbers,
            self.filler_id,
            self.information_source,
            self.completion_status,
        )


def _chunks(values: Sequence[int], size: int = 500) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class ReplayStore:
    """Reads and writes for replay on one connection (live or scratch)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def doses_of(self, journal_ids: Sequence[int]) -> dict[int, list[MessageDose]]:
        """The dose rows each journal row stored, by journal id, in row order."""
        c = vaccinations.c
        found: dict[int, list[MessageDose]] = {}
        for chunk in _chunks(sorted(set(journal_ids))):
            rows = self._conn.execute(
                select(
                    c.id,
                    c.journal_id,
                    c.patient_id,
                    c.cvx,
                    c.administered_on,
                    c.lot_numbers,
                    c.filler_id,
                    c.information_source,
                    c.completion_status,
                    c.deleted_at,
                    c.duplicate_of,
                )
                .where(c.journal_id.in_(chunk))
                .order_by(c.id)
            ).all()
            for row in rows:
                dose = MessageDose(
                    int(row.id),
                    int(row.journal_id),
                    int(row.patient_id),
                    row.cvx,
                    row.administered_on,
                    row.lot_numbers,
                    row.filler_id,
                    row.information_source,
                    row.completion_status,
                    row.deleted_at is not None,
                    None if row.duplicate_of is None else int(row.duplicate_of),
                )
                found.setdefault(dose.journal_id, []).append(dose)
        return found

    def patients_of(self, journal_ids: Sequence[int]) -> dict[int, int]:
        """The patient each journal row's demographics were filed on, merges followed."""
        v = patient_versions.c
        found: dict[int, int] = {}
        for chunk in _chunks(sorted(set(journal_ids))):
            for journal_id, patient_id in self._conn.execute(
                select(v.journal_id, v.patient_id).where(
                    and_(v.journal_id.in_(chunk), v.kind == "submitted")
                )
            ).all():
                found[int(journal_id)] = int(patient_id)
        survivors = self.survivors()
        return {j: survivors.get(p, p) for j, p in found.items()}

    def survivors(self) -> dict[int, int]:
        """Merged patient id -> the record it reads through (active links only)."""
        link = patient_links.c
        pairs = {
            int(merged): int(survivor)
            for merged, survivor in self._conn.execute(
                select(link.merged_id, link.survivor_id).where(link.active)
            ).all()
        }
        resolved: dict[int, int] = {}
        for merged in pairs:
            seen = {merged}
            target = pairs[merged]
            while target in pairs and target not in seen:
                seen.add(target)
                target = pairs[target]
            resolved[merged] = target
        return resolved

    def merged_by_review(self) -> set[int]:
        """Patients merged into another by a person's review decision."""
        link = patient_links.c
        return {
            int(merged)
            for (merged,) in self._conn.execute(
                select(link.merged_id).where(
                    and_(link.active, link.review_id.is_not(None))
                )
            ).all()
        }

    # -- applying a replay (inside the caller's transaction) --

    def dose_rows(self, dose_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Whole dose rows (every column), by id, to copy into another database."""
        found: dict[int, dict[str, Any]] = {}
        for chunk in _chunks(sorted(set(dose_ids))):
            for row in self._conn.execute(
                select(vaccinations).where(vaccinations.c.id.in_(chunk))
            ).all():
                found[int(row.id)] = dict(row._mapping)
        return found

    def observation_rows(self, dose_ids: Sequence[int]) -> list[dict[str, Any]]:
        """Whole observation rows of the given doses."""
        rows: list[dict[str, Any]] = []
        for chunk in _chunks(sorted(set(dose_ids))):
            rows.extend(
                dict(row._mapping)
                for row in self._conn.execute(
                    select(observations)
                    .where(observations.c.vaccination_id.in_(chunk))
                    .order_by(observations.c.id)
                ).all()
            )
        return rows

    def add_dose(
        self,
        row: Mapping[str, Any],
        observation_rows: Sequence[Mapping[str, Any]],
        *,
        patient_id: int,
        journal_id: int,
        now: datetime,
    ) -> int:
        """Copy a dose row (and its observations) onto a patient; the new row's id."""
        values = {k: v for k, v in row.items() if k not in {"id", "duplicate_of"}} | {
            "patient_id": patient_id,
            "journal_id": journal_id,
            "created_at": now,
            "updated_at": now,
            "deleted_at": None,
        }
        new_id = int(
            self._conn.execute(
                insert(vaccinations).values(values).returning(vaccinations.c.id)
            ).scalar_one()
        )
        for obs in observation_rows:
            self._conn.execute(
                insert(observations).values(
                    {k: v for k, v in obs.items() if k != "id"}
                    | {
                        "patient_id": patient_id,
                        "vaccination_id": new_id,
                        "journal_id": journal_id,
                    }
                )
            )
        return new_id

    def withdraw_dose(self, dose_id: int, now: datetime) -> None:
        """Mark a dose row deleted (kept, as RXA-21 D keeps it)."""
        self._conn.execute(
            update(vaccinations)
            .where(vaccinations.c.id == dose_id)
            .values(deleted_at=now, updated_at=now)
        )

    def set_duplicate_of(
        self, dose_id: int, duplicate_of: int | None, reason: str, now: datetime
    ) -> None:
        """Record (or clear) that a dose row duplicates another."""
        self._conn.execute(
            update(vaccinations)
            .where(vaccinations.c.id == dose_id)
            .values(duplicate_of=duplicate_of, dedup_reason=reason, updated_at=now)
        )
