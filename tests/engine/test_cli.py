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


def _cdsi_data() -> str:
    from tests.conftest import SHARED, shared_path

    return str(
        shared_path(
            "CAIRN_CDSI_DIR",
            SHARED / "cdsi" / "supporting-data",
            "CDSi supporting data",
        )
    )


def _forecast(*extra: str) -> list[str]:
    return [
        "forecast",
        "--dob",
        "2024-01-15",
        "--sex",
        "F",
        "--as-of",
        "2024-06-01",
        "--supporting-data",
        _cdsi_data(),
        *extra,
    ]


def test_cli_forecast_unknown_cvx_is_one_error_line_naming_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An unknown CVX in --dose is refused (exit 2) in one line that names it; no table."""
    assert main(_forecast("--dose", "2024-03-20:110", "--dose", "2024-04-20:987")) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "unknown CVX '987'" in captured.err
    assert "2024-04-20:987" in captured.err


@pytest.mark.parametrize(
    ("dose", "names"),
    [
        ("2024-03-20", "expected DATE:CVX[:MVX]"),
        ("2024-3-20:110", "the date '2024-3-20'"),
        ("2024-02-30:110", "the date '2024-02-30'"),
        ("2024-03-20:DTaP", "CVX 'DTaP' is not a CVX code"),
        ("2024-03-20:110:M\x1bSD", "is not an MVX code"),
        ("2023-12-31:110", "before the birth date 2024-01-15"),
        ("2024-07-01:110", "after the assessment date 2024-06-01"),
    ],
)
def test_cli_forecast_malformed_dose_names_what_is_wrong(
    capsys: pytest.CaptureFixture[str], dose: str, names: str
) -> None:
    """A malformed --dose exits 2 with one line naming the dose and the part that is wrong."""
    assert main(_forecast("--dose", dose)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert names in err
    assert "\x1b" not in err


@pytest.mark.parametrize("dob", ["2024-13-15", "15/01/2024", "", "2024-01-15T00:00"])
def test_cli_forecast_malformed_dob_names_the_flag(
    capsys: pytest.CaptureFixture[str], dob: str
) -> None:
    """A malformed --dob exits 2 with one line naming --dob and the value, not argparse's usage."""
    argv = _forecast()
    argv[argv.index("--dob") + 1] = dob
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"--dob {dob!r}" in err


def test_cli_forecast_readme_example_says_why_rsv_has_no_dates(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The README's example shows RSV Aged Out with its reason, not a latest date before its earliest."""
    assert main(_forecast("--dose", "2024-03-20:110")) == 0
    rsv = next(
        line
        for line in capsys.readouterr().out.splitlines()
        if line.strip().startswith("RSV")
    )
    assert "Aged Out" in rsv
    assert "unable to finish the series prior to the maximum age" in rsv
    assert "2024-09-14" not in rsv
