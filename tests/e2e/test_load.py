"""`cairn load`: batch files loaded, acknowledged, and resumable without double storage."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.messages import Dose, vxu

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _load(tmp_path: Path, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "load",
            str(path),
            "--data-dir",
            str(tmp_path / "var"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )


def test_load_batch_file_is_acknowledged_and_resumable(tmp_path: Path) -> None:
    """An FHS/BHS batch is loaded with one ACK per message; loading it again stores nothing new."""
    messages = [
        vxu(control_id=f"B{i}", mrn=f"B{i}", doses=[Dose(filler=f"BF{i}")])
        for i in range(5)
    ]
    messages.append(
        vxu(control_id="BBAD", mrn="BBAD", doses=[Dose(cvx="XXX", filler="BFX")])
    )
    path = tmp_path / "export.hl7"
    path.write_text(
        "FHS|^~\\&|EHR|CLINIC1\rBHS|^~\\&|EHR|CLINIC1\r"
        + "".join(messages)
        + "BTS|6\rFTS|1\r"
    )
    first = _load(tmp_path, path)
    assert "AA 5" in first.stdout
    assert "AE 1" in first.stdout
    acks = (tmp_path / "export.hl7.ack").read_bytes().split(b"\n")
    assert [a.split(b"MSA|")[1][:2] for a in acks if a] == [b"AA"] * 5 + [b"AE"]
    second = _load(tmp_path, path)
    assert "AA 5" in second.stdout
    con = sqlite3.connect(tmp_path / "var" / "cairn.sqlite3")
    try:
        assert con.execute("SELECT count(*) FROM message_journal").fetchone() == (6,)
        assert con.execute("SELECT count(*) FROM vaccinations").fetchone() == (5,)
    finally:
        con.close()
