"""RXA-21 updates and deletes, ownership, refusals, dose de-duplication and
scored patient matching, through a real server and a real MLLP client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ServerProcess
from tests.e2e.test_queries import qbp
from tests.support.messages import CANARY_FAMILY, CANARY_GIVEN, Dose, vxu
from tests.support.mllp import errs, msa_code, segments

pytestmark = pytest.mark.e2e


def _int(value: object) -> int:
    return int(str(value))


def _doses(server: ServerProcess) -> list[tuple[object, ...]]:
    return server.query(
        "SELECT filler_id, cvx, lot_numbers, deleted_at IS NOT NULL, sending_facility "
        "FROM vaccinations ORDER BY id"
    )


def _z34_cvx(server: ServerProcess, sender: str = "CLINIC1") -> list[str]:
    reply = server.send(
        qbp(
            sender=sender,
            control_id=f"Q-{sender}",
            ids="MRN1^^^EHR^MR",
            name=f"{CANARY_FAMILY}^{CANARY_GIVEN}",
            dob="20230105",
        )
    )
    return [s[5].split("^")[0] for s in segments(reply) if s[0] == "RXA"]


def test_rxa21_add_then_update_changes_the_senders_dose(server: ServerProcess) -> None:
    """A, then U with the same ORC-3: one record, carrying the update."""
    assert msa_code(server.send(vxu(mrn="MRN1", doses=[Dose(filler="D1")]))) == "AA"
    reply = server.send(
        vxu(mrn="MRN1", doses=[Dose(filler="D1", lot="LOT999", action="U")])
    )
    assert msa_code(reply) == "AA"
    assert _doses(server) == [("D1", "08", "LOT999", False, "CLINIC1")]


def test_rxa21_add_for_a_stored_orc3_is_an_update_not_a_second_dose(
    server: ServerProcess,
) -> None:
    """EHRs resend whole histories: an A for an ORC-3 already held updates it."""
    server.send(vxu(mrn="MRN1", doses=[Dose(filler="D1")]))
    server.send(vxu(mrn="MRN1", doses=[Dose(filler="D1", lot="LOT2")]))
    assert _doses(server) == [("D1", "08", "LOT2", False, "CLINIC1")]


def test_rxa21_delete_is_soft_audited_and_leaves_the_consolidated_view(
    server: ServerProcess,
) -> None:
    server.send(vxu(mrn="MRN1", doses=[Dose(filler="D1"), Dose(filler="D2", cvx="20")]))
    assert sorted(_z34_cvx(server)) == ["08", "20"]
    reply = server.send(vxu(mrn="MRN1", doses=[Dose(filler="D1", action="D")]))
    assert msa_code(reply) == "AA"
    # The record of the dose stays, marked deleted ...
    assert _doses(server) == [
        ("D1", "08", "LOT123", True, "CLINIC1"),
        ("D2", "20", "LOT123", False, "CLINIC1"),
    ]
    # ... it is gone from what queries see ...
    assert _z34_cvx(server) == ["20"]
    # ... and who deleted it is audited.
    audit = server.query(
        "SELECT requester, action, outcome FROM audit_log WHERE action = 'delete-dose'"
    )
    assert len(audit) == 1
    assert audit[0][0] == "CLINIC1"
    assert audit[0][2] == "soft-deleted"


@pytest.mark.parametrize("action", ["U", "D"])
def test_rxa21_update_or_delete_of_an_unknown_dose_gets_error_204(
    server: ServerProcess, action: str
) -> None:
    server.send(vxu(mrn="MRN1", doses=[Dose(filler="D1")]))
    before = _doses(server)
    reply = server.send(vxu(mrn="MRN1", doses=[Dose(filler="NOSUCH", action=action)]))
    assert msa_code(reply) == "AE"
    (err,) = errs(reply)
    assert err[2].startswith("ORC^1^3")
    assert err[3].startswith("204^")
    assert f"RXA-21 is {action}" in err[8]
    assert _doses(server) == before


@pytest.mark.parametrize("action", ["U", "D"])
def test_rxa21_another_organization_cannot_change_a_dose(
    server: ServerProcess, action: str
) -> None:
    """CLINIC2 names CLINIC1's dose by its ORC-3: an ERR, and nothing changes."""
    server.send(vxu(sender="CLINIC1", mrn="MRN1", doses=[Dose(filler="D1")]))
    before = _doses(server)
    reply = server.send(
        vxu(
            sender="CLINIC2",
            mrn="MRN1",
            doses=[Dose(filler="D1", lot="HIJACK", action=action)],
        )
    )
    assert msa_code(reply) == "AE"
    assert any(e[3].startswith("204^") for e in errs(reply))
    assert _doses(server) == before
    assert server.query("SELECT count(*) FROM audit_log WHERE action = 'delete-dose'")[
        0
    ] == (0,)


