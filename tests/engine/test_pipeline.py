"""The pipeline without a reactor: journal, idempotency, routing, group commit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from engine.pipeline import Inbound, MessagePipeline, Route, SenderPolicy
from handlers.codes import CodeTables
from handlers.context import MessageContext
from handlers.qbp import QbpHandler, QueryPolicy
from handlers.vxu import VxuDecision, VxuHandler
from parsers import Acknowledgement
from storage import Database, NewJournalEntry, UnitOfWork
from tests.e2e.test_queries import qbp
from tests.support.messages import (
    CANARIES,
    CANARY_FAMILY,
    CANARY_GIVEN,
    CANARY_MRN,
    Dose,
    vxu,
)
from tests.support.mllp import errs, msa_code, segments

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def _pipeline(
    db: Database, policy: str = "reject", handler: Any = None
) -> MessagePipeline:
    return MessagePipeline(
        database=db,
        routes={"VXU": Route(handler or VxuHandler(CodeTables.load()), "VXU_V04")},
        senders=SenderPolicy({"CLINIC1": "BAY", "CLINIC2": "LAO"}, policy, "BAY"),
        now=lambda: NOW,
    )


def _run(pipeline: MessagePipeline, *messages: str) -> list[bytes]:
    return [
        o.payload
        for o in pipeline.process_batch(
            [Inbound(m.encode(), "test", "mllp") for m in messages]
        )
    ]


def _count(db: Database, table: str) -> int:
    from sqlalchemy import text

    with db.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_pipeline_stores_and_acknowledges(db: Database) -> None:
    """A clean VXU is journaled, stored and answered AA in one transaction."""
    (reply,) = _run(_pipeline(db), vxu(control_id="A1", doses=[Dose()]))
    assert msa_code(reply) == "AA"
    assert (
        _count(db, "message_journal"),
        _count(db, "patients"),
        _count(db, "vaccinations"),
    ) == (1, 1, 1)
    entry = db.journal_search(control_id="A1")[0]
    assert entry.response == reply
    assert entry.region == "BAY"


def test_pipeline_resend_returns_original_response(db: Database) -> None:
    """The same (MSH-4, MSH-10) gets the stored response and stores nothing new."""
    pipeline = _pipeline(db)
    message = vxu(control_id="R1", doses=[Dose()])
    (first,) = _run(pipeline, message)
    (second,) = _run(pipeline, message)
    assert first == second
    assert _count(db, "vaccinations") == 1


def test_pipeline_resend_within_one_batch_is_stored_once(db: Database) -> None:
    """Two copies of a message in the same group commit are stored once."""
    message = vxu(control_id="R2", doses=[Dose()])
    first, second = _run(_pipeline(db), message, message)
    assert first == second
    assert _count(db, "vaccinations") == 1


def test_pipeline_group_commit_isolates_a_failing_message(db: Database) -> None:
    """A handler crash rolls back that message only and answers AE 207; the others commit."""

    class Flaky(VxuHandler):
        def apply(
            self, decision: VxuDecision, ctx: MessageContext, uow: UnitOfWork, log: Any
        ) -> Acknowledgement:
            result = super().apply(decision, ctx, uow, log)
            patient = decision.result.patient
            if patient is not None and patient.identifiers[0][0] == "M2":
                raise RuntimeError("handler bug")
            return result

    pipeline = _pipeline(db, handler=Flaky(CodeTables.load()))
    ok1, bad, ok2 = _run(
        pipeline,
        vxu(control_id="OK1", mrn="M1", doses=[Dose()]),
        vxu(control_id="BOOM", mrn="M2", doses=[Dose()]),
        vxu(control_id="OK2", mrn="M3", doses=[Dose()]),
    )
    assert (msa_code(ok1), msa_code(bad), msa_code(ok2)) == ("AA", "AE", "AA")
    assert errs(bad)[0][3].startswith("207")
    assert _count(db, "patients") == 2
    assert db.journal_search(control_id="BOOM") == []


def test_pipeline_resend_after_internal_error_is_processed_again(db: Database) -> None:
    """A message that failed inside is not journaled, so its resend is processed afresh."""
    failing = {"on": True}

    class FailsUntilFixed(VxuHandler):
        def apply(
            self, decision: VxuDecision, ctx: MessageContext, uow: UnitOfWork, log: Any
        ) -> Acknowledgement:
            if failing["on"]:
                raise RuntimeError("transient")
            return super().apply(decision, ctx, uow, log)

    pipeline = _pipeline(db, handler=FailsUntilFixed(CodeTables.load()))
    message = vxu(control_id="T1", doses=[Dose()])
    assert msa_code(_run(pipeline, message)[0]) == "AE"
    assert db.journal_search(control_id="T1") == []
    failing["on"] = False  # the fault is gone (a fixed release, a database back)
    assert msa_code(_run(pipeline, message)[0]) == "AA"


def test_a_group_with_a_failing_message_is_retried_one_by_one(db: Database) -> None:
    """Without savepoints a failure rolls the group back; every other message still commits once."""
    seen: list[str] = []

    class FailsOnM2(VxuHandler):
        def apply(
            self, decision: VxuDecision, ctx: MessageContext, uow: UnitOfWork, log: Any
        ) -> Acknowledgement:
            patient = decision.result.patient
            mrn = patient.identifiers[0][0] if patient is not None else ""
            seen.append(mrn)
            if mrn == "M2":
                raise RuntimeError("handler bug")
            return super().apply(decision, ctx, uow, log)

    pipeline = _pipeline(db, handler=FailsOnM2(CodeTables.load()))
    replies = _run(
        pipeline,
        *(vxu(control_id=f"G{i}", mrn=f"M{i}", doses=[Dose()]) for i in range(1, 5)),
    )
    assert [msa_code(r) for r in replies] == ["AA", "AE", "AA", "AA"]
    # the first attempt stopped at M2; the retry wrote each message once
    assert seen == ["M1", "M2", "M1", "M2", "M3", "M4"]
    assert (_count(db, "patients"), _count(db, "vaccinations")) == (3, 3)
    assert _count(db, "message_journal") == 3
    assert db.journal_search(control_id="G2") == []


def test_pipeline_rejects_unknown_sender_under_reject_policy(db: Database) -> None:
    """An unregistered MSH-4 gets AR on MSH-4; nothing but the journal row is stored."""
    (reply,) = _run(
        _pipeline(db), vxu(control_id="U1", sender="NOBODY", doses=[Dose()])
    )
    assert msa_code(reply) == "AR"
    assert errs(reply)[0][2] == "MSH^1^4"
    assert _count(db, "patients") == 0


def test_pipeline_accepts_unknown_sender_with_warning_under_accept_policy(
    db: Database,
) -> None:
    """Under the development policy an unknown sender's data is filed with a warning."""
    (reply,) = _run(
        _pipeline(db, policy="accept"),
        vxu(control_id="U2", sender="NOBODY", doses=[Dose()]),
    )
    assert msa_code(reply) == "AA"
    assert any(e[2] == "MSH^1^4" and e[4] == "W" for e in errs(reply))


