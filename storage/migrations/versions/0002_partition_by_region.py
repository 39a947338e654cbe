"""partition patients, vaccinations and observations by region (PostgreSQL)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

On PostgreSQL the three patient tables become LIST-partitioned by region,
with a DEFAULT partition; `cairn db upgrade` and `cairn region add` create
one partition per configured region. Primary keys become (id, region), and
the foreign keys to them carry the region too. SQLite is left as it is.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PARTITIONED = ("patients", "vaccinations", "observations")

OLD_FKS = (
    ("patient_identifiers", "fk_patient_identifiers_patient_id_patients"),
    ("next_of_kin", "fk_next_of_kin_patient_id_patients"),
    ("patient_submitters", "fk_patient_submitters_patient_id_patients"),
    ("vaccinations", "fk_vaccinations_patient_id_patients"),
    ("observations", "fk_observations_patient_id_patients"),
    ("observations", "fk_observations_vaccination_id_vaccinations"),
)

NEW_FKS = (
    (
        "patient_identifiers",
        "fk_patient_identifiers_patient_region",
        "patient_id, region",
        "patients (id, region)",
    ),
    (
        "next_of_kin",
        "fk_next_of_kin_patient_region",
        "patient_id, region",
        "patients (id, region)",
    ),
    (
        "patient_submitters",
        "fk_patient_submitters_patient_region",
        "patient_id, region",
        "patients (id, region)",
    ),
    (
        "vaccinations",
        "fk_vaccinations_patient_region",
        "patient_id, region",
        "patients (id, region)",
    ),
    (
        "observations",
        "fk_observations_patient_region",
        "patient_id, region",
        "patients (id, region)",
    ),
    # LIKE does not copy foreign keys: the ones to the journal come back as they were.
    (
        "patients",
        "fk_patients_created_by_journal_id_message_journal",
        "created_by_journal_id",
        "message_journal (id)",
    ),
    (
        "vaccinations",
        "fk_vaccinations_journal_id_message_journal",
        "journal_id",
        "message_journal (id)",
    ),
    (
        "observations",
        "fk_observations_journal_id_message_journal",
        "journal_id",
        "message_journal (id)",
    ),
)


def upgrade() -> None:
    """Apply this revision."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table, name in OLD_FKS:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")
    for table in PARTITIONED:
        indexes = [
            row[1]
            for row in bind.exec_driver_sql(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %(t)s AND indexname NOT LIKE 'pk\\_%%'",
                {"t": table},
            )
        ]
        op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY NONE")
        op.execute(f"ALTER TABLE {table} RENAME TO {table}_unpartitioned")
        op.execute(
            f"ALTER TABLE {table}_unpartitioned RENAME CONSTRAINT pk_{table} TO pk_{table}_unpartitioned"
        )
        op.execute(
            f"CREATE TABLE {table} (LIKE {table}_unpartitioned INCLUDING DEFAULTS) PARTITION BY LIST (region)"
        )
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY (id, region)"
        )
        op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
        op.execute(f"INSERT INTO {table} SELECT * FROM {table}_unpartitioned")  # noqa: S608 - table names are constants
        op.execute(f"DROP TABLE {table}_unpartitioned")
        for definition in indexes:
            op.execute(
                definition.replace(
                    f" ON public.{table}_unpartitioned ", f" ON public.{table} "
                ).replace(f" ON {table}_unpartitioned ", f" ON {table} ")
            )
        op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY {table}.id")
    for table, name, columns, target in NEW_FKS:
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({columns}) REFERENCES {target}"
        )


def downgrade() -> None:
    """Partitioning is not undone (restore from a backup instead)."""
    raise NotImplementedError("0002 cannot be downgraded")
