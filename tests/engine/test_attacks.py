"""The outside attacker's tests of identity, roles and test mode, in process on SQLite and PostgreSQL.

Each test is written as the other party: a school probing with test-mode
messages, a sender bouncing a message between the test and the live
listener. Each one failed before its fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.app import TEST_LISTENER
from engine.pipeline import Inbound
from handlers.roles import OrgType
from storage import Database
from tests.engine.test_role_rules import FACILITY, World
from tests.engine.test_test_mode_rules import TEST_CONFIG
from tests.support.messages import CANARY_FAMILY, CANARY_GIVEN, Dose, vxu
from tests.support.mllp import errs, msa_code
from tests.support.registry import InProcessRegistry, build_registry


@pytest.fixture(name="world")
def _world(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return World(build_registry(db, tmp_path, monkeypatch), db)


@pytest.mark.parametrize("processing_id", ["T", "D"])
def test_a_school_probing_with_a_test_mode_vxu_is_still_audited(
    world: World, processing_id: str
) -> None:
    """MSH-11 T or D must not make a refused write vanish from the audit trail.

    The refusal of a role is about who tried, not about the data: it is
    kept even though the message itself is kept out of the registry.
    """
    message = vxu(
        control_id="PROBE1",
        sender=FACILITY[OrgType.SCHOOL],
        mrn="MRN1",
        processing_id=processing_id,
        doses=[Dose()],
    )
    reply = world.send(OrgType.SCHOOL, message)
    assert msa_code(reply) == "AR"
    assert "not authorized" in errs(reply)[0][8]
    ((requester, action, outcome, _detail),) = world.refusals()
    assert (requester, action, outcome) == (
        FACILITY[OrgType.SCHOOL],
        "authorize",
        "refused-role",
    )


def test_a_school_deleting_a_dose_in_test_mode_is_still_audited(world: World) -> None:
    """RXA-21 D from a query-only organization with MSH-11 T: refused and audited."""
    message = vxu(
        control_id="PROBE2",
        sender=FACILITY[OrgType.SCHOOL],
        mrn="MRN1",
        processing_id="T",
        doses=[Dose(filler="D1", action="D")],
    )
    assert msa_code(world.send(OrgType.SCHOOL, message)) == "AR"
    assert len(world.refusals()) == 1


@pytest.fixture(name="registry")
def _registry(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> InProcessRegistry:
    return build_registry(db, tmp_path, monkeypatch, TEST_CONFIG)


def _send(registry: InProcessRegistry, message: str, listener: str) -> bytes:
    (outcome,) = registry.pipeline.process_batch(
        [Inbound(message.encode(), "127.0.0.1:9", listener)]
    )
    return bytes(outcome.payload)


def test_a_live_message_resent_after_a_test_listener_copy_is_not_stored_twice(
    registry: InProcessRegistry,
) -> None:
    """Live, then the same bytes on the test listener, then live again.

    The third is a resend of the first: it gets the first answer and files
    nothing again; the test copy between them must not hide the first.
    """
    message = vxu(control_id="XMODE1", doses=[Dose(filler="F1")])
    first = _send(registry, message, "mllp")
    assert msa_code(first) == "AA"
    assert msa_code(_send(registry, message, TEST_LISTENER)) == "AA"
    third = _send(registry, message, "mllp")
    assert third == first
    live = registry.query(
        "SELECT count(*) FROM message_journal WHERE control_id = ? "
        "AND outcome NOT LIKE ?",
        ("XMODE1", "not stored%"),
    )
    assert live == [(1,)]
    assert registry.query("SELECT count(*) FROM vaccinations") == [(1,)]


def test_a_test_message_resent_after_a_live_copy_stays_a_test(
    registry: InProcessRegistry,
) -> None:
    """Test listener, live, then the test listener again: the last is answered from the test row."""
    message = vxu(control_id="XMODE2", doses=[Dose(filler="F2")])
    first = _send(registry, message, TEST_LISTENER)
    assert msa_code(_send(registry, message, "mllp")) == "AA"
    assert _send(registry, message, TEST_LISTENER) == first
    assert registry.query(
        "SELECT count(*) FROM message_journal WHERE control_id = ?", ("XMODE2",)
    ) == [(2,)]


@pytest.mark.parametrize("query", ["z34", "z44"])
@pytest.mark.parametrize(
    "org_type",
    [OrgType.SCHOOL, OrgType.CHILD_CARE, OrgType.FOSTER_CARE],
    ids=lambda t: t.value,
)
def test_a_school_query_does_not_name_the_mother(
    world: World, org_type: OrgType, query: str
) -> None:
    """PID-6 (mother's maiden name) names a guardian: a requirements view leaves it out.

    The provider's VXU carries ``Mother^Maiden`` in PID-6; a school confirms
    requirements from the doses and the forecast, and gets no guardian's name.
    """
    reply = world.operate(org_type, query).decode()
    assert "|RXA|" in reply.replace("\r", "|")
    assert "Maiden" not in reply
    # The full record still carries it.
    assert "Maiden" in world.operate(OrgType.PROVIDER, query).decode()


def test_a_spoofed_msh4_is_not_counted_as_the_victims_traffic(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spoofer's refused messages must not show on the victim's dashboard line.

    An authenticated organization writes CLINIC1 (a registered facility of
    someone else) in MSH-4: each is refused AR, and counted under
    ``sender="_spoofed"``, not as CLINIC1 failing.
    """
    from engine.metrics import EngineMetrics
    from handlers.identity import IdentityService

    metrics = EngineMetrics()
    registry = build_registry(db, tmp_path, monkeypatch, metrics=metrics)
    service = IdentityService(db.transaction, now=registry.pipeline._now)
    service.add_organization(
        "test",
        code="SPOOFER",
        name="",
        org_type="provider",
        region="BAY",
        facility_ids=["SPOOF1"],
    )
    spoofer = service.principal_of("SPOOFER")
    assert spoofer is not None
    for n in range(3):
        message = vxu(control_id=f"SP{n}", sender="CLINIC1", doses=[Dose()])
        assert msa_code(registry.send(message, principal=spoofer)) == "AR"
    own = vxu(control_id="OWN1", sender="SPOOF1", doses=[Dose()])
    assert msa_code(registry.send(own, principal=spoofer)) == "AA"

    def count(sender: str, outcome: str) -> float:
        return metrics.value(
            "cairn_messages_total",
            {"message_type": "VXU", "outcome": outcome, "sender": sender},
        )

    assert count("CLINIC1", "AR") == 0
    assert count("_spoofed", "AR") == 3
    assert count("SPOOF1", "AA") == 1


def test_a_locked_record_merged_into_an_open_one_stays_locked(
    registry: InProcessRegistry,
) -> None:
    """Staff merge a locked record into an open one: its doses must not become everyone's.

    CLINIC1 reported a child and locked the record (PD1-12 Y); CLINIC2
    reported the same child under another MRN, unlocked. A reviewer merges
    the locked record into the open one. CLINIC2, which never submitted to
    the locked record, queries: by its own MRN and by the locked record's.
    """
    from tests.e2e.test_queries import qbp

    locked = vxu(
        control_id="LK1",
        sender="CLINIC1",
        mrn="LOCK1",
        protection="Y",
        doses=[Dose(cvx="20", lot="LOCKEDLOT", filler="LF1")],
    )
    opened = vxu(
        control_id="OP1",
        sender="CLINIC2",
        mrn="OPEN2",
        family="Otherkid",
        given="Olga",
        doses=[Dose(cvx="08", lot="OPENLOT", filler="OF1")],
    )
    assert msa_code(registry.send(locked)) == "AA"
    assert msa_code(registry.send(opened)) == "AA"
    ((locked_id,),) = registry.query(
        "SELECT patient_id FROM patient_identifiers WHERE value = ?", ("LOCK1",)
    )
    ((open_id,),) = registry.query(
        "SELECT patient_id FROM patient_identifiers WHERE value = ?", ("OPEN2",)
    )
    with registry.db.transaction() as uow:
        uow.patients.link("BAY", int(locked_id), int(open_id), None)
    keys = {
        "OPEN2^^^EHR^MR": "Otherkid^Olga",
        "LOCK1^^^EHR^MR": f"{CANARY_FAMILY}^{CANARY_GIVEN}",
    }
    answered = []
    for n, (ids, name) in enumerate(keys.items()):
        reply = registry.send(
            qbp(
                control_id=f"MQ{n}",
                sender="CLINIC2",
                ids=ids,
                name=name,
                dob="20230105",
            )
        ).decode()
        assert "LOCKEDLOT" not in reply, ids
        answered.append("OPENLOT" in reply)
    assert any(answered), "the open record is still found"
    # The locked record's own submitter still sees its dose.
    mine = registry.send(
        qbp(
            control_id="MQ9",
            sender="CLINIC1",
            ids="LOCK1^^^EHR^MR",
            name=f"{CANARY_FAMILY}^{CANARY_GIVEN}",
            dob="20230105",
        )
    ).decode()
    assert "LOCKEDLOT" in mine


@pytest.mark.parametrize(
    "msh4",
    [
        pytest.param("CLINIC\\X31\\", id="hex-escape"),
        pytest.param("CLINIC1\\T\\", id="subcomponent-escape"),
        pytest.param(" CLINIC1 ", id="padded"),
        pytest.param("CLINIC1&EVIL", id="subcomponents"),
        pytest.param("~CLINIC1", id="empty-first-repetition"),
        pytest.param("\\F\\CLINIC1", id="field-escape"),
    ],
)
def test_spoofed_msh4_in_escaped_and_junk_forms_cannot_touch_the_victim(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, msh4: str
) -> None:
    """Whatever MSH-4 reads as, the attacker neither reads the victim's locked child nor deletes its dose."""
    from tests.e2e.test_queries import qbp
    from tests.engine.test_sender_rules import Scene

    scene = Scene(build_registry(db, tmp_path, monkeypatch), db)
    delete = vxu(
        control_id="X1", sender=msh4, mrn="MRN1", doses=[Dose(filler="D1", action="D")]
    )
    assert msa_code(scene.as_attacker(delete)) == "AR"
    assert scene.live_doses() == 1
    query = qbp(
        control_id="X2",
        sender=msh4,
        ids="MRN1^^^EHR^MR",
        name=f"{CANARY_FAMILY}^{CANARY_GIVEN}",
        dob="20230105",
    )
    reply = scene.as_attacker(query).decode()
    assert msa_code(reply.encode()) == "AR"
    assert CANARY_FAMILY not in reply.split("QPD|", 1)[0]
    assert "|PID|" not in reply.replace("\r", "|")


def test_replay_does_not_file_what_test_mode_kept_out(
    registry: InProcessRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A message answered on the test listener (or MSH-11 T) is never registry data, replayed or not.

    Replay files journaled messages again on a listener of its own; a
    message the test listener kept out must not become live there, nor be
    applied to the registry as a 'dose that would be added'.
    """
    from tests.engine.test_replay_rules import _replay

    on_test = vxu(control_id="TL1", sender="CLINIC1", doses=[Dose(filler="TF1")])
    assert msa_code(_send(registry, on_test, TEST_LISTENER)) == "AA"
    training = vxu(
        control_id="TT1", sender="CLINIC2", processing_id="T", doses=[Dose()]
    )
    assert msa_code(_send(registry, training, "mllp")) == "AA"
    assert registry.query("SELECT count(*) FROM vaccinations") == [(0,)]
    code, lines = _replay(registry, tmp_path, TEST_CONFIG, capsys)
    assert code == 0, lines
    assert registry.query("SELECT count(*) FROM vaccinations") == [(0,)]
    assert registry.query("SELECT count(*) FROM patients") == [(0,)]


#: A provider's PID-3: a social security number, a Medicaid number, its MRN.
_PID3_IDS = "123456789^^^SSA^SS~MC999^^^CAMCD^MA~MRN7"


def _pid3(reply: str) -> set[str]:
    """The identifier values of every PID-3 repetition of a reply."""
    values = set()
    for seg in reply.split("\r"):
        if seg.startswith("PID|"):
            values |= {rep.split("^")[0] for rep in seg.split("|")[3].split("~")}
    return values


@pytest.mark.parametrize("query", ["Z34", "Z44"])
@pytest.mark.parametrize(
    "org_type", [OrgType.SCHOOL, OrgType.CHILD_CARE], ids=lambda t: t.value
)
def test_a_school_query_gets_no_ssn_nor_other_identifiers(
    world: World, org_type: OrgType, query: str
) -> None:
    """A school reads PID-3 of a child: only the registry's id and what it named.

    The provider reported the child with a social security number (SS), a
    Medicaid number (MA) and its MRN. A school or child care facility (the
    ``requirements`` view) confirms requirements; it must not harvest SSNs
    or other organizations' identifiers from the answer (policy decision).
    """
    from tests.e2e.test_queries import qbp

    stored = vxu(
        control_id="SSN1",
        sender=FACILITY[OrgType.PROVIDER],
        mrn=_PID3_IDS,
        family="Pidthree",
        given="Paula",
        doses=[Dose(filler="P3")],
    )
    assert msa_code(world.send(OrgType.PROVIDER, stored)) == "AA"
    keys = {"name": "Pidthree^Paula", "dob": "20230105"}

    def ask(who: OrgType, ids: str, n: int) -> str:
        message = qbp(
            query=query,
            control_id=f"P3{who.value}{n}",
            sender=FACILITY[who],
            ids=ids,
            **keys,
        )
        return world.send(who, message).decode()

    # The provider's full view still carries all three: the test can fail.
    full = ask(OrgType.PROVIDER, "MRN7^^^EHR^MR", 0)
    assert {"123456789", "MC999", "MRN7"} <= _pid3(full)
    by_mrn = ask(org_type, "MRN7^^^EHR^MR", 1)
    assert "|RXA|" in by_mrn.replace("\r", "|"), "the school still gets the doses"
    shown = _pid3(by_mrn)
    assert "MRN7" in shown
    assert not shown & {"123456789", "MC999"}
    assert "123456789" not in by_mrn and "MC999" not in by_mrn
    # The registry's own id (SR) is always there.
    pid = next(s for s in by_mrn.split("\r") if s.startswith("PID|"))
    assert "^SR" in pid.split("|")[3]
    # Naming the Medicaid number returns it, not the MRN; naming the SSN
    # never returns an SSN.
    by_medicaid = ask(org_type, "MC999^^^CAMCD^MA", 2)
    assert _pid3(by_medicaid) & {"MC999", "MRN7", "123456789"} == {"MC999"}
    # (QPD echoes the school's own query; PID-3 must not carry it back.)
    by_ssn = ask(org_type, "123456789^^^SSA^SS", 3)
    assert "|PID|" in by_ssn.replace("\r", "|")
    assert "123456789" not in _pid3(by_ssn)
