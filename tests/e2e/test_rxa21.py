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
from tests.support.mllp import msa_code, segments

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
