"""inventory: vaccine lots per facility, their transactions and exceptions

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

Issue 19 item 1. Quantity on hand is the sum of a lot's transactions and is
never stored; none of these tables is partitioned (they hold no patient
data: a transaction names a dose only by its row id).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "inventory_lots",
        sa.Column("id", RowId, autoincrement=True, nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("facility", sa.String(length=180), nullable=False),
        sa.Column("cvx", sa.String(length=10), nullable=False),
        sa.Column("mvx", sa.String(length=10), server_default="", nullable=False),
        sa.Column("lot_number", sa.String(length=100), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column("funding", sa.String(length=10), nullable=False),
        sa.Column("unit", sa.String(length=20), server_default="doses", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_lots")),
        sa.UniqueConstraint(
            "region",
            "facility",
            "lot_number",
            "cvx",
            "funding",
            name=op.f("uq_inventory_lots_region_facility_lot_number_cvx_funding"),
        ),
    )
    op.create_table(
        "inventory_transactions",
        sa.Column("id", RowId, autoincrement=True, nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("facility", sa.String(length=180), nullable=False),
        sa.Column("lot_id", RowId, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=200), server_default="", nullable=False),
        sa.Column(
            "counterparty", sa.String(length=180), server_default="", nullable=False
        ),
        sa.Column("vaccination_id", RowId, nullable=True),
        sa.Column("journal_id", RowId, nullable=True),
        sa.Column("occurred_on", sa.Date(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "recorded_by", sa.String(length=180), server_default="", nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["lot_id"],
            ["inventory_lots.id"],
            name=op.f("fk_inventory_transactions_lot_id_inventory_lots"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_transactions")),
    )
    op.create_index(
        op.f("ix_inventory_transactions_lot_id_quantity"),
        "inventory_transactions",
        ["lot_id", "quantity"],
    )
    op.create_index(
        op.f("ix_inventory_transactions_region_facility_occurred_on"),
        "inventory_transactions",
        ["region", "facility", "occurred_on"],
    )
    op.create_index(
        op.f("ix_inventory_transactions_region_vaccination_id"),
        "inventory_transactions",
        ["region", "vaccination_id"],
    )
    op.create_table(
        "inventory_exceptions",
        sa.Column("id", RowId, autoincrement=True, nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("facility", sa.String(length=180), nullable=False),
        sa.Column("vaccination_id", RowId, nullable=True),
        sa.Column("journal_id", RowId, nullable=True),
        sa.Column("cvx", sa.String(length=10), nullable=False),
        sa.Column(
            "lot_number", sa.String(length=200), server_default="", nullable=False
        ),
        sa.Column("reason", sa.String(length=30), nullable=False),
        sa.Column("occurred_on", sa.Date(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_exceptions")),
    )
    op.create_index(
        op.f("ix_inventory_exceptions_region_facility"),
        "inventory_exceptions",
        ["region", "facility"],
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("inventory_exceptions")
    op.drop_table("inventory_transactions")
    op.drop_table("inventory_lots")
