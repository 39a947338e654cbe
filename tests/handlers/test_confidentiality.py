"""Who may see or change a child's record: identifiers, the lock, other clinics.

Each test plays the other party (another clinic of the region, a clinic that
joined after the lock, a sender whose MRN collides with someone else's)
through the in-process pipeline, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from engine.pipeline import Inbound, MessagePipeline, Route, SenderPolicy
from handlers.codes import CodeTables
from handlers.qbp import QbpHandler, QueryPolicy
from handlers.vxu import VxuHandler
from storage import Database
from tests.e2e.test_queries import qbp
from tests.support.messages import CANARY_FAMILY, CANARY_STREET, Dose, vxu
from tests.support.mllp import errs, msa_code, segments

START = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

#: Another clinic's street for the same child (not a canary: it is asserted on).
OTHER_STREET = "9 Elsewhere Rd"


def _pipeline(db: Database, codes: CodeTables | None = None) -> MessagePipeline:
    codes = codes or CodeTables.load()
    ticks = itertools.count()
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
        senders=SenderPolicy(
            {"CLINIC1": "BAY", "CLINIC2": "BAY", "CLINIC3": "BAY", "LACLINIC": "LAO"},
            "reject",
            "BAY",
        ),
        # Every message a minute after the last: "before the lock" is real.
        now=lambda: START + timedelta(minutes=next(ticks)),
    )


def _send(pipeline: MessagePipeline, message: str) -> bytes:
    (outcome,) = pipeline.process_batch([Inbound(message.encode(), "test", "mllp")])
    return outcome.payload


def _rows(db: Database, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def _by_id(reply: bytes) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    for seg in segments(reply):
        out.setdefault(seg[0], []).append(seg)
    return out


def _pid(mrn: str, family: str, given: str, dob: str, sex: str, street: str) -> str:
    return (
        f"PID|1||{mrn}^^^MYEHR^MR||{family}^{given}^^^^^L||{dob}|{sex}|||"
        f"{street}^^Sacramento^CA^95814^USA^L"
    )


DOROTHY = _pid("777", "Winchester", "Dorothy", "19840412", "F", CANARY_STREET)
BOBBIE = _pid("777", "Child", "Bobbie", "20050607", "M", OTHER_STREET)


def _query(sender: str, control_id: str, **keys: str) -> str:
    return qbp(sender=sender, control_id=control_id, **keys)


# -- item 1: an identifier alone never identifies a person ---------------------


def test_query_identifier_with_other_demographics_is_not_found(db: Database) -> None:
    """A Z34 whose identifier belongs to someone else answers NF, audited with why."""
    pipeline = _pipeline(db)
    assert msa_code(_send(pipeline, vxu(control_id="D1", pid=DOROTHY, doses=[Dose()])))
    reply = _send(
        pipeline,
        _query(
            "CLINIC1", "Q1", ids="777^^^MYEHR^MR", name="Child^Bobbie", dob="20050607"
        ),
    )
    seg = _by_id(reply)
    assert seg["QAK"][0][2] == "NF"
    assert "PID" not in seg
    assert b"Winchester" not in reply
    (audit,) = _rows(
        db, "SELECT outcome, detail FROM audit_log WHERE outcome = 'id-conflict'"
    )
    assert "birth date" in audit[1]
    assert "name" in audit[1]


def test_query_identifier_alone_is_not_found(db: Database) -> None:
    """A query with an identifier and no name or birth date discloses nothing."""
    pipeline = _pipeline(db)
    _send(pipeline, vxu(control_id="D1", pid=DOROTHY, doses=[Dose()]))
    reply = _send(
        pipeline, _query("CLINIC1", "Q1", ids="777^^^MYEHR^MR", name="Winchester^")
    )
    assert _by_id(reply)["QAK"][0][2] == "NF"
    (detail,) = _rows(db, "SELECT detail FROM audit_log WHERE outcome = 'id-conflict'")
    assert "no birth date" in detail[0]


def test_query_identifier_with_agreeing_demographics_discloses(db: Database) -> None:
    """The identifier counts when name (a typo, a nickname), birth date and sex agree."""
    pipeline = _pipeline(db)
    _send(pipeline, vxu(control_id="D1", pid=DOROTHY, doses=[Dose()]))
    reply = _send(
        pipeline,
        _query(
            "CLINIC1",
            "Q1",
            ids="777^^^MYEHR^MR",
            name="WINCHESTR^Dot",
            dob="19840412",
            sex="F",
        ),
    )
    seg = _by_id(reply)
    assert seg["QAK"][0][2] == "OK"
    assert seg["PID"][0][5].startswith("Winchester^Dorothy")


def test_vxu_identifier_with_conflicting_demographics_is_held(db: Database) -> None:
    """A VXU whose MRN is held by someone else is not filed onto that patient."""
    pipeline = _pipeline(db)
    _send(pipeline, vxu(control_id="D1", pid=DOROTHY, doses=[Dose(cvx="08")]))
    reply = _send(
        pipeline,
        vxu(control_id="B1", sender="CLINIC2", pid=BOBBIE, doses=[Dose(cvx="20")]),
    )
    assert msa_code(reply) == "AA"
    warning = [e for e in errs(reply) if e[2].startswith("PID^1^3")]
    assert warning, errs(reply)
    assert "held for review" in warning[0][8]
    people = _rows(db, "SELECT id, family_name, sex FROM patients ORDER BY id")
    assert [(p[1], p[2]) for p in people] == [("Winchester", "F"), ("Child", "M")]
    dorothy, bobbie = people[0][0], people[1][0]
    doses = _rows(db, "SELECT patient_id, cvx FROM vaccinations ORDER BY id")
    assert doses == [(dorothy, "08"), (bobbie, "20")]
    review = _rows(db, "SELECT left_id, right_id, reasons FROM review_items")
    assert [(r[0], r[1]) for r in review] == [(bobbie, dorothy)]
    # The next message about Bobbie finds the held record, not a third one.
    _send(
        pipeline,
        vxu(control_id="B2", sender="CLINIC2", pid=BOBBIE, doses=[Dose(cvx="10")]),
    )
    assert _rows(db, "SELECT count(*) FROM patients") == [(2,)]
    assert _rows(
        db, "SELECT cvx FROM vaccinations WHERE patient_id = :p", p=dorothy
    ) == [("08",)]


def test_vxu_identifier_with_a_birth_date_typo_is_the_same_patient(
    db: Database,
) -> None:
    """A clinic correcting one digit of the birth date under its MRN updates its patient."""
    pipeline = _pipeline(db)
    _send(pipeline, vxu(control_id="D1", pid=DOROTHY, doses=[Dose()]))
    fixed = DOROTHY.replace("19840412", "19840417")
    reply = _send(pipeline, vxu(control_id="D2", pid=fixed, doses=[Dose(cvx="20")]))
    assert not [e for e in errs(reply) if e[2].startswith("PID^1^3")]
    assert _rows(db, "SELECT count(*) FROM patients") == [(1,)]


# -- item 2: the lock ------------------------------------------------------------

LOCKED_CHILD = {"mrn": "C1-MRN", "family": "Lockfam", "given": "Lia", "dob": "20190303"}


def _locked_child(pipeline: MessagePipeline) -> None:
    """CLINIC1 reports a child who declined to share, with its MRN, address and a dose."""
    reply = _send(
        pipeline,
        vxu(control_id="L1", protection="Y", doses=[Dose(cvx="08")], **LOCKED_CHILD),
    )
    assert msa_code(reply) == "AA"


def _other_clinic_vxu(
    pipeline: MessagePipeline, control_id: str, protection: str = "", cvx: str = "20"
) -> bytes:
    """CLINIC2, which never saw the child, sends name, birth date, sex and one dose."""
    # What an attacker needs: name, birth date and sex (and a dose).
    pid = "PID|1||C2-MRN^^^C2EHR^MR||Lockfam^Lia^^^^^L||20190303|F"
    message = vxu(
        control_id=control_id, sender="CLINIC2", pid=pid, doses=[Dose(cvx=cvx)]
    )
    if protection:
        message = message.replace("|N|20230105|||A|", f"|{protection}|20230105|||A|")
    return _send(pipeline, message)


def _z34(pipeline: MessagePipeline, sender: str, control_id: str) -> bytes:
    return _send(
        pipeline,
        _query(sender, control_id, name="Lockfam^Lia", dob="20190303", limit="1"),
    )


def test_lock_other_clinic_sees_only_what_it_submitted(db: Database) -> None:
    """A clinic matched to a locked child by one VXU sees its own dose, never the owner's data."""
    pipeline = _pipeline(db)
    _locked_child(pipeline)
    assert msa_code(_other_clinic_vxu(pipeline, "O1")) == "AA"
    assert _rows(db, "SELECT count(*) FROM patients") == [(1,)], "matched by score"
    reply = _z34(pipeline, "CLINIC2", "Q2")
    seg = _by_id(reply)
    assert seg["QAK"][0][2] == "OK"
    assert [s[5].split("^")[0] for s in seg["RXA"]] == ["20"]
    assert b"C1-MRN" not in reply
    assert CANARY_STREET.encode() not in reply
    assert b"C2-MRN" in reply
    # Only the next of kin CLINIC2 reported (the builder's), not the owner's.
    assert [k[2].split("^")[0] for k in seg["NK1"]] == [CANARY_FAMILY]
    # The lock works both ways: each submitter sees what it submitted.
    owner = _z34(pipeline, "CLINIC1", "Q1")
    assert [s[5].split("^")[0] for s in _by_id(owner)["RXA"]] == ["08"]
    assert b"C1-MRN" in owner
    assert b"C2-MRN" not in owner
    outcomes = {
        r[0]: r[1]
        for r in _rows(
            db, "SELECT requester, outcome FROM audit_log WHERE action = 'query'"
        )
    }
    assert outcomes == {"CLINIC2": "disclosed-own", "CLINIC1": "disclosed-own"}


