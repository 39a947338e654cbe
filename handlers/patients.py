"""The patient service: file one organization's account of a patient.

The rules (DESIGN.md, "Who is speaking, and what they may see"):

- Match or create. The matcher (:mod:`handlers.matching`) finds the stored
  patient; none found creates one. A possible match is not merged silently:
  a review item lets a person decide. An identifier held by a patient whose
  demographics disagree is never filed onto that patient: it is held for
  review and the caller is told (an identifier alone never identifies a
  person).
- Demographics. An organization that already submitted for the patient
  updates what it sends (a scored match never rewrites who the person is);
  any other organization only fills fields that are empty.
- The lock (PD1-12 = ``Y``). Setting it is honoured from any submitter at
  once; clearing it only from an organization that was a submitter when it
  was set. A refused clear is reported to the caller.
- Every change of lock, submitter or demographics is audited, and the record
  as it then stands is kept as a version, beside the version as submitted.

The service takes and returns plain domain objects (storage's records and
:class:`PatientSubmission`), never HL7; it gets only the store methods it uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Protocol

from handlers.disclosure import LOCKED
from handlers.filing import AuditStore, Origin, ReviewStore, audit_entry
from storage import (
    NewMatchDecision,
    NewNextOfKin,
    NewPatient,
    NewPatientVersion,
    NewReviewItem,
)

if TYPE_CHECKING:
    from handlers.matching import Demographics, MatchResult
    from storage import PatientRecord, Submitter

__all__ = [
    "FiledPatient",
    "KeyLock",
    "Match",
    "Name",
    "PatientService",
    "PatientStore",
    "PatientSubmission",
]


class PatientStore(Protocol):
    """The patient repository methods the service uses."""

    def get(self, region: str, patient_id: int) -> PatientRecord | None:
        """One stored patient."""

    def insert(self, patient: NewPatient) -> int:
        """Store a new patient; returns its id."""

    def update(self, region: str, patient_id: int, patient: NewPatient) -> None:
        """Write the non-empty fields of ``patient`` onto a stored one."""

    def submitters_since(self, region: str, patient_id: int) -> list[Submitter]:
        """The organizations that submitted for a patient, with when they first did."""

    def insert_version(self, version: NewPatientVersion) -> None:
        """Keep one version of a patient's demographics."""

    def record_decision(self, decision: NewMatchDecision) -> None:
        """Keep the matcher's decision for a message."""

    def add_identifiers(
        self,
        region: str,
        patient_id: int,
        identifiers: Iterable[tuple[str, str, str]],
        submitted_by: str = "",
    ) -> None:
        """Add (value, authority, type) identifiers a submitter reported."""

    def replace_next_of_kin(
        self,
        region: str,
        patient_id: int,
        kin: Sequence[NewNextOfKin],
        submitted_by: str = "",
    ) -> None:
        """Replace the next of kin one submitter reported."""

    def add_submitter(
        self,
        region: str,
        patient_id: int,
        facility: str,
        when: datetime | None = None,
    ) -> None:
        """Record that an organization submitted for a patient."""


class KeyLock(Protocol):
    """Serializes work on keys across nodes until the transaction ends."""

    def lock(self, keys: Iterable[str]) -> None:
        """Take the locks of ``keys``."""


class Match(Protocol):
    """The matcher's ``find``, bound to the unit of work it reads."""

    def __call__(
        self, region: str, sender: str, patient: Demographics, today: date | None
    ) -> MatchResult:
        """Find the stored patient an incoming one is."""


@dataclass(frozen=True, slots=True)
class Name:
    """A person's name as the matcher compares it."""

    family: str = ""
    given: str = ""
    middle: str = ""


