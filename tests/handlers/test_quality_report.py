"""The per-sender data-quality report on a known set of messages.

Messages go through the pipeline ``cairn serve`` builds (in process, SQLite
then PostgreSQL), so the answers the report reads are the real ones; then
the journal's receipt times are set to one known day, so the timeliness
buckets are exact. Another clinic's messages are in the same journal and
must not count.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.cli import main
from handlers.quality import build_quality_report
from storage import Database
from tests.support.messages import CANARIES, Dose, vxu
from tests.support.mllp import msa_code
from tests.support.registry import InProcessRegistry, build_registry

RECEIVED = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
VFC = "OBX|1|CE|64994-7^Eligibility^LN|1|V02^Medicaid^HL70064||||||F"
VIS = "OBX|2|TS|29769-7^VIS presented^LN|1|20240301||||||F"
NO_PHONE_PID = (
    "PID|1||Q-77^^^EHR^MR||Doe^Jane^^^^^L||20230105|F||2106-3^White^CDCREC"
    "||||||||||||2186-5^Not Hispanic^CDCREC"
)


@pytest.fixture(name="registry")
def _registry(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> InProcessRegistry:
    return build_registry(db, tmp_path, monkeypatch)


def _send_known_set(registry: InProcessRegistry) -> None:
    answers = [
        # 1: given on the day received; lot and VFC, no VIS; phone and address.
        registry.send(
            vxu(control_id="Q1", doses=[Dose(date="20240301", observations=[VFC])])
        ),
        # 2: given 5 days before; VFC and VIS; no lot; phone and address.
        registry.send(
            vxu(
                control_id="Q2",
                doses=[Dose(date="20240225", lot="", observations=[VFC, VIS])],
            )
        ),
        # 3: a historical dose (not timed) and one given 40 days before (no VFC);
        #    no phone, no address.
        registry.send(
            vxu(
                control_id="Q3",
                pid=NO_PHONE_PID,
                doses=[
                    Dose(cvx="03", date="20231001", source="01"),
                    Dose(date="20240121", observations=[]),
                ],
            )
        ),
        # 4: refused for its version: counted as an outcome and its issue only.
        registry.send(
            vxu(control_id="Q4", version="2.3", doses=[Dose(date="20240301")])
        ),
    ]
    assert [msa_code(a) for a in answers] == ["AA", "AA", "AA", "AR"]
    # Another clinic, the same day: not in CLINIC1's report.
    assert msa_code(
        registry.send(vxu(control_id="OTHER-1", sender="CLINIC2", doses=[Dose()]))
    ) in {"AA", "AE"}
    registry.write("UPDATE message_journal SET received_at = ?", (RECEIVED,))


def test_quality_report_figures_on_a_known_set(registry: InProcessRegistry) -> None:
    """Outcomes, issues, timeliness and completeness, counted exactly."""
    _send_known_set(registry)
    report = build_quality_report("CLINIC1", registry.db.journal_scan(sender="CLINIC1"))
    assert report.messages == 4
    assert report.outcomes == {"AA": 3, "AR": 1}
    assert report.administered_doses == 3
    assert report.historical_doses == 1
    assert dict(report.timeliness) == {
        "same or next day": 1,
        "2-7 days": 1,
        "8-30 days": 0,
        "31-365 days": 1,
        "over a year": 0,
        "dated after receipt": 0,
        "no usable date": 0,
    }
    completeness = {c.key: (c.present, c.total) for c in report.completeness}
    assert completeness == {
        "lot": (2, 3),
        "vfc": (2, 3),
        "vis": (1, 3),
        "phone": (2, 3),
        "address": (2, 3),
    }
    # The AR names MSH-12 (version); the warnings are Q3's dose without VFC
    # eligibility and Q2's missing lot (equal counts: in code order).
    assert [
        (e.severity, e.location, e.hl7_code, e.count, e.example_control_id)
        for e in report.errors
    ] == [("E", "MSH-12", "203", 1, "Q4")]
    assert [
        (w.location, w.hl7_code, w.app_code, w.count, w.example_control_id, w.text)
        for w in report.warnings
    ] == [
        (
            "RXA",
            "101",
            "6",
            1,
            "Q3",
            "no OBX 64994-7 (funding eligibility) for a newly administered dose (IZ-23)",
        ),
        (
            "RXA-15",
            "101",
            "7",
            1,
            "Q2",
            "RXA-15 (lot number) is missing for a newly administered dose",
        ),
    ]


def test_quality_report_cli_formats_and_no_patient_data(
    registry: InProcessRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Table, JSON, CSV and HTML from `cairn report quality`; none prints PHI."""
    _send_known_set(registry)
    url = ["--database", str(registry.db.engine.url.render_as_string(False))]
    base = ["report", "quality", "--sender", "CLINIC1", *url]
    assert main([*base]) == 0
    table = capsys.readouterr().out
    assert "AR (rejected)" in table and "MSH-12" in table

    assert main([*base, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["outcomes"] == {"AA": 3, "AR": 1}
    assert data["completeness"]["vis"] == {"present": 1, "total": 3, "percent": 33.3}

    assert main([*base, "--format", "csv", "--output", str(tmp_path / "csv")]) == 0
    capsys.readouterr()
    timeliness = (tmp_path / "csv" / "timeliness.csv").read_text().splitlines()
    assert timeliness[1] == "same or next day,1,33.3"

    page = tmp_path / "quality.html"
    assert main([*base, "--format", "html", "--output", str(page)]) == 0
    capsys.readouterr()
    html = page.read_text()
    assert html.count("data:image/svg+xml;base64,") == 4
    for canary in CANARIES:
        assert canary not in table
        assert canary not in html
        assert canary not in json.dumps(data)


def test_quality_report_cli_refuses_what_it_cannot_do(
    registry: InProcessRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown sender and HTML without a file are one clear line each."""
    url = ["--database", str(registry.db.engine.url.render_as_string(False))]
    assert main(["report", "quality", "--sender", "NOBODY", *url]) == 1
    assert "no messages from sender 'NOBODY'" in capsys.readouterr().err
    assert main(["report", "quality", "--sender", "X", "--format", "html", *url]) == 2
    assert "--output" in capsys.readouterr().err