def test_pipeline_rejected_message_is_reprocessed_when_resent(db: Database) -> None:
    """An AR (e.g. an unknown sender) is not final: once configured, a resend is processed."""
    message = vxu(control_id="U3", sender="NOBODY", doses=[Dose()])
    assert msa_code(_run(_pipeline(db), message)[0]) == "AR"
    assert msa_code(_run(_pipeline(db, policy="accept"), message)[0]) == "AA"


@pytest.mark.parametrize(
    ("msh16", "answered"), [("NE", False), ("AL", True), ("SU", True), ("", True)]
)
def test_pipeline_honours_msh16(db: Database, msh16: str, answered: bool) -> None:
    """MSH-16 NE suppresses the answer; AL, SU (on success) and empty answer."""
    (reply,) = _run(
        _pipeline(db), vxu(control_id=f"M16{msh16}", doses=[Dose()], msh16=msh16)
    )
    assert bool(reply) is answered
    assert db.journal_search(control_id=f"M16{msh16}")[0].response


def test_pipeline_msh16_er_answers_only_errors(db: Database) -> None:
    """MSH-16 ER (with MSH-15 ER) answers a rejected message but not an accepted one."""
    ok, bad = _run(
        _pipeline(db),
        vxu(control_id="E1", doses=[Dose()], msh16="ER"),
        vxu(control_id="E2", version="2.3", msh16="ER"),
    )
    assert ok == b""
    assert msa_code(bad) == "AR"


def test_pipeline_unreadable_message_gets_ar(db: Database) -> None:
    """Bytes with no MSH get an AR naming MSH and nothing is journaled."""
    (reply,) = _run(_pipeline(db), "this is not HL7")
    assert msa_code(reply) == "AR"
    assert _count(db, "message_journal") == 0


def test_pipeline_oversize_reject_reads_the_header(db: Database) -> None:
    """The reject for an oversize message echoes its control id when the head is readable."""
    head = vxu(control_id="BIG1").encode()[:300]
    reply = _pipeline(db).oversize(head, "peer", "mllp")
    assert msa_code(reply) == "AR"
    assert b"MSA|AR|BIG1" in reply


