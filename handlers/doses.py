"""The dose service: add, update and delete reported doses, with ownership and de-duplication.

The rules:

- A dose is identified by its reporting organization and that
  organization's own id for it (namespace, filler id: a VXU's ORC-3); the
  placeholder id ``9999`` identifies nothing.
- Ownership: only the organization that reported a dose changes it. An
  update or delete (action ``U`` or ``D``, HL7 table 0323) of a dose this
  organization did not report for this patient (or for a record merged into
  it) is refused, and nothing is changed. An add of a dose the organization
  already reported for the patient updates it.
- A delete is soft and audited: the record stays, with who removed it.
- De-duplication: a new dose is compared (:class:`handlers.dedup.DoseDeduplicator`)
  with the patient's consolidated doses; the same event is marked a
  duplicate (every record stays stored), an unsure pair goes to review.
- Observations are stored with their dose; those of a report with no dose
  (CVX 998) are about the patient.

The service takes and returns plain domain objects (storage's records and
:class:`DoseReport`), never HL7; it gets only the store methods it uses.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Literal, Protocol

from handlers.filing import AuditStore, Origin, ReviewStore, audit_entry
from parsers.codes import CHANGES, PLACEHOLDER_FILLER_ID, ActionCode
from storage import NewReviewItem

if TYPE_CHECKING:
    from handlers.dedup import DoseDeduplicator
    from storage import NewObservation, NewVaccination, VaccinationRecord

__all__ = [
    "DoseOutcome",
    "DoseReport",
    "DoseService",
    "DoseStore",
    "ObservationStore",
    "SurvivorLookup",
]


class DoseStore(Protocol):
    """The vaccination repository methods the service uses."""

    def find_by_fillers(
        self, region: str, sending_facility: str, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], VaccinationRecord]:
        """The newest record per (namespace, filler id) a sender reported."""

    def for_patient(self, region: str, patient_id: int) -> list[VaccinationRecord]:
        """A patient's consolidated doses, oldest first."""

    def add(self, vaccination: NewVaccination) -> VaccinationRecord:
        """Store a reported event; returns it as stored."""

    def update(
        self, region: str, vaccination_id: int, vaccination: NewVaccination
    ) -> None:
        """Replace a stored event with its sender's newer version."""

    def soft_delete(self, region: str, vaccination_id: int, when: datetime) -> None:
        """Take a dose out of the consolidated view; the record stays."""

    def mark_duplicate(
        self, region: str, vaccination_id: int, of_id: int | None, reason: str
    ) -> None:
        """Mark a record a duplicate of another (None: not a duplicate)."""


class SurvivorLookup(Protocol):
    """Which patient a (possibly merged) patient record reads through."""

    def survivor(self, region: str, patient_id: int) -> int:
        """The surviving patient of a merge (the patient itself when not merged)."""


class ObservationStore(Protocol):
    """The observation repository method the service uses."""

    def insert_many(self, items: Sequence[NewObservation]) -> None:
        """Store observations."""


@dataclass(frozen=True, slots=True)
class DoseReport:
    """One reported vaccination event and its observations.

    Attributes:
        vaccination: the event (its region, patient, journal row and sender
            are set by the service from the :class:`Origin`); ``None``: the
            report carries observations about the patient only (CVX 998).
        observations: the observations reported with it (their dose is set
            by the service).
    """

    vaccination: NewVaccination | None
    observations: tuple[NewObservation, ...] = ()


Action = Literal["added", "updated", "deleted", "observed", "refused"]


@dataclass(frozen=True, slots=True)
class DoseOutcome:
    """What became of one report.

    Attributes:
        action: ``added``, ``updated``, ``deleted``, ``observed`` (patient
            observations stored) or ``refused`` (an update or delete of a
            dose this organization did not report for this patient).
        vaccination_id: the stored record (None when refused or observed).
    """

    action: Action
    vaccination_id: int | None = None

    @property
    def stored(self) -> bool:
        """Whether the report was stored (added, updated or observed)."""
        return self.action in {"added", "updated", "observed"}


def _view_order(record: VaccinationRecord) -> tuple[date, int]:
    """The consolidated view's order (VaccinationRepository.for_patient)."""
    return (record.administered_on, record.id)


def _administered(record: VaccinationRecord) -> date:
    """The date a record was given (the consolidated view's first sort key)."""
    return record.administered_on


def _identifies(filler_id: str) -> bool:
    """Whether a filler id names a dose (the placeholder names none)."""
    return bool(filler_id) and filler_id != PLACEHOLDER_FILLER_ID


