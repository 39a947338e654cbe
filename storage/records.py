"""What the repositories take and return: frozen dataclasses, never rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True, slots=True)
class NewJournalEntry:
    """A received message, before it is processed."""

    sender: str
    control_id: str
    message_type: str
    received_at: datetime
    raw: bytes
    peer: str = ""
    region: str | None = None
    #: SHA-256 (hex) of the message's content with MSH-7 left out: a resend
    #: has the same digest; a reused MSH-10 with other content does not
    content_digest: str = ""
    #: the size received, in bytes, when ``raw`` keeps only the message's
    #: first bytes (a refused message from a stranger); None: ``raw`` is whole
    raw_size: int | None = None


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A journaled message with its response."""

    id: int
    sender: str
    control_id: str
    message_type: str
    received_at: datetime
    raw: bytes
    peer: str
    region: str | None
    response: bytes | None
    ack_code: str | None
    outcome: str
    error_count: int
    content_digest: str = ""
    #: the size received when ``raw`` is only the message's head (None: whole)
    raw_size: int | None = None


@dataclass(frozen=True, slots=True)
class JournalAnswer:
    """What a resend needs of a journaled message: its row and stored answer."""

    id: int
    response: bytes | None
    ack_code: str | None
    #: the journal outcome: "not stored (…)" marks a test-mode answer
    outcome: str = ""


@dataclass(frozen=True, slots=True)
class JournalLookup:
    """What the journal holds under one (sending facility, MSH-10) for one content.

    Attributes:
        resend_of: the newest live row with the same key and the same
            content digest (the message this one resends), with its answer.
        other_content: whether rows with the same key hold other content
            (the control id was used before for a different message).
    """

    resend_of: JournalAnswer | None = None
    other_content: bool = False
    #: the same among the test-mode rows ("not stored (…)"): a test-mode
    #: resend is answered from these, a live one never is
    test_resend_of: JournalAnswer | None = None


@dataclass(frozen=True, slots=True)
class PatientIdentifier:
    """An identifier with its assigning authority and type."""

    value: str
    authority: str
    type: str
    #: The sending facility that reported it ("" for rows stored before 0005).
    submitted_by: str = ""


@dataclass(frozen=True, slots=True)
class NewPatient:
    """Patient demographics to store."""

    region: str
    birth_date: date | None
    sex: str = ""
    family_name: str = ""
    given_name: str = ""
    middle_name: str = ""
    suffix: str = ""
    mother_maiden_family: str = ""
    mother_maiden_given: str = ""
    race: str = ""
    ethnicity: str = ""
    street: str = ""
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""
    phone: str = ""
    email: str = ""
    multiple_birth: str = ""
    birth_order: int | None = None
    protection: str = ""
    protection_date: date | None = None
    registry_status: str = ""
    registry_status_date: date | None = None
    publicity_code: str = ""
    death_indicator: str = ""
    death_date: date | None = None
    created_by_journal_id: int | None = None
    #: When the registry set the lock (None: not locked by this registry).
    locked_at: datetime | None = None
    #: PD1-18, when the publicity code took effect.
    publicity_date: date | None = None


@dataclass(frozen=True, slots=True)
class PatientRecord:
    """A stored patient with its identifiers."""

    id: int
    region: str
    birth_date: date | None
    sex: str
    family_name: str
    given_name: str
    middle_name: str
    suffix: str
    mother_maiden_family: str
    mother_maiden_given: str
    race: str
    ethnicity: str
    street: str
    city: str
    state: str
    postal_code: str
    country: str
    phone: str
    email: str
    multiple_birth: str
    birth_order: int | None
    protection: str
    protection_date: date | None
    registry_status: str
    registry_status_date: date | None
    publicity_code: str
    death_indicator: str
    death_date: date | None
    created_by_journal_id: int | None
    created_at: datetime
    updated_at: datetime
    locked_at: datetime | None = None
    publicity_date: date | None = None
    identifiers: tuple[PatientIdentifier, ...] = ()


@dataclass(frozen=True, slots=True)
class NewNextOfKin:
    """A next-of-kin (NK1) to store."""

    sequence: int
    family_name: str = ""
    given_name: str = ""
    relationship: str = ""
    street: str = ""
    city: str = ""
    state: str = ""
    postal_code: str = ""
    phone: str = ""
    #: The sending facility that reported this next of kin.
    submitted_by: str = ""