@dataclass(frozen=True, slots=True)
class PatientSubmission:
    """One organization's account of a patient.

    Attributes:
        demographics: the patient as submitted (its region and journal row
            are set by the service from the :class:`Origin`). A birth date is
            required.
        identifiers: (value, assigning authority, type) triples; an empty
            authority is the submitter's own.
        next_of_kin: the next of kin as submitted (empty: keep what is
            stored).
    """

    demographics: NewPatient
    identifiers: tuple[tuple[str, str, str], ...]
    next_of_kin: tuple[NewNextOfKin, ...] = ()

    def __post_init__(self) -> None:
        """Refuse a submission the registry cannot file (no birth date)."""
        if self.demographics.birth_date is None:
            raise ValueError("a patient submission needs a birth date")

    @property
    def birth_date(self) -> date:
        """The birth date."""
        born = self.demographics.birth_date
        assert born is not None  # __post_init__
        return born

    @property
    def sex(self) -> str:
        """F, M or U."""
        return self.demographics.sex

    @property
    def multiple_birth(self) -> str:
        """Y when the patient is one of a multiple birth."""
        return self.demographics.multiple_birth

    @property
    def birth_order(self) -> int | None:
        """Birth order within a multiple birth."""
        return self.demographics.birth_order

    @property
    def name(self) -> Name:
        """The patient's name."""
        d = self.demographics
        return Name(d.family_name, d.given_name, d.middle_name)

    @property
    def mother_maiden_name(self) -> Name:
        """The mother's maiden name."""
        d = self.demographics
        return Name(d.mother_maiden_family, d.mother_maiden_given)

    @property
    def phone(self) -> str:
        """The phone number."""
        return self.demographics.phone

    @property
    def postal_code(self) -> str:
        """The postal code."""
        return self.demographics.postal_code

    @property
    def street(self) -> str:
        """The street address."""
        return self.demographics.street


@dataclass(frozen=True, slots=True)
class FiledPatient:
    """What filing a submission did.

    Attributes:
        patient_id: the stored patient the data was filed onto.
        created: whether that patient was created by this submission.
        match: the matcher's decision (its ``conflict_id`` names a patient
            holding one of the identifiers whose demographics disagree: the
            data was not filed onto it and the pair is held for review).
        lock_clear_refused: the submission asked to clear the lock of a
            locked record and was not allowed to; the record stays locked.
    """

    patient_id: int
    created: bool
    match: MatchResult
    lock_clear_refused: bool = False