def test_lock_hides_the_record_from_a_clinic_that_never_submitted(db: Database) -> None:
    """A clinic of the same region that submitted nothing gets NF, audited as locked."""
    pipeline = _pipeline(db)
    _locked_child(pipeline)
    seg = _by_id(_z34(pipeline, "CLINIC3", "Q3"))
    assert seg["QAK"][0][2] == "NF"
    assert _rows(db, "SELECT outcome FROM audit_log WHERE requester = 'CLINIC3'") == [
        ("locked",)
    ]


def test_lock_is_not_cleared_by_a_clinic_that_joined_after_it(db: Database) -> None:
    """PD1-12 N from a later submitter is refused with a warning; the lock stays."""
    pipeline = _pipeline(db)
    _locked_child(pipeline)
    reply = _other_clinic_vxu(pipeline, "O1", protection="N")
    assert [e for e in errs(reply) if e[2].startswith("PD1^1^12")]
    assert _rows(db, "SELECT protection FROM patients") == [("Y",)]
    assert _by_id(_z34(pipeline, "CLINIC3", "Q3"))["QAK"][0][2] == "NF"
    actions = _rows(
        db, "SELECT action FROM audit_log WHERE requester = 'CLINIC2' ORDER BY id"
    )
    assert ("lock-clear-refused",) in actions
    assert ("submitter-added",) in actions


