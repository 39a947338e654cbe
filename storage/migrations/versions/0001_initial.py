"""initial schema: journal, patients, doses, observations, audit

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "audit_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requester", sa.String(length=180), nullable=False),
        sa.Column("requester_region", sa.String(length=16), nullable=False),
        sa.Column(
            "patient_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("patient_region", sa.String(length=16), nullable=True),
        sa.Column(
            "journal_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("query_tag", sa.String(length=64), server_default="", nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("profile", sa.String(length=8), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_log_patient_id"), ["patient_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_audit_log_requester_at"), ["requester", "at"], unique=False
        )

    op.create_table(
        "message_journal",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("sender", sa.String(length=180), nullable=False),
        sa.Column("control_id", sa.String(length=199), nullable=False),
        sa.Column("message_type", sa.String(length=20), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("peer", sa.String(length=80), server_default="", nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=True),
        sa.Column("ack_code", sa.String(length=2), nullable=True),
        sa.Column("outcome", sa.String(length=300), server_default="", nullable=False),
        sa.Column("error_count", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_journal")),
        sa.UniqueConstraint(
            "sender", "control_id", name=op.f("uq_message_journal_sender_control_id")
        ),
    )
    with op.batch_alter_table("message_journal", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_message_journal_received_at"), ["received_at"], unique=False
        )

    op.create_table(
        "patients",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("sex", sa.String(length=1), server_default="", nullable=False),
        sa.Column(
            "family_name", sa.String(length=100), server_default="", nullable=False
        ),
        sa.Column(
            "given_name", sa.String(length=100), server_default="", nullable=False
        ),
        sa.Column(
            "middle_name", sa.String(length=100), server_default="", nullable=False
        ),
        sa.Column("suffix", sa.String(length=20), server_default="", nullable=False),
        sa.Column(
            "mother_maiden_family",
            sa.String(length=100),
            server_default="",
            nullable=False,
        ),
        sa.Column(
            "mother_maiden_given",
            sa.String(length=100),
            server_default="",
            nullable=False,
        ),
        sa.Column("race", sa.String(length=100), server_default="", nullable=False),
        sa.Column("ethnicity", sa.String(length=40), server_default="", nullable=False),
        sa.Column("street", sa.String(length=200), server_default="", nullable=False),
        sa.Column("city", sa.String(length=100), server_default="", nullable=False),
        sa.Column("state", sa.String(length=10), server_default="", nullable=False),
        sa.Column(
            "postal_code", sa.String(length=20), server_default="", nullable=False
        ),
        sa.Column("country", sa.String(length=10), server_default="", nullable=False),
        sa.Column("phone", sa.String(length=20), server_default="", nullable=False),
        sa.Column("email", sa.String(length=200), server_default="", nullable=False),
        sa.Column(
            "multiple_birth", sa.String(length=1), server_default="", nullable=False
        ),
        sa.Column("birth_order", sa.Integer(), nullable=True),
        sa.Column("protection", sa.String(length=1), server_default="", nullable=False),
        sa.Column("protection_date", sa.Date(), nullable=True),
        sa.Column(
            "registry_status", sa.String(length=1), server_default="", nullable=False
        ),
        sa.Column("registry_status_date", sa.Date(), nullable=True),
        sa.Column(
            "publicity_code", sa.String(length=4), server_default="", nullable=False
        ),
        sa.Column(
            "death_indicator", sa.String(length=1), server_default="", nullable=False
        ),
        sa.Column("death_date", sa.Date(), nullable=True),
        sa.Column(
            "created_by_journal_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_journal_id"],
            ["message_journal.id"],
            name=op.f("fk_patients_created_by_journal_id_message_journal"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
    )
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_patients_region_birth_date"),
            ["region", "birth_date"],
            unique=False,
        )

    op.create_table(
        "next_of_kin",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "patient_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column(
            "family_name", sa.String(length=100), server_default="", nullable=False
        ),
        sa.Column(
            "given_name", sa.String(length=100), server_default="", nullable=False
        ),
        sa.Column(
            "relationship", sa.String(length=10), server_default="", nullable=False
        ),
        sa.Column("street", sa.String(length=200), server_default="", nullable=False),
        sa.Column("city", sa.String(length=100), server_default="", nullable=False),
        sa.Column("state", sa.String(length=10), server_default="", nullable=False),
        sa.Column(
            "postal_code", sa.String(length=20), server_default="", nullable=False
        ),
        sa.Column("phone", sa.String(length=20), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_next_of_kin_patient_id_patients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_next_of_kin")),
    )
    with op.batch_alter_table("next_of_kin", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_next_of_kin_patient_id"), ["patient_id"], unique=False
        )

    op.create_table(
        "patient_identifiers",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "patient_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=100), nullable=False),
        sa.Column("authority", sa.String(length=180), nullable=False),
        sa.Column("type_code", sa.String(length=10), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_patient_identifiers_patient_id_patients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_identifiers")),
        sa.UniqueConstraint(
            "region",
            "authority",
            "value",
            name=op.f("uq_patient_identifiers_region_authority_value"),
        ),
    )
    with op.batch_alter_table("patient_identifiers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_patient_identifiers_patient_id"),
            ["patient_id"],
            unique=False,
        )

    op.create_table(
        "patient_submitters",
        sa.Column(
            "patient_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("facility", sa.String(length=180), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_patient_submitters_patient_id_patients"),
        ),
        sa.PrimaryKeyConstraint(
            "patient_id", "facility", name=op.f("pk_patient_submitters")
        ),
    )
    op.create_table(
        "vaccinations",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column(
            "patient_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "journal_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("sending_facility", sa.String(length=180), nullable=False),
        sa.Column(
            "filler_id", sa.String(length=100), server_default="", nullable=False
        ),
        sa.Column(
            "filler_namespace", sa.String(length=180), server_default="", nullable=False
        ),
        sa.Column(
            "placer_id", sa.String(length=100), server_default="", nullable=False
        ),
        sa.Column("cvx", sa.String(length=10), nullable=False),
        sa.Column("cvx_text", sa.String(length=200), server_default="", nullable=False),
        sa.Column("ndc", sa.String(length=20), server_default="", nullable=False),
        sa.Column("mvx", sa.String(length=10), server_default="", nullable=False),
        sa.Column("administered_on", sa.Date(), nullable=False),
        sa.Column(
            "administered_at_raw",
            sa.String(length=30),
            server_default="",
            nullable=False,
        ),
        sa.Column("amount", sa.String(length=20), server_default="", nullable=False),
        sa.Column("units", sa.String(length=20), server_default="", nullable=False),
        sa.Column(
            "lot_numbers", sa.String(length=200), server_default="", nullable=False
        ),
        sa.Column("lot_expiration", sa.Date(), nullable=True),
        sa.Column(
            "information_source", sa.String(length=4), server_default="", nullable=False
        ),
        sa.Column(
            "completion_status", sa.String(length=4), server_default="", nullable=False
        ),
        sa.Column(
            "action_code", sa.String(length=2), server_default="", nullable=False
        ),
        sa.Column(
            "refusal_reason", sa.String(length=4), server_default="", nullable=False
        ),
        sa.Column(
            "administering_provider",
            sa.String(length=100),
            server_default="",
            nullable=False,
        ),
        sa.Column(
            "administered_location",
            sa.String(length=180),
            server_default="",
            nullable=False,
        ),
        sa.Column("route", sa.String(length=20), server_default="", nullable=False),
        sa.Column("site", sa.String(length=10), server_default="", nullable=False),
        sa.Column(
            "funding_eligibility",
            sa.String(length=20),
            server_default="",
            nullable=False,
        ),
        sa.Column(
            "funding_source", sa.String(length=20), server_default="", nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["journal_id"],
            ["message_journal.id"],
            name=op.f("fk_vaccinations_journal_id_message_journal"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_vaccinations_patient_id_patients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vaccinations")),
    )
    with op.batch_alter_table("vaccinations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_vaccinations_region_patient_id"),
            ["region", "patient_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f(
                "ix_vaccinations_region_sending_facility_filler_namespace_filler_id"
            ),
            ["region", "sending_facility", "filler_namespace", "filler_id"],
            unique=False,
        )

    op.create_table(
        "observations",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column(
            "patient_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "vaccination_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "journal_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("set_id", sa.Integer(), nullable=False),
        sa.Column("sub_id", sa.String(length=20), server_default="", nullable=False),
        sa.Column("value_type", sa.String(length=4), server_default="", nullable=False),
        sa.Column("loinc", sa.String(length=20), nullable=False),
        sa.Column(
            "loinc_text", sa.String(length=200), server_default="", nullable=False
        ),
        sa.Column(
            "value_code", sa.String(length=60), server_default="", nullable=False
        ),
        sa.Column("value_text", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "value_system", sa.String(length=40), server_default="", nullable=False
        ),
        sa.Column("observed_on", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["journal_id"],
            ["message_journal.id"],
            name=op.f("fk_observations_journal_id_message_journal"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_observations_patient_id_patients"),
        ),
        sa.ForeignKeyConstraint(
            ["vaccination_id"],
            ["vaccinations.id"],
            name=op.f("fk_observations_vaccination_id_vaccinations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observations")),
    )
    with op.batch_alter_table("observations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_observations_region_patient_id"),
            ["region", "patient_id"],
            unique=False,
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("observations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_observations_region_patient_id"))

    op.drop_table("observations")
    with op.batch_alter_table("vaccinations", schema=None) as batch_op:
        batch_op.drop_index(
            batch_op.f(
                "ix_vaccinations_region_sending_facility_filler_namespace_filler_id"
            )
        )
        batch_op.drop_index(batch_op.f("ix_vaccinations_region_patient_id"))

    op.drop_table("vaccinations")
    op.drop_table("patient_submitters")
    with op.batch_alter_table("patient_identifiers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patient_identifiers_patient_id"))

    op.drop_table("patient_identifiers")
    with op.batch_alter_table("next_of_kin", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_next_of_kin_patient_id"))

    op.drop_table("next_of_kin")
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patients_region_birth_date"))

    op.drop_table("patients")
    with op.batch_alter_table("message_journal", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_journal_received_at"))

    op.drop_table("message_journal")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_requester_at"))
        batch_op.drop_index(batch_op.f("ix_audit_log_patient_id"))

    op.drop_table("audit_log")