class PatientService:
    """Files patients: match or create, demographics, lock, versions, audit.

    Args:
        patients: the patient store.
        review: the review queue.
        audit: the audit log.
        locks: serializes the filing of one identifier across nodes.
        match: finds the stored patient a submission is about.
        now: the clock (UTC); its date also bounds the matcher's birth dates.
    """

    def __init__(
        self,
        patients: PatientStore,
        review: ReviewStore,
        audit: AuditStore,
        locks: KeyLock,
        match: Match,
        now: Callable[[], datetime],
    ) -> None:
        self._patients = patients
        self._review = review
        self._audit = audit
        self._locks = locks
        self._match = match
        self._now = now

    def file(self, submission: PatientSubmission, origin: Origin) -> FiledPatient:
        """File one organization's account of a patient.

        Returns:
            The patient filed onto, whether it is new, the match decision,
            and whether a lock clear was refused.
        """
        now = self._now()
        region, sender = origin.region, origin.organization
        record = submission.demographics
        if record.region != region or record.created_by_journal_id != origin.journal_id:
            record = replace(
                record, region=region, created_by_journal_id=origin.journal_id
            )
        # Two nodes receiving the same new patient at once must create one:
        # serialize on the identifiers before matching.
        self._locks.lock(
            f"patient:{region}:{authority or sender}:{value}"
            for value, authority, _t in submission.identifiers
        )
        match = self._match(region, sender, submission, now.date())
        refused = False
        if match.patient_id is None:
            if record.protection == LOCKED:
                record = replace(record, locked_at=now)
            patient_id = self._patients.insert(record)
            self._audit.insert(
                audit_entry(origin, now, patient_id, "submitter-added", "new record")
            )
            if record.protection == LOCKED:
                self._audit.insert(
                    audit_entry(
                        origin, now, patient_id, "lock-set", "set", "PD1-12 = Y"
                    )
                )
        else:
            patient_id = match.patient_id
            refused = self._update(origin, now, patient_id, record, match)
        reasons = "; ".join(match.reasons)
        if match.conflict_id is not None:
            self._hold_conflict(origin, now, patient_id, match)
        self._patients.insert_version(
            _version(record, origin, now, patient_id, "submitted")
        )
        self._patients.record_decision(
            NewMatchDecision(
                region,
                origin.journal_id,
                patient_id,
                match.candidate_id,
                match.outcome,
                match.score,
                reasons,
                now,
            )
        )
        if match.outcome == "possible" and match.candidate_id is not None:
            # Not merged silently: a person decides (cairn review).
            self._review.insert(
                NewReviewItem(
                    region,
                    "patient",
                    patient_id,
                    match.candidate_id,
                    match.score,
                    reasons,
                    now,
                )
            )
        self._patients.add_identifiers(
            region,
            patient_id,
            [_scoped(i, sender) for i in submission.identifiers],
            sender,
        )
        if submission.next_of_kin:
            self._patients.replace_next_of_kin(
                region, patient_id, submission.next_of_kin, sender
            )
        self._patients.add_submitter(region, patient_id, sender, now)
        return FiledPatient(patient_id, match.patient_id is None, match, refused)

    def _update(
        self,
        origin: Origin,
        now: datetime,
        patient_id: int,
        record: NewPatient,
        match: MatchResult,
    ) -> bool:
        """Apply a submission to a stored patient: the demographics and lock rules.

        Returns:
            Whether a clear of the lock was refused.
        """
        region, sender = origin.region, origin.organization
        stored = match.record or self._patients.get(region, patient_id)
        if stored is None:  # merged away under us: nothing to compare with
            self._patients.update(region, patient_id, _refresh(record, match))
            return False
        since = {
            s.facility: s.first_seen
            for s in self._patients.submitters_since(region, patient_id)
        }
        refused = False
        if sender not in since:
            self._audit.insert(
                audit_entry(origin, now, patient_id, "submitter-added", "added")
            )
            update = _fill_empty(record, stored)
        elif match.record is not None:
            update = _refresh(record, match)
        else:
            update = record
        update = replace(update, protection="", protection_date=None, locked_at=None)
        wanted = record.protection
        if wanted == LOCKED and stored.protection != LOCKED:
            update = replace(
                update,
                protection=LOCKED,
                protection_date=record.protection_date,
                locked_at=now,
            )
            self._audit.insert(
                audit_entry(origin, now, patient_id, "lock-set", "set", "PD1-12 = Y")
            )
        elif wanted and wanted != LOCKED and stored.protection == LOCKED:
            locked_at = stored.locked_at or stored.created_at
            first = since.get(sender)
            if first is not None and first <= locked_at:
                update = replace(
                    update, protection=wanted, protection_date=record.protection_date
                )
                self._audit.insert(
                    audit_entry(
                        origin,
                        now,
                        patient_id,
                        "lock-cleared",
                        "cleared",
                        f"PD1-12 = {wanted}",
                    )
                )
            else:
                refused = True
                self._audit.insert(
                    audit_entry(
                        origin,
                        now,
                        patient_id,
                        "lock-clear-refused",
                        "refused",
                        "not a submitter before the lock was set",
                    )
                )
        elif wanted == stored.protection:
            update = replace(update, protection_date=record.protection_date)
        changed = _changes(update, stored)
        self._patients.update(region, patient_id, update)
        if changed:
            self._audit.insert(
                audit_entry(
                    origin,
                    now,
                    patient_id,
                    "demographics",
                    "changed",
                    ", ".join(changed),
                )
            )
            after = replace(
                _as_new(stored), **{name: getattr(update, name) for name in changed}
            )
            self._patients.insert_version(
                _version(after, origin, now, patient_id, "stored")
            )
        return refused

    def _hold_conflict(
        self, origin: Origin, now: datetime, patient_id: int, match: MatchResult
    ) -> None:
        """An identifier held by someone whose demographics disagree: review, audit."""
        assert match.conflict_id is not None
        if patient_id != match.conflict_id:
            self._review.insert(
                NewReviewItem(
                    origin.region,
                    "patient",
                    patient_id,
                    match.conflict_id,
                    0.0,
                    f"identifier conflict: {match.conflict} disagree",
                    now,
                )
            )
        self._audit.insert(
            audit_entry(
                origin,
                now,
                match.conflict_id,
                "identifier-conflict",
                "held",
                f"{match.conflict} disagree",
            )
        )


