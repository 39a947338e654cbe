"""Population work: the forecast of every patient in a scope, on both cores.

Reminder/recall, coverage and requirement checks over a list ask the same
question of many patients: what the registry may show this organization of
each, and what the CDSi forecast says of it as of a date. This module answers
it once for all three.

- :class:`Requester` is who asks (an organization and its role) and
  :class:`Scope` what is asked about (a region, or one facility's patients in
  it, optionally an age cohort).
- Patients are read in chunks (``storage.CohortRepository``, five statements
  a chunk), passed through disclosure (``handlers.disclosure``: a locked
  record is hidden from an organization that did not submit it and shown to
  its submitters as their own data) and forecast.
- With ``workers`` > 0 each chunk is read and forecast in a worker process
  (``concurrent.futures``, spawned processes, each with its own database
  connection and a copy of the forecaster): the forecast is CPU-bound Python,
  and the machine's cores are the only way past one core's speed.

The result per patient, :class:`Assessment`, is plain data: no storage
record and no forecaster object crosses a process boundary or leaves here.
Contact details are left out of it (``contact`` is None) for a role that may
not see them (DESIGN.md: schools and child care see doses and forecast, not
contact details).
"""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Protocol

from forecast import add_duration
from handlers.disclosure import view_of_history
from handlers.forecasting import CdsiForecastService
from handlers.roles import Role, view_of

if TYPE_CHECKING:
    from storage import PatientHistory, UnitOfWork

__all__ = [
    "ROLES",
    "AgeRange",
    "AntigenStatus",
    "Assessment",
    "Contact",
    "GroupStatus",
    "PopulationAssessor",
    "PopulationError",
    "Requester",
    "Scope",
    "parse_age_range",
]

#: The roles of CAIR's confidentiality agreement (handlers/roles.py): a
#: school, child care or foster care organization has ``requirements``.
ROLES: tuple[str, ...] = tuple(role.value for role in Role)

#: Patients read (and forecast) together: one chunk is one task for a worker.
CHUNK = 400


