"""message_journal.raw_size: the size of a message journaled by its head only

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

A message refused from an unregistered sender (or over a limit) is journaled
as its content digest and first bytes, not in full (issue 18 item 7): the
column keeps the size received; NULL means ``raw`` is the whole message.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column("message_journal", sa.Column("raw_size", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("message_journal") as batch:
        batch.drop_column("raw_size")
