"""Operator tools under load: ingest while `cairn db backup` runs, and `cairn journal prune`.

Starts `cairn serve` on SQLite, preloads generated VXUs, then sends the same
number of messages twice in the same run: once alone, once while backups
are taken back to back. Prints both rates and their ratio (the cost of an
online backup to ingest), each backup's time and size, and then the time
`cairn journal prune` takes over the whole journal (server stopped).

Run: .venv/bin/python -m bench.backup [--preload 20000] [--messages 4000] [--senders 8]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench._common import ROOT, header
from bench.ingest import drive, messages, split, start_server


def _cairn(*args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - started, done.stdout.strip()


def run(args: argparse.Namespace) -> list[str]:
    """The figures, as Markdown lines."""
    lines = [f"- {header()}"]
    traffic = messages(args.preload + 2 * args.messages, seed=11)
    preload = traffic[: args.preload]
    alone = traffic[args.preload : args.preload + args.messages]
    beside = traffic[args.preload + args.messages :]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "var"
        server = start_server(data)
        backups: list[tuple[float, int]] = []
        try:
            drive(server, split(preload, args.senders))
            elapsed_alone, _lat, _codes = drive(server, split(alone, args.senders))
            stop = threading.Event()

            def back_to_back() -> None:
                n = 0
                while not stop.is_set():
                    target = Path(tmp) / f"backup-{n}.sqlite3"
                    seconds, _out = _cairn(
                        "db", "backup", str(target), "--data-dir", str(data)
                    )
                    backups.append((seconds, target.stat().st_size))
                    target.unlink()
                    n += 1

            taker = threading.Thread(target=back_to_back)
            taker.start()
            elapsed_beside, _lat, _codes = drive(server, split(beside, args.senders))
            stop.set()
            taker.join()
        finally:
            server.stop()
        rate_alone = len(alone) / elapsed_alone
        rate_beside = len(beside) / elapsed_beside
        lines.append(
            f"- ingest alone: {rate_alone:,.0f} VXU/s; beside back-to-back backups: "
            f"{rate_beside:,.0f} VXU/s; ratio {rate_beside / rate_alone:.2f} "
            f"({args.senders} senders, {args.messages} messages each way, "
            f"after {args.preload} preloaded)"
        )
        if backups:
            mean = sum(s for s, _ in backups) / len(backups)
            size = backups[-1][1]
            lines.append(
                f"- `cairn db backup`: {len(backups)} taken during that ingest, "
                f"{mean:.2f} s each on average (process start included), "
                f"{size / 1e6:.1f} MB"
            )
        cutoff = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
        seconds, out = _cairn(
            "journal", "prune", "--older-than", cutoff, "--data-dir", str(data),
            "--archive", str(Path(tmp) / "journal.jsonl.gz"),
        )  # fmt: skip
        lines.append(
            f"- `cairn journal prune` over the whole journal: {seconds:.2f} s: {out}"
        )
    return lines


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preload", type=int, default=20000, help="VXUs sent first")
    parser.add_argument(
        "--messages", type=int, default=4000, help="VXUs per measured phase"
    )
    parser.add_argument("--senders", type=int, default=8, help="MLLP connections")
    for line in run(parser.parse_args()):
        print(line)


if __name__ == "__main__":
    main()
