"""organizations, their facility ids and credentials, and users

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

Who is speaking (issue 17): a listener that authenticates its peers maps a
client certificate or an address to an organization, and the SOAP service a
username and password to one of its users.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "organizations",
        sa.Column("id", RowId, autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=200), server_default="", nullable=False),
        sa.Column("org_type", sa.String(length=30), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("max_messages_per_minute", sa.Integer(), nullable=True),
        sa.Column("max_connections", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
        sa.UniqueConstraint("code", name=op.f("uq_organizations_code")),
    )
    op.create_table(
        "organization_facilities",
        sa.Column("facility_id", sa.String(length=180), nullable=False),
        sa.Column("organization_id", RowId, nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_organization_facilities_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("facility_id", name=op.f("pk_organization_facilities")),
    )
    op.create_index(
        op.f("ix_organization_facilities_organization_id"),
        "organization_facilities",
        ["organization_id"],
    )
    op.create_table(
        "organization_credentials",
        sa.Column("id", RowId, autoincrement=True, nullable=False),
        sa.Column("organization_id", RowId, nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("label", sa.String(length=200), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_organization_credentials_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organization_credentials")),
        sa.UniqueConstraint(
            "kind", "value", name=op.f("uq_organization_credentials_kind_value")
        ),
    )
    op.create_index(
        op.f("ix_organization_credentials_organization_id"),
        "organization_credentials",
        ["organization_id"],
    )
    op.create_table(
        "users",
        sa.Column("id", RowId, autoincrement=True, nullable=False),
        sa.Column("organization_id", RowId, nullable=False),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("failed_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_users_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_index(op.f("ix_users_organization_id"), "users", ["organization_id"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("users")
    op.drop_table("organization_credentials")
    op.drop_table("organization_facilities")
    op.drop_table("organizations")
