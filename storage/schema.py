"""The registry's tables, as SQLAlchemy Core metadata.

Schema changes go through Alembic migrations in ``storage/migrations``;
a test checks that the migrated schema and this metadata agree on SQLite and
PostgreSQL. Every patient-related table carries ``region``: queries always
filter on it (a user sees only its region), and PostgreSQL can partition by it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: Row ids: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
RowId = BigInteger().with_variant(Integer(), "sqlite")


def _id() -> Column[int]:
    return Column("id", RowId, primary_key=True, autoincrement=True)


def _text(name: str, length: int = 100) -> Column[str]:
    return Column(name, String(length), nullable=False, server_default="")


message_journal = Table(
    "message_journal",
    metadata,
    _id(),
    Column("sender", String(180), nullable=False),
    Column("control_id", String(199), nullable=False),
    Column("message_type", String(20), nullable=False),
    Column("region", String(16), nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("peer", String(80), nullable=False, server_default=""),
    Column("raw", LargeBinary, nullable=False),
    Column("response", LargeBinary, nullable=True),
    Column("ack_code", String(2), nullable=True),
    Column("outcome", String(300), nullable=False, server_default=""),
    Column("error_count", Integer, nullable=False, server_default="0"),
    # SHA-256 of the message with MSH-7 left out: a resend has the same
    # digest; a reused control id with other content does not (DESIGN.md,
    # "Durability and idempotency"), so (sender, control_id) is not unique.
    _text("content_digest", 64),
    # The size received when ``raw`` keeps only the message's head (a
    # refused message from an unregistered sender); NULL: ``raw`` is whole.
    Column("raw_size", Integer, nullable=True),
    Index(None, "sender", "control_id"),
    Index(None, "received_at"),
)

patients = Table(
    "patients",
    metadata,
    _id(),
    Column("region", String(16), nullable=False),
    Column("birth_date", Date, nullable=True),
    _text("sex", 1),
    _text("family_name"),
    _text("given_name"),
    # Blocking keys (storage/keys.py): Soundex of the first word of each name.
    _text("family_key", 8),
    _text("given_key", 8),
    _text("middle_name"),
    _text("suffix", 20),
    _text("mother_maiden_family"),
    _text("mother_maiden_given"),
    _text("race"),
    _text("ethnicity", 40),
    _text("street", 200),
    _text("city"),
    _text("state", 10),
    _text("postal_code", 20),
    _text("country", 10),
    _text("phone", 20),
    _text("email", 200),
    _text("multiple_birth", 1),
    Column("birth_order", Integer, nullable=True),
    _text("protection", 1),
    Column("protection_date", Date, nullable=True),
    _text("registry_status", 1),
    Column("registry_status_date", Date, nullable=True),
    _text("publicity_code", 4),
    _text("death_indicator", 1),
    Column("death_date", Date, nullable=True),
    # When this registry set the lock (PD1-12 = Y): an organization may clear
    # it only if it was a submitter before this moment.
    Column("locked_at", DateTime(timezone=True), nullable=True),
    # PD1-18: when the publicity code (PD1-11) took effect.
    Column("publicity_date", Date, nullable=True),
    Column(
        "created_by_journal_id", RowId, ForeignKey("message_journal.id"), nullable=True
    ),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index(None, "region", "birth_date"),
    Index(None, "region", "family_key", "birth_date"),
    Index(None, "region", "given_key", "birth_date"),
)

patient_identifiers = Table(
    "patient_identifiers",
    metadata,
    _id(),
    Column("patient_id", RowId, ForeignKey("patients.id"), nullable=False),
    Column("region", String(16), nullable=False),
    Column("value", String(100), nullable=False),
    Column("authority", String(180), nullable=False),
    _text("type_code", 10),
    # The sending facility that reported this identifier (a locked record
    # shows each organization only the identifiers it sent).
    _text("submitted_by", 180),
    UniqueConstraint("region", "authority", "value"),
    Index(None, "patient_id"),
)

next_of_kin = Table(
    "next_of_kin",
    metadata,
    _id(),
    Column("patient_id", RowId, ForeignKey("patients.id"), nullable=False),
    Column("region", String(16), nullable=False),
    Column("sequence", Integer, nullable=False),
    _text("family_name"),
    _text("given_name"),
    _text("relationship", 10),
    _text("street", 200),
    _text("city"),
    _text("state", 10),
    _text("postal_code", 20),
    _text("phone", 20),
    _text("submitted_by", 180),
    Index(None, "patient_id"),
)

patient_submitters = Table(
    "patient_submitters",
    metadata,
    Column("patient_id", RowId, ForeignKey("patients.id"), primary_key=True),
    Column("facility", String(180), primary_key=True),
    Column("region", String(16), nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
)

vaccinations = Table(
    "vaccinations",
    metadata,
    _id(),
    Column("region", String(16), nullable=False),
    Column("patient_id", RowId, ForeignKey("patients.id"), nullable=False),
    Column("journal_id", RowId, ForeignKey("message_journal.id"), nullable=True),
    Column("sending_facility", String(180), nullable=False),
    _text("filler_id"),
    _text("filler_namespace", 180),
    _text("placer_id"),
    Column("cvx", String(10), nullable=False),
    _text("cvx_text", 200),
    _text("ndc", 20),
    _text("mvx", 10),
    Column("administered_on", Date, nullable=False),
    _text("administered_at_raw", 30),
    _text("amount", 20),
    _text("units", 20),
    _text("lot_numbers", 200),
    Column("lot_expiration", Date, nullable=True),
    _text("information_source", 4),
    _text("completion_status", 4),
    _text("action_code", 2),
    _text("refusal_reason", 4),
    _text("administering_provider"),
    _text("administered_location", 180),
    _text("route", 20),
    _text("site", 10),
    _text("funding_eligibility", 20),
    _text("funding_source", 20),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    # The consolidated view leaves out a record that duplicates another one.
    Column("duplicate_of", RowId, nullable=True),
    _text("dedup_reason", 200),
    Index(None, "region", "patient_id"),
    Index(None, "region", "sending_facility", "filler_namespace", "filler_id"),
)

observations = Table(
    "observations",
    metadata,
    _id(),
    Column("region", String(16), nullable=False),
    Column("patient_id", RowId, ForeignKey("patients.id"), nullable=False),
    Column("vaccination_id", RowId, ForeignKey("vaccinations.id"), nullable=True),
    Column("journal_id", RowId, ForeignKey("message_journal.id"), nullable=True),
    Column("set_id", Integer, nullable=False),
    _text("sub_id", 20),
    _text("value_type", 4),
    Column("loinc", String(20), nullable=False),
    _text("loinc_text", 200),
    _text("value_code", 60),
    Column("value_text", Text, nullable=False, server_default=""),
    _text("value_system", 40),
    Column("observed_on", Date, nullable=True),
    Index(None, "region", "patient_id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    _id(),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("requester", String(180), nullable=False),
    Column("requester_region", String(16), nullable=False),
    Column("patient_id", RowId, nullable=True),
    Column("patient_region", String(16), nullable=True),
    Column("journal_id", RowId, nullable=True),
    _text("query_tag", 64),
    Column("action", String(20), nullable=False),
    Column("outcome", String(20), nullable=False),
    _text("profile", 8),
    # Why: the conflict, the lock rule or the change that this row records.
    _text("detail", 300),
    Index(None, "patient_id"),
    Index(None, "requester", "at"),
)

#: Every demographic submission and every change, kept: what each sender said
#: (kind "submitted") and what the registry then held (kind "stored").
patient_versions = Table(
    "patient_versions",
    metadata,
    _id(),
    Column("region", String(16), nullable=False),
    Column("patient_id", RowId, nullable=False),
    Column("journal_id", RowId, nullable=True),
    Column("sender", String(180), nullable=False),
    Column("kind", String(12), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    # JSON object of the demographic fields (storage.records.PatientVersion).
    Column("demographics", Text, nullable=False),
    Index(None, "region", "patient_id"),
)

#: A merge: the merged patient's records stay, and read through the survivor.
patient_links = Table(
    "patient_links",
    metadata,
    Column("merged_id", RowId, primary_key=True),
    Column("region", String(16), nullable=False),
    Column("survivor_id", RowId, nullable=False),
    Column("review_id", RowId, nullable=True),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index(None, "survivor_id"),
)

#: Every matching decision with its score and the comparisons that fired.
match_decisions = Table(
    "match_decisions",
    metadata,
    _id(),
    Column("region", String(16), nullable=False),
    Column("journal_id", RowId, nullable=True),
    Column("patient_id", RowId, nullable=True),
    Column("candidate_id", RowId, nullable=True),
    Column("outcome", String(10), nullable=False),
    Column("score", Float, nullable=False, server_default="0"),
    Column("reasons", Text, nullable=False, server_default=""),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Index(None, "patient_id"),
)

#: Possible patient matches and unsure dose duplicates, waiting for a person.
review_items = Table(
    "review_items",
    metadata,
    _id(),
    Column("region", String(16), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("left_id", RowId, nullable=False),
    Column("right_id", RowId, nullable=False),
    Column("score", Float, nullable=False, server_default="0"),
    Column("reasons", Text, nullable=False, server_default=""),
    Column("status", String(12), nullable=False, server_default="open"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("decided_by", String(80), nullable=False, server_default=""),
    Index(None, "status", "kind"),
)

# -- who is speaking: organizations, their facility ids, credentials, users ---

#: A CAIR user organization (provider, school, WIC, …): its region and type
#: decide what it may do; ``code`` is how operators and the audit trail name
#: it. Limits left NULL take the configured defaults.
organizations = Table(
    "organizations",
    metadata,
    _id(),
    Column("code", String(80), nullable=False, unique=True),
    _text("name", 200),
    Column("org_type", String(30), nullable=False),
    Column("region", String(16), nullable=False),
    Column("disabled", Boolean, nullable=False, server_default="0"),
    Column("max_messages_per_minute", Integer, nullable=True),
    Column("max_connections", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

#: The MSH-4 values (namespace ids and universal ids) an organization sends
#: as; one facility id belongs to one organization.
organization_facilities = Table(
    "organization_facilities",
    metadata,
    Column("facility_id", String(180), primary_key=True),
    Column("organization_id", RowId, ForeignKey("organizations.id"), nullable=False),
    Index(None, "organization_id"),
)

#: How a listener recognises an organization without a password: a client
#: certificate's SHA-256 fingerprint (kind ``certificate``) or a network in
#: CIDR form (kind ``address``).
organization_credentials = Table(
    "organization_credentials",
    metadata,
    _id(),
    Column("organization_id", RowId, ForeignKey("organizations.id"), nullable=False),
    Column("kind", String(12), nullable=False),
    Column("value", String(200), nullable=False),
    _text("label", 200),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("kind", "value"),
    Index(None, "organization_id"),
)

#: A person or system account of an organization; the password is an argon2
#: hash, never anything a log or an answer shows.
users = Table(
    "users",
    metadata,
    _id(),
    Column("organization_id", RowId, ForeignKey("organizations.id"), nullable=False),
    Column("username", String(80), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("disabled", Boolean, nullable=False, server_default="0"),
    Column("failed_attempts", Integer, nullable=False, server_default="0"),
    Column("locked_until", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("password_changed_at", DateTime(timezone=True), nullable=False),
    Index(None, "organization_id"),
)

# -- inventory (issue 19): lots per facility, every change a transaction ------

inventory_lots = Table(
    "inventory_lots",
    metadata,
    _id(),
    Column("region", String(16), nullable=False),
    Column("facility", String(180), nullable=False),
    Column("cvx", String(10), nullable=False),
    _text("mvx", 10),
    Column("lot_number", String(100), nullable=False),
    Column("expires_on", Date, nullable=False),
    # VFC, state or private: separate stock even under one lot number.
    Column("funding", String(10), nullable=False),
    Column("unit", String(20), nullable=False, server_default="doses"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("region", "facility", "lot_number", "cvx", "funding"),
)

inventory_transactions = Table(
    "inventory_transactions",
    metadata,
    _id(),
    Column("region", String(16), nullable=False),
    Column("facility", String(180), nullable=False),
    Column("lot_id", RowId, ForeignKey("inventory_lots.id"), nullable=False),
    Column("kind", String(20), nullable=False),
    # Signed: what the transaction adds to (or takes from) the quantity on
    # hand, which is the sum of these and is never stored.
    Column("quantity", Integer, nullable=False),
    _text("reason", 200),
    _text("counterparty", 180),
    Column("vaccination_id", RowId, nullable=True),
    Column("journal_id", RowId, nullable=True),
    Column("occurred_on", Date, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    _text("recorded_by", 180),
    # Covering: a lot's quantity on hand is summed from the index alone.
    Index(None, "lot_id", "quantity"),
    Index(None, "region", "facility", "occurred_on"),
    Index(None, "region", "vaccination_id"),
)

inventory_exceptions = Table(
    "inventory_exceptions",
    metadata,
    _id(),
    Column("region", String(16), nullable=False),
    Column("facility", String(180), nullable=False),
    Column("vaccination_id", RowId, nullable=True),
    Column("journal_id", RowId, nullable=True),
    Column("cvx", String(10), nullable=False),
    _text("lot_number", 200),
    Column("reason", String(30), nullable=False),
    Column("occurred_on", Date, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index(None, "region", "facility"),
)

#: One reminder/recall run (``cairn recall``): who ran it, on what, as of when.
recall_runs = Table(
    "recall_runs",
    metadata,
    _id(),
    Column("organization", String(180), nullable=False),
    Column("region", String(16), nullable=False),
    _text("facility", 180),
    Column("as_of", Date, nullable=False),
    # The run's filters as given (vaccine group, age, overdue only), as text.
    _text("criteria", 300),
    Column("ran_at", DateTime(timezone=True), nullable=False),
    Column("considered", Integer, nullable=False, server_default="0"),
    Column("listed", Integer, nullable=False, server_default="0"),
    Index(None, "organization", "ran_at"),
)

#: A patient a run listed: the worst status, since when, and what was due.
recall_listings = Table(
    "recall_listings",
    metadata,
    _id(),
    Column("run_id", RowId, ForeignKey("recall_runs.id"), nullable=False),
    Column("region", String(16), nullable=False),
    Column("patient_id", RowId, nullable=False),
    Column("status", String(10), nullable=False),
    Column("since", Date, nullable=False),
    _text("due", 300),
    Index(None, "run_id"),
    Index(None, "region", "patient_id"),
)

#: A contact made about a recall (a letter sent, a call made), by the
#: organization that ran the run that listed the patient.
recall_contacts = Table(
    "recall_contacts",
    metadata,
    _id(),
    Column("run_id", RowId, ForeignKey("recall_runs.id"), nullable=False),
    Column("region", String(16), nullable=False),
    Column("patient_id", RowId, nullable=False),
    Column("organization", String(180), nullable=False),
    Column("method", String(12), nullable=False),
    Column("contacted_on", Date, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index(None, "region", "patient_id"),
)