def test_lock_is_cleared_by_a_submitter_from_before_it(db: Database) -> None:
    """The owner that set the lock may clear it; then other clinics see the record."""
    pipeline = _pipeline(db)
    _locked_child(pipeline)
    reply = _send(
        pipeline,
        vxu(control_id="L2", protection="N", doses=[Dose(cvx="08")], **LOCKED_CHILD),
    )
    assert not [e for e in errs(reply) if e[2].startswith("PD1")]
    assert _rows(db, "SELECT protection FROM patients") == [("N",)]
    assert _by_id(_z34(pipeline, "CLINIC3", "Q3"))["QAK"][0][2] == "OK"
    assert ("lock-cleared",) in _rows(db, "SELECT action FROM audit_log")


def test_lock_is_set_by_any_submitter(db: Database) -> None:
    """A later submitter's PD1-12 Y locks the record at once, audited."""
    pipeline = _pipeline(db)
    _send(pipeline, vxu(control_id="U1", doses=[Dose(cvx="08")], **LOCKED_CHILD))
    _other_clinic_vxu(pipeline, "O1", protection="Y")
    assert _rows(db, "SELECT protection FROM patients") == [("Y",)]
    assert _by_id(_z34(pipeline, "CLINIC3", "Q3"))["QAK"][0][2] == "NF"
    assert _rows(db, "SELECT requester FROM audit_log WHERE action = 'lock-set'") == [
        ("CLINIC2",)
    ]


