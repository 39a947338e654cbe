"""Journal tools (issue 20 item 3): masked and revealed ``messages show``, ``--error``, prune.

Each test fills a registry through the pipeline ``cairn serve`` builds, then
runs the command as an operator would, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import getpass
import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.cli import main
from engine.commands.journal import read_archive
from storage import JOURNAL_POINTERS, Database
from storage.schema import metadata
from tests.e2e.test_queries import qbp
from tests.support.messages import (
    CANARIES,
    CANARY_FAMILY,
    CANARY_MRN,
    Dose,
    vxu,
)
from tests.support.mllp import msa_code
from tests.support.registry import InProcessRegistry, build_registry

DOB = "20230107"
#: a day after anything the tests send: every row is "older" than it
TOMORROW = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()


@pytest.fixture(name="registry")
def _registry(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> InProcessRegistry:
    return build_registry(db, tmp_path, monkeypatch)


def _db_args(registry: InProcessRegistry) -> list[str]:
    url = registry.db.engine.url.render_as_string(hide_password=False)
    return ["--database", url]


def _journal_id(registry: InProcessRegistry, control_id: str) -> int:
    ((journal_id,),) = registry.query(
        "SELECT id FROM message_journal WHERE control_id = ?", (control_id,)
    )
    return int(str(journal_id))


def _reveal_rows(registry: InProcessRegistry) -> list[tuple[object, ...]]:
    """The reveal audit rows (patient aside)."""
    return registry.query(
        "SELECT requester, journal_id, action, outcome, detail FROM audit_log "
        "WHERE action = 'journal-reveal' ORDER BY id"
    )


# -- messages show: masked by default, revealed with an audit row ---------------


def test_messages_show_masks_phi_and_keeps_what_an_analyst_debugs_with(
    registry: InProcessRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    """No name, identifier, birth date, street or phone; control id, codes, dose date and ERR stay."""
    bad = Dose(cvx="XYZ", date="20240115", lot="LOTVISIBLE")
    assert msa_code(registry.send(vxu(control_id="MASK1", dob=DOB, doses=[bad])))
    journal_id = _journal_id(registry, "MASK1")
    capsys.readouterr()
    assert main(["messages", "show", str(journal_id), *_db_args(registry)]) == 0
    out = capsys.readouterr().out
    for secret in (*CANARIES, DOB, "0199876", "Maiden", "Parent", "95814"):
        assert secret not in out
    assert "***" in out
    assert "MASK1" in out  # MSH-10, and MSA-2 of the answer
    assert "XYZ^vaccine^CVX" in out  # the code that was refused
    assert "20240115" in out  # the date of administration
    assert "LOTVISIBLE" in out
    assert "^^^EHR^MR" in out  # identifier authority and type, value masked
    assert "MTH^Mother^HL70063" in out  # NK1-3 relationship
    assert "RXA^1^5" in out  # the ERR location in the answer
    assert _reveal_rows(registry) == []


def test_messages_show_reveal_without_reason_is_refused_and_not_audited(
    registry: InProcessRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    """--reveal alone exits 2 naming --reason; nothing is shown or audited."""
    registry.send(vxu(control_id="R0", doses=[Dose()]))
    journal_id = _journal_id(registry, "R0")
    capsys.readouterr()
    code = main(["messages", "show", str(journal_id), "--reveal", *_db_args(registry)])
    captured = capsys.readouterr()
    assert code == 2
    assert "--reason" in captured.err
    assert CANARY_FAMILY not in captured.out
    assert _reveal_rows(registry) == []


def test_messages_show_reveal_shows_phi_and_writes_the_audit_row(
    registry: InProcessRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    """The audit row names the OS user, the journal row and the reason; the audit command lists it."""
    registry.send(vxu(control_id="R1", doses=[Dose()]))
    journal_id = _journal_id(registry, "R1")
    capsys.readouterr()
    reason = "ticket 4711: clinic asks why PID-3 was refused"
    args = ["messages", "show", str(journal_id), "--reveal", "--reason", reason]
    assert main([*args, *_db_args(registry)]) == 0
    out = capsys.readouterr().out
    assert CANARY_FAMILY in out
    assert CANARY_MRN in out
    ((requester, audited_row, action, outcome, detail),) = _reveal_rows(registry)
    assert requester == getpass.getuser()
    assert int(str(audited_row)) == journal_id
    assert (action, outcome, detail) == ("journal-reveal", "disclosed", reason)
    ((patient_id,),) = registry.query("SELECT id FROM patients")
    args = ["audit", "--patient", str(patient_id), "--requester", getpass.getuser()]
    assert main([*args, *_db_args(registry)]) == 0
    listing = capsys.readouterr().out
    assert "1 audit row(s)" in listing


def test_a_revealed_query_is_audited_against_the_patient_it_disclosed(
    registry: InProcessRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    """Revealing a Z34 names the disclosed patient; revealing an AR names no one."""
    registry.send(vxu(control_id="V1", doses=[Dose()]))
    registry.send(
        qbp(control_id="Q1", name=f"{CANARY_FAMILY}^Qqcanarygiv", dob="20230105")
    )
    registry.send(vxu(control_id="AR1", sender="NOBODY", doses=[Dose()]))
    ((patient_id,),) = registry.query("SELECT id FROM patients")
    for control_id in ("Q1", "AR1"):
        journal_id = _journal_id(registry, control_id)
        args = ["messages", "show", str(journal_id), "--reveal", "--reason", "audit"]
        assert main([*args, *_db_args(registry)]) == 0
    rows = registry.query(
        "SELECT m.control_id, a.patient_id FROM audit_log a "
        "JOIN message_journal m ON m.id = a.journal_id "
        "WHERE a.action = 'journal-reveal' ORDER BY a.id"
    )
    assert rows == [("Q1", patient_id), ("AR1", None)]


def test_messages_show_of_junk_hides_it_whole(
    registry: InProcessRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    """A journaled message that is not HL7 cannot be masked by position: it is hidden."""
    registry.send(vxu(control_id="JUNK1", doses=[Dose()]))
    journal_id = _journal_id(registry, "JUNK1")
    secret = f"Name {CANARY_FAMILY} phone 5550199876".encode()
    registry.write(
        "UPDATE message_journal SET raw = ? WHERE id = ?", (secret, journal_id)
    )
    capsys.readouterr()
    assert main(["messages", "show", str(journal_id), *_db_args(registry)]) == 0
    out = capsys.readouterr().out
    assert CANARY_FAMILY not in out
    assert "cannot be read as HL7: hidden" in out


# -- messages --error ----------------------------------------------------------------


def test_messages_filters_by_err_code(
    registry: InProcessRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    """--error 103 lists the message with an ERR-3 103, not one whose control id holds "103"."""
    registry.send(vxu(control_id="E103", doses=[Dose(cvx="XYZ")]))
    registry.send(vxu(control_id="OK103", doses=[Dose()]))
    registry.send(vxu(control_id="OTHER", version="2.3", doses=[Dose()]))  # 203
    capsys.readouterr()
    assert main(["messages", "--error", "103", *_db_args(registry)]) == 0
    out = capsys.readouterr().out
    assert "E103" in out
    assert "OK103" not in out
    assert "OTHER" not in out
    assert out.rstrip().endswith("1 message(s)")


def test_messages_error_filter_pages_back_until_the_limit(
    registry: InProcessRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --limit 2 the two newest matches are listed, however many rows hold the digits."""
    for n in range(3):
        registry.send(vxu(control_id=f"BAD{n}", doses=[Dose(cvx="XYZ")]))
    for n in range(5):
        registry.send(vxu(control_id=f"G103-{n}", doses=[Dose()]))
    capsys.readouterr()
    assert (
        main(["messages", "--error", "103", "--limit", "2", *_db_args(registry)]) == 0
    )
    out = capsys.readouterr().out
    assert "BAD2" in out and "BAD1" in out and "BAD0" not in out
    assert out.rstrip().endswith("2 message(s)")