# -- issue 14: resends, reused control ids, failures, header keys -------------


def _query_pipeline(db: Database) -> MessagePipeline:
    codes = CodeTables.load()
    return MessagePipeline(
        database=db,
        routes={
            "VXU": Route(VxuHandler(codes), "VXU_V04"),
            "QBP": Route(
                QbpHandler(codes, QueryPolicy(False, ("BAY", "LAO")), None),
                "QBP_Q11",
                replay_resends=False,
            ),
        },
        senders=SenderPolicy({"CLINIC1": "BAY", "CLINIC2": "LAO"}, "reject", "BAY"),
        now=lambda: NOW,
    )


def _journal_rows(db: Database, control_id: str) -> list[tuple[Any, ...]]:
    from sqlalchemy import text

    with db.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT id, ack_code, content_digest FROM message_journal"
                    " WHERE control_id = :c ORDER BY id"
                ),
                {"c": control_id},
            )
        ]


def _reuse_warnings(reply: bytes) -> list[list[str]]:
    return [e for e in errs(reply) if e[2] == "MSH^1^10" and e[4] == "W"]


def test_pipeline_exact_resend_writes_no_new_journal_row(db: Database) -> None:
    """A byte-for-byte resend gets the original answer and adds no journal row."""
    pipeline = _pipeline(db)
    message = vxu(control_id="X1", doses=[Dose()])
    (first,) = _run(pipeline, message)
    (second,) = _run(pipeline, message)
    assert second == first
    assert len(_journal_rows(db, "X1")) == 1


def test_pipeline_resend_with_only_msh7_changed_gets_the_original_answer(
    db: Database,
) -> None:
    """A resend restamped in MSH-7 (and with LF terminators) is still the same message."""
    pipeline = _pipeline(db)
    message = vxu(control_id="X2", doses=[Dose(filler="D1")])
    (first,) = _run(pipeline, message)
    restamped = message.replace("20240201120000-0800", "20240202093000-0800")
    assert restamped != message
    (second,) = _run(pipeline, restamped.replace("\r", "\n") + "\n")
    assert second == first
    assert len(_journal_rows(db, "X2")) == 1
    assert _count(db, "vaccinations") == 1


def test_pipeline_reused_control_id_with_other_content_is_a_new_message(
    db: Database,
) -> None:
    """A counter reset: same MSH-4 and MSH-10, other patient: stored, own row, W at MSH-10."""
    pipeline = _pipeline(db)
    (first,) = _run(pipeline, vxu(control_id="X3", mrn="M1", doses=[Dose("08")]))
    (second,) = _run(
        pipeline,
        vxu(control_id="X3", mrn="M2", family="Otherfam", doses=[Dose("20")]),
    )
    assert (msa_code(first), msa_code(second)) == ("AA", "AA")
    assert _reuse_warnings(first) == []
    (warning,) = _reuse_warnings(second)
    assert warning[3].startswith("205")
    assert "used before" in warning[8]
    rows = _journal_rows(db, "X3")
    assert [r[1] for r in rows] == ["AA", "AA"]
    assert rows[0][2] != rows[1][2]
    assert (_count(db, "patients"), _count(db, "vaccinations")) == (2, 2)
    assert [e.response for e in db.journal_search(control_id="X3")] == [second, first]


def test_pipeline_reused_control_id_within_one_batch_is_seen(db: Database) -> None:
    """Two different messages with one control id in the same group commit are both stored."""
    first, second = _run(
        _pipeline(db),
        vxu(control_id="X4", mrn="M1", doses=[Dose()]),
        vxu(control_id="X4", mrn="M2", family="Otherfam", doses=[Dose()]),
    )
    assert _reuse_warnings(first) == []
    assert len(_reuse_warnings(second)) == 1
    assert len(_journal_rows(db, "X4")) == 2
    assert _count(db, "patients") == 2


def test_pipeline_resend_after_a_reuse_gets_its_own_answer(db: Database) -> None:
    """After a reuse, resending either message gets that message's answer, not the other's."""
    pipeline = _pipeline(db)
    one = vxu(control_id="X5", mrn="M1", doses=[Dose()])
    two = vxu(control_id="X5", mrn="M2", family="Otherfam", doses=[Dose()])
    (first,) = _run(pipeline, one)
    (second,) = _run(pipeline, two)
    assert _run(pipeline, one, two) == [first, second]
    assert len(_journal_rows(db, "X5")) == 2


