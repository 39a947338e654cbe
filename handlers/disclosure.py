"""Disclosure: what one organization may see of one stored patient.

The rule (DESIGN.md, "Who is speaking, and what they may see"): a patient
whose record is locked (PD1-12 protection indicator ``Y``, CAIR's "decline to
share") is invisible to every organization except those that submitted data
for it, and those see it only as far as they submitted the data themselves:
their own doses, the identifiers and next of kin they reported, and the
demographics they sent. Never another organization's MRN, address or doses.

The record is read once here (:class:`PatientView`), and every answer (Z32,
Z42, Z31 and the forecast inside them) is built from that view, so a locked
record cannot leak through a path that reads storage on its own.

The requester's role narrows the view further (handlers/roles.py): a school,
child care facility or other ``requirements`` role sees the doses and the
forecast to confirm requirements, never contact details (address, phone,
e-mail: PID-11, PID-13) nor guardians (NK1, and the mother's maiden name
in PID-6), and of PID-3 only the registry's id and the identifiers it
submitted or named in its query: never a social security number.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from datetime import date
from typing import TYPE_CHECKING, Literal

from handlers.roles import View

if TYPE_CHECKING:
    from storage import (
        NextOfKinRecord,
        ObservationRecord,
        PatientHistory,
        PatientIdentifier,
        PatientRecord,
        PatientVersion,
        UnitOfWork,
        VaccinationRecord,
    )

__all__ = [
    "LOCKED",
    "Access",
    "PatientView",
    "access_from",
    "access_of",
    "read_view",
    "view_of_history",
]

#: PD1-12 protection indicator value of a locked record (HL7 table 0136).
LOCKED = "Y"

Access = Literal["full", "own-data", "hidden"]

#: Demographic fields a partial view takes from the requester's own
#: submission; every other field of the record is blanked.
_DEMOGRAPHIC_FIELDS = (
    "birth_date",
    "sex",
    "family_name",
    "given_name",
    "middle_name",
    "suffix",
    "mother_maiden_family",
    "mother_maiden_given",
    "race",
    "ethnicity",
    "street",
    "city",
    "state",
    "postal_code",
    "country",
    "phone",
    "email",
    "multiple_birth",
    "birth_order",
    "publicity_code",
    "publicity_date",
    "registry_status",
    "registry_status_date",
    "death_indicator",
    "death_date",
)


@dataclass(frozen=True, slots=True)
class PatientView:
    """One patient as one requester may see it, read once.

    Attributes:
        record: the demographics to show (a locked record's are the
            requester's own submission).
        next_of_kin: the next of kin to show.
        doses: the doses to show and to forecast from, oldest first.
        observations: the observations that go with them.
        access: ``full``, or ``own-data`` for a locked record shown to one of
            its submitters.
    """

    record: PatientRecord
    next_of_kin: tuple[NextOfKinRecord, ...]
    doses: tuple[VaccinationRecord, ...]
    observations: tuple[ObservationRecord, ...]
    access: Access = "full"


def access_of(uow: UnitOfWork, requester: str, record: PatientRecord) -> Access:
    """How much of a stored patient an organization may see.

    A merged view (records merged into this one by review) is locked when
    any of its records is, and its submitters are those of all its records:
    a locked record merged into an open one must not become everyone's.

    The same work is done whether the record is locked or not (one read of
    its members and of each one's submitters), so that the time an answer
    takes does not tell a locked record from another one (issue 14, item 8).
    """
    region = record.region
    submitters: set[str] = set()
    locked_member = False
    for member in uow.patients.merged_into(region, record.id):
        submitters |= uow.patients.submitters(region, member)
        if member != record.id:
            merged = uow.patients.get(region, member)
            locked_member = locked_member or (
                merged is not None and merged.protection == LOCKED
            )
    return access_from(
        requester, record, frozenset(submitters), locked_member=locked_member
    )


def access_from(
    requester: str,
    record: PatientRecord,
    submitters: frozenset[str],
    *,
    locked_member: bool = False,
) -> Access:
    """The rule of :func:`access_of`, on submitters already read (bulk reads).

    ``locked_member``: a record merged into this one is locked.
    """
    if record.protection != LOCKED and not locked_member:
        return "full"
    return "own-data" if requester in submitters else "hidden"


#: PID-3 identifier type of a social security number (HL7 table 0203).
_SOCIAL_SECURITY = "SS"

#: Fields a ``requirements`` view never shows: contact details (PID-11,
#: PID-13) and the mother's maiden name (PID-6), which names a guardian.
_CONTACT_FIELDS = (
    "street",
    "city",
    "state",
    "postal_code",
    "country",
    "phone",
    "email",
    "mother_maiden_family",
    "mother_maiden_given",
)


def view_of_history(
    uow: UnitOfWork,
    requester: str,
    history: PatientHistory,
    scope: View = "full",
) -> PatientView | None:
    """What ``requester`` may see of a patient read in bulk; None when hidden.

    A record shown in full is built from the bulk read; a locked record shown
    to one of its submitters goes through :func:`read_view`, the one place
    that decides what "own data" is. ``scope`` is the role's view, as for
    :func:`read_view`.
    """
    access = access_from(
        requester,
        history.record,
        history.submitters,
        locked_member=history.locked_member,
    )
    if access == "hidden":
        return None
    if access == "own-data":
        return read_view(uow, requester, history.record, access, scope)
    return _scoped(
        PatientView(
            history.record, history.next_of_kin, history.doses, history.observations
        ),
        scope,
        requester,
    )


def read_view(
    uow: UnitOfWork,
    requester: str,
    record: PatientRecord,
    access: Access,
    scope: View = "full",
    named: Iterable[tuple[str, str]] = (),
) -> PatientView:
    """Read what ``requester`` may see of ``record`` (never call with ``hidden``).

    ``scope`` is the requester's role's view: ``requirements`` drops the
    contact details, the mother's maiden name and the next of kin, whatever
    the access, and keeps only the identifiers the requester submitted or
    named (``named``: the (value, assigning authority) pairs of its query,
    QPD-3), never a social security number (:func:`_shown_identifiers`).
    """
    return _scoped(_read_view(uow, requester, record, access), scope, requester, named)


def _scoped(
    view: PatientView,
    scope: View,
    requester: str,
    named: Iterable[tuple[str, str]] = (),
) -> PatientView:
    """A view as a role sees it: ``requirements`` without contact details or kin."""
    if scope == "full":
        return view
    blank: dict[str, object] = dict.fromkeys(_CONTACT_FIELDS, "")
    return replace(
        view,
        record=replace(
            view.record,
            identifiers=_shown_identifiers(view.record, requester, named),
            **blank,  # type: ignore[arg-type]
        ),
        next_of_kin=(),
    )


def _shown_identifiers(
    record: PatientRecord, requester: str, named: Iterable[tuple[str, str]]
) -> tuple[PatientIdentifier, ...]:
    """The PID-3 identifiers a ``requirements`` role may see (policy decision).

    A school or child care facility confirms requirements: it gets the
    registry's own id (written by the answer, not stored here) and the
    identifiers it already holds (those it submitted, those its query
    named by value and assigning authority; a query naming no authority
    matches the value alone), never another organization's MRN, Medicaid
    number or any social security number (type SS).
    """
    asked = {(value, authority) for value, authority in named}
    values = {value for value, authority in asked if not authority}
    return tuple(
        i
        for i in record.identifiers
        if i.type.upper() != _SOCIAL_SECURITY
        and (
            i.submitted_by == requester
            or (i.value, i.authority) in asked
            or i.value in values
        )
    )


def _read_view(
    uow: UnitOfWork, requester: str, record: PatientRecord, access: Access
) -> PatientView:
    assert access != "hidden"
    region, patient_id = record.region, record.id
    kin = uow.patients.next_of_kin(region, patient_id)
    observations = uow.observations.for_patient(region, patient_id)
    if access == "full":
        doses = uow.vaccinations.for_patient(region, patient_id)
        return PatientView(record, tuple(kin), tuple(doses), tuple(observations))
    # Own data only: the requester's own records, consolidated among themselves
    # (a dose it reported twice is one), whatever other senders reported.
    everything = uow.vaccinations.for_patient(region, patient_id, consolidated=False)
    own = [d for d in everything if d.sending_facility == requester]
    own_ids = {d.id for d in own}
    doses = [d for d in own if d.duplicate_of is None or d.duplicate_of not in own_ids]
    shown = {d.id for d in doses}
    versions = uow.patients.versions(region, patient_id)
    return PatientView(
        _own_demographics(record, requester, versions),
        tuple(k for k in kin if k.submitted_by == requester),
        tuple(doses),
        tuple(o for o in observations if o.vaccination_id in shown),
        "own-data",
    )


def _own_demographics(
    record: PatientRecord, requester: str, versions: list[PatientVersion]
) -> PatientRecord:
    """The record as the requester itself last submitted it."""
    mine = [v for v in versions if v.kind == "submitted" and v.sender == requester]
    sent = mine[-1].demographics if mine else {}
    values: dict[str, object] = {}
    types = {f.name: f.type for f in fields(record)}
    for name in _DEMOGRAPHIC_FIELDS:
        value = sent.get(name)
        if "date" in str(types[name]) and isinstance(value, str) and value:
            values[name] = date.fromisoformat(value)
        elif value is None or value == "":
            values[name] = None if "None" in str(types[name]) else ""
        else:
            values[name] = value
    return replace(
        record,
        identifiers=tuple(i for i in record.identifiers if i.submitted_by == requester),
        **values,  # type: ignore[arg-type]
    )
