"""Storage: the only package that speaks SQL (SQLAlchemy Core, Alembic, psycopg).

Must not import any other Cairn package. Repositories take and return frozen
dataclasses; region is a required argument of every patient or dose query.

One module per topic: ``journal``, ``patients``, ``doses``, ``observations``,
``review``, ``audit``, ``identity`` (organizations, users), ``inventory``,
``cohort`` (bulk reads for population work), ``recall``; ``unit_of_work``
(one transaction, savepoints, locks),
``database`` (the handle, reading and search helpers) and ``dialects`` (every
SQLite/PostgreSQL difference). Private helpers live in ``storage/_*.py``.
"""

from storage.audit import AuditRepository
from storage.backup import BackupInfo
from storage.cohort import CohortRepository
from storage.database import JOURNAL_POINTERS, Database, open_database
from storage.doses import VaccinationRepository
from storage.errors import (
    BackupUnsupported,
    DatabaseUnreachable,
    PermanentStorageError,
    SchemaOutOfDate,
    StorageError,
    TransientStorageError,
)
from storage.identity import (
    Credential,
    IdentityRepository,
    NewOrganization,
    Organization,
    UserAccount,
)
from storage.inventory import InventoryRepository
from storage.journal import JOURNAL_KEY_LIMITS, TEST_OUTCOME_PREFIX, JournalRepository
from storage.observations import ObservationRepository
from storage.patients import PatientRepository
from storage.recall import RecallRepository
from storage.records import (
    AuditEntry,
    InventoryException,
    InventoryLot,
    InventoryTransaction,
    JournalAnswer,
    JournalEntry,
    JournalLookup,
    NewAuditEntry,
    NewInventoryException,
    NewInventoryLot,
    NewInventoryTransaction,
    NewJournalEntry,
    NewMatchDecision,
    NewNextOfKin,
    NewObservation,
    NewPatient,
    NewPatientVersion,
    NewRecallContact,
    NewRecallRun,
    NewReviewItem,
    NewVaccination,
    NextOfKinRecord,
    ObservationRecord,
    PatientHistory,
    PatientIdentifier,
    PatientRecord,
    PatientVersion,
    RecallContact,
    RecallListing,
    RecallRun,
    ReviewItem,
    Submitter,
    VaccinationRecord,
)
from storage.review import ReviewRepository
from storage.unit_of_work import UnitOfWork

__all__ = [
    "JOURNAL_KEY_LIMITS",
    "JOURNAL_POINTERS",
    "TEST_OUTCOME_PREFIX",
    "AuditEntry",
    "AuditRepository",
    "BackupInfo",
    "BackupUnsupported",
    "CohortRepository",
    "Credential",
    "Database",
    "DatabaseUnreachable",
    "IdentityRepository",
    "InventoryException",
    "InventoryLot",
    "InventoryRepository",
    "InventoryTransaction",
    "JournalAnswer",
    "JournalEntry",
    "JournalLookup",
    "JournalRepository",
    "NewAuditEntry",
    "NewInventoryException",
    "NewInventoryLot",
    "NewInventoryTransaction",
    "NewJournalEntry",
    "NewMatchDecision",
    "NewNextOfKin",
    "NewObservation",
    "NewOrganization",
    "NewPatient",
    "NewPatientVersion",
    "NewRecallContact",
    "NewRecallRun",
    "NewReviewItem",
    "NewVaccination",
    "NextOfKinRecord",
    "ObservationRecord",
    "ObservationRepository",
    "Organization",
    "PatientHistory",
    "PatientIdentifier",
    "PatientRecord",
    "PatientRepository",
    "PatientVersion",
    "PermanentStorageError",
    "RecallContact",
    "RecallListing",
    "RecallRepository",
    "RecallRun",
    "ReviewItem",
    "ReviewRepository",
    "SchemaOutOfDate",
    "StorageError",
    "Submitter",
    "TransientStorageError",
    "UnitOfWork",
    "UserAccount",
    "VaccinationRecord",
    "VaccinationRepository",
    "open_database",
]
