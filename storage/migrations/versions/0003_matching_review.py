"""matching decisions, review queue, undoable merges, dose de-duplication

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("vaccinations") as batch:
        batch.add_column(sa.Column("duplicate_of", RowId, nullable=True))
        batch.add_column(
            sa.Column(
                "dedup_reason", sa.String(length=200), server_default="", nullable=False
            )
        )
    op.create_table(
        "patient_links",
        sa.Column("merged_id", RowId, nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("survivor_id", RowId, nullable=False),
        sa.Column("review_id", RowId, nullable=True),
        sa.Column("active", sa.Boolean(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("merged_id", name=op.f("pk_patient_links")),
    )
    op.create_index(
        op.f("ix_patient_links_survivor_id"), "patient_links", ["survivor_id"]
    )
    op.create_table(
        "match_decisions",
        sa.Column("id", RowId, autoincrement=True, nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("journal_id", RowId, nullable=True),
        sa.Column("patient_id", RowId, nullable=True),
        sa.Column("candidate_id", RowId, nullable=True),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("score", sa.Float(), server_default="0", nullable=False),
        sa.Column("reasons", sa.Text(), server_default="", nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match_decisions")),
    )
    op.create_index(
        op.f("ix_match_decisions_patient_id"), "match_decisions", ["patient_id"]
    )
    op.create_table(
        "review_items",
        sa.Column("id", RowId, autoincrement=True, nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("left_id", RowId, nullable=False),
        sa.Column("right_id", RowId, nullable=False),
        sa.Column("score", sa.Float(), server_default="0", nullable=False),
        sa.Column("reasons", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "status", sa.String(length=12), server_default="open", nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "decided_by", sa.String(length=80), server_default="", nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_items")),
    )
    op.create_index(
        op.f("ix_review_items_status_kind"), "review_items", ["status", "kind"]
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("review_items")
    op.drop_table("match_decisions")
    op.drop_table("patient_links")
    with op.batch_alter_table("vaccinations") as batch:
        batch.drop_column("dedup_reason")
        batch.drop_column("duplicate_of")
