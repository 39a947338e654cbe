"""Alembic migrations (append-only; never edit a shipped revision)."""
