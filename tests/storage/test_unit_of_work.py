"""Transactions, savepoints and storage errors (storage/unit_of_work.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from storage import (
    Database,
    NewJournalEntry,
    PermanentStorageError,
    TransientStorageError,
    open_database,
)
from storage.schema import message_journal
from tests.support.messages import CANARY_MRN
from tests.support.stored import NOW, insert_journal


def test_savepoint_rolls_back_only_its_block(db: Database) -> None:
    """A failing message inside a group commit leaves the others committed."""
    with db.transaction() as uow:
        with uow.savepoint():
            insert_journal(uow, "KEEP")
        with pytest.raises(RuntimeError), uow.savepoint():
            insert_journal(uow, "LOSE")
            raise RuntimeError("boom")
    with db.transaction() as uow:
        assert len(uow.journal.find("CLINIC1", "KEEP")) == 1
        assert uow.journal.find("CLINIC1", "LOSE") == []


def test_transaction_rolls_back_on_error(db: Database) -> None:
    """Nothing is half-stored when the transaction fails."""
    with pytest.raises(RuntimeError), db.transaction() as uow:
        insert_journal(uow)
        raise RuntimeError("before commit")
    with db.transaction() as uow:
        assert uow.journal.find("CLINIC1", "C1") == []


def test_savepoint_turns_a_refused_value_into_a_permanent_error(db: Database) -> None:
    """A value the database refuses is permanent, and the error quotes no value."""
    with db.transaction() as uow:
        with pytest.raises(PermanentStorageError) as caught, uow.savepoint():
            uow.journal.insert(
                NewJournalEntry(None, CANARY_MRN, "VXU^V04", NOW, b"MSH", "p")  # type: ignore[arg-type]
            )
        insert_journal(uow, "AFTER")
    # Ours only: PostgreSQL's own DETAIL can echo the failing row, which is
    # why logs carry an exception's type and place, never its text.
    assert CANARY_MRN not in str(caught.value)
    with db.transaction() as uow:
        assert len(uow.journal.find("CLINIC1", "AFTER")) == 1


def test_database_hides_parameters_in_sqlalchemy_errors(db: Database) -> None:
    """Statements run through SQLAlchemy Core keep their bound values out of error text."""
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError) as caught, db.engine.begin() as conn:
        conn.execute(
            message_journal.insert(),
            {
                "sender": None,
                "control_id": CANARY_MRN,
                "message_type": "VXU",
                "received_at": NOW,
                "raw": b"MSH",
            },
        )
    assert "[SQL parameters hidden due to hide_parameters=True]" in str(caught.value)
    assert "[parameters:" not in str(caught.value)


def test_transaction_on_an_unreachable_database_is_a_transient_error(
    tmp_path,
) -> None:
    """A database that cannot be opened is a failure a later attempt can overcome."""
    (tmp_path / "dir.sqlite3").mkdir()
    for url in (
        f"sqlite:///{tmp_path / 'dir.sqlite3'}",
        "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2",
    ):
        db = open_database(url)
        try:
            with pytest.raises(TransientStorageError), db.transaction():
                pass
        finally:
            db.close()
