"""The review queue as a service: possible patient matches and unsure duplicate doses.

A person decides what the matcher and the de-duplicator would not: two
patient records are one child (merge) or two (separate), two dose records
are one event or two. The rules live here, so the CLI today and the web
console next give the same answer; every decision is audited with who made
it.

Rules:

- Only an open item can be decided; deciding it again is refused with the
  decision already made (a merge is undone with ``separate``, which is the
  one decision allowed on a merged item).
- A patient merge links the two records: both stay, the merged one reads
  through the survivor. ``separate`` undoes it.
- A dose decision marks one record a duplicate of the other (``same``) or
  clears the mark (``different``); every record stays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from storage import NewAuditEntry

if TYPE_CHECKING:
    from storage import PatientRecord, ReviewItem, UnitOfWork, VaccinationRecord

__all__ = ["Decision", "ReviewError", "ReviewService", "ReviewView"]

Action = Literal["merge", "separate"]


class ReviewError(Exception):
    """A review decision that cannot be made (no such item, already decided)."""


@dataclass(frozen=True, slots=True)
class ReviewView:
    """One item with the two records it pairs."""

    item: ReviewItem
    patients: tuple[PatientRecord, ...] = ()
    doses: tuple[VaccinationRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """What a decision did, for the caller to show."""

    item_id: int
    status: str
    summary: str


class ReviewService:
    """Lists, shows and decides review items.

    Args:
        now: the clock (UTC), for the audit rows.
    """

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now

    def list(
        self, uow: UnitOfWork, status: str = "open", kind: str | None = None
    ) -> list[ReviewItem]:
        """Items with a status (``open`` by default), optionally of one kind."""
        return uow.review.list(status, kind)

    def show(self, uow: UnitOfWork, item_id: int) -> ReviewView:
        """One item and both of its records."""
        item = self._get(uow, item_id)
        if item.kind == "patient":
            patients = tuple(
                p
                for p in (
                    uow.patients.get(item.region, item.left_id),
                    uow.patients.get(item.region, item.right_id),
                )
                if p is not None
            )
            return ReviewView(item, patients=patients)
        doses = tuple(
            d
            for d in (
                uow.vaccinations.get(item.region, item.left_id),
                uow.vaccinations.get(item.region, item.right_id),
            )
            if d is not None
        )
        return ReviewView(item, doses=doses)

    def decide(
        self, uow: UnitOfWork, item_id: int, action: Action, who: str
    ) -> Decision:
        """Merge (the two records are one) or separate (they are two)."""
        item = self._get(uow, item_id)
        if item.status != "open" and not (
            action == "separate" and item.status == "merged"
        ):
            raise ReviewError(
                f"review item {item_id} was already decided: {item.status}"
                + (f" by {item.decided_by}" if item.decided_by else "")
            )
        if item.kind == "patient":
            decision = self._patients(uow, item, action, who)
        else:
            decision = self._doses(uow, item, action, who)
        uow.audit.insert(
            NewAuditEntry(
                at=self._now(),
                requester=who[:180],
                requester_region=item.region,
                patient_id=item.left_id if item.kind == "patient" else None,
                patient_region=item.region,
                journal_id=None,
                query_tag="",
                action=f"review-{action}",
                outcome=decision.status,
                profile="",
                detail=f"review item {item.id} ({item.kind} {item.left_id} ~ {item.right_id})",
            )
        )
        return decision

    def _patients(
        self, uow: UnitOfWork, item: ReviewItem, action: Action, who: str
    ) -> Decision:
        if action == "merge":
            uow.patients.link(item.region, item.left_id, item.right_id, item.id)
            uow.review.decide(item.id, "merged", who)
            return Decision(
                item.id,
                "merged",
                f"patient {item.left_id} merged into {item.right_id} "
                f"(undo: cairn review separate {item.id})",
            )
        undone = uow.patients.unlink(item.region, item.left_id)
        uow.review.decide(item.id, "separated", who)
        return Decision(
            item.id,
            "separated",
            f"patients {item.left_id} and {item.right_id} kept apart"
            + (" (merge undone)" if undone else ""),
        )

    def _doses(
        self, uow: UnitOfWork, item: ReviewItem, action: Action, who: str
    ) -> Decision:
        if action == "merge":
            uow.vaccinations.mark_duplicate(
                item.region, item.left_id, item.right_id, "reviewed: same event"
            )
            uow.review.decide(item.id, "same", who)
            return Decision(
                item.id,
                "same",
                f"dose {item.left_id} is a duplicate of {item.right_id}",
            )
        uow.vaccinations.mark_duplicate(item.region, item.left_id, None, "")
        uow.review.decide(item.id, "different", who)
        return Decision(
            item.id,
            "different",
            f"doses {item.left_id} and {item.right_id} kept as different events",
        )

    @staticmethod
    def _get(uow: UnitOfWork, item_id: int) -> ReviewItem:
        item = uow.review.get(item_id)
        if item is None:
            raise ReviewError(f"no review item {item_id}")
        return item
