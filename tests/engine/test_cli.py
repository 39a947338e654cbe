"""The cairn command line, in process."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.cli import build_parser, main
from engine.commands.send import send_order
from parsers.client import expectation
from parsers.mllp import Frame, FrameDecoder, encode_frame
from tests.conftest import REPO


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


class _StubEngine:
    """A tiny MLLP peer: answers each message after the delay ``answer`` gives, or never."""

    def __init__(self, answer: Callable[[bytes], float | None]) -> None:
        self._answer = answer
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(1)
        self.address = f"127.0.0.1:{self._socket.getsockname()[1]}"
        self.received: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self._socket.accept()
        decoder = FrameDecoder()
        with conn:
            while data := conn.recv(65536):
                for event in decoder.feed(data):
                    assert isinstance(event, Frame)
                    frame = event.payload
                    self.received.append(frame)
                    delay = self._answer(frame)
                    if delay is None:
                        continue
                    time.sleep(delay)
                    control_id = expectation(frame).control_id
                    conn.sendall(
                        encode_frame(f"MSH|^~\\&|S\rMSA|AA|{control_id}\r".encode())
                    )

    def close(self) -> None:
        self._socket.close()
        self._thread.join(5)


def _message(
    tmp_path: Path, name: str, msh9: str, control_id: str, msh16: str = ""
) -> Path:
    path = tmp_path / name
    path.write_bytes(
        f"MSH|^~\\&|APP|FAC|CAIRN|CAIRN|20240101||{msh9}|{control_id}|P|2.5.1|||ER|{msh16}\rPID|1\r".encode()
    )
    return path


def test_send_order_puts_vxu_files_first_and_query_files_last(tmp_path: Path) -> None:
    """Files go VXU first, then others, then QBP, each group in the order given."""
    files = [
        (
            tmp_path / "a-qbp",
            [_message(tmp_path, "1", "QBP^Q11^QBP_Q11", "Q1").read_bytes()],
        ),
        (
            tmp_path / "b-ack",
            [_message(tmp_path, "2", "ACK^V04^ACK", "K1").read_bytes()],
        ),
        (
            tmp_path / "c-vxu",
            [_message(tmp_path, "3", "VXU^V04^VXU_V04", "V1").read_bytes()],
        ),
        (
            tmp_path / "d-qbp",
            [_message(tmp_path, "4", "QBP^Q11^QBP_Q11", "Q2").read_bytes()],
        ),
        (
            tmp_path / "e-vxu",
            [_message(tmp_path, "5", "VXU^V04^VXU_V04", "V2").read_bytes()],
        ),
    ]
    order = [path.name for path, _ in send_order(files)]
    assert order == ["c-vxu", "e-vxu", "b-ack", "a-qbp", "d-qbp"]


def test_send_sends_vxu_files_before_queries_whatever_their_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder whose queries sort before its updates still sends the updates first."""
    folder = tmp_path / "in"
    folder.mkdir()
    _message(folder, "a-query.hl7", "QBP^Q11^QBP_Q11", "Q1")
    _message(folder, "b-update.hl7", "VXU^V04^VXU_V04", "V1")
    engine = _StubEngine(lambda _frame: 0.0)
    try:
        assert main(["send", engine.address, str(folder)]) == 0
    finally:
        engine.close()
    assert [expectation(m).control_id for m in engine.received] == ["V1", "Q1"]
    assert "AA 2" in capsys.readouterr().out