# -- item 3: other organizations fill only what is empty; versions ---------------


def test_other_clinic_fills_only_empty_fields(db: Database) -> None:
    """A score-matched clinic's city does not overwrite the stored one; its phone fills a gap."""
    pipeline = _pipeline(db)
    pid = (
        "PID|1||C1-MRN^^^EHR^MR||Lockfam^Lia^^^^^L||20190303|F|||"
        f"{CANARY_STREET}^^Sacramento^CA^95814^USA^L"
    )
    _send(pipeline, vxu(control_id="A1", pid=pid, doses=[Dose(cvx="08")]))
    other = (
        "PID|1||C2-MRN^^^C2EHR^MR||Lockfam^Lia^^^^^L||20190303|F|||"
        f"{CANARY_STREET}^^Fresno^CA^95814^USA^L||^PRN^PH^^^559^5550100"
    )
    _send(pipeline, vxu(control_id="B1", sender="CLINIC2", pid=other, doses=[Dose()]))
    assert _rows(db, "SELECT street, city, phone FROM patients") == [
        (CANARY_STREET, "Sacramento", "5595550100")
    ]
    versions = _rows(
        db, "SELECT sender, kind, demographics FROM patient_versions ORDER BY id"
    )
    assert [(v[0], v[1]) for v in versions] == [
        ("CLINIC1", "submitted"),
        ("CLINIC2", "stored"),
        ("CLINIC2", "submitted"),
    ]
    assert "Fresno" in versions[2][2], "what CLINIC2 said is kept"
    assert CANARY_STREET in versions[1][2] and "5595550100" in versions[1][2]
    (changed,) = _rows(db, "SELECT detail FROM audit_log WHERE action = 'demographics'")
    assert changed == ("phone",)


def test_owner_updates_its_own_address(db: Database) -> None:
    """The clinic that submitted before updates the address it sends, as a new version."""
    pipeline = _pipeline(db)
    _send(pipeline, vxu(control_id="A1", doses=[Dose(cvx="08")], **LOCKED_CHILD))
    moved = vxu(control_id="A2", doses=[Dose(cvx="08")], **LOCKED_CHILD).replace(
        CANARY_STREET, OTHER_STREET
    )
    _send(pipeline, moved)
    assert _rows(db, "SELECT street FROM patients") == [(OTHER_STREET,)]
    kinds = _rows(db, "SELECT kind FROM patient_versions ORDER BY id")
    assert kinds == [("submitted",), ("stored",), ("submitted",)]


def test_query_with_a_control_character_is_rejected_at_the_field(db: Database) -> None:
    """A NUL in QPD-2 or QPD-4 gets AE naming the field, on both backends, and nothing found."""
    pipeline = _pipeline(db)
    for control_id, keys, field in (
        ("QN1", {"tag": "T\\X00\\", "name": "Doe^Jane", "dob": "20200101"}, "QPD^1^2"),
        ("QN2", {"name": "Doe\\X01\\^Jane", "dob": "20200101"}, "QPD^1^4"),
    ):
        reply = _send(pipeline, _query("CLINIC1", control_id, **keys))
        assert msa_code(reply) == "AE"
        assert [e for e in errs(reply) if e[2].startswith(field)], errs(reply)
