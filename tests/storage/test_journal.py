"""The message journal (storage/journal.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from storage import (
    Database,
    JournalLookup,
    NewJournalEntry,
)
from tests.support.stored import NOW, insert_journal


def test_journal_roundtrip_and_response(db: Database) -> None:
    """A journaled message is found by (sender, control id) with its response."""
    with db.transaction() as uow:
        jid = insert_journal(uow)
        uow.journal.set_response(jid, b"MSA|AA", "AA", "stored", 0, "BAY")
    with db.transaction() as uow:
        (entry,) = uow.journal.find("CLINIC1", "C1")
    assert (entry.id, entry.response, entry.ack_code, entry.raw) == (
        jid,
        b"MSA|AA",
        "AA",
        b"MSH|raw",
    )
    assert entry.received_at == NOW


def test_journal_keeps_every_message_under_a_reused_key(db: Database) -> None:
    """Two messages with the same sender and control id get two rows, newest first."""
    with db.transaction() as uow:
        first = insert_journal(uow, digest="a" * 64)
        second = insert_journal(uow, digest="b" * 64)
    with db.transaction() as uow:
        rows = uow.journal.find("CLINIC1", "C1")
    assert [(r.id, r.content_digest) for r in rows] == [
        (second, "b" * 64),
        (first, "a" * 64),
    ]


def test_journal_answers_finds_the_newest_row_with_the_same_digest(
    db: Database,
) -> None:
    """A resend is the newest row with the same key and digest; other digests say reuse."""
    with db.transaction() as uow:
        old = insert_journal(uow, digest="a" * 64)
        uow.journal.set_response(old, b"MSA|AR|old", "AR", "rejected", 1, "BAY")
        other = insert_journal(uow, digest="b" * 64)
        uow.journal.set_response(other, b"MSA|AA|other", "AA", "stored", 0, "BAY")
        new = insert_journal(uow, digest="a" * 64)
        uow.journal.set_response(new, b"MSA|AA|new", "AA", "stored", 0, "BAY")
    with db.transaction() as uow:
        found = uow.journal.answers(
            [
                ("CLINIC1", "C1", "a" * 64),
                ("CLINIC1", "C1", "c" * 64),
                ("CLINIC1", "C2", "a" * 64),
            ]
        )
    same = found[("CLINIC1", "C1", "a" * 64)]
    assert same.resend_of is not None
    assert (same.resend_of.id, same.resend_of.response, same.resend_of.ack_code) == (
        new,
        b"MSA|AA|new",
        "AA",
    )
    assert same.other_content is True
    assert found[("CLINIC1", "C1", "c" * 64)] == JournalLookup(None, True)
    assert found[("CLINIC1", "C2", "a" * 64)] == JournalLookup(None, False)


def test_journal_answers_keep_senders_apart(db: Database) -> None:
    """The same control id from another sender is neither a resend nor a reuse."""
    with db.transaction() as uow:
        insert_journal(uow, "C1", "CLINIC1", "a" * 64)
        theirs = insert_journal(uow, "C2", "CLINIC2", "a" * 64)
    with db.transaction() as uow:
        found = uow.journal.answers(
            [("CLINIC2", "C1", "a" * 64), ("CLINIC2", "C2", "b" * 64)]
        )
    assert found[("CLINIC2", "C1", "a" * 64)] == JournalLookup(None, False)
    assert found[("CLINIC2", "C2", "b" * 64)] == JournalLookup(None, True)
    assert theirs > 0


def test_journal_insert_cuts_descriptive_values_to_fit(db: Database) -> None:
    """An over-long peer or message type, even with NUL, never makes recording fail."""
    with db.transaction() as uow:
        jid = uow.journal.insert(
            NewJournalEntry(
                "CLINIC1",
                "C1",
                "VXU^" + "V\x00" * 50,
                NOW,
                b"MSH|raw\x00",
                "p\x00" * 200,
                "BAY",
            )
        )
        uow.journal.set_response(jid, b"MSA|AR", "AR", "x\x00" * 400, 1, "BAY")
    entry = db.journal_get(jid)
    assert entry is not None
    assert (entry.message_type, entry.peer, entry.outcome, entry.raw) == (
        ("VXU^" + "V" * 50)[:20],
        "p" * 80,
        "x" * 300,
        b"MSH|raw\x00",
    )


def test_journal_search_filters(db: Database) -> None:
    """The journal is searchable by sender, control id, type and outcome."""
    with db.transaction() as uow:
        a = insert_journal(uow, "A1")
        insert_journal(uow, "B1", sender="CLINIC2")
        uow.journal.set_response(a, b"x", "AE", "rejected", 1, "BAY")
    assert [e.control_id for e in db.journal_search(sender="CLINIC2")] == ["B1"]
    assert [e.control_id for e in db.journal_search(ack_code="AE")] == ["A1"]
    assert len(db.journal_search(message_type="VXU")) == 2
    assert db.journal_get(a) is not None
