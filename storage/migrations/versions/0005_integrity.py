"""confidentiality and integrity: reused control ids, lock time, versions

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

- message_journal: (sender, control_id) is no longer unique. A resend (the
  same content, MSH-7 aside) is recognised by ``content_digest``; a reused
  control id with other content is a new message with its own row.
- patients.locked_at: when the registry set the lock, so that clearing it is
  honoured only from an organization that submitted before that moment.
- patient_identifiers.submitted_by, next_of_kin.submitted_by: who reported
  each, so that a locked record shows an organization only what it sent.
- audit_log.detail: why (the conflict, the lock rule, the change).
- patient_versions: every demographic submission and change, kept.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("message_journal") as batch:
        batch.drop_constraint("uq_message_journal_sender_control_id", type_="unique")
        batch.add_column(
            sa.Column(
                "content_digest",
                sa.String(length=64),
                server_default="",
                nullable=False,
            )
        )
        batch.create_index(
            "ix_message_journal_sender_control_id", ["sender", "control_id"]
        )
    op.add_column(
        "patients", sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True)
    )
    for table in ("patient_identifiers", "next_of_kin"):
        op.add_column(
            table,
            sa.Column(
                "submitted_by", sa.String(length=180), server_default="", nullable=False
            ),
        )
    op.add_column(
        "audit_log",
        sa.Column("detail", sa.String(length=300), server_default="", nullable=False),
    )
    op.create_table(
        "patient_versions",
        sa.Column("id", RowId, autoincrement=True, nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("patient_id", RowId, nullable=False),
        sa.Column("journal_id", RowId, nullable=True),
        sa.Column("sender", sa.String(length=180), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("demographics", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_versions")),
    )
    op.create_index(
        "ix_patient_versions_region_patient_id",
        "patient_versions",
        ["region", "patient_id"],
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_patient_versions_region_patient_id", "patient_versions")
    op.drop_table("patient_versions")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("detail")
    for table in ("next_of_kin", "patient_identifiers"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("submitted_by")
    with op.batch_alter_table("patients") as batch:
        batch.drop_column("locked_at")
    with op.batch_alter_table("message_journal") as batch:
        batch.drop_index("ix_message_journal_sender_control_id")
        batch.drop_column("content_digest")
        batch.create_unique_constraint(
            "uq_message_journal_sender_control_id", ["sender", "control_id"]
        )
