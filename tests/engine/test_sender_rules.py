"""An authenticated organization is the sender: the spoofer's attacks, in process on SQLite and PostgreSQL.

Written as the attacker: an organization authenticated as itself (its own
certificate or address) that writes another clinic's facility id in MSH-4,
in every form MSH-4 takes, to read that clinic's locked patient, delete its
dose, replay its stored answers or take its next control id.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher

from handlers.identity import IdentityService, Principal
from storage import Database
from tests.e2e.test_queries import qbp
from tests.support.messages import CANARY_FAMILY, CANARY_GIVEN, Dose, vxu
from tests.support.mllp import errs, msa_code, segments
from tests.support.registry import InProcessRegistry, build_registry

VICTIM_UID = "2.16.840.1.113883.3.9999.1"
KEYS = {
    "ids": "MRN1^^^EHR^MR",
    "name": f"{CANARY_FAMILY}^{CANARY_GIVEN}",
    "dob": "20230105",
}


class Scene:
    """A victim clinic with a locked patient and a dose, and an attacker organization."""

    def __init__(self, registry: InProcessRegistry, db: Database) -> None:
        self.registry = registry
        service = IdentityService(
            db.transaction,
            now=lambda: registry.pipeline._now(),
            hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
        )
        service.add_organization(
            "test", code="VICTIM", name="", org_type="provider", region="BAY",
            facility_ids=["CLINIC1", VICTIM_UID],
        )  # fmt: skip
        service.add_organization(
            "test", code="ATTACKER", name="", org_type="provider", region="BAY",
            facility_ids=["EVIL"],
        )  # fmt: skip
        victim, attacker = (
            service.principal_of("VICTIM"),
            service.principal_of("ATTACKER"),
        )
        assert victim is not None and attacker is not None
        self.victim: Principal = victim
        self.attacker: Principal = attacker
        self.victim_vxu = vxu(
            control_id="V1",
            sender="CLINIC1",
            mrn="MRN1",
            protection="Y",
            doses=[Dose(filler="D1")],
        )
        assert msa_code(self.as_victim(self.victim_vxu)) == "AA"

    def as_victim(self, message: str) -> bytes:
        return self.registry.send(message, principal=self.victim)

    def as_attacker(self, message: str) -> bytes:
        return self.registry.send(
            message, peer="203.0.113.9:4444", principal=self.attacker
        )

    def refusals(self) -> list[tuple[object, ...]]:
        return self.registry.query(
            "SELECT requester, outcome, detail FROM audit_log WHERE outcome = 'refused-msh4'"
        )

    def live_doses(self) -> int:
        rows = self.registry.query(
            "SELECT count(*) FROM vaccinations WHERE deleted_at IS NULL"
        )
        return int(rows[0][0])  # type: ignore[call-overload]


@pytest.fixture(name="scene")
def _scene(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Scene:
    return Scene(build_registry(db, tmp_path, monkeypatch), db)


def _assert_msh4_refused(scene: Scene, reply: bytes) -> None:
    assert msa_code(reply) == "AR"
    (err,) = errs(reply)
    assert err[2].startswith("MSH^1^4")
    assert "MSH-4" in err[8]
    assert not [s for s in segments(reply) if s[0] in {"PID", "RXA", "NK1"}]
    ((requester, outcome, detail),) = scene.refusals()
    assert (requester, outcome) == ("ATTACKER", "refused-msh4")
    assert "203.0.113.9" in str(detail)


@pytest.mark.parametrize(
    "msh4",
    [
        pytest.param("CLINIC1", id="namespace"),
        pytest.param(f"^{VICTIM_UID}^ISO", id="universal-id-only"),
        pytest.param(f"EVIL^{VICTIM_UID}^ISO", id="own-namespace-victim-uid"),
        pytest.param(f"CLINIC1^{VICTIM_UID}^ISO", id="victim-both"),
        pytest.param("", id="empty-with-msh3"),
        pytest.param("clinic1", id="case-changed"),
    ],
)
def test_spoofed_msh4_in_every_form_is_refused(scene: Scene, msh4: str) -> None:
    """A VXU whose MSH-4 is not one of the attacker's facility ids gets AR naming MSH-4, audited, nothing stored."""
    before = scene.registry.query("SELECT count(*) FROM patients")
    reply = scene.as_attacker(vxu(sender=msh4, mrn="MRN9", doses=[Dose()]))
    _assert_msh4_refused(scene, reply)
    assert scene.registry.query("SELECT count(*) FROM patients") == before


