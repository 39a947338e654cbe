"""``cairn patient history``: each clinic's submission and each change, in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main
from storage import open_database
from tests.handlers.test_confidentiality import OTHER_STREET, _pipeline, _send
from tests.support.messages import CANARY_STREET, Dose, vxu


def test_patient_history_shows_every_version_and_its_sender(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two clinics' submissions and the owner's move are listed with what changed."""
    assert main(["db", "upgrade", "--data-dir", str(tmp_path)]) == 0
    db = open_database(f"sqlite:///{tmp_path / 'cairn.sqlite3'}")
    pipeline = _pipeline(db)
    child = {"family": "Histfam", "given": "Hal", "dob": "20200202"}
    _send(pipeline, vxu(control_id="A1", doses=[Dose()], **child))
    other = vxu(
        control_id="B1",
        sender="CLINIC2",
        mrn="B-1",
        authority="C2EHR",
        doses=[Dose()],
        **child,
    )
    _send(pipeline, other.replace(CANARY_STREET, OTHER_STREET))
    moved = vxu(control_id="A2", doses=[Dose()], **child)
    _send(pipeline, moved.replace(CANARY_STREET, "5 New Pl"))
    db.close()
    capsys.readouterr()
    code = main(
        ["patient", "history", "1", "--region", "BAY", "--data-dir", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert code == 0
    headers = [line.split()[2:5] for line in out.splitlines() if " from " in line]
    assert headers == [
        ["submitted", "from", "CLINIC1"],
        ["submitted", "from", "CLINIC2"],
        ["stored", "from", "CLINIC1"],
        ["submitted", "from", "CLINIC1"],
    ]
    assert f"street: {OTHER_STREET}" in out, "what CLINIC2 said is kept"
    assert f"street: 5 New Pl (was {CANARY_STREET})" in out
    assert out.rstrip().endswith("4 version(s)")


def test_patient_history_of_an_unknown_patient_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A patient id with no versions says so on one line."""
    assert main(["db", "upgrade", "--data-dir", str(tmp_path)]) == 0
    code = main(
        ["patient", "history", "99", "--region", "BAY", "--data-dir", str(tmp_path)]
    )
    assert code == 1
    assert "no versions of patient 99" in capsys.readouterr().err
