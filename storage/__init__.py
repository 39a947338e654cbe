"""Storage: the only package that speaks SQL (SQLAlchemy Core, Alembic, psycopg).

Must not import any other Cairn package. Repositories take and return frozen
dataclasses; region is a required argument of every patient or dose query.
"""

from storage.database import (
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
    DatabaseUnreachable,
    DuplicateMessage,
    SchemaOutOfDate,
    StorageError,
)
from storage.records import (
    AuditEntry,
    JournalAnswer,
    JournalEntry,
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
    "AuditEntry",
    "AuditRepository",
    "Database",
    "DatabaseUnreachable",
    "DuplicateMessage",
    "JournalAnswer",
    "JournalEntry",
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
    "ReviewItem",
    "ReviewRepository",
    "SchemaOutOfDate",
    "StorageError",
    "UnitOfWork",
    "VaccinationRecord",
    "VaccinationRepository",
    "open_database",
]
