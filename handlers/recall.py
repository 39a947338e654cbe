"""Reminder/recall: the patients of a facility or region due or overdue as of a date.

The rules, in one place:

- **Due** and **overdue** come from the CDSi forecast of each vaccine group
  whose status is ``Not Complete``: a dose is *due* from its recommended
  date, and *overdue* from its past-due date (the forecast's own dates; a
  group without a past-due date is never overdue, only due). A dose that may
  be given (earliest date reached) but is not yet recommended is not listed.
- The seasonal groups (Influenza, COVID-19) are listed only when asked for
  with a vaccine group: in season every patient is due for them, and a
  recall list of everyone is no list.
- Who is left out: a patient hidden from the requester by disclosure (a
  locked record it did not submit: not even counted), a deceased patient,
  one whose registry status (PD1-16, HL7 table 0441) is inactive (``I``,
  ``L`` lost to follow-up, ``M`` moved or gone elsewhere, ``P`` permanently
  inactive), and one whose publicity code (PD1-11, HL7 table 0215) says
  ``01`` no reminder/recall. Codes for reminders only (04, 05, 09, 10) keep
  only what is due, not overdue; codes for recall only (06, 07, 11, 12) keep
  only what is overdue; "no calls" (03, 05, 07) withholds the phone.
- Each run is recorded (``storage.RecallRepository``) with the patients it
  listed; ``mark`` records a contact against a run, and a later run of the
  same organization shows each patient's latest contact.
- Contact details follow the requester's role (``population.Requester``): a
  school or child care organization gets the list without them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Literal, Protocol

import structlog

from handlers.forecasting import GROUP_CVX
from handlers.population import (
    Assessment,
    Contact,
    PopulationAssessor,
    PopulationError,
    Requester,
    Scope,
)
from storage import NewRecallContact, NewRecallRun, RecallListing

if TYPE_CHECKING:
    from storage import RecallContact, RecallRun, UnitOfWork

__all__ = [
    "CONTACT_METHODS",
    "SEASONAL_GROUPS",
    "DueGroup",
    "RecallCriteria",
    "RecallEntry",
    "RecallError",
    "RecallResult",
    "RecallService",
    "vaccine_group_named",
]

logger = structlog.get_logger()

Status = Literal["due", "overdue"]

#: Groups a default run leaves out (every patient is due for them in season).
SEASONAL_GROUPS = frozenset({"Influenza", "COVID-19"})

#: PD1-16 registry statuses (HL7 table 0441) of patients no longer followed.
INACTIVE_STATUSES = frozenset({"I", "L", "M", "P"})

#: PD1-11 publicity codes (HL7 table 0215): (reminders, recalls, calls) allowed.
_PUBLICITY: dict[str, tuple[bool, bool, bool]] = {
    "01": (False, False, False),
    "03": (True, True, False),
    "04": (True, False, True),
    "05": (True, False, False),
    "06": (False, True, True),
    "07": (False, True, False),
    "09": (True, False, True),
    "10": (True, False, True),
    "11": (False, True, True),
    "12": (False, True, True),
}

#: How a contact was made (``cairn recall mark --method``).
CONTACT_METHODS = ("letter", "phone", "text", "email", "visit", "other")


class RecallError(PopulationError):
    """A recall request that cannot be answered; the message names the field."""


def vaccine_group_named(name: str) -> str:
    """The CDSi vaccine group for a name given by a user (case and spacing ignored).

    Raises:
        RecallError: no such vaccine group.
    """
    key = name.strip().casefold().replace(" ", "")
    for group in GROUP_CVX:
        if group.casefold().replace(" ", "") == key:
            return group
    raise RecallError(
        f"--vaccine-group: unknown vaccine group {name!r} (known: {', '.join(sorted(GROUP_CVX))})"
    )


@dataclass(frozen=True, slots=True)
class RecallCriteria:
    """The filters of a run beyond its scope."""

    vaccine_group: str | None = None
    overdue_only: bool = False

    def text(self, scope: Scope) -> str:
        """The filters as recorded with the run."""
        return json.dumps(
            {
                "vaccine_group": self.vaccine_group,
                "age": scope.ages.text if scope.ages else None,
                "overdue_only": self.overdue_only,
            },
            sort_keys=True,
        )


@dataclass(frozen=True, slots=True)
class DueGroup:
    """One vaccine group a patient is due or overdue for."""

    vaccine_group: str
    dose_number: int | None
    status: Status
    since: date


@dataclass(frozen=True, slots=True)
class RecallEntry:
    """One patient on a recall list.

    Attributes:
        status: ``overdue`` if any group is overdue, else ``due``.
        since: the earliest date among the groups' (due or overdue since).
        contact: None for a role that may not see contact details.
        no_calls: the family asked not to be called (the phone is withheld).
        last_contact: the requester's latest recorded contact, if any.
    """

    patient_id: int
    region: str
    family_name: str
    given_name: str
    birth_date: date | None
    status: Status
    since: date
    due: tuple[DueGroup, ...]
    contact: Contact | None
    no_calls: bool
    last_contact: RecallContact | None

    def due_text(self) -> str:
        """What is due, as stored with the run and printed: ``MMR #2 overdue since 2026-01-01``."""
        return "; ".join(
            f"{g.vaccine_group}{f' #{g.dose_number}' if g.dose_number else ''} {g.status} since {g.since.isoformat()}"
            for g in self.due
        )