class PopulationError(ValueError):
    """A population request that cannot be answered; the message names the field."""


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asks: an organization (a sending facility id), its region and role.

    The role decides what is shown (``handlers.roles.view_of``: the
    ``requirements`` role sees doses and forecast, no contact details) and
    what may be asked (:meth:`check_scope`). The CLI takes role and region
    from the organization registered for the facility (``cairn org``), and
    from the configuration and ``--role`` only for a facility no
    organization claims (an open, development registry).
    """

    organization: str
    region: str
    role: Role = Role.PROVIDER

    @property
    def sees_contacts(self) -> bool:
        """Whether this requester may see addresses, phones and guardians."""
        return view_of(self.role) == "full"

    def check_scope(self, scope: Scope) -> None:
        """Refuse a scope outside what this requester may ask about.

        An organization asks about its own region only (DESIGN.md: a user
        sees only its region), and about one facility's patients only if it
        is that facility; registry staff may ask about any. The role is the
        caller's word until the identity issue authenticates it.

        Raises:
            PopulationError: the scope is another region's or facility's.
        """
        if self.role == Role.STAFF:
            return
        if scope.region != self.region:
            raise PopulationError(
                f"--region: {self.organization} belongs to region {self.region}, not {scope.region}"
            )
        if scope.facility is not None and scope.facility != self.organization:
            raise PopulationError(
                f"--facility: {self.organization} may list its own patients only, not {scope.facility}'s"
            )


@dataclass(frozen=True, slots=True)
class AgeRange:
    """An age cohort as of a date: the birth dates it covers (both ends optional)."""

    text: str
    born_after: date | None
    born_on_or_before: date | None


@dataclass(frozen=True, slots=True)
class Scope:
    """Which patients: a region's, or one facility's in it, optionally an age cohort.

    Attributes:
        region: the region that holds the patients (every patient query
            names one).
        facility: only the patients this facility submitted data for.
        ages: only the patients of this age cohort.
        patient_ids: only these patients (a school's list), in this order.
    """

    region: str
    facility: str | None = None
    ages: AgeRange | None = None
    patient_ids: tuple[int, ...] | None = None


_AGE = re.compile(r"^\s*(\d{1,3})\s*([ym]?)\s*$", re.IGNORECASE)


def _age_bound(text: str, field: str) -> tuple[int, int]:
    """``4``/``4y`` -> (48 months, ...) as (months, unit months)."""
    match = _AGE.match(text)
    if match is None:
        raise PopulationError(
            f"{field}: {text!r} is not an age (a whole number of years, or months with 'm', e.g. 4, 19m)"
        )
    n, unit = int(match.group(1)), (match.group(2) or "y").lower()
    return (n * 12, 12) if unit == "y" else (n, 1)


def parse_age_range(text: str, as_of: date, field: str = "--age") -> AgeRange:
    """Parse ``MIN..MAX`` (either end may be left out) into birth-date bounds.

    Ages are whole years (``4..6``: from the 4th birthday to the day before
    the 7th) or months with ``m`` (``19m..35m``), as of ``as_of``; both ends
    are inclusive, as people say them.

    Raises:
        PopulationError: the text is not a range of ages, or MIN > MAX.
    """
    if ".." not in text:
        raise PopulationError(f"{field}: {text!r} is not a range MIN..MAX (e.g. 4..6)")
    low, high = text.split("..", 1)
    born_on_or_before = born_after = None
    low_months = high_months = None
    if low.strip():
        low_months, _unit = _age_bound(low, field)
        born_on_or_before = add_duration(as_of, -low_months, 0)
    if high.strip():
        high_months, unit = _age_bound(high, field)
        # Age MAX lasts until the day before age MAX + 1 unit.
        born_after = add_duration(as_of, -(high_months + unit), 0)
    if low_months is not None and high_months is not None and low_months > high_months:
        raise PopulationError(f"{field}: {text!r}: the lower age is above the upper")
    return AgeRange(text.strip(), born_after, born_on_or_before)


@dataclass(frozen=True, slots=True)
class Contact:
    """How to reach a patient's family: the first next of kin, else the patient."""

    guardian: str
    relationship: str
    phone: str
    street: str
    city: str
    state: str
    postal_code: str

    @property
    def address(self) -> str:
        """One line of address."""
        place = " ".join(p for p in (self.state, self.postal_code) if p)
        return ", ".join(p for p in (self.street, self.city, place) if p)


@dataclass(frozen=True, slots=True)
class GroupStatus:
    """The forecast of one vaccine group as of the date asked."""

    vaccine_group: str
    status: str
    dose_number: int | None
    earliest: date | None
    recommended: date | None
    past_due: date | None


@dataclass(frozen=True, slots=True)
class AntigenStatus:
    """One antigen: its forecast and the doses that counted (valid) toward it."""

    antigen: str
    status: str
    earliest: date | None
    valid_doses: tuple[tuple[date, str], ...]


@dataclass(frozen=True, slots=True)
class Assessment:
    """One patient as the requester may see it, with its forecast.

    ``contact`` is None when the requester's role may not see contact
    details. ``access`` is ``full`` or ``own-data`` (a locked record shown to
    one of its submitters, from its own data only).
    """

    patient_id: int
    region: str
    family_name: str
    given_name: str
    birth_date: date | None
    access: str
    publicity_code: str
    registry_status: str
    deceased: bool
    contact: Contact | None
    groups: tuple[GroupStatus, ...]
    antigens: tuple[AntigenStatus, ...]

    def group(self, name: str) -> GroupStatus | None:
        """The forecast of one vaccine group."""
        return next((g for g in self.groups if g.vaccine_group == name), None)

    def antigen(self, name: str) -> AntigenStatus | None:
        """The state of one antigen."""
        return next((a for a in self.antigens if a.antigen == name), None)


def assess_history(
    uow: UnitOfWork,
    history: PatientHistory,
    requester: Requester,
    as_of: date,
    forecasts: CdsiForecastService,
    antigens: frozenset[str] | None = None,
) -> Assessment | None:
    """Disclose and forecast one patient read in bulk; None when hidden from the requester."""
    view = view_of_history(
        uow, requester.organization, history, view_of(requester.role)
    )
    if view is None:
        return None
    record = view.record
    result, doses = forecasts.run(view, as_of, antigens)
    valid: dict[str, list[tuple[date, str]]] = {}
    for ev in result.dose_evaluations:
        if ev.status == "Valid":
            dose = doses[ev.dose_index]
            valid.setdefault(ev.antigen, []).append((dose.administered_on, dose.cvx))
    groups = []
    states = []
    for g in result.vaccine_groups:
        groups.append(
            GroupStatus(
                g.vaccine_group,
                g.status,
                g.dose_number,
                g.earliest,
                g.recommended,
                g.past_due,
            )
        )
        for a in g.antigens:
            states.append(
                AntigenStatus(
                    a.antigen, a.status, a.earliest, tuple(valid.get(a.antigen, ()))
                )
            )
    contact = None
    if requester.sees_contacts:
        kin = view.next_of_kin[0] if view.next_of_kin else None
        if kin is not None:
            contact = Contact(
                f"{kin.given_name} {kin.family_name}".strip(),
                kin.relationship,
                kin.phone or record.phone,
                kin.street or record.street,
                kin.city if kin.street else record.city,
                kin.state if kin.street else record.state,
                kin.postal_code if kin.street else record.postal_code,
            )
        else:
            contact = Contact(
                "",
                "",
                record.phone,
                record.street,
                record.city,
                record.state,
                record.postal_code,
            )
    return Assessment(
        record.id,
        record.region,
        record.family_name,
        record.given_name,
        record.birth_date,
        view.access,
        record.publicity_code,
        record.registry_status,
        record.death_indicator == "Y" or record.death_date is not None,
        contact,
        tuple(groups),
        tuple(states),
    )


class ReadableDatabase(Protocol):
    """What the assessor needs of the database: reader units of work."""

    def reading(self) -> AbstractContextManager[UnitOfWork]:
        """A read-only unit of work."""
        ...

    def worker_url(self) -> str | None:
        """The URL a worker process opens the database with, if any."""
        ...


def _assess_chunk(
    db: ReadableDatabase,
    forecasts: CdsiForecastService,
    region: str,
    ids: Sequence[int],
    requester: Requester,
    as_of: date,
    antigens: frozenset[str] | None,
) -> list[Assessment]:
    out = []
    with db.reading() as uow:
        for history in uow.cohort.histories(region, ids):
            assessed = assess_history(
                uow, history, requester, as_of, forecasts, antigens
            )
            if assessed is not None:
                out.append(assessed)
    return out


#: A worker process's database and forecaster, set once by its initializer.
_WORKER: dict[str, object] = {}


def _init_worker(url: str, forecasts: CdsiForecastService) -> None:
    from storage import open_database

    _WORKER["db"] = open_database(url, pool_size=1)
    _WORKER["forecasts"] = forecasts


def _worker_chunk(
    region: str,
    ids: Sequence[int],
    requester: Requester,
    as_of: date,
    antigens: frozenset[str] | None,
) -> list[Assessment]:
    db = _WORKER["db"]
    forecasts = _WORKER["forecasts"]
    assert isinstance(forecasts, CdsiForecastService)
    return _assess_chunk(db, forecasts, region, ids, requester, as_of, antigens)  # type: ignore[arg-type]


class PopulationAssessor:
    """Forecasts every patient of a scope that a requester may see.

    Args:
        db: the database (reader units of work).
        forecasts: the CDSi forecast service.
        workers: worker processes (0: in this process, for tests and small
            lists; an in-memory database is always assessed in process).
        chunk: patients per task.
    """

    def __init__(
        self,
        db: ReadableDatabase,
        forecasts: CdsiForecastService,
        *,
        workers: int = 0,
        chunk: int = CHUNK,
    ) -> None:
        self._db = db
        self._forecasts = forecasts
        self._workers = workers
        self._chunk = max(1, chunk)

    def antigens_for(
        self, groups: Iterable[str] = (), antigens: Iterable[str] = ()
    ) -> frozenset[str]:
        """The antigens to forecast for these vaccine groups and antigens.

        An antigen brings the other antigens of its vaccine group, so that
        every group forecast is whole.
        """
        data = self._forecasts.antigens_of
        wanted = set(data(groups))
        for antigen in antigens:
            for members in self._forecasts.vaccine_groups().values():
                if antigen in members:
                    wanted |= set(members)
        return frozenset(wanted)

    def patient_ids(self, scope: Scope) -> list[int]:
        """The patients in scope, before disclosure (lowest id first)."""
        if scope.patient_ids is not None:
            return list(dict.fromkeys(scope.patient_ids))
        ages = scope.ages
        with self._db.reading() as uow:
            return uow.cohort.patient_ids(
                scope.region,
                facility=scope.facility,
                born_after=ages.born_after if ages else None,
                born_on_or_before=ages.born_on_or_before if ages else None,
            )

    def assess(
        self,
        scope: Scope,
        requester: Requester,
        as_of: date,
        progress: Callable[[int, int], None] | None = None,
        antigens: frozenset[str] | None = None,
    ) -> list[Assessment]:
        """Every patient in scope the requester may see, forecast as of ``as_of``.

        Args:
            scope: which patients.
            requester: who asks (disclosure and contact details follow it).
            as_of: the assessment date.
            progress: called with (patients done, patients in scope) after
                each chunk.
            antigens: forecast only these antigens (:meth:`antigens_for`);
                None forecasts every one.

        Returns:
            The assessments, in the order of the scope (lowest id first, or
            the order of ``scope.patient_ids``); hidden patients left out.
        """
        return list(self.each(scope, requester, as_of, progress, antigens))

    def each(
        self,
        scope: Scope,
        requester: Requester,
        as_of: date,
        progress: Callable[[int, int], None] | None = None,
        antigens: frozenset[str] | None = None,
    ) -> Iterator[Assessment]:
        """:meth:`assess`, one patient at a time: a region is never held whole.

        The scope is checked before anything is read.
        """
        requester.check_scope(scope)
        return self._each(scope, requester, as_of, progress, antigens)

    def _each(
        self,
        scope: Scope,
        requester: Requester,
        as_of: date,
        progress: Callable[[int, int], None] | None,
        antigens: frozenset[str] | None,
    ) -> Iterator[Assessment]:
        ids = self.patient_ids(scope)
        chunks = [ids[i : i + self._chunk] for i in range(0, len(ids), self._chunk)]
        total = len(ids)
        if progress is not None:
            progress(0, total)
        url = self._db.worker_url() if self._workers > 0 and len(chunks) > 1 else None
        if url is None:
            done = 0
            for part in chunks:
                yield from _assess_chunk(
                    self._db,
                    self._forecasts,
                    scope.region,
                    part,
                    requester,
                    as_of,
                    antigens,
                )
                done += len(part)
                if progress is not None:
                    progress(done, total)
        else:
            for assessed in self._in_workers(
                url, scope.region, chunks, requester, as_of, progress, antigens
            ):
                yield from assessed

    def _in_workers(
        self,
        url: str,
        region: str,
        chunks: list[list[int]],
        requester: Requester,
        as_of: date,
        progress: Callable[[int, int], None] | None,
        antigens: frozenset[str] | None,
    ) -> Iterator[list[Assessment]]:
        total = sum(len(c) for c in chunks)
        # Spawned, not forked: the parent may hold threads and open
        # connections that a forked child must not share.
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(
            max_workers=min(self._workers, len(chunks)),
            mp_context=context,
            initializer=_init_worker,
            initargs=(url, self._forecasts),
        )
        try:
            futures: list[Future[list[Assessment]] | None] = [
                pool.submit(_worker_chunk, region, part, requester, as_of, antigens)
                for part in chunks
            ]
            done = 0
            for i, part in enumerate(chunks):
                # In order: a chunk's result is yielded as soon as it and
                # every chunk before it are done, then let go of.
                future = futures[i]
                assert future is not None
                futures[i] = None
                yield future.result()
                done += len(part)
                if progress is not None:
                    progress(done, total)
        finally:
            # Interrupted (Ctrl-C, an error, the consumer stopping): the
            # chunks not started are dropped, not worked through first.
            pool.shutdown(wait=True, cancel_futures=True)
