"""``cairn replay`` after a changed rule: the exact difference, then applied.

The registry is filled through the pipeline ``cairn serve`` builds (in
process, SQLite then PostgreSQL) under the e2e configuration. Then the
configuration changes, as an operator's would, and replay runs from the CLI
against the same database: the dry run must print exactly what differs and
change nothing; the real run must change exactly that, with an audit row.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main
from storage import Database
from tests.e2e.conftest import CONFIG
from tests.support.messages import Dose, vxu
from tests.support.mllp import msa_code
from tests.support.registry import InProcessRegistry, build_registry

NEWCLINIC = """
[[facilities]]
id = "NEWCLINIC"
region = "BAY"
name = "A clinic registered after its first messages"
"""


@pytest.fixture(name="registry")
def _registry(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> InProcessRegistry:
    return build_registry(db, tmp_path, monkeypatch)


def _tables(registry: InProcessRegistry) -> dict[str, list[tuple[object, ...]]]:
    """Every registry table's rows, to prove a dry run changed nothing."""
    out = {}
    for table in (
        "message_journal",
        "patients",
        "vaccinations",
        "observations",
        "patient_versions",
        "patient_links",
        "review_items",
        "audit_log",
    ):
        out[table] = registry.query(f"SELECT * FROM {table} ORDER BY 1")
    return out


def _replay(
    registry: InProcessRegistry,
    tmp_path: Path,
    config: str,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
) -> tuple[int, list[str]]:
    path = tmp_path / "changed.toml"
    path.write_text(config)
    url = registry.db.engine.url.render_as_string(hide_password=False)
    code = main(
        [
            "--config",
            str(path),
            "replay",
            "--database",
            url,
            "--since",
            "2000-01-01",
            "--scratch-dir",
            str(tmp_path),
            *extra,
        ]
    )
    return code, capsys.readouterr().out.splitlines()


def _fill(registry: InProcessRegistry) -> dict[str, int]:
    answers = {
        "R1": registry.send(
            vxu(control_id="R1", sender="CLINIC1", doses=[Dose(date="20240110")])
        ),
        "R2": registry.send(
            vxu(
                control_id="R2",
                sender="CLINIC2",
                doses=[Dose(date="20240114", source="01")],
            )
        ),
        "R3": registry.send(
            vxu(
                control_id="R3",
                sender="NEWCLINIC",
                doses=[Dose(cvx="03", date="20240301")],
            )
        ),
    }
    assert {k: msa_code(v) for k, v in answers.items()} == {
        "R1": "AA",
        "R2": "AA",
        "R3": "AR",
    }
    rows = registry.query("SELECT control_id, id FROM message_journal ORDER BY id")
    return {str(c): int(str(i)) for c, i in rows}