@dataclass(frozen=True, slots=True)
class RecallResult:
    """A recorded run and its list.

    Attributes:
        run: the run as recorded (its id is what ``mark`` takes).
        entries: the patients listed, overdue first, then by since date.
        left_out: patients in scope and visible but not listed, by reason
            (``deceased``, ``inactive``, ``no reminder/recall``).
    """

    run: RecallRun
    entries: tuple[RecallEntry, ...]
    left_out: dict[str, int]


class RecallDatabase(Protocol):
    """What the recall service writes through: one transaction."""

    def transaction(self) -> AbstractContextManager[UnitOfWork]:
        """A read-write unit of work."""
        ...

    def reading(self) -> AbstractContextManager[UnitOfWork]:
        """A read-only unit of work."""
        ...


def _due_groups(
    assessment: Assessment, as_of: date, criteria: RecallCriteria
) -> list[DueGroup]:
    out = []
    for group in assessment.groups:
        name = group.vaccine_group
        if name not in GROUP_CVX:
            continue
        if criteria.vaccine_group is not None:
            if name != criteria.vaccine_group:
                continue
        elif name in SEASONAL_GROUPS:
            continue
        if group.status != "Not Complete":
            continue
        if group.past_due is not None and group.past_due <= as_of:
            out.append(DueGroup(name, group.dose_number, "overdue", group.past_due))
        elif (
            not criteria.overdue_only
            and group.recommended is not None
            and group.recommended <= as_of
        ):
            out.append(DueGroup(name, group.dose_number, "due", group.recommended))
    return out