def test_messages_test_lists_only_test_mode_messages(
    registry: InProcessRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    """--test lists the MSH-11 T message, marked, and not the stored one."""
    registry.send(vxu(control_id="PROD1", doses=[Dose()]))
    registry.send(vxu(control_id="TRAIN1", processing_id="T", doses=[Dose()]))
    capsys.readouterr()
    assert main(["messages", "--test", *_db_args(registry)]) == 0
    out = capsys.readouterr().out
    assert "TRAIN1" in out and "not stored (MSH-11 T)" in out
    assert "PROD1" not in out


def test_messages_error_code_must_be_digits(capsys: pytest.CaptureFixture[str]) -> None:
    """A code such as 10% (a LIKE wildcard) is a usage error naming ERR-3."""
    with pytest.raises(SystemExit) as exc:
        main(["messages", "--error", "10%"])
    assert exc.value.code == 2
    assert "ERR-3" in capsys.readouterr().err


# -- journal prune -------------------------------------------------------------------


def _fill(registry: InProcessRegistry) -> dict[str, str]:
    """One of each kind of traffic; control id -> what it left behind."""
    registry.send(vxu(control_id="STORED", doses=[Dose()]))  # patient, dose
    registry.send(vxu(control_id="REFUSED", sender="NOBODY", doses=[Dose()]))  # AR
    registry.send(vxu(control_id="TRAIN", processing_id="T", doses=[Dose()]))
    registry.send(qbp(control_id="QUERY", name="Nobody^Here", dob="20200101"))
    registry.send(vxu(control_id="REVEALED", sender="NOBODY", doses=[Dose()]))
    return {
        "STORED": "kept",
        "REFUSED": "pruned",
        "TRAIN": "pruned",
        "QUERY": "kept",  # its audit row points at it
        "REVEALED": "kept",  # revealed: the reveal's audit row points at it
    }


def _registry_tables(
    registry: InProcessRegistry,
) -> dict[str, list[tuple[object, ...]]]:
    return {
        table.name: sorted(registry.query(f"SELECT * FROM {table.name}"), key=repr)
        for table in metadata.sorted_tables
        if table.name != "message_journal"
    }


def test_journal_prune_archives_then_deletes_only_what_nothing_points_at(
    registry: InProcessRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows a dose, a patient or an audit row points at stay; the others are archived, then deleted."""
    expected = _fill(registry)
    revealed = _journal_id(registry, "REVEALED")
    assert (
        main(
            [
                "messages",
                "show",
                str(revealed),
                "--reveal",
                "--reason",
                "why was it refused",
                *_db_args(registry),
            ]
        )
        == 0
    )
    before = _registry_tables(registry)
    stored = {
        row[0]: row
        for row in registry.query(
            "SELECT control_id, id, raw, response FROM message_journal"
        )
    }
    archive = tmp_path / "old.jsonl.gz"
    capsys.readouterr()
    args = ["journal", "prune", "--older-than", TOMORROW, "--archive", str(archive)]
    assert main([*args, *_db_args(registry)]) == 0
    assert "deleted 2" in capsys.readouterr().out
    left = {row[0] for row in registry.query("SELECT control_id FROM message_journal")}
    assert left == {c for c, fate in expected.items() if fate == "kept"}
    assert _registry_tables(registry) == before
    header, rows = read_archive(archive)
    assert header["format"] == "cairn-journal-archive"
    assert header["version"] == 1
    assert sorted(r["control_id"] for r in rows) == ["REFUSED", "TRAIN"]
    for row in rows:
        _control, journal_id, raw, response = stored[row["control_id"]]
        assert row["id"] == journal_id
        assert row["raw"] == base64.b64encode(bytes(raw)).decode()
        assert row["response"] == base64.b64encode(bytes(response)).decode()
    assert archive.stat().st_mode & 0o077 == 0


def test_journal_prune_keeps_recent_rows_and_dry_run_changes_nothing(
    registry: InProcessRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cut-off before the traffic deletes nothing; --dry-run counts and writes no file."""
    _fill(registry)
    count = len(registry.query("SELECT id FROM message_journal"))
    capsys.readouterr()
    archive = tmp_path / "a.jsonl.gz"
    dry = ["journal", "prune", "--older-than", TOMORROW, "--dry-run"]
    assert main([*dry, "--archive", str(archive), *_db_args(registry)]) == 0
    assert "3 would be archived and deleted, 2 kept" in capsys.readouterr().out
    assert not archive.exists()
    recent = ["journal", "prune", "--older-than", "30d", "--archive", str(archive)]
    assert main([*recent, *_db_args(registry)]) == 0
    assert len(registry.query("SELECT id FROM message_journal")) == count
    _header, rows = read_archive(archive)
    assert rows == []


def test_journal_prune_refuses_an_existing_archive(
    registry: InProcessRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An archive path that exists is never overwritten, and nothing is deleted."""
    _fill(registry)
    archive = tmp_path / "exists.jsonl.gz"
    archive.write_bytes(gzip.compress(b"earlier archive\n"))
    count = len(registry.query("SELECT id FROM message_journal"))
    args = ["journal", "prune", "--older-than", TOMORROW, "--archive", str(archive)]
    assert main([*args, *_db_args(registry)]) == 1
    assert "exists" in capsys.readouterr().err
    assert gzip.decompress(archive.read_bytes()) == b"earlier archive\n"
    assert len(registry.query("SELECT id FROM message_journal")) == count


def test_journal_prune_older_than_must_be_an_age_or_a_date(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--older-than soon is a usage error that shows the accepted forms."""
    with pytest.raises(SystemExit) as exc:
        main(["journal", "prune", "--older-than", "soon"])
    assert exc.value.code == 2
    assert "90d" in capsys.readouterr().err


def test_journal_pointers_name_every_column_that_points_at_the_journal() -> None:
    """A new table with a journal_id (or a foreign key to the journal) must be listed, or prune would orphan it."""
    pointing = {
        f"{table.name}.{column.name}"
        for table in metadata.sorted_tables
        for column in table.columns
        if table.name != "message_journal"
        and (
            column.name.endswith("journal_id")
            or any(
                fk.column.table.name == "message_journal" for fk in column.foreign_keys
            )
        )
    }
    listed = {f"{column.table.name}.{column.name}" for column in JOURNAL_POINTERS}
    assert pointing == listed


def test_journal_archive_lines_are_plain_json(
    registry: InProcessRegistry, tmp_path: Path
) -> None:
    """zcat | jq can read the archive: every line is one JSON object."""
    _fill(registry)
    archive = tmp_path / "plain.jsonl.gz"
    args = ["journal", "prune", "--older-than", TOMORROW, "--archive", str(archive)]
    assert main([*args, *_db_args(registry)]) == 0
    lines = gzip.decompress(archive.read_bytes()).decode("ascii").splitlines()
    assert len(lines) == 4  # the header, REFUSED, TRAIN, REVEALED (not revealed here)
    assert all(isinstance(json.loads(line), dict) for line in lines)
