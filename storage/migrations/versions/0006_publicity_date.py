"""PD1-18: the publicity code's effective date

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

PD1-18 was read and dropped; queries now return it with PD1-11. On
PostgreSQL the column is added to the partitioned parent and reaches every
partition.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column("patients", sa.Column("publicity_date", sa.Date(), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("patients") as batch:
        batch.drop_column("publicity_date")
