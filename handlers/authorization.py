"""The role check of the HL7 handlers: may this sender do this, and if not, the ERR and audit row.

The table lives in :mod:`handlers.roles`; this module turns a refusal into
what the VXU and QBP handlers answer (an AR whose ERR names the reason) and
the audit row that records it. Both handlers ask here, so every front that
goes through them (MLLP, SOAP) gets the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from handlers.context import MessageContext
from handlers.roles import Operation, may, refusal_text
from parsers import Hl7Error, Issue, Location, error
from storage import NewAuditEntry

__all__ = ["Refused", "check_role"]


@dataclass(frozen=True, slots=True)
class Refused:
    """An operation the sender's role does not allow."""

    issue: Issue
    audit: NewAuditEntry


def check_role(
    ctx: MessageContext, operation: Operation, profile: str
) -> Refused | None:
    """None when the sender's role allows ``operation``; else the ERR and the audit row.

    Args:
        ctx: the message's context (its principal and role).
        operation: what the message asks for.
        profile: the audit rows' profile (``VXU``, ``Z34``, ``Z44``).
    """
    role = ctx.role
    if may(role, operation):
        return None
    text = refusal_text(role, operation)
    issue = error(
        Hl7Error.APPLICATION_INTERNAL_ERROR,
        at=Location("MSH", 1, 9),
        app=None,
        text=text,
    )
    audit = NewAuditEntry(
        at=ctx.received_at,
        requester=ctx.sender,
        requester_region=ctx.region,
        patient_id=None,
        patient_region=None,
        journal_id=ctx.journal_id,
        query_tag="",
        action="authorize",
        outcome="refused-role",
        profile=profile,
        detail=f"role {role.value} may not {operation.value}",
    )
    return Refused(issue, audit)
