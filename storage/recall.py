"""Reminder/recall: the runs, the patients each listed, and the contacts made."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, insert, select

from storage._records import fields_of, record_from_row, utc_now
from storage._sql import Runner
from storage.records import (
    NewRecallContact,
    NewRecallRun,
    RecallContact,
    RecallListing,
    RecallRun,
)
from storage.schema import recall_contacts, recall_listings, recall_runs


class RecallRepository:
    """Recall runs, their listings and the contacts recorded against them."""

    def __init__(self, conn: Connection, sql: Runner) -> None:
        self._conn = conn
        self._sql = sql

    def insert_run(
        self, run: NewRecallRun, listings: Sequence[RecallListing]
    ) -> RecallRun:
        """Record a run and the patients it listed; returns the stored run."""
        self._sql.flush()
        run_id = int(
            self._conn.execute(
                insert(recall_runs).values(**fields_of(run)).returning(recall_runs.c.id)
            ).scalar_one()
        )
        if listings:
            self._conn.execute(
                insert(recall_listings),
                [dict(fields_of(item), run_id=run_id) for item in listings],
            )
        return RecallRun(run_id, *fields_of(run).values())

    def get_run(self, run_id: int) -> RecallRun | None:
        """One recorded run."""
        self._sql.flush()
        row = self._conn.execute(
            select(recall_runs).where(recall_runs.c.id == run_id)
        ).first()
        return record_from_row(RecallRun, row) if row else None

    def listings(self, run_id: int) -> list[RecallListing]:
        """The patients a run listed, in the order it listed them."""
        self._sql.flush()
        rows = self._conn.execute(
            select(recall_listings)
            .where(recall_listings.c.run_id == run_id)
            .order_by(recall_listings.c.id)
        )
        return [record_from_row(RecallListing, row) for row in rows]

    def insert_contacts(self, contacts: Sequence[NewRecallContact]) -> None:
        """Record contacts made."""
        if not contacts:
            return
        self._sql.flush()
        now = utc_now()
        self._conn.execute(
            insert(recall_contacts),
            [dict(fields_of(c), recorded_at=now) for c in contacts],
        )

    def last_contacts(self, region: str, organization: str) -> dict[int, RecallContact]:
        """The latest contact an organization recorded for each patient of a region."""
        self._sql.flush()
        rows = self._conn.execute(
            select(recall_contacts)
            .where(
                recall_contacts.c.region == region,
                recall_contacts.c.organization == organization,
            )
            .order_by(recall_contacts.c.contacted_on, recall_contacts.c.id)
        )
        latest: dict[int, RecallContact] = {}
        for row in rows:
            contact = record_from_row(RecallContact, row)
            latest[contact.patient_id] = contact
        return latest
