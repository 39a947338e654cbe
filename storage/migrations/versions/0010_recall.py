"""reminder/recall: runs, the patients each listed, and contacts made

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

``cairn recall`` records each run (recall_runs) and the patients it listed
(recall_listings); ``cairn recall mark`` records a contact (recall_contacts)
so that a later run shows who was already contacted, when and how. No
foreign key to patients: on PostgreSQL that table is partitioned by region.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "recall_runs",
        sa.Column("id", RowId, autoincrement=True, nullable=False),
        sa.Column("organization", sa.String(length=180), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("facility", sa.String(length=180), server_default="", nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("criteria", sa.String(length=300), server_default="", nullable=False),
        sa.Column("ran_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("considered", sa.Integer(), server_default="0", nullable=False),
        sa.Column("listed", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recall_runs")),
    )
    op.create_index(
        "ix_recall_runs_organization_ran_at", "recall_runs", ["organization", "ran_at"]
    )
    op.create_table(
        "recall_listings",
        sa.Column("id", RowId, autoincrement=True, nullable=False),
        sa.Column("run_id", RowId, nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("patient_id", RowId, nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("since", sa.Date(), nullable=False),
        sa.Column("due", sa.String(length=300), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["recall_runs.id"],
            name=op.f("fk_recall_listings_run_id_recall_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recall_listings")),
    )
    op.create_index("ix_recall_listings_run_id", "recall_listings", ["run_id"])
    op.create_index(
        "ix_recall_listings_region_patient_id",
        "recall_listings",
        ["region", "patient_id"],
    )
    op.create_table(
        "recall_contacts",
        sa.Column("id", RowId, autoincrement=True, nullable=False),
        sa.Column("run_id", RowId, nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("patient_id", RowId, nullable=False),
        sa.Column("organization", sa.String(length=180), nullable=False),
        sa.Column("method", sa.String(length=12), nullable=False),
        sa.Column("contacted_on", sa.Date(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["recall_runs.id"],
            name=op.f("fk_recall_contacts_run_id_recall_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recall_contacts")),
    )
    op.create_index(
        "ix_recall_contacts_region_patient_id",
        "recall_contacts",
        ["region", "patient_id"],
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_recall_contacts_region_patient_id", "recall_contacts")
    op.drop_table("recall_contacts")
    op.drop_index("ix_recall_listings_region_patient_id", "recall_listings")
    op.drop_index("ix_recall_listings_run_id", "recall_listings")
    op.drop_table("recall_listings")
    op.drop_index("ix_recall_runs_organization_ran_at", "recall_runs")
    op.drop_table("recall_runs")