#: Fields that say who a person is. A match made on a score (not on the
#: sender's own identifier) may fill them when empty but never rewrites
#: them: another clinic's typo must not become the registry's record, and the
#: next submission must be compared with what was first confirmed.
_IDENTITY = (
    "family_name",
    "given_name",
    "middle_name",
    "suffix",
    "birth_date",
    "sex",
    "mother_maiden_family",
    "mother_maiden_given",
    "multiple_birth",
    "birth_order",
)


def _refresh(record: NewPatient, match: MatchResult) -> NewPatient:
    """The demographics a matched submission may change on the stored patient."""
    stored = match.record
    if stored is None:  # matched on an identifier: the sender's own patient
        return record
    kept = {
        name: None if name in {"birth_date", "birth_order"} else ""
        for name in _IDENTITY
        if getattr(stored, name, None) not in ("", None)
    }
    return replace(record, **kept)  # type: ignore[arg-type]


#: Demographic fields compared, audited and versioned (the NewPatient fields
#: that describe the person, not bookkeeping).
_DEMOGRAPHICS = tuple(
    f.name
    for f in fields(NewPatient)
    if f.name not in {"region", "created_by_journal_id", "locked_at"}
)


#: Fields whose empty value is None rather than "".
_OPTIONAL = frozenset(f.name for f in fields(NewPatient) if "None" in str(f.type))


def _fill_empty(record: NewPatient, stored: PatientRecord) -> NewPatient:
    """Another organization's submission: it may fill empty fields, nothing more."""
    kept = {
        name: None if name in _OPTIONAL else ""
        for name in _DEMOGRAPHICS
        if getattr(stored, name, None) not in ("", None)
    }
    return replace(record, **kept)  # type: ignore[arg-type]


def _changes(update: NewPatient, stored: PatientRecord) -> list[str]:
    """The fields an update would change (empty values change nothing)."""
    return [
        name
        for name in _DEMOGRAPHICS
        if getattr(update, name) not in ("", None)
        and getattr(update, name) != getattr(stored, name)
    ]


def _as_new(stored: PatientRecord) -> NewPatient:
    return NewPatient(
        **{name: getattr(stored, name) for name in (f.name for f in fields(NewPatient))}
    )


def _version(
    record: NewPatient, origin: Origin, now: datetime, patient_id: int, kind: str
) -> NewPatientVersion:
    values: dict[str, str | int | None] = {}
    for name in _DEMOGRAPHICS:
        value = getattr(record, name)
        values[name] = value.isoformat() if isinstance(value, date) else value
    return NewPatientVersion(
        region=origin.region,
        patient_id=patient_id,
        journal_id=origin.journal_id,
        sender=origin.organization,
        kind=kind,
        recorded_at=now,
        demographics=values,
    )


def _scoped(identifier: tuple[str, str, str], sender: str) -> tuple[str, str, str]:
    """An identifier with no assigning authority is scoped to its sender."""
    value, authority, type_code = identifier
    return (value, authority or sender, type_code)
