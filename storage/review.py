"""The review queue: possible patient matches and unsure dose duplicates."""

from __future__ import annotations

from sqlalchemy import (
    Connection,
    select,
    update,
)

from storage import dialects
from storage._records import (
    field_names,
    fields_of,
    record_from_row,
    utc_now,
)
from storage._sql import Runner
from storage.records import (
    NewReviewItem,
    ReviewItem,
)
from storage.schema import (
    review_items,
)

_REVIEW_INSERT = dialects.insert_statement(
    review_items, field_names(NewReviewItem), returning=True
)


class ReviewRepository:
    """The review queue: possible patient matches and unsure dose duplicates."""

    def __init__(self, conn: Connection, sql: Runner | None = None) -> None:
        self._conn = conn
        self._sql = sql or dialects.runner(conn)

    def insert(self, item: NewReviewItem) -> int:
        """Queue a pair for review."""
        return self._sql.insert(_REVIEW_INSERT, fields_of(item))

    def get(self, review_id: int) -> ReviewItem | None:
        """One item."""
        row = self._conn.execute(
            select(review_items).where(review_items.c.id == review_id)
        ).first()
        return record_from_row(ReviewItem, row) if row else None

    def list(
        self, status: str = "open", kind: str | None = None, limit: int = 100
    ) -> list[ReviewItem]:
        """Items by status, oldest first."""
        query = select(review_items).where(review_items.c.status == status)
        if kind:
            query = query.where(review_items.c.kind == kind)
        rows = self._conn.execute(query.order_by(review_items.c.id).limit(limit)).all()
        return [record_from_row(ReviewItem, row) for row in rows]

    def decide(self, review_id: int, status: str, who: str) -> None:
        """Record a decision (merged, separated, same, different)."""
        self._conn.execute(
            update(review_items)
            .where(review_items.c.id == review_id)
            .values(status=status, decided_at=utc_now(), decided_by=who[:80])
        )
