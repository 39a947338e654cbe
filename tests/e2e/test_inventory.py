"""The inventory path a clinic meets: receive stock with the CLI, give a dose over MLLP, see it drawn down."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ServerProcess
from tests.support.messages import Dose, vxu
from tests.support.mllp import errs, msa_code

pytestmark = pytest.mark.e2e


def _inventory(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
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
            "inventory",
            *args,
            "--facility",
            "CLINIC1",
            *extra,
        ],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_dose_sent_over_mllp_draws_down_the_lot_received_with_the_cli(
    server: ServerProcess,
) -> None:
    """Receive 5, send a dose of that lot and one of an unknown lot: 4 on hand, one warning."""
    received = _inventory(
        server,
        "receive",
        "--cvx",
        "03",
        "--mvx",
        "MSD",
        "--lot",
        "MMR-A1",
        "--expires",
        "2027-12-31",
        "--funding",
        "VFC",
        "--quantity",
        "5",
    )
    assert received.returncode == 0, received.stderr
    reply = server.send(
        vxu(
            mrn="E2EINV",
            doses=[
                Dose(cvx="03", date="20260310", lot="MMR-A1"),
                Dose(cvx="03", date="20260311", lot="NOPE"),
            ],
        )
    )
    assert msa_code(reply) == "AA"
    assert [e[2] for e in errs(reply) if "lot number" in e[8]] == ["RXA^2^15"]
    listed = _inventory(server, "list")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if "MMR-A1" in line)
    assert row.split()[-1] == "4"
    report = _inventory(server, "report", "--as-of", "2026-03-31")
    assert report.returncode == 0, report.stderr
    assert "unknown-lot" in report.stdout and "NOPE" in report.stdout