class DoseService:
    """Applies reported doses to one patient.

    Args:
        doses: the vaccination store.
        patients: which patient a merged record reads through.
        observations: the observation store.
        review: the review queue (unsure duplicates).
        audit: the audit log (deletes).
        dedup: compares two doses.
        now: the clock (UTC).
        review_score: the score of the review item for two doses that may
            be one (an "unsure" verdict).
    """

    def __init__(
        self,
        doses: DoseStore,
        patients: SurvivorLookup,
        observations: ObservationStore,
        review: ReviewStore,
        audit: AuditStore,
        dedup: DoseDeduplicator,
        now: Callable[[], datetime],
        review_score: float = 0.5,
    ) -> None:
        self._doses = doses
        self._patients = patients
        self._observations = observations
        self._review = review
        self._audit = audit
        self._dedup = dedup
        self._now = now
        self._review_score = review_score

    def report(
        self,
        patient_id: int,
        reports: Sequence[DoseReport],
        origin: Origin,
        new_patient: bool = False,
    ) -> list[DoseOutcome]:
        """Apply an organization's reports for one patient, in order.

        Args:
            patient_id: the patient (as filed by the patient service).
            reports: the reports, in the order they were made.
            origin: who reports them.
            new_patient: the patient was just created (it has no doses yet,
                which saves a read).

        Returns:
            One outcome per report, in the same order.
        """
        now = self._now()
        region, sender = origin.region, origin.organization
        vaccinations = [
            None
            if r.vaccination is None
            else self._own(r.vaccination, origin, patient_id)
            for r in reports
        ]
        # One read for every id of the reports; doses added by these reports
        # are put in ``by_filler`` as they are stored.
        by_filler = self._doses.find_by_fillers(
            region,
            sender,
            [
                (v.filler_namespace, v.filler_id)
                for v in vaccinations
                if v is not None and _identifies(v.filler_id)
            ],
        )
        survivors: dict[int, int] = {}
        # The consolidated view: a new patient has no doses yet.
        view: list[VaccinationRecord] | None = [] if new_patient else None
        outcomes: list[DoseOutcome] = []
        observations: list[NewObservation] = []
        for report, new in zip(reports, vaccinations, strict=True):
            if new is None:
                observations.extend(_for_dose(report, origin, patient_id, None))
                outcomes.append(DoseOutcome("observed"))
                continue
            key = (new.filler_namespace, new.filler_id)
            existing = by_filler.get(key) if _identifies(new.filler_id) else None
            if existing is not None and existing.patient_id not in survivors:
                survivors[existing.patient_id] = self._patients.survivor(
                    region, existing.patient_id
                )
            owned = (
                existing is not None and survivors[existing.patient_id] == patient_id
            )
            if new.action_code in CHANGES and not owned:
                outcomes.append(DoseOutcome("refused"))
                continue
            if new.action_code == ActionCode.DELETE:
                assert existing is not None
                self._doses.soft_delete(region, existing.id, now)
                view = None
                # Soft and audited: the record stays, and who removed it is kept.
                self._audit.insert(
                    audit_entry(origin, now, patient_id, "delete-dose", "soft-deleted")
                )
                outcomes.append(DoseOutcome("deleted", existing.id))
                continue
            if existing is not None and owned:
                self._doses.update(region, existing.id, new)
                view = None
                vaccination_id = existing.id
                outcomes.append(DoseOutcome("updated", vaccination_id))
            else:
                added = self._doses.add(new)
                vaccination_id = added.id
                if _identifies(new.filler_id):
                    by_filler[key] = added
                view = self._deduplicate(origin, now, patient_id, added, new, view)
                outcomes.append(DoseOutcome("added", vaccination_id))
            observations.extend(_for_dose(report, origin, patient_id, vaccination_id))
        if observations:
            self._observations.insert_many(observations)
        return outcomes

    @staticmethod
    def _own(new: NewVaccination, origin: Origin, patient_id: int) -> NewVaccination:
        """The report as this organization's, for this patient, from this journal row."""
        if (
            new.region == origin.region
            and new.sending_facility == origin.organization
            and new.patient_id == patient_id
            and new.journal_id == origin.journal_id
        ):
            return new
        return replace(
            new,
            region=origin.region,
            sending_facility=origin.organization,
            patient_id=patient_id,
            journal_id=origin.journal_id,
        )

    def _deduplicate(
        self,
        origin: Origin,
        now: datetime,
        patient_id: int,
        stored: VaccinationRecord,
        new: NewVaccination,
        view: list[VaccinationRecord] | None,
    ) -> list[VaccinationRecord]:
        """Compare a newly stored record with the patient's consolidated doses.

        ``view`` is the consolidated view as these reports left it (None: read
        it from storage); it is returned kept up to date, so the doses of one
        call cost one read, not one per dose.
        """
        region = origin.region
        vaccination_id = stored.id
        if view is None:
            view = self._doses.for_patient(region, patient_id)
        else:
            insort(view, stored, key=_view_order)
        # Only the records within the widest window can be the same event
        # (compare() says "different" for all the others): the view is in
        # date order, so they are one slice of it. Comparing with every
        # record made a VXU of n doses for one patient cost n squared
        # (3,500 order groups took 19 s; issue 18 item 6).
        span = timedelta(days=self._dedup.widest_window)
        low = bisect_left(view, new.administered_on - span, key=_administered)
        high = bisect_right(view, new.administered_on + span, key=_administered)
        for other in view[low:high]:
            if other.id == vaccination_id:
                continue
            verdict = self._dedup.compare(new, other)
            if verdict.outcome == "same":
                if verdict.keep_new:
                    self._doses.mark_duplicate(
                        region, other.id, vaccination_id, verdict.reason
                    )
                    view.remove(other)
                else:
                    self._doses.mark_duplicate(
                        region, vaccination_id, other.id, verdict.reason
                    )
                    view[:] = [r for r in view if r.id != vaccination_id]
                return view
            if verdict.outcome == "unsure":
                self._review.insert(
                    NewReviewItem(
                        region,
                        "dose",
                        vaccination_id,
                        other.id,
                        self._review_score,
                        verdict.reason,
                        now,
                    )
                )
                return view
        return view


def _for_dose(
    report: DoseReport, origin: Origin, patient_id: int, vaccination_id: int | None
) -> list[NewObservation]:
    """A report's observations, filed with the patient and the stored dose."""
    return [
        o
        if o.patient_id == patient_id
        and o.vaccination_id == vaccination_id
        and o.region == origin.region
        and o.journal_id == origin.journal_id
        else replace(
            o,
            region=origin.region,
            journal_id=origin.journal_id,
            patient_id=patient_id,
            vaccination_id=vaccination_id,
        )
        for o in report.observations
    ]