class RecallService:
    """Runs and records reminder/recall lists; records contacts made.

    Args:
        db: the database (the run is recorded in one transaction).
        assessor: forecasts the patients in scope (None: ``mark`` only).
        now: the clock (when a run or contact is recorded).
    """

    def __init__(
        self,
        db: RecallDatabase,
        assessor: PopulationAssessor | None,
        now: Callable[[], datetime],
    ) -> None:
        self._db = db
        self._assessor = assessor
        self._now = now

    def run(
        self,
        scope: Scope,
        requester: Requester,
        as_of: date,
        criteria: RecallCriteria = RecallCriteria(),
        progress: Callable[[int, int], None] | None = None,
    ) -> RecallResult:
        """List (and record) the patients in scope due or overdue as of ``as_of``."""
        if self._assessor is None:
            raise RecallError("recall: this service was built without a forecaster")
        groups = (
            [criteria.vaccine_group]
            if criteria.vaccine_group is not None
            else [g for g in GROUP_CVX if g not in SEASONAL_GROUPS]
        )
        assessments = self._assessor.each(
            scope,
            requester,
            as_of,
            progress,
            antigens=self._assessor.antigens_for(groups),
        )
        with self._db.reading() as uow:
            contacts = uow.recall.last_contacts(scope.region, requester.organization)
        left_out = {"deceased": 0, "inactive": 0, "no reminder/recall": 0}
        entries = []
        considered = 0
        for a in assessments:
            considered += 1
            if a.deceased:
                left_out["deceased"] += 1
                continue
            if a.registry_status in INACTIVE_STATUSES:
                left_out["inactive"] += 1
                continue
            reminders, recalls, calls = _PUBLICITY.get(
                a.publicity_code, (True, True, True)
            )
            if not (reminders or recalls):
                left_out["no reminder/recall"] += 1
                continue
            due = [
                g
                for g in _due_groups(a, as_of, criteria)
                if (g.status == "due" and reminders)
                or (g.status == "overdue" and recalls)
            ]
            if not due:
                continue
            status: Status = (
                "overdue" if any(g.status == "overdue" for g in due) else "due"
            )
            contact = a.contact
            if contact is not None and not calls:
                contact = Contact(
                    contact.guardian,
                    contact.relationship,
                    "",
                    contact.street,
                    contact.city,
                    contact.state,
                    contact.postal_code,
                )
            entries.append(
                RecallEntry(
                    a.patient_id,
                    a.region,
                    a.family_name,
                    a.given_name,
                    a.birth_date,
                    status,
                    min(g.since for g in due),
                    tuple(due),
                    contact,
                    not calls,
                    contacts.get(a.patient_id),
                )
            )
        entries.sort(key=lambda e: (e.status != "overdue", e.since, e.patient_id))
        with self._db.transaction() as uow:
            run = uow.recall.insert_run(
                NewRecallRun(
                    requester.organization,
                    scope.region,
                    scope.facility or "",
                    as_of,
                    criteria.text(scope),
                    self._now(),
                    considered,
                    len(entries),
                ),
                [
                    RecallListing(
                        e.region, e.patient_id, e.status, e.since, e.due_text()[:300]
                    )
                    for e in entries
                ],
            )
        # Counts only: never who was listed.
        logger.info(
            "recall_run",
            sender=requester.organization,
            region=scope.region,
            candidates=considered,
            count=len(entries),
        )
        return RecallResult(run, tuple(entries), left_out)

    def mark(
        self,
        run_id: int,
        requester: Requester,
        method: str,
        contacted_on: date,
        patient_ids: Sequence[int] | None = None,
    ) -> int:
        """Record that the patients a run listed were contacted; returns how many.

        Args:
            run_id: the run that listed them.
            requester: who made the contact: the organization that ran it.
            method: one of :data:`CONTACT_METHODS`.
            contacted_on: when.
            patient_ids: which of the run's patients (default: all of them).

        Raises:
            RecallError: an unknown run, another organization's run, an
                unknown method, or a patient the run did not list.
        """
        if method not in CONTACT_METHODS:
            raise RecallError(
                f"--method: {method!r} is not one of {', '.join(CONTACT_METHODS)}"
            )
        with self._db.transaction() as uow:
            run = uow.recall.get_run(run_id)
            # Another organization's run is answered as if it did not exist.
            if run is None or run.organization != requester.organization:
                raise RecallError(
                    f"run: no recall run {run_id} of {requester.organization}"
                )
            listed = {item.patient_id: item for item in uow.recall.listings(run_id)}
            chosen = list(listed) if patient_ids is None else list(patient_ids)
            missing = [pid for pid in chosen if pid not in listed]
            if missing:
                raise RecallError(
                    f"--patient: run {run_id} did not list patient(s) {', '.join(map(str, missing[:10]))}"
                )
            uow.recall.insert_contacts(
                [
                    NewRecallContact(
                        run_id,
                        listed[pid].region,
                        pid,
                        run.organization,
                        method,
                        contacted_on,
                    )
                    for pid in dict.fromkeys(chosen)
                ]
            )
        return len(dict.fromkeys(chosen))
