"""Cohorts: the patients of a region or facility, and their histories read in bulk.

Population work (reminder/recall, coverage, requirement checks over a
school's list) reads thousands of patients. Reading each one the way a query
does (a handful of statements per patient) would spend more time in the
database than in the forecast, so a chunk of patients is read here in six
statements: demographics, merged records' lock flags, submitters, next of
kin, doses and observations, merged records included. The consolidation rules are those of
``VaccinationRepository.for_patient``: deleted and duplicate records left out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date

from sqlalchemy import Connection, exists, or_, select

from storage._records import record_columns, record_from_row
from storage._sql import Runner
from storage.records import (
    NextOfKinRecord,
    ObservationRecord,
    PatientHistory,
    PatientRecord,
    VaccinationRecord,
)
from storage.schema import (
    next_of_kin,
    observations,
    patient_links,
    patient_submitters,
    patients,
    vaccinations,
)

#: PD1-12 protection indicator of a locked record (handlers.disclosure.LOCKED).
LOCKED = "Y"

_VACCINATION_COLUMNS = record_columns(vaccinations, VaccinationRecord)
_PATIENT_COLUMNS = record_columns(patients, PatientRecord)

#: Not merged into another record (the same rule as matching's candidates).
_LIVE = ~exists().where(
    patient_links.c.merged_id == patients.c.id, patient_links.c.active.is_(True)
)


class CohortRepository:
    """The patients of a region (or of one facility in it), read in bulk."""

    def __init__(self, conn: Connection, sql: Runner) -> None:
        self._conn = conn
        self._sql = sql

    def patient_ids(
        self,
        region: str,
        *,
        facility: str | None = None,
        born_after: date | None = None,
        born_on_or_before: date | None = None,
    ) -> list[int]:
        """The live (not merged) patients of a region, lowest id first.

        Args:
            region: the region that holds them.
            facility: only patients this facility submitted data for (to
                the record or to a record merged into it).
            born_after: only patients born after this date.
            born_on_or_before: only patients born on or before this date.
        """
        self._sql.flush()
        query = select(patients.c.id).where(patients.c.region == region, _LIVE)
        if facility is not None:
            # A facility's patients include the merged views it submitted to
            # through a merged record (its submitters are all its members').
            links = patient_links.c
            members = (
                select(links.survivor_id.label("root"), links.merged_id.label("member"))
                .where(links.region == region, links.active.is_(True))
                .cte("members", recursive=True)
            )
            members = members.union(
                select(members.c.root, links.merged_id).where(
                    links.survivor_id == members.c.member,
                    links.region == region,
                    links.active.is_(True),
                )
            )
            query = query.where(
                or_(
                    exists().where(
                        patient_submitters.c.patient_id == patients.c.id,
                        patient_submitters.c.region == region,
                        patient_submitters.c.facility == facility,
                    ),
                    exists().where(
                        members.c.root == patients.c.id,
                        patient_submitters.c.patient_id == members.c.member,
                        patient_submitters.c.region == region,
                        patient_submitters.c.facility == facility,
                    ),
                )
            )
        if born_after is not None:
            query = query.where(patients.c.birth_date > born_after)
        if born_on_or_before is not None:
            query = query.where(patients.c.birth_date <= born_on_or_before)
        return [int(r[0]) for r in self._conn.execute(query.order_by(patients.c.id))]

    def histories(self, region: str, ids: Sequence[int]) -> list[PatientHistory]:
        """The histories of these patients of ``region``, in the order asked.

        Ids that are not the region's are left out.
        """
        if not ids:
            return []
        self._sql.flush()
        conn = self._conn
        wanted = list(dict.fromkeys(ids))
        records = {
            int(row.id): record_from_row(PatientRecord, row)
            for row in conn.execute(
                select(*_PATIENT_COLUMNS).where(
                    patients.c.region == region, patients.c.id.in_(wanted)
                )
            )
        }
        # The merged view: each survivor with the records merged into it.
        owner = {pid: pid for pid in records}
        frontier = list(records)
        while frontier:
            rows = conn.execute(
                select(patient_links.c.merged_id, patient_links.c.survivor_id).where(
                    patient_links.c.region == region,
                    patient_links.c.survivor_id.in_(frontier),
                    patient_links.c.active.is_(True),
                )
            ).all()
            frontier = []
            for merged, survivor in rows:
                if int(merged) not in owner:
                    owner[int(merged)] = owner[int(survivor)]
                    frontier.append(int(merged))
        members = list(owner)
        # Disclosure of a merged view (handlers.disclosure.access_of): locked
        # when any member is, with the submitters of every member. Reading
        # only the survivor's let a locked record merged into an open one
        # show its doses in another clinic's recall list and coverage.
        locked_member: set[int] = {
            owner[int(pid)]
            for pid, protection in conn.execute(
                select(patients.c.id, patients.c.protection).where(
                    patients.c.region == region,
                    patients.c.id.in_([m for m in members if m not in records]),
                )
            )
            if protection == LOCKED
        }
        submitters: dict[int, set[str]] = defaultdict(set)
        for pid, facility in conn.execute(
            select(
                patient_submitters.c.patient_id, patient_submitters.c.facility
            ).where(
                patient_submitters.c.region == region,
                patient_submitters.c.patient_id.in_(members),
            )
        ):
            submitters[owner[int(pid)]].add(facility)
        kin: dict[int, list[NextOfKinRecord]] = defaultdict(list)
        for row in conn.execute(
            select(next_of_kin)
            .where(
                next_of_kin.c.region == region,
                next_of_kin.c.patient_id.in_(list(records)),
            )
            .order_by(next_of_kin.c.patient_id, next_of_kin.c.sequence)
        ):
            kin[int(row.patient_id)].append(record_from_row(NextOfKinRecord, row))
        doses: dict[int, list[VaccinationRecord]] = defaultdict(list)
        for row in conn.execute(
            select(*_VACCINATION_COLUMNS)
            .where(
                vaccinations.c.region == region,
                vaccinations.c.patient_id.in_(members),
                vaccinations.c.deleted_at.is_(None),
                vaccinations.c.duplicate_of.is_(None),
            )
            .order_by(vaccinations.c.administered_on, vaccinations.c.id)
        ):
            doses[owner[int(row.patient_id)]].append(VaccinationRecord(*row))
        observed: dict[int, list[ObservationRecord]] = defaultdict(list)
        for row in conn.execute(
            select(observations)
            .where(
                observations.c.region == region,
                observations.c.patient_id.in_(members),
            )
            .order_by(observations.c.id)
        ):
            observed[owner[int(row.patient_id)]].append(
                record_from_row(ObservationRecord, row)
            )
        return [
            PatientHistory(
                records[pid],
                frozenset(submitters[pid]),
                tuple(kin[pid]),
                tuple(doses[pid]),
                tuple(observed[pid]),
                pid in locked_member,
            )
            for pid in wanted
            if pid in records
        ]