def test_spoofer_cannot_read_the_victims_locked_patient(scene: Scene) -> None:
    """Z34 and Z44 as CLINIC1 from the attacker's connection: AR, no patient data."""
    for query in ("Z34", "Z44"):
        reply = scene.as_attacker(
            qbp(query=query, control_id=f"S-{query}", sender="CLINIC1", **KEYS)
        )
        assert msa_code(reply) == "AR"
        assert b"Zzcanaryfam" not in reply
    assert len(scene.refusals()) == 2


def test_spoofer_cannot_replay_the_victims_stored_answer(scene: Scene) -> None:
    """The victim's exact VXU resent by the attacker gets AR, not the victim's stored ACK."""
    reply = scene.as_attacker(scene.victim_vxu)
    _assert_msh4_refused(scene, reply)


def test_spoofer_cannot_delete_the_victims_dose(scene: Scene) -> None:
    """RXA-21 D of the victim's dose, sent as CLINIC1 by the attacker: AR, the dose stays."""
    reply = scene.as_attacker(
        vxu(
            sender="CLINIC1",
            mrn="MRN1",
            protection="Y",
            doses=[Dose(filler="D1", action="D")],
        )
    )
    _assert_msh4_refused(scene, reply)
    assert scene.live_doses() == 1


def test_spoofer_cannot_preempt_the_victims_next_control_id(scene: Scene) -> None:
    """The attacker takes CLINIC1's next MSH-10 first; the victim's message with it is still new and clean."""
    _assert_msh4_refused(
        scene,
        scene.as_attacker(
            vxu(control_id="V2", sender="CLINIC1", mrn="MRN9", doses=[Dose()])
        ),
    )
    reply = scene.as_victim(
        vxu(control_id="V2", sender="CLINIC1", mrn="MRN2", doses=[Dose()])
    )
    assert msa_code(reply) == "AA"
    assert errs(reply) == []  # no "MSH-10 was used before" warning
    rows = scene.registry.query(
        "SELECT sender FROM message_journal WHERE control_id = 'V2'"
    )
    assert rows == [("CLINIC1",)]


def test_attacker_as_itself_is_accepted_in_its_own_region(scene: Scene) -> None:
    """The same attacker with its own facility id is an ordinary provider."""
    reply = scene.as_attacker(vxu(sender="EVIL", mrn="MRN3", doses=[Dose()]))
    assert msa_code(reply) == "AA"
    assert scene.refusals() == []
    assert scene.registry.query(
        "SELECT region FROM message_journal WHERE sender = 'EVIL'"
    ) == [("BAY",)]


def test_victim_universal_id_form_is_its_own(scene: Scene) -> None:
    """The victim may send with its universal id alone: it is one of its facility ids."""
    reply = scene.as_victim(
        vxu(sender=f"^{VICTIM_UID}^ISO", mrn="MRN4", doses=[Dose()])
    )
    assert msa_code(reply) == "AA"


def test_authenticated_sender_ignores_the_unregistered_facility_policy(
    scene: Scene,
) -> None:
    """EVIL is in no [[facilities]] entry and unknown_sender is reject: the organization is the authority."""
    reply = scene.as_attacker(qbp(control_id="Q-EVIL", sender="EVIL", **KEYS))
    assert msa_code(reply) == "AA"
    assert not [s for s in segments(reply) if s[0] == "PID"], (
        "the locked patient stays hidden"
    )


def test_spoofed_query_is_not_read_on_a_reader(scene: Scene) -> None:
    """The query read step (outside the writer) reads nothing for a spoofed MSH-4."""
    from engine.pipeline import Inbound

    message = qbp(control_id="S-R", sender="CLINIC1", **KEYS).encode()
    item = scene.registry.pipeline.read_step(
        Inbound(message, "203.0.113.9:4444", "mllp", principal=scene.attacker)
    )
    assert item.prepared is not None and item.prepared.answer is None
    honest = scene.registry.pipeline.read_step(
        Inbound(message, "198.51.100.1:1", "mllp", principal=scene.victim)
    )
    assert honest.prepared is not None and honest.prepared.answer is not None
