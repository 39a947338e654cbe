"""The message journal: every received message, its response and outcome."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    bindparam,
    case,
    func,
    select,
    update,
)

from storage import dialects
from storage._records import (
    check_positional,
    field_names,
    fields_of,
    in_list,
    in_values,
    record_columns,
)
from storage._sql import Runner, Statement, StatementFamily
from storage.records import (
    JournalAnswer,
    JournalEntry,
    JournalLookup,
    NewJournalEntry,
)
from storage.schema import (
    message_journal,
)

check_positional(message_journal, JournalEntry)


# -- the hot path's statements (compiled once per dialect, see storage/_sql.py) --

_JOURNAL_COLUMNS = record_columns(message_journal, JournalEntry)
_JOURNAL_FIND = Statement(
    select(*_JOURNAL_COLUMNS)
    .where(
        message_journal.c.sender == bindparam("sender"),
        message_journal.c.control_id == bindparam("control_id"),
    )
    .order_by(message_journal.c.id.desc()),
    _JOURNAL_COLUMNS,
)
# Per (sender, control id, content digest): the newest row. Several rows may
# share a key (a reused control id with other content is a new message), so
# the look-up groups them; the answer itself is read by id, and only for a
# resend. ``sender IN (…) AND control_id IN (…)``, exact pairs kept in
# Python: SQLite searches the index for that form, while for a row-value IN
# list it scans the whole index.
#: The journal outcome of a test-mode message starts so (engine.pipeline.NOT_STORED).
TEST_OUTCOME_PREFIX = "not stored ("

#: 1 for a test-mode row, 0 for a live one: a resend is answered from the
#: newest row of its own mode, so a test copy never hides a live original.
#: (substr, not LIKE: the statement text goes to psycopg, where % is special)
_IS_TEST = case(
    (
        func.substr(message_journal.c.outcome, 1, len(TEST_OUTCOME_PREFIX))
        == TEST_OUTCOME_PREFIX,
        1,
    ),
    else_=0,
)
_JOURNAL_DIGESTS = StatementFamily(
    lambda shape: (
        select(
            message_journal.c.sender,
            message_journal.c.control_id,
            message_journal.c.content_digest,
            _IS_TEST,
            func.max(message_journal.c.id),
        )
        .where(
            in_list(message_journal.c.sender, "s", shape[0]),
            in_list(message_journal.c.control_id, "c", shape[1]),
        )
        .group_by(
            message_journal.c.sender,
            message_journal.c.control_id,
            message_journal.c.content_digest,
            _IS_TEST,
        ),
        [],
    )
)
_JOURNAL_ANSWERS = StatementFamily(
    lambda n: (
        select(
            message_journal.c.id,
            message_journal.c.response,
            message_journal.c.ack_code,
            message_journal.c.outcome,
        ).where(in_list(message_journal.c.id, "i", n)),
        [
            message_journal.c.id,
            message_journal.c.response,
            message_journal.c.ack_code,
            message_journal.c.outcome,
        ],
    )
)
_JOURNAL_INSERT = dialects.insert_statement(
    message_journal, [*field_names(NewJournalEntry), "outcome"], returning=True
)
_JOURNAL_INSERT_WITH_ID = dialects.insert_statement(
    message_journal,
    ["id", *field_names(NewJournalEntry), "outcome"],
    returning=False,
)
_SET_RESPONSE = Statement(
    update(message_journal)
    .where(message_journal.c.id == bindparam("_id"))
    .values(
        response=bindparam("response"),
        ack_code=bindparam("ack_code"),
        outcome=bindparam("outcome"),
        error_count=bindparam("error_count"),
        region=bindparam("region"),
    )
)


JOURNAL_KEY_LIMITS: dict[str, int] = {
    "sender": int(message_journal.c.sender.type.length),  # type: ignore[attr-defined]
    "control_id": int(message_journal.c.control_id.type.length),  # type: ignore[attr-defined]
}


def _descriptive(value: str, column: Column[Any]) -> str:
    """A descriptive value cut to fit its column, without NUL (PostgreSQL refuses it).

    Used for what only describes a message (peer, message type, outcome): the
    journal must record every message, whatever its header holds.
    """
    length: int = column.type.length  # type: ignore[attr-defined]
    return value.replace("\x00", "")[:length]


class JournalRepository:
    """The message journal: raw messages, responses and outcomes.

    Every received message has its own row. Several rows may share a
    (sending facility, MSH-10) key: a resend is recognised by the key *and*
    the content digest, so a reused control id with other content is a new
    message (DESIGN.md, "Durability and idempotency"). Callers serialize work
    on one key with :meth:`UnitOfWork.lock`.
    """

    def __init__(
        self,
        conn: Connection,
        sql: Runner | None = None,
        ids: dialects.IdPool | None = None,
    ) -> None:
        self._conn = conn
        self._sql = sql or dialects.runner(conn)
        self._ids = ids

    def find(self, sender: str, control_id: str) -> list[JournalEntry]:
        """Every entry for (sending facility, MSH-10), newest first."""
        rows = self._sql.all(
            _JOURNAL_FIND, {"sender": sender, "control_id": control_id}
        )
        return [JournalEntry(*row) for row in rows]

    def answers(
        self, messages: Iterable[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], JournalLookup]:
        """Look several received messages up at once.

        Args:
            messages: (sending facility, MSH-10, content digest) triples.

        Returns:
            For every triple asked: the newest row with the same key and
            digest, with its stored answer (a resend), and whether rows with
            the same key hold other content (a reused control id). The live
            and the test-mode rows are looked up apart (``resend_of`` and
            ``test_resend_of``).
        """
        wanted = sorted(set(messages))
        keys = sorted({(sender, control) for sender, control, _d in wanted})
        newest: dict[tuple[str, str, str], int] = {}
        newest_test: dict[tuple[str, str, str], int] = {}
        digests: dict[tuple[str, str], set[str]] = {}
        for start in range(0, len(keys), 200):
            chunk = set(keys[start : start + 200])
            senders = sorted({sender for sender, _c in chunk})
            controls = sorted({control_id for _s, control_id in chunk})
            values = {**in_values("s", senders), **in_values("c", controls)}
            for sender, control_id, digest, is_test, id_ in self._sql.all(
                _JOURNAL_DIGESTS[(len(senders), len(controls))], values
            ):
                if (sender, control_id) in chunk:
                    into = newest_test if is_test else newest
                    into[(sender, control_id, digest)] = int(id_)
                    digests.setdefault((sender, control_id), set()).add(digest)
        hits = sorted(
            {found[m] for found in (newest, newest_test) for m in wanted if m in found}
        )
        stored: dict[int, JournalAnswer] = {}
        for start in range(0, len(hits), 200):
            ids = hits[start : start + 200]
            for id_, response, ack_code, outcome in self._sql.all(
                _JOURNAL_ANSWERS[len(ids)], in_values("i", ids)
            ):
                stored[int(id_)] = JournalAnswer(
                    int(id_), response, ack_code, outcome or ""
                )
        found: dict[tuple[str, str, str], JournalLookup] = {}
        for sender, control_id, digest in wanted:
            row = newest.get((sender, control_id, digest))
            test_row = newest_test.get((sender, control_id, digest))
            others = digests.get((sender, control_id), set()) - {digest}
            found[(sender, control_id, digest)] = JournalLookup(
                stored.get(row) if row is not None else None,
                bool(others),
                stored.get(test_row) if test_row is not None else None,
            )
        return found

    def insert(self, entry: NewJournalEntry) -> int:
        """Journal a received message as a new row; returns its id.

        Descriptive values (peer, message type) are cut to their columns, so
        that recording a message never fails for them; the key (sender,
        control id) must already fit :data:`JOURNAL_KEY_LIMITS`.
        """
        values = fields_of(entry)
        values["peer"] = _descriptive(entry.peer, message_journal.c.peer)
        values["message_type"] = _descriptive(
            entry.message_type, message_journal.c.message_type
        )
        values["outcome"] = "received"
        if self._ids is not None:
            # PostgreSQL: the id reserved ahead, the insert queued with the
            # message's other writes (no round trip of its own).
            values["id"] = new_id = self._ids.take("message_journal")
            self._sql.defer(_JOURNAL_INSERT_WITH_ID, values)
            return new_id
        return self._sql.insert(_JOURNAL_INSERT, values)

    def set_response(
        self,
        journal_id: int,
        response: bytes,
        ack_code: str,
        outcome: str,
        error_count: int,
        region: str | None,
    ) -> None:
        """Store the response and outcome of a journaled message."""
        self._sql.defer(
            _SET_RESPONSE,
            {
                "_id": journal_id,
                "response": response,
                "ack_code": ack_code,
                "outcome": _descriptive(outcome, message_journal.c.outcome),
                "error_count": error_count,
                "region": region,
            },
        )
