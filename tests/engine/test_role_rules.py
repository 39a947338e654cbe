"""Every role against every operation, in process on SQLite and PostgreSQL.

Roles come from the organization's type (handlers/roles.py) and are checked
in the registry's rules (the VXU and QBP handlers), so the answer here is
the one every front gets. Each case is one organization of one type doing
one operation on a patient a provider reported: submit a VXU, delete a dose
(RXA-21 D), lock or unlock the record (PD1-12), query its history (Z34) or
its evaluated history and forecast (Z44).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher

from handlers.identity import IdentityService, Principal
from handlers.roles import OrgType
from storage import Database
from tests.e2e.test_queries import qbp
from tests.support.messages import CANARY_FAMILY, CANARY_GIVEN, CANARY_STREET, Dose, vxu
from tests.support.mllp import errs, msa_code, segments
from tests.support.registry import InProcessRegistry, build_registry

QUERY_KEYS = {
    "ids": "MRN1^^^EHR^MR",
    "name": f"{CANARY_FAMILY}^{CANARY_GIVEN}",
    "dob": "20230105",
}

#: The facility id (MSH-4) of each organization type's organization.
FACILITY = {t: f"FAC-{t.value.upper()}" for t in OrgType}

OPERATIONS = ("vxu", "delete", "lock", "unlock", "z34", "z44")

#: What each type may do; every other operation is refused (AR).
ALLOWED = {
    OrgType.PROVIDER: set(OPERATIONS),
    OrgType.SCHOOL: {"z34", "z44"},
    OrgType.CHILD_CARE: {"z34", "z44"},
    OrgType.FAMILY_CHILD_CARE_HOME: {"z34", "z44"},
    OrgType.COUNTY_WELFARE: {"z34", "z44"},
    OrgType.FOSTER_CARE: {"z34", "z44"},
    OrgType.WIC: {"z34", "z44"},
    OrgType.HEALTH_PLAN: {"z34", "z44"},
    OrgType.REGISTRY_STAFF: {"z34", "z44"},
}

#: Types that see doses and forecast without contact details or guardians.
REQUIREMENTS = {
    OrgType.SCHOOL,
    OrgType.CHILD_CARE,
    OrgType.FAMILY_CHILD_CARE_HOME,
    OrgType.COUNTY_WELFARE,
    OrgType.FOSTER_CARE,
}


class World:
    """The registry, one organization of every type, and a patient the provider reported."""

    def __init__(self, registry: InProcessRegistry, db: Database) -> None:
        self.registry = registry
        service = IdentityService(
            db.transaction,
            now=lambda: registry.pipeline._now(),
            hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
            reading=db.reading,
        )
        self.principals: dict[OrgType, Principal] = {}
        for org_type in OrgType:
            service.add_organization(
                "test",
                code=org_type.value.upper(),
                name="",
                org_type=org_type.value,
                region="BAY",
                facility_ids=[FACILITY[org_type]],
            )
            found = service.principal_of(org_type.value.upper())
            assert found is not None
            self.principals[org_type] = found
        reply = self.send(
            OrgType.PROVIDER,
            vxu(
                mrn="MRN1", sender=FACILITY[OrgType.PROVIDER], doses=[Dose(filler="D1")]
            ),
        )
        assert msa_code(reply) == "AA"

    def send(self, org_type: OrgType, message: str) -> bytes:
        return self.registry.send(message, principal=self.principals[org_type])

    def operate(self, org_type: OrgType, operation: str) -> bytes:
        sender = FACILITY[org_type]
        control = f"{operation}-{org_type.value}"
        if operation == "vxu":
            message = vxu(control_id=control, sender=sender, mrn="MRN2", doses=[Dose()])
        elif operation == "delete":
            message = vxu(
                control_id=control,
                sender=sender,
                mrn="MRN1",
                doses=[Dose(filler="D1", action="D")],
            )
        elif operation in {"lock", "unlock"}:
            if operation == "unlock":
                lock = vxu(
                    sender=FACILITY[OrgType.PROVIDER], mrn="MRN1", protection="Y"
                )
                assert msa_code(self.send(OrgType.PROVIDER, lock)) == "AA"
            flag = "Y" if operation == "lock" else "N"
            message = vxu(
                control_id=control, sender=sender, mrn="MRN1", protection=flag
            )
        else:
            message = qbp(
                query=operation.upper(), control_id=control, sender=sender, **QUERY_KEYS
            )
        return self.send(org_type, message)

    def state(self) -> tuple[object, ...]:
        """What a refused operation must leave unchanged."""
        patients = self.registry.query("SELECT count(*), max(protection) FROM patients")
        doses = self.registry.query(
            "SELECT count(*), sum(CASE WHEN deleted_at IS NULL THEN 0 ELSE 1 END) FROM vaccinations"
        )
        return (*patients[0], *doses[0])

    def refusals(self) -> list[tuple[object, ...]]:
        return self.registry.query(
            "SELECT requester, action, outcome, detail FROM audit_log WHERE outcome = 'refused-role'"
        )


@pytest.fixture(name="world")
def _world(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return World(build_registry(db, tmp_path, monkeypatch), db)


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("org_type", list(OrgType), ids=lambda t: t.value)
def test_role_against_operation(
    world: World, org_type: OrgType, operation: str
) -> None:
    """Allowed operations are answered AA; refused ones AR naming the role, audited, nothing changed."""
    before = world.state()
    reply = world.operate(org_type, operation)
    if operation in ALLOWED[org_type]:
        assert msa_code(reply) == "AA", errs(reply)
        assert world.refusals() == []
        return
    assert msa_code(reply) == "AR"
    (err,) = errs(reply)
    assert "not authorized" in err[8]
    after = world.state()
    if operation == "unlock":
        before = (before[0], "Y", *before[2:])  # the provider locked it first
    assert after == before
    ((requester, action, outcome, detail),) = world.refusals()
    assert (requester, action, outcome) == (
        FACILITY[org_type],
        "authorize",
        "refused-role",
    )
    assert "may not" in str(detail)


@pytest.mark.parametrize("query", ["Z34", "Z44"])
@pytest.mark.parametrize("org_type", list(OrgType), ids=lambda t: t.value)
def test_role_sees_contact_details_and_guardians_or_not(
    world: World, org_type: OrgType, query: str
) -> None:
    """Schools, child care and the like get doses (and forecast) without PID-11, PID-13 or NK1; the others the full record."""
    reply = world.operate(org_type, query.lower())
    rows = segments(reply)
    (pid,) = [s for s in rows if s[0] == "PID"]
    assert [s for s in rows if s[0] == "RXA"], "the doses are always shown"
    if org_type in REQUIREMENTS:
        assert pid[11] == "" and pid[13] == ""
        assert not [s for s in rows if s[0] == "NK1"]
        assert CANARY_STREET not in reply.decode()
    else:
        assert CANARY_STREET in pid[11]
        assert pid[13]
        assert [s for s in rows if s[0] == "NK1"]
