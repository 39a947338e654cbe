"""The pipeline without a reactor: journal, idempotency, routing, group commit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from engine.pipeline import Inbound, MessagePipeline, Route, SenderPolicy
from handlers.codes import CodeTables
from handlers.context import MessageContext
from handlers.vxu import VxuHandler
from parsers import Acknowledgement, Message
from storage import Database, UnitOfWork
from tests.support.messages import Dose, vxu
from tests.support.mllp import errs, msa_code

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
        def handle(
            self, message: Message, ctx: MessageContext, uow: UnitOfWork, log: Any
        ) -> Acknowledgement:
            result = super().handle(message, ctx, uow, log)
            if "BOOM" in message.msh.value(10):
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
    calls = {"n": 0}

    class FailsOnce(VxuHandler):
        def handle(
            self, message: Message, ctx: MessageContext, uow: UnitOfWork, log: Any
        ) -> Acknowledgement:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("transient")
            return super().handle(message, ctx, uow, log)

    pipeline = _pipeline(db, handler=FailsOnce(CodeTables.load()))
    message = vxu(control_id="T1", doses=[Dose()])
    assert msa_code(_run(pipeline, message)[0]) == "AE"
    assert msa_code(_run(pipeline, message)[0]) == "AA"


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