def test_replay_dry_run_shows_the_exact_difference_and_changes_nothing(
    registry: InProcessRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sender registered later and a narrower de-dup window, seen before applying."""
    ids = _fill(registry)
    dose = registry.query(
        "SELECT id, duplicate_of FROM vaccinations WHERE journal_id = ?", (ids["R2"],)
    )
    assert len(dose) == 1 and dose[0][1] is not None  # a duplicate of R1's dose
    before = _tables(registry)
    code, lines = _replay(
        registry,
        tmp_path,
        CONFIG + NEWCLINIC + "\n[dedup]\nwindow_days = 2\n",
        capsys,
        "--dry-run",
    )
    assert code == 0
    assert lines == [
        "replayed 3 message(s) on a scratch database; 3 in scope; 2 would be "
        "answered or filed differently; 0 patient record change(s)",
        f"journal {ids['R2']} (CLINIC2 R2): dose #{dose[0][0]} (CVX 08) would no "
        "longer be a duplicate",
        f"journal {ids['R3']} (NEWCLINIC R3): ACK AR -> AA",
        "    - ERR E 103/5 MSH-4",
        f"journal {ids['R3']} (NEWCLINIC R3): dose CVX 03 would be added",
        "dry run: nothing changed",
    ]
    assert _tables(registry) == before


def test_replay_applies_the_difference_in_one_audited_run(
    registry: InProcessRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The duplicate mark is cleared, the refused message filed, one audit row."""
    ids = _fill(registry)
    code, lines = _replay(
        registry, tmp_path, CONFIG + NEWCLINIC + "\n[dedup]\nwindow_days = 2\n", capsys
    )
    assert code == 0
    assert lines[-1] == (
        "applied: 0 dose(s) added, 0 withdrawn, 1 de-duplication mark(s) changed, "
        "0 review item(s) for records that would be one, 1 refused message(s) re-filed"
    )
    assert registry.query(
        "SELECT duplicate_of, dedup_reason FROM vaccinations WHERE journal_id = ?",
        (ids["R2"],),
    ) == [(None, "replay: not a duplicate")]
    refiled = registry.query(
        "SELECT id, ack_code, peer FROM message_journal WHERE control_id = 'R3' "
        "ORDER BY id"
    )
    assert [(r[1], str(r[2]).startswith("replay ")) for r in refiled] == [
        ("AR", False),
        ("AA", True),
    ]
    assert registry.query(
        "SELECT cvx, sending_facility FROM vaccinations WHERE journal_id = ?",
        (refiled[1][0],),
    ) == [("03", "NEWCLINIC")]
    audit = registry.query(
        "SELECT requester, action, outcome, detail FROM audit_log "
        "WHERE action = 'replay'"
    )
    assert audit == [
        (
            "cairn replay",
            "replay",
            "applied",
            "in scope 3; doses added 0, withdrawn 0, de-duplication changed 1; "
            "merge reviews 0; refused messages re-filed 1",
        )
    ]
    # A second replay under the same rules finds nothing left to change
    # (the re-filed message is journaled anew; its refused original stays).
    code, lines = _replay(
        registry,
        tmp_path,
        CONFIG + NEWCLINIC + "\n[dedup]\nwindow_days = 2\n",
        capsys,
        "--dry-run",
        "--sender",
        "CLINIC2",
    )
    assert code == 0
    assert lines[0].endswith(
        "0 would be answered or filed differently; 0 patient record change(s)"
    )


def test_replay_after_a_stricter_match_threshold_shows_a_split(
    registry: InProcessRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two clinics' messages on one record; a threshold no pair reaches splits it."""
    r1 = registry.send(vxu(control_id="S1", sender="CLINIC1", doses=[Dose()]))
    r2 = registry.send(
        vxu(control_id="S2", sender="CLINIC2", authority="EHR2", doses=[Dose(cvx="03")])
    )
    assert [msa_code(r1), msa_code(r2)] == ["AA", "AA"]
    rows = registry.query("SELECT control_id, id FROM message_journal ORDER BY id")
    ids = {str(c): int(str(i)) for c, i in rows}
    patients = registry.query("SELECT id FROM patients")
    assert len(patients) == 1  # matched on demographics, not the identifier
    code, lines = _replay(
        registry,
        tmp_path,
        CONFIG + "\n[matching]\nmatch_threshold = 90.0\npossible_threshold = 80.0\n",
        capsys,
        "--dry-run",
    )
    assert code == 0
    assert (
        f"patient #{patients[0][0]} would be 2 records (messages {ids['S1']} | {ids['S2']})"
        in lines
    )


def test_replay_files_an_organizations_messages_as_that_organization(
    registry: InProcessRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sender known only as an organization (no [[facilities]] entry) replays the same.

    Its messages came through an authenticated listener; replayed without
    its organization they would be refused as an unregistered MSH-4, and the
    dry run would report every one of them as changed.
    """
    from engine import app
    from engine.pipeline import Inbound

    identity = app.build_identity(registry.settings, registry.db)
    identity.add_organization(
        "test",
        code="ORGCLINIC",
        name="A clinic registered as an organization",
        org_type="provider",
        region="BAY",
        facility_ids=["ORGFAC"],
    )
    principal = identity.principal_of("ORGCLINIC")
    assert principal is not None
    raw = vxu(control_id="O1", sender="ORGFAC", doses=[Dose()]).encode()
    (outcome,) = registry.pipeline.process_batch(
        [Inbound(raw, "10.0.0.5:4000", "mllp", principal=principal)]
    )
    assert outcome.ack_code == "AA"
    code, lines = _replay(registry, tmp_path, CONFIG, capsys, "--dry-run")
    assert code == 0
    assert lines[0] == (
        "replayed 1 message(s) on a scratch database; 1 in scope; 0 would be "
        "answered or filed differently; 0 patient record change(s)"
    )


def test_replay_prints_its_report_without_a_log_line_per_message(
    registry: InProcessRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new user's `cairn replay --dry-run` printed log events for every message
    (patient_matched, message_done, unregistered_sender_accepted) before the
    report, on stdout."""
    import structlog

    _fill(registry)
    structlog.reset_defaults()  # what a CLI process starts with, not the test capture
    accepting = CONFIG.replace('unknown_sender = "reject"', 'unknown_sender = "accept"')
    assert accepting != CONFIG
    code, lines = _replay(registry, tmp_path, accepting, capsys, "--dry-run")
    assert code == 0
    assert [line for line in lines if '"event"' in line] == []
    assert lines[0].startswith("replayed 3 message(s) on a scratch database")
    assert lines[-1] == "dry run: nothing changed"
