"""What the patient and dose services share: who files data, and the stores they audit in.

A service is told who is filing (:class:`Origin`: the organization, its
region, the journal row of the message or ``None`` for a front that has
none) and gets only the store methods it uses, as ``typing.Protocol`` s that
the storage repositories satisfy (STYLE rule 3). Nothing here knows HL7.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from storage import NewAuditEntry

if TYPE_CHECKING:
    from storage import NewReviewItem

__all__ = ["AuditStore", "Origin", "ReviewStore", "audit_entry"]


@dataclass(frozen=True, slots=True)
class Origin:
    """Who files data, for which region, under which journal row.

    Attributes:
        region: the region the organization's data belongs to.
        organization: the submitting organization (a VXU's MSH-4).
        journal_id: the journal row of the message (``None``: no message).
        channel: how the data came (the audit rows' profile, e.g. ``VXU``).
    """

    region: str
    organization: str
    journal_id: int | None
    channel: str


class AuditStore(Protocol):
    """The audit log, as the services write it."""

    def insert(self, entry: NewAuditEntry) -> None:
        """Append one audit row."""


class ReviewStore(Protocol):
    """The review queue, as the services fill it."""

    def insert(self, item: NewReviewItem) -> int:
        """Open one review item; returns its id."""


def audit_entry(
    origin: Origin,
    at: datetime,
    patient_id: int,
    action: str,
    outcome: str,
    detail: str = "",
) -> NewAuditEntry:
    """An audit row of a change ``origin`` made to one of its region's patients."""
    return NewAuditEntry(
        at=at,
        requester=origin.organization,
        requester_region=origin.region,
        patient_id=patient_id,
        patient_region=origin.region,
        journal_id=origin.journal_id,
        query_tag="",
        action=action,
        outcome=outcome,
        profile=origin.channel,
        detail=detail[:300],
    )
