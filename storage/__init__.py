"""Storage: the only package that speaks SQL (SQLAlchemy Core, Alembic, psycopg).

Must not import any other Cairn package. Repositories take and return frozen
dataclasses; region is a required argument of every patient or dose query.
"""

from storage.database import (
    JOURNAL_KEY_LIMITS,
    AuditRepository,
    Database,
    JournalRepository,
    ObservationRepository,
    PatientRepository,
    ReviewRepository,
    UnitOfWork,
    VaccinationRepository,
    open_database,
)
from storage.errors import (
    PermanentStorageError,
    SchemaOutOfDate,
    StorageError,
    TransientStorageError,
)
from storage.records import (
    AuditEntry,
    JournalAnswer,
    JournalEntry,
    JournalLookup,
    NewAuditEntry,
    NewJournalEntry,
    NewMatchDecision,
    NewNextOfKin,
    NewObservation,
    NewPatient,
    NewReviewItem,
    NewVaccination,
    NextOfKinRecord,
    ObservationRecord,
    PatientIdentifier,
    PatientRecord,
    ReviewItem,
    VaccinationRecord,
)

__all__ = [
    "JOURNAL_KEY_LIMITS",
    "AuditEntry",
    "AuditRepository",
    "Database",
    "JournalAnswer",
    "JournalEntry",
    "JournalLookup",
    "JournalRepository",
    "NewAuditEntry",
    "NewJournalEntry",
    "NewMatchDecision",
    "NewNextOfKin",
    "NewObservation",
    "NewPatient",
    "NewReviewItem",
    "NewVaccination",
    "NextOfKinRecord",
    "ObservationRecord",
    "ObservationRepository",
    "PatientIdentifier",
    "PatientRecord",
    "PatientRepository",
    "PermanentStorageError",
    "ReviewItem",
    "ReviewRepository",
    "SchemaOutOfDate",
    "StorageError",
    "TransientStorageError",
    "UnitOfWork",
    "VaccinationRecord",
    "VaccinationRepository",
    "open_database",
]
