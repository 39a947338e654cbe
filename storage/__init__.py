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
    UnitOfWork,
    VaccinationRepository,
    open_database,
)
from storage.errors import DuplicateMessage, SchemaOutOfDate, StorageError
from storage.records import (
    AuditEntry,
    JournalEntry,
    NewAuditEntry,
    NewJournalEntry,
    NewNextOfKin,
    NewObservation,
    NewPatient,
    NewVaccination,
    NextOfKinRecord,
    ObservationRecord,
    PatientIdentifier,
    PatientRecord,
    VaccinationRecord,
)

__all__ = [
    "AuditEntry",
    "AuditRepository",
    "Database",
    "DuplicateMessage",
    "JournalEntry",
    "JournalRepository",
    "NewAuditEntry",
    "NewJournalEntry",
    "NewNextOfKin",
    "NewObservation",
    "NewPatient",
    "NewVaccination",
    "NextOfKinRecord",
    "ObservationRecord",
    "ObservationRepository",
    "PatientIdentifier",
    "PatientRecord",
    "PatientRepository",
    "SchemaOutOfDate",
    "StorageError",
    "UnitOfWork",
    "VaccinationRecord",
    "VaccinationRepository",
    "open_database",
]