def test_pipeline_control_id_of_another_sender_is_not_a_reuse(db: Database) -> None:
    """Two clinics may use the same MSH-10: no warning, no replay across senders."""
    pipeline = _pipeline(db)
    (first,) = _run(pipeline, vxu(control_id="X6", sender="CLINIC1", doses=[Dose()]))
    (second,) = _run(pipeline, vxu(control_id="X6", sender="CLINIC2", doses=[Dose()]))
    assert second != first
    assert _reuse_warnings(second) == []
    assert len(_journal_rows(db, "X6")) == 2


def test_pipeline_repeated_query_id_gets_its_own_row_and_audit(db: Database) -> None:
    """Each query has its own journal row and answer, and its audit row points at it."""
    from sqlalchemy import text

    pipeline = _query_pipeline(db)
    _run(pipeline, vxu(control_id="V1", mrn="MRN1", doses=[Dose()]))
    z34 = qbp(
        control_id="Q1",
        ids="MRN1^^^EHR^MR",
        name=f"{CANARY_FAMILY}^{CANARY_GIVEN}",
        dob="20230105",
        sex="F",
    )
    (found,) = _run(pipeline, z34)
    (again,) = _run(pipeline, z34)
    (other,) = _run(pipeline, qbp(control_id="Q1", ids="NOBODY^^^EHR^MR", tag="T2"))
    rows = db.journal_search(control_id="Q1")[::-1]
    assert [r.response for r in rows] == [found, again, other]
    assert len({r.id for r in rows}) == 3
    assert _reuse_warnings(again) == []
    assert len(_reuse_warnings(other)) == 1
    with db.engine.connect() as conn:
        audited = [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT journal_id, query_tag FROM audit_log"
                    " WHERE action = 'query' ORDER BY id"
                )
            )
        ]
    assert audited == [(rows[0].id, "TAG1"), (rows[1].id, "TAG1"), (rows[2].id, "T2")]


def test_pipeline_rejected_message_resent_gets_a_row_of_its_own(db: Database) -> None:
    """An AR is not replayed: the resend is processed and journaled again."""
    message = vxu(control_id="X7", sender="NOBODY", doses=[Dose()])
    _run(_pipeline(db), message)
    (reply,) = _run(_pipeline(db, policy="accept"), message)
    assert msa_code(reply) == "AA"
    assert [r[1] for r in _journal_rows(db, "X7")] == ["AR", "AA"]


@pytest.mark.parametrize(
    ("change", "location", "limit"),
    [
        ({"control_id": "C" * 200}, "MSH^1^10", "199"),
        ({"sender": "S" * 181}, "MSH^1^4", "180"),
    ],
)
def test_pipeline_rejects_a_header_key_longer_than_the_journal_takes(
    db: Database, change: dict[str, str], location: str, limit: str
) -> None:
    """An over-long MSH-10 or MSH-4 gets AR naming the field and limit; nothing stored."""
    (reply,) = _run(_pipeline(db, policy="accept"), vxu(doses=[Dose()], **change))
    assert msa_code(reply) == "AR"
    (err,) = errs(reply)
    assert err[2] == location
    assert f"at most {limit}" in err[8]
    assert (_count(db, "message_journal"), _count(db, "patients")) == (0, 0)


def test_pipeline_names_msh3_when_it_is_the_over_long_sender(db: Database) -> None:
    """With MSH-4 empty, MSH-3 is the sender, and the reject names MSH-3."""
    message = vxu(sender="", doses=[Dose()]).replace("|EHRAPP|", "|" + "A" * 181 + "|")
    (reply,) = _run(_pipeline(db, policy="accept"), message)
    assert msa_code(reply) == "AR"
    assert errs(reply)[0][2] == "MSH^1^3"


def test_pipeline_rejects_a_control_character_in_msh10(db: Database) -> None:
    """A NUL in MSH-10 is refused at MSH-10 on both backends, not an internal error."""
    (reply,) = _run(_pipeline(db), vxu(control_id="NUL\x00ID", doses=[Dose()]))
    assert msa_code(reply) == "AR"
    assert errs(reply)[0][2] == "MSH^1^10"
    assert "control character" in errs(reply)[0][8]
    assert _count(db, "message_journal") == 0


def test_pipeline_journals_a_message_with_an_over_long_type_and_peer(
    db: Database,
) -> None:
    """Descriptive header values are cut to fit: the journal still records the message."""
    message = vxu(control_id="X8", message_type="VXU^" + "V" * 100)
    outcome = _pipeline(db).process_batch(
        [Inbound(message.encode(), "p" * 500, "mllp")]
    )[0]
    assert outcome.ack_code == "AR"
    (entry,) = db.journal_search(control_id="X8")
    assert (len(entry.message_type), entry.peer) == (20, "p" * 80)


