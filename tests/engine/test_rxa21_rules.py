"""RXA-21 updates and deletes, ownership, refusals, dose de-duplication and
scored patient matching, in process on SQLite and PostgreSQL.

The same assertions the e2e tests made through ``cairn serve``, on the
pipeline the server builds from the same configuration. One RXA-21 path and
the review CLI stay end to end in tests/e2e/test_rxa21.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import Database
from tests.e2e.test_queries import qbp
from tests.support.messages import CANARY_FAMILY, CANARY_GIVEN, Dose, vxu
from tests.support.mllp import errs, msa_code, segments
from tests.support.registry import InProcessRegistry, build_registry


def _doses(registry: InProcessRegistry) -> list[tuple[object, ...]]:
    return registry.query(
        "SELECT filler_id, cvx, lot_numbers, deleted_at IS NOT NULL, sending_facility "
        "FROM vaccinations ORDER BY id"
    )


def _z34_cvx(registry: InProcessRegistry, sender: str = "CLINIC1") -> list[str]:
    reply = registry.send(
        qbp(
            sender=sender,
            control_id=f"Q-{sender}",
            ids="MRN1^^^EHR^MR",
            name=f"{CANARY_FAMILY}^{CANARY_GIVEN}",
            dob="20230105",
        )
    )
    return [s[5].split("^")[0] for s in segments(reply) if s[0] == "RXA"]


@pytest.fixture(name="registry")
def _registry(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> InProcessRegistry:
    """The e2e servers' pipeline in process, on SQLite then PostgreSQL."""
    return build_registry(db, tmp_path, monkeypatch)


def test_rxa21_add_for_a_stored_orc3_is_an_update_not_a_second_dose(
    registry: InProcessRegistry,
) -> None:
    """EHRs resend whole histories: an A for an ORC-3 already held updates it."""
    registry.send(vxu(mrn="MRN1", doses=[Dose(filler="D1")]))
    registry.send(vxu(mrn="MRN1", doses=[Dose(filler="D1", lot="LOT2")]))
    assert _doses(registry) == [("D1", "08", "LOT2", False, "CLINIC1")]


def test_rxa21_delete_is_soft_audited_and_leaves_the_consolidated_view(
    registry: InProcessRegistry,
) -> None:
    """A D keeps the dose row marked deleted, drops it from Z34 and audits who deleted it."""
    registry.send(
        vxu(mrn="MRN1", doses=[Dose(filler="D1"), Dose(filler="D2", cvx="20")])
    )
    assert sorted(_z34_cvx(registry)) == ["08", "20"]
    reply = registry.send(vxu(mrn="MRN1", doses=[Dose(filler="D1", action="D")]))
    assert msa_code(reply) == "AA"
    # The record of the dose stays, marked deleted ...
    assert _doses(registry) == [
        ("D1", "08", "LOT123", True, "CLINIC1"),
        ("D2", "20", "LOT123", False, "CLINIC1"),
    ]
    # ... it is gone from what queries see ...
    assert _z34_cvx(registry) == ["20"]
    # ... and who deleted it is audited.
    audit = registry.query(
        "SELECT requester, action, outcome FROM audit_log WHERE action = 'delete-dose'"
    )
    assert len(audit) == 1
    assert audit[0][0] == "CLINIC1"
    assert audit[0][2] == "soft-deleted"


@pytest.mark.parametrize("action", ["U", "D"])
def test_rxa21_update_or_delete_of_an_unknown_dose_gets_error_204(
    registry: InProcessRegistry, action: str
) -> None:
    """A U or D naming an ORC-3 the registry does not hold gets 204 on ORC-3 and changes nothing."""
    registry.send(vxu(mrn="MRN1", doses=[Dose(filler="D1")]))
    before = _doses(registry)
    reply = registry.send(vxu(mrn="MRN1", doses=[Dose(filler="NOSUCH", action=action)]))
    assert msa_code(reply) == "AE"
    (err,) = errs(reply)
    assert err[2].startswith("ORC^1^3")
    assert err[3].startswith("204^")
    assert f"RXA-21 is {action}" in err[8]
    assert _doses(registry) == before


