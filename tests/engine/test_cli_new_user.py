"""What a new user typed, and the one line each got back (in process)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from engine.cli import build_parser, main
from tests.conftest import REPO


def test_misspelled_logging_level_is_refused_naming_the_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`level = "loud"` was accepted and silently logged at info."""
    config = tmp_path / "cairn.toml"
    config.write_text('[logging]\nlevel = "loud"\n')
    assert main(["--config", str(config), "messages", "--data-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"cairn: configuration error: {config}: logging.level: expected one of "
        "'debug', 'info', 'warning', 'error', 'critical', got 'loud'\n"
    )


def _readme_block(after: str) -> list[list[str]]:
    """The cairn command lines of the first code block after a README heading."""
    text = (REPO / "README.md").read_text()
    block = text.split(after, 1)[1].split("```", 2)[1]
    lines = block.replace("\\\n", " ").splitlines()
    return [
        shlex.split(line)[1:]
        for line in lines
        if line.strip().startswith(".venv/bin/cairn ")
    ]


def test_readme_inventory_commands_work_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's inventory walk-through failed for CLINIC1, which is neither an
    organization nor a [[facilities]] entry in the development defaults."""
    monkeypatch.chdir(tmp_path)
    assert main(["db", "upgrade"]) == 0
    commands = _readme_block("## Inventory")
    assert len(commands) == 5
    for argv in commands:
        assert main(argv) == 0, (argv, capsys.readouterr().err)
    out = capsys.readouterr().out
    assert "transferred 2 of lot MMR-A1 to CLINIC2: on hand 7 at CLINIC1" in out
    assert (tmp_path / "out" / "inventory.html").exists()


def test_mistyped_option_is_named_not_the_value_after_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`cairn messages --sendr X` said "argument ACTION: invalid choice: 'X'"."""
    with pytest.raises(SystemExit) as exit_:
        main(["messages", "--sendr", "X"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "cairn messages: error: unrecognized option --sendr; did you mean --sender?"
    )


def test_a_mistyped_action_still_says_which_actions_exist(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["messages", "shw", "3"])
    assert capsys.readouterr().err.splitlines()[-1] == (
        "cairn messages: error: argument ACTION: invalid choice: 'shw' "
        "(choose from 'show')"
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not a certificate at all\n", "not a certificate (PEM or DER)"),
        (
            b"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n",
            "not a certificate: the file holds a PEM CERTIFICATE REQUEST",
        ),
    ],
)
def test_granting_a_file_that_is_no_certificate_says_so_plainly(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: bytes,
    reason: str,
) -> None:
    """Granting README.md printed a Rust parser's debug dump (ParseError { kind:
    UnexpectedTag ... }); granting the clinic's CSR is the likely slip."""
    monkeypatch.chdir(tmp_path)
    assert main(["db", "upgrade"]) == 0
    assert main(["org", "add", "CLINIC", "--type", "provider", "--region", "SAC"]) == 0
    bad = tmp_path / "clinic.pem"
    bad.write_bytes(content)
    capsys.readouterr()
    assert main(["org", "grant", "CLINIC", "--client-certificate", str(bad)]) == 1
    assert capsys.readouterr().err == f"cairn: client-certificate: {bad}: {reason}\n"


def test_a_missing_config_file_says_where_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's walk-through runs `--config cairn.toml` before any exists."""
    monkeypatch.chdir(tmp_path)
    assert main(["--config", "cairn.toml", "org", "list"]) == 2
    assert capsys.readouterr().err == (
        "cairn: configuration error: cairn.toml: file not found (start from "
        "config/examples/cairn.production.toml, or leave --config out for the "
        "development defaults)\n"
    )


def test_backup_into_a_folder_that_does_not_exist_says_to_create_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's `cairn db backup /backups/cairn-….sqlite3` on a machine without
    /backups said '/backups is not a directory'."""
    monkeypatch.chdir(tmp_path)
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    assert main(["db", "backup", "backups/cairn.sqlite3"]) == 1
    assert (
        capsys.readouterr().err
        == "cairn: backups is not a directory: create it first\n"
    )
    (tmp_path / "backups").mkdir()
    assert main(["db", "backup", "backups/cairn.sqlite3"]) == 0


def test_readme_recall_requirements_and_coverage_examples_parse() -> None:
    """`cairn requirements check ... --role school` in the README was refused:
    the roles are provider, requirements, benefits and staff."""
    text = (REPO / "README.md").read_text()
    block = text.split("cairn recall --facility CLINIC1 --as-of", 1)[1]
    block = "cairn recall --facility CLINIC1 --as-of" + block.split("```", 1)[0]
    lines = [
        shlex.split(line, comments=True)[1:]
        for line in block.replace("\\\n", " ").splitlines()
        if line.startswith("cairn ")
    ]
    assert [argv[:2] for argv in lines] == [
        ["recall", "--facility"],
        ["recall", "mark"],
        ["requirements", "check"],
        ["coverage", "--region"],
    ]
    parser = build_parser()
    for argv in lines:
        parser.parse_args([a for a in argv if a != ">" and not a.endswith(".csv")])