class _FailsInStorage(VxuHandler):
    """A VXU handler whose last write fails in the database, as a real fault would."""

    def __init__(self, fault: str) -> None:
        super().__init__(CodeTables.load())
        self._fault = fault

    def apply(
        self, decision: VxuDecision, ctx: MessageContext, uow: UnitOfWork, log: Any
    ) -> Acknowledgement:
        result = super().apply(decision, ctx, uow, log)
        if self._fault == "refused":
            # NOT NULL violated on both backends, with patient data in the
            # statement's parameters.
            uow.journal.insert(
                NewJournalEntry(
                    None,  # type: ignore[arg-type]
                    CANARY_MRN,
                    CANARY_FAMILY,
                    NOW,
                    CANARY_FAMILY.encode(),
                )
            )
        else:
            from sqlalchemy.exc import OperationalError

            raise OperationalError(
                "SELECT 1", {"mrn": CANARY_MRN}, ConnectionError("server closed")
            )
        return result


def test_pipeline_permanent_storage_failure_says_correct_not_resend(
    db: Database,
) -> None:
    """A value the database refuses gets AE saying to correct the message; nothing stored."""
    (reply,) = _run(
        _pipeline(db, handler=_FailsInStorage("refused")),
        vxu(control_id="F1", doses=[Dose()]),
    )
    assert msa_code(reply) == "AE"
    (err,) = errs(reply)
    assert err[3].startswith("207")
    assert "cannot be stored as sent" in err[8]
    assert "resend" not in err[8]
    assert (_count(db, "message_journal"), _count(db, "patients")) == (0, 0)


def test_pipeline_transient_storage_failure_asks_for_a_resend(db: Database) -> None:
    """The database unavailable mid-message gets AE 207 asking for a resend."""
    (reply,) = _run(
        _pipeline(db, handler=_FailsInStorage("unavailable")),
        vxu(control_id="F2", doses=[Dose()]),
    )
    assert msa_code(reply) == "AE"
    (err,) = errs(reply)
    assert err[3].startswith("207")
    assert "please resend" in err[8]
    assert _count(db, "patients") == 0


def test_pipeline_same_answer_on_both_backends_for_header_and_storage_faults(
    request: pytest.FixtureRequest,
) -> None:
    """SQLite and PostgreSQL answer the same MSA and ERRs to keys and storage faults."""
    from tests.support.db import open_test_database

    pg_databases = request.getfixturevalue("pg_databases")
    sqlite_template = request.getfixturevalue("_sqlite_template")

    messages = [
        vxu(control_id="C" * 200, doses=[Dose()]),
        vxu(control_id="N\x00", doses=[Dose()]),
        vxu(sender="S" * 181, doses=[Dose()]),
        vxu(control_id="OK", message_type="VXU^" + "V" * 100),
    ]
    answers = []
    for kind in ("sqlite", "postgresql"):
        for db in open_test_database(kind, pg_databases, sqlite_template):
            replies = _run(_pipeline(db, policy="accept"), *messages)
            replies += _run(
                _pipeline(db, handler=_FailsInStorage("refused")),
                vxu(control_id="F3", doses=[Dose()]),
            )
            answers.append(
                [[s for s in segments(r) if s[0] in {"MSA", "ERR"}] for r in replies]
            )
    assert answers[0] == answers[1]


def test_pipeline_logs_no_patient_data_when_storage_fails(
    db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """With production logging, a storage failure logs type and place, no PHI, no traceback."""
    import json

    from engine.logging import configure_logging

    configure_logging("json", strict=True)
    _run(
        _pipeline(db, handler=_FailsInStorage("refused")),
        vxu(control_id="L1", doses=[Dose()]),
        vxu(control_id="L2", mrn=CANARY_MRN + "\x00", doses=[Dose()]),
    )
    out = capsys.readouterr().out
    assert out
    assert not [c for c in CANARIES if c in out]
    failed = [
        e for e in map(json.loads, out.splitlines()) if e["event"] == "message_failed"
    ]
    assert failed
    assert failed[0]["error_type"] == "PermanentStorageError"
    # SQLite runs the refused insert at once; PostgreSQL queues it with the
    # message's other writes and it fails where the unit of work sends them.
    expected = (
        "storage.journal:insert:"
        if db.backend == "sqlite"
        else "storage.unit_of_work:savepoint:"
    )
    assert failed[0]["error_at"].startswith(expected)
    assert failed[0]["error_cause"] == "IntegrityError"
    assert "Traceback" not in out