@dataclass(frozen=True, slots=True)
class NextOfKinRecord:
    """A stored next of kin."""

    id: int
    patient_id: int
    sequence: int
    family_name: str
    given_name: str
    relationship: str
    street: str
    city: str
    state: str
    postal_code: str
    phone: str
    submitted_by: str = ""


@dataclass(frozen=True, slots=True)
class NewVaccination:
    """A reported vaccination event (a dose, a refusal, or a not-administered record)."""

    region: str
    patient_id: int
    journal_id: int | None
    sending_facility: str
    filler_id: str
    filler_namespace: str
    placer_id: str
    cvx: str
    cvx_text: str
    ndc: str
    mvx: str
    administered_on: date
    administered_at_raw: str
    amount: str
    units: str
    lot_numbers: str
    lot_expiration: date | None
    information_source: str
    completion_status: str
    action_code: str
    refusal_reason: str
    administering_provider: str
    administered_location: str
    route: str
    site: str
    funding_eligibility: str
    funding_source: str


@dataclass(frozen=True, slots=True)
class VaccinationRecord:
    """A stored vaccination event."""

    id: int
    region: str
    patient_id: int
    journal_id: int | None
    sending_facility: str
    filler_id: str
    filler_namespace: str
    placer_id: str
    cvx: str
    cvx_text: str
    ndc: str
    mvx: str
    administered_on: date
    administered_at_raw: str
    amount: str
    units: str
    lot_numbers: str
    lot_expiration: date | None
    information_source: str
    completion_status: str
    action_code: str
    refusal_reason: str
    administering_provider: str
    administered_location: str
    route: str
    site: str
    funding_eligibility: str
    funding_source: str
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    duplicate_of: int | None = None
    dedup_reason: str = ""


@dataclass(frozen=True, slots=True)
class NewObservation:
    """An OBX to store, about a dose or about the patient."""

    region: str
    patient_id: int
    vaccination_id: int | None
    journal_id: int | None
    set_id: int
    sub_id: str
    value_type: str
    loinc: str
    loinc_text: str
    value_code: str
    value_text: str
    value_system: str
    observed_on: date | None


@dataclass(frozen=True, slots=True)
class ObservationRecord:
    """A stored observation."""

    id: int
    region: str
    patient_id: int
    vaccination_id: int | None
    journal_id: int | None
    set_id: int
    sub_id: str
    value_type: str
    loinc: str
    loinc_text: str
    value_code: str
    value_text: str
    value_system: str
    observed_on: date | None


@dataclass(frozen=True, slots=True)
class NewAuditEntry:
    """One disclosure (or refused lookup) of a patient record."""

    at: datetime
    requester: str
    requester_region: str
    patient_id: int | None
    patient_region: str | None
    journal_id: int | None
    query_tag: str
    action: str
    outcome: str
    profile: str
    #: Why: the conflict, the lock rule, the fields that changed (never values).
    detail: str = ""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A stored audit row."""

    id: int
    at: datetime
    requester: str
    requester_region: str
    patient_id: int | None
    patient_region: str | None
    journal_id: int | None
    query_tag: str
    action: str
    outcome: str
    profile: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class NewMatchDecision:
    """One patient-matching decision and the comparisons behind it."""

    region: str
    journal_id: int | None
    patient_id: int | None
    candidate_id: int | None
    outcome: str
    score: float
    reasons: str
    decided_at: datetime


@dataclass(frozen=True, slots=True)
class NewReviewItem:
    """A pair for a person to decide: two patients, or two dose records."""

    region: str
    kind: str
    left_id: int
    right_id: int
    score: float
    reasons: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """A stored review item."""

    id: int
    region: str
    kind: str
    left_id: int
    right_id: int
    score: float
    reasons: str
    status: str
    created_at: datetime
    decided_at: datetime | None
    decided_by: str


@dataclass(frozen=True, slots=True)
class Submitter:
    """An organization that submitted data for a patient, and since when."""

    facility: str
    first_seen: datetime


@dataclass(frozen=True, slots=True)
class NewPatientVersion:
    """One demographic version to keep: what a sender said, or what was stored.

    ``demographics`` maps field names of :class:`NewPatient` to their values
    (dates as ISO strings).
    """

    region: str
    patient_id: int
    journal_id: int | None
    sender: str
    kind: str  # "submitted" or "stored"
    recorded_at: datetime
    demographics: Mapping[str, str | int | None]


@dataclass(frozen=True, slots=True)
class PatientVersion:
    """A stored demographic version."""

    id: int
    region: str
    patient_id: int
    journal_id: int | None
    sender: str
    kind: str
    recorded_at: datetime
    demographics: Mapping[str, str | int | None]


# -- inventory (issue 19) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewInventoryLot:
    """A vaccine lot a facility stocks (created by its first receipt)."""

    region: str
    facility: str
    cvx: str
    mvx: str
    lot_number: str
    expires_on: date
    #: ``VFC``, ``state`` or ``private`` (VXU OBX 30963-3 / 64994-7)
    funding: str
    unit: str = "doses"


@dataclass(frozen=True, slots=True)
class InventoryLot:
    """A stored lot with its quantity on hand (the sum of its transactions)."""

    id: int
    region: str
    facility: str
    cvx: str
    mvx: str
    lot_number: str
    expires_on: date
    funding: str
    unit: str
    on_hand: int


@dataclass(frozen=True, slots=True)
class NewInventoryTransaction:
    """One change to a lot's stock: ``quantity`` is signed (+ in, - out)."""

    region: str
    facility: str
    lot_id: int
    kind: str
    quantity: int
    occurred_on: date
    recorded_at: datetime
    recorded_by: str = ""
    reason: str = ""
    counterparty: str = ""
    vaccination_id: int | None = None
    journal_id: int | None = None


