"""name blocking keys on patients, indexed with the birth date

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Scored matching reads the patients born on the incoming birth date and, on the
dates one typing error away, only those whose family or given name key agrees
(storage/keys.py). The keys of existing patients are filled in here, in
batches, from the names already stored. On PostgreSQL the columns and indexes
are added to the partitioned parent and reach every partition.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.keys import name_key

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BATCH = 5000


def upgrade() -> None:
    """Apply this revision."""
    op.add_column(
        "patients",
        sa.Column("family_key", sa.String(length=8), server_default="", nullable=False),
    )
    op.add_column(
        "patients",
        sa.Column("given_key", sa.String(length=8), server_default="", nullable=False),
    )
    conn = op.get_bind()
    patients = sa.table(
        "patients",
        sa.column("id"),
        sa.column("region"),
        sa.column("family_name"),
        sa.column("given_name"),
        sa.column("family_key"),
        sa.column("given_key"),
    )
    fill = (
        sa.update(patients)
        .where(
            patients.c.id == sa.bindparam("_id"),
            patients.c.region == sa.bindparam("_region"),
        )
        .values(family_key=sa.bindparam("fk"), given_key=sa.bindparam("gk"))
    )
    last = 0
    while True:
        rows = conn.execute(
            sa.select(
                patients.c.id,
                patients.c.region,
                patients.c.family_name,
                patients.c.given_name,
            )
            .where(patients.c.id > last)
            .order_by(patients.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        conn.execute(
            fill,
            [
                {
                    "_id": r.id,
                    "_region": r.region,
                    "fk": name_key(r.family_name),
                    "gk": name_key(r.given_name),
                }
                for r in rows
            ],
        )
        last = rows[-1].id
    op.create_index(
        op.f("ix_patients_region_family_key_birth_date"),
        "patients",
        ["region", "family_key", "birth_date"],
    )
    op.create_index(
        op.f("ix_patients_region_given_key_birth_date"),
        "patients",
        ["region", "given_key", "birth_date"],
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(op.f("ix_patients_region_given_key_birth_date"), "patients")
    op.drop_index(op.f("ix_patients_region_family_key_birth_date"), "patients")
    with op.batch_alter_table("patients") as batch:
        batch.drop_column("given_key")
        batch.drop_column("family_key")