def test_send_waits_only_the_grace_for_an_answer_msh16_makes_optional(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """MSH-16 ER and SU: silence after the grace is counted apart and exits 0."""
    er = _message(tmp_path, "er.hl7", "VXU^V04^VXU_V04", "E1", msh16="ER")
    su = _message(tmp_path, "su.hl7", "VXU^V04^VXU_V04", "S1", msh16="SU")
    engine = _StubEngine(lambda _frame: None)
    started = time.monotonic()
    try:
        code = main(["send", engine.address, str(er), str(su), "--grace", "0.2"])
    finally:
        engine.close()
    assert code == 0
    assert time.monotonic() - started < 5
    assert "no answer (as MSH-16 allows) 2" in capsys.readouterr().out


def test_send_does_not_wait_for_msh16_ne(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """MSH-16 NE is sent without waiting at all, even with a long grace and timeout."""
    ne = _message(tmp_path, "ne.hl7", "VXU^V04^VXU_V04", "N1", msh16="NE")
    engine = _StubEngine(lambda _frame: None)
    started = time.monotonic()
    try:
        code = main(["send", engine.address, str(ne), "--grace", "20"])
    finally:
        engine.close()
    assert code == 0
    assert time.monotonic() - started < 5
    assert "not answered (ACK/RSP or MSH-16 NE) 1" in capsys.readouterr().out


def test_send_counts_a_late_optional_answer_with_its_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An ER answer that comes after the grace is matched by MSA-2, not taken for the next message's."""
    first = _message(tmp_path, "1.hl7", "VXU^V04^VXU_V04", "LATE", msh16="ER")
    second = _message(tmp_path, "2.hl7", "VXU^V04^VXU_V04", "NEXT")
    engine = _StubEngine(lambda frame: 0.5 if b"LATE" in frame else 0.0)
    try:
        code = main(["send", engine.address, str(first), str(second), "--grace", "0.1"])
    finally:
        engine.close()
    out = capsys.readouterr().out
    assert code == 0
    assert "AA 2" in out
    assert "no answer (as MSH-16 allows) 0" in out


def test_send_without_the_answer_al_promises_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A message that must be answered and is not is a failure (after --timeout)."""
    al = _message(tmp_path, "al.hl7", "VXU^V04^VXU_V04", "A1", msh16="AL")
    engine = _StubEngine(lambda _frame: None)
    try:
        code = main(["send", engine.address, str(al), "--timeout", "0.3"])
    finally:
        engine.close()
    assert code == 1
    assert "no answer 1" in capsys.readouterr().out


UNREACHABLE = "postgresql://postgres@127.0.0.1:1/test"  # port 1: nothing listens


def _cairn(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the cairn command line in a child process, as a user would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_messages_unreachable_database_says_so_without_upgrade_hint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An unreachable database is reported as such in one line; db upgrade would not help."""
    assert main(["messages", "--database", UNREACHABLE]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "cannot connect to the database" in err
    assert "db upgrade" not in err


def test_cli_messages_show_unreachable_database_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """messages show on an unreachable database gives the same one-line reason."""
    assert main(["messages", "show", "1", "--database", UNREACHABLE]) == 1
    err = capsys.readouterr().err
    assert "cannot connect to the database" in err
    assert "db upgrade" not in err


def test_cli_serve_unreachable_postgresql_is_one_line() -> None:
    """serve against a PostgreSQL that does not answer prints one line and exits 1."""
    done = _cairn("serve", "--listen", "127.0.0.1:0", "--database", UNREACHABLE)
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert "cannot connect to the database postgresql" in done.stderr


def test_cli_db_upgrade_unreachable_postgresql_is_one_line() -> None:
    """db upgrade against a PostgreSQL that does not answer prints one line and exits 1."""
    done = _cairn("db", "upgrade", "--database", UNREACHABLE)
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.strip().count("\n") == 0


def test_cli_serve_busy_port_is_one_line(tmp_path: Path) -> None:
    """serve on a port another program holds prints one line naming it and exits 1."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        address = f"127.0.0.1:{holder.getsockname()[1]}"
        done = _cairn("serve", "--listen", address, "--data-dir", str(tmp_path))
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert f"cannot listen on {address}: Address already in use" in done.stderr


def test_cli_serve_busy_http_port_is_one_line(tmp_path: Path) -> None:
    """serve whose HTTP port another program holds prints one line naming it, and exits 1."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        address = f"127.0.0.1:{holder.getsockname()[1]}"
        done = _cairn(
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            address,
            "--data-dir",
            str(tmp_path),
        )
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert f"cannot listen on {address}: Address already in use" in done.stderr
    assert "--http-listen or http.listen" in done.stderr


def _parsers(
    parser: argparse.ArgumentParser, path: str = "cairn"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the command tree with its command path."""
    yield path, parser
    for action in parser._actions:  # argparse has no public walk of the tree
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def _subcommand_helps(parser: argparse.ArgumentParser) -> dict[str, str | None]:
    helps: dict[str, str | None] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            listed = {a.dest: a.help for a in action._choices_actions}
            helps.update({name: listed.get(name) for name in action.choices})
    return helps


def test_cli_every_argument_and_command_has_help() -> None:
    """Walking the whole argparse tree finds no argument, option or command without help."""
    missing = []
    for path, parser in _parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                name = "/".join(action.option_strings) or action.dest
                missing.append(f"{path} {name}")
        missing += [
            f"{path} {name}"
            for name, text in _subcommand_helps(parser).items()
            if not text
        ]
    assert missing == []


UNIT = REPO / "systemd" / "cairn.service"


def _unit_values(key: str) -> list[str]:
    prefix = f"{key}="
    return [
        line[len(prefix) :].strip()
        for line in UNIT.read_text().splitlines()
        if line.startswith(prefix)
    ]


def test_systemd_unit_documentation_is_the_installed_readme() -> None:
    """Documentation= names the README of the checkout the install comment installs, not a made-up URL."""
    (documentation,) = _unit_values("Documentation")
    assert documentation.startswith("file:/")
    readme = Path(documentation.removeprefix("file:"))
    assert readme.name == "README.md"
    assert (REPO / readme.name).is_file()
    assert f"pip install {readme.parent}\n" in UNIT.read_text()


def test_systemd_unit_installs_from_a_checkout_not_a_package_name() -> None:
    """Every pip install in the unit's comments installs a path, since no package is published."""
    installs = [
        line.split("pip install", 1)[1].split()
        for line in UNIT.read_text().splitlines()
        if line.startswith("#") and "pip install" in line
    ]
    assert installs
    assert all(len(words) == 1 and words[0].startswith("/") for words in installs)
    assert "https://" not in UNIT.read_text()


def test_systemd_unit_exec_start_is_a_valid_cairn_command_line() -> None:
    """The unit's ExecStart parses with the CLI's own parser and runs serve."""
    (exec_start,) = _unit_values("ExecStart")
    argv = exec_start.split()[1:]
    args = build_parser().parse_args(argv)
    assert args.command == "serve"


def test_systemd_unit_waits_for_healthz_on_the_example_http_address() -> None:
    """ExecStartPost polls /healthz at the production example's http.listen, so the two stay in step."""
    from config import load_settings

    example = load_settings(
        REPO / "config" / "examples" / "cairn.production.toml", environ={}
    )
    (post,) = _unit_values("ExecStartPost")
    assert post.split()[-1] == f"http://{example.http.listen}/healthz"
    assert "--fail" in post.split()


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


def test_cli_messages_show_says_a_row_holds_only_the_head(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stranger's refused message journaled by its head is shown as such, with its size."""
    from datetime import UTC, datetime

    from storage import NewJournalEntry, open_database

    assert main(["db", "upgrade", "--data-dir", str(tmp_path)]) == 0
    db = open_database(f"sqlite:///{tmp_path / 'cairn.sqlite3'}")
    with db.transaction() as uow:
        uow.journal.insert(
            NewJournalEntry(
                sender="STRANGER",
                control_id="C1",
                message_type="VXU^V04",
                received_at=datetime(2026, 1, 1, tzinfo=UTC),
                raw=b"MSH|^~\\&|EHR|STRANGER",
                content_digest="ab" * 32,
                raw_size=1_048_576,
            )
        )
    db.close()
    capsys.readouterr()
    assert main(["messages", "show", "1", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (
        f"the first 21 of 1,048,576 bytes received, and its digest {'ab' * 32}" in out
    )