@dataclass(frozen=True, slots=True)
class InventoryTransaction:
    """A stored transaction, with the lot it moved."""

    id: int
    region: str
    facility: str
    lot_id: int
    kind: str
    quantity: int
    reason: str
    counterparty: str
    vaccination_id: int | None
    journal_id: int | None
    occurred_on: date
    recorded_at: datetime
    recorded_by: str


@dataclass(frozen=True, slots=True)
class NewInventoryException:
    """An administered dose that could not draw its lot down, and why."""

    region: str
    facility: str
    vaccination_id: int | None
    journal_id: int | None
    cvx: str
    lot_number: str
    reason: str
    occurred_on: date
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class InventoryException:
    """A stored inventory exception."""

    id: int
    region: str
    facility: str
    vaccination_id: int | None
    journal_id: int | None
    cvx: str
    lot_number: str
    reason: str
    occurred_on: date


@dataclass(frozen=True, slots=True)
class PatientHistory:
    """One patient read in bulk with everything a population report needs.

    Attributes:
        record: the stored demographics (identifiers left out).
        submitters: the organizations that submitted data for the patient
            or any record merged into it.
        next_of_kin: the next of kin, by sequence.
        doses: the consolidated doses, merged records' included, oldest first.
        observations: the observations, merged records' included.
        locked_member: a record merged into this one is locked (PD1-12 Y).
    """

    record: PatientRecord
    submitters: frozenset[str]
    next_of_kin: tuple[NextOfKinRecord, ...]
    doses: tuple[VaccinationRecord, ...]
    observations: tuple[ObservationRecord, ...]
    locked_member: bool = False


@dataclass(frozen=True, slots=True)
class NewRecallRun:
    """A reminder/recall run to record."""

    organization: str
    region: str
    facility: str
    as_of: date
    criteria: str
    ran_at: datetime
    considered: int
    listed: int


@dataclass(frozen=True, slots=True)
class RecallRun:
    """A recorded reminder/recall run."""

    id: int
    organization: str
    region: str
    facility: str
    as_of: date
    criteria: str
    ran_at: datetime
    considered: int
    listed: int


@dataclass(frozen=True, slots=True)
class RecallListing:
    """A patient a run listed: worst status (``due``/``overdue``), since when, what."""

    region: str
    patient_id: int
    status: str
    since: date
    due: str


@dataclass(frozen=True, slots=True)
class NewRecallContact:
    """A contact made about a patient a run listed."""

    run_id: int
    region: str
    patient_id: int
    organization: str
    method: str
    contacted_on: date


@dataclass(frozen=True, slots=True)
class RecallContact:
    """A recorded contact."""

    id: int
    run_id: int
    region: str
    patient_id: int
    organization: str
    method: str
    contacted_on: date
    recorded_at: datetime