def test_refusals_and_not_administered_are_stored_as_such_never_as_doses(
    server: ServerProcess,
) -> None:
    reply = server.send(
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
    stored = server.query(
        "SELECT cvx, completion_status, refusal_reason FROM vaccinations ORDER BY cvx"
    )
    assert ("03", "RE", "00") in stored
    assert any(row[:2] == ("20", "NA") for row in stored)
    # The forecast-facing history counts only the dose given.
    reply = server.send(
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


def test_the_same_dose_from_two_sources_counts_once(server: ServerProcess) -> None:
    """CLINIC1 gave it; CLINIC2 reports it as history: both kept, one in the view."""
    server.send(vxu(sender="CLINIC1", mrn="MRN1", doses=[Dose(filler="D1")]))
    server.send(
        vxu(
            sender="CLINIC2",
            mrn="MRN1",
            doses=[Dose(filler="H1", source="01", lot="")],
        )
    )
    rows = server.query(
        "SELECT sending_facility, duplicate_of IS NOT NULL, dedup_reason FROM vaccinations ORDER BY id"
    )
    assert rows[0][:2] == ("CLINIC1", False)
    assert rows[1][:2] == ("CLINIC2", True)
    assert "administered record beats a historical one" in str(rows[1][2])
    assert _z34_cvx(server) == ["08"]


def test_another_clinics_typo_and_record_number_find_the_same_patient(
    server: ServerProcess,
) -> None:
    server.send(vxu(sender="CLINIC1", mrn="MRN1", doses=[Dose(filler="D1")]))
    server.send(
        vxu(
            sender="CLINIC2",
            mrn="OTHER77",
            authority="CLINIC2",
            given="Qqcanarygvi",  # a transposition typo
            doses=[Dose(filler="D9", cvx="20", date="20240301")],
        )
    )
    assert server.query("SELECT count(*) FROM patients") == [(1,)]
    decision = server.query(
        "SELECT outcome, score, reasons FROM match_decisions ORDER BY id DESC LIMIT 1"
    )[0]
    assert decision[0] == "match"
    assert "given similar" in str(decision[2]) or "given one typo" in str(decision[2])
    # The stored name is the one first confirmed, not the typo.
    assert server.query("SELECT given_name FROM patients") == [("Qqcanarygiv",)]


def _cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    extra = (
        ["--database", server.database_url]
        if server.database_url
        else ["--data-dir", str(server.data_dir)]
    )
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "--config",
            str(server.config),
            "review",
            *args,
            *extra,
        ],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_possible_match_goes_to_review_and_a_merge_can_be_undone(
    server: ServerProcess,
) -> None:
    """An unflagged twin (same family, birth date, address; another first name)."""
    server.send(vxu(sender="CLINIC1", mrn="MRN1", doses=[Dose(filler="D1")]))
    server.send(
        vxu(
            sender="CLINIC2",
            mrn="TWIN2",
            authority="CLINIC2",
            given="Wwothertwin",
            doses=[Dose(filler="D2", cvx="20", date="20240301")],
        )
    )
    assert server.query("SELECT count(*) FROM patients") == [(2,)]
    listed = _cli(server, "list")
    assert listed.returncode == 0, listed.stderr
    assert "patient" in listed.stdout
    assert "1 item(s)" in listed.stdout
    item_id = listed.stdout.split()[0]
    (reasons,) = server.query("SELECT reasons FROM review_items")
    assert "given names differ" in str(reasons[0])

    merged = _cli(server, "merge", item_id)
    assert merged.returncode == 0, merged.stderr
    assert "merged" in merged.stdout
    # Both source records are kept; the link derives the merged view.
    assert server.query("SELECT count(*) FROM patients") == [(2,)]
    active = "SELECT count(*) FROM patient_links WHERE active = ?"
    assert _int(server.query(active, (True,))[0][0]) == 1
    assert sorted(_z34_cvx(server)) == ["08", "20"]

    undone = _cli(server, "separate", item_id)
    assert undone.returncode == 0, undone.stderr
    assert "merge undone" in undone.stdout
    assert _int(server.query(active, (True,))[0][0]) == 0
    assert _z34_cvx(server) == ["08"]
    assert _cli(server, "list").stdout.strip().endswith("0 item(s)")
