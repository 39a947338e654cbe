"""The cairn command line, in process."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main


def test_cli_db_upgrade_then_messages_lists_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """db upgrade creates the schema; messages then lists an empty journal."""
    assert main(["db", "upgrade", "--data-dir", str(tmp_path)]) == 0
    assert main(["messages", "--data-dir", str(tmp_path)]) == 0
    assert "0 message(s)" in capsys.readouterr().out


def test_cli_messages_without_schema_says_what_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reading a database that has no schema is a one-line error naming the fix."""
    assert main(["messages", "show", "1", "--data-dir", str(tmp_path)]) == 1
    assert "run `cairn db upgrade`" in capsys.readouterr().err


def test_cli_config_error_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A configuration error prints one line naming file and key, and exits 2."""
    bad = tmp_path / "cairn.toml"
    bad.write_text("[server]\nlisten = 'x'\n")
    assert main(["--config", str(bad), "messages", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "server.listen" in err
    assert str(bad) in err


def test_cli_cdsi_check_reports_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """cdsi check ends with 'N passed, M failed'."""
    from tests.conftest import SHARED, shared_path

    data = shared_path(
        "CAIRN_CDSI_DIR", SHARED / "cdsi" / "supporting-data", "CDSi supporting data"
    )
    cases = (
        shared_path("CAIRN_CDSI_CASES", SHARED / "cdsi", "CDSi test cases")
        / "testcases-dev.jsonl"
    )
    subset = tmp_path / "cases.jsonl"
    subset.write_text("".join(cases.read_text().splitlines(keepends=True)[:20]))
    main(["cdsi", "check", str(subset), "--supporting-data", str(data)])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.endswith("failed")
    assert last.split()[1] == "passed,"