@pytest.mark.parametrize("action", ["U", "D"])
def test_rxa21_another_organization_cannot_change_a_dose(
    registry: InProcessRegistry, action: str
) -> None:
    """CLINIC2 names CLINIC1's dose by its ORC-3: an ERR, and nothing changes."""
    registry.send(vxu(sender="CLINIC1", mrn="MRN1", doses=[Dose(filler="D1")]))
    before = _doses(registry)
    reply = registry.send(
        vxu(
            sender="CLINIC2",
            mrn="MRN1",
            doses=[Dose(filler="D1", lot="HIJACK", action=action)],
        )
    )
    assert msa_code(reply) == "AE"
    assert any(e[3].startswith("204^") for e in errs(reply))
    assert _doses(registry) == before
    assert registry.query(
        "SELECT count(*) FROM audit_log WHERE action = 'delete-dose'"
    )[0] == (0,)


def test_refusals_and_not_administered_are_stored_as_such_never_as_doses(
    registry: InProcessRegistry,
) -> None:
    """A refusal and a not-administered RXA are stored with their status, and the forecast counts only the dose given."""
    reply = registry.send(
        vxu(
            mrn="MRN1",
            doses=[
                Dose(filler="9999", cvx="03", completion="RE", refusal="00"),
                Dose(filler="D2", cvx="20", completion="NA", amount="999"),
                Dose(filler="D3", cvx="08"),
            ],
        )
    )
    assert msa_code(reply) in {"AA", "AE"}, errs(reply)
    stored = registry.query(
        "SELECT cvx, completion_status, refusal_reason FROM vaccinations ORDER BY cvx"
    )
    assert ("03", "RE", "00") in stored
    assert any(row[:2] == ("20", "NA") for row in stored)
    # The forecast-facing history counts only the dose given.
    reply = registry.send(
        qbp(
            query="Z44",
            control_id="Q-Z44",
            ids="MRN1^^^EHR^MR",
            name=f"{CANARY_FAMILY}^{CANARY_GIVEN}",
            dob="20230105",
        )
    )
    validity = [
        s
        for s in segments(reply)
        if s[0] == "OBX" and s[3].startswith("59781-5")  # dose validity
    ]
    assert len(validity) == 1


def test_the_same_dose_from_two_sources_counts_once(
    registry: InProcessRegistry,
) -> None:
    """CLINIC1 gave it; CLINIC2 reports it as history: both kept, one in the view."""
    registry.send(vxu(sender="CLINIC1", mrn="MRN1", doses=[Dose(filler="D1")]))
    registry.send(
        vxu(
            sender="CLINIC2",
            mrn="MRN1",
            doses=[Dose(filler="H1", source="01", lot="")],
        )
    )
    rows = registry.query(
        "SELECT sending_facility, duplicate_of IS NOT NULL, dedup_reason FROM vaccinations ORDER BY id"
    )
    assert rows[0][:2] == ("CLINIC1", False)
    assert rows[1][:2] == ("CLINIC2", True)
    assert "administered record beats a historical one" in str(rows[1][2])
    assert _z34_cvx(registry) == ["08"]


def test_another_clinics_typo_and_record_number_find_the_same_patient(
    registry: InProcessRegistry,
) -> None:
    """Another clinic's record number and a one-typo given name match the stored patient, whose name stays as first confirmed."""
    registry.send(vxu(sender="CLINIC1", mrn="MRN1", doses=[Dose(filler="D1")]))
    registry.send(
        vxu(
            sender="CLINIC2",
            mrn="OTHER77",
            authority="CLINIC2",
            given="Qqcanarygvi",  # a transposition typo
            doses=[Dose(filler="D9", cvx="20", date="20240301")],
        )
    )
    assert registry.query("SELECT count(*) FROM patients") == [(1,)]
    decision = registry.query(
        "SELECT outcome, score, reasons FROM match_decisions ORDER BY id DESC LIMIT 1"
    )[0]
    assert decision[0] == "match"
    assert "given similar" in str(decision[2]) or "given one typo" in str(decision[2])
    # The stored name is the one first confirmed, not the typo.
    assert registry.query("SELECT given_name FROM patients") == [("Qqcanarygiv",)]
