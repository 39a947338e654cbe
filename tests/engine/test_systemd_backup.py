"""systemd/cairn-backup.service: the nightly online backup runs a real cairn command."""

from __future__ import annotations

import shlex
from pathlib import Path

from engine.cli import build_parser

UNITS = Path(__file__).resolve().parents[2] / "systemd"


def _values(unit: str, key: str) -> list[str]:
    prefix = f"{key}="
    return [
        line[len(prefix) :].strip()
        for line in (UNITS / unit).read_text().splitlines()
        if line.startswith(prefix)
    ]


def test_backup_unit_runs_cairn_db_backup_with_the_servers_data_dir() -> None:
    """ExecStart is `cairn db backup` on the data directory cairn.service serves, into a writable folder."""
    (exec_start,) = _values("cairn-backup.service", "ExecStart")
    shell, flag, script = shlex.split(exec_start)
    assert (shell, flag) == ("/bin/sh", "-c")
    stamp = "$(date -u +%Y%m%dT%H%M%SZ)"
    assert stamp in script.replace("%%", "%")
    words = shlex.split(script.replace("%%", "%").replace(stamp, "20261202T030000Z"))
    assert words[:2] == ["exec", "/opt/cairn/bin/cairn"]
    args = build_parser().parse_args(words[2:])
    assert (args.command, args.db_command) == ("db", "backup")
    (serve,) = _values("cairn.service", "ExecStart")
    assert args.data_dir == serve.split("--data-dir", 1)[1].split()[0]
    target = str(args.path)
    writable = _values("cairn-backup.service", "ReadWritePaths")[0].split()
    assert any(target.startswith(folder + "/") for folder in writable)
    assert args.data_dir in writable  # SQLite opens the live file read-write (-shm)


def test_backup_timer_is_persistent_and_nightly() -> None:
    """The timer catches up after downtime (Persistent) and runs once a day."""
    assert _values("cairn-backup.timer", "Persistent") == ["true"]
    assert _values("cairn-backup.timer", "OnCalendar")[0].startswith("*-*-* ")
