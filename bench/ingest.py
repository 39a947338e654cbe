"""Ingest throughput and ACK latency against a real `cairn serve`.

Runs the server in a subprocess on an ephemeral port, then N concurrent MLLP
senders (one connection each, waiting for every ACK as EHRs do) send
generated VXUs. Prints sustained VXU/s from the first message to the last ACK,
and ACK latency p50/p99 at a fixed offered load.

Every throughput figure is also given as a ratio to the floor
(:mod:`bench.floor`: MLLP, split, one journal insert, a de-duplication
look-up, group commit, ACK), run on the same backend with the same traffic
in the same run: absolute figures on a shared 2-core machine vary between
runs by more than most changes do.

Run: .venv/bin/python -m bench.ingest [--senders 1 8 32] [--messages 4000]
     [--rate 500] [--database postgresql+psycopg://postgres@127.0.0.1/bench]

Quick comparison (about 2 minutes): Cairn against the floor, on SQLite and
PostgreSQL, 8 senders, alternated ``--repeat`` times; ``--before DIR`` adds
another checkout (with its own .venv) to every round, e.g. the code before
a change:

     .venv/bin/python -m bench.ingest --quick [--repeat 2 (default)] [--before /work/wt-tp-before]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench._common import ROOT, header, percentile
from bench.synth import Synth
from engine.client import MllpSender
from parsers.client import ack_code

_LISTENING = re.compile(r"listening for MLLP on ([^:\s]+):(\d+)")


@dataclass
class Server:
    """A running engine."""

    proc: subprocess.Popen[str]
    host: str
    port: int

    def stop(self) -> None:
        """SIGTERM and wait."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_server(
    data_dir: Path,
    database: str | None = None,
    extra_env: dict[str, str] | None = None,
    *,
    floor: bool = False,
    checkout: Path = ROOT,
) -> Server:
    """Start `cairn serve` (development config: unknown senders accepted) and wait for it.

    ``floor`` starts :mod:`bench.floor` instead; ``checkout`` runs another
    checkout's code with its own virtual environment (before and after a
    change, in one run).
    """
    env = dict(os.environ, CAIRN_LOGGING__LEVEL="warning", **(extra_env or {}))
    python = sys.executable if checkout == ROOT else str(checkout / ".venv/bin/python")
    module = ["bench.floor"] if floor else ["engine.cli"]
    cmd = [
        python,
        "-m",
        *module,
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        str(data_dir),
    ]
    if database:
        cmd += ["--database", database]
    proc = subprocess.Popen(
        cmd,
        cwd=checkout,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = _LISTENING.search(line)
        if match:
            threading.Thread(
                target=lambda: [None for _ in proc.stdout], daemon=True
            ).start()  # type: ignore[union-attr]
            return Server(proc, match.group(1), int(match.group(2)))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("cairn serve did not start")


def upgrade(database: str, checkout: Path = ROOT) -> None:
    """Migrate a PostgreSQL database before serving it."""
    python = sys.executable if checkout == ROOT else str(checkout / ".venv/bin/python")
    subprocess.run(
        [python, "-m", "engine.cli", "db", "upgrade", "--database", database],
        cwd=checkout,
        check=True,
        capture_output=True,
    )


def fresh_postgresql(database: str) -> None:
    """Drop and re-create the PostgreSQL database named in ``database`` (a benchmark's own)."""
    import psycopg

    name = database.rsplit("/", 1)[1]
    admin = database.rsplit("/", 1)[0].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(f"{admin}/test", autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its descendants, from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += cpu_seconds(int(child))
    except (OSError, IndexError, ValueError):
        pass
    return total


@dataclass
class Measured:
    """One ingest run."""

    rate: float
    latencies: list[float]
    codes: dict[str, int]
    #: the server's CPU (its processes together, not the load generator) per VXU
    cpu_ms: float


def measure(
    corpus: list[bytes],
    senders: int,
    database: str | None,
    *,
    floor: bool = False,
    checkout: Path = ROOT,
) -> Measured:
    """One ingest run on a fresh database: rate, ACK latencies (ms), ACK codes, CPU per VXU.

    The CPU per VXU is the server's own (every process of it), measured
    over the run: on a shared machine it moves less than the rate does.
    """
    with tempfile.TemporaryDirectory() as tmp:
        if database:
            fresh_postgresql(database)
            if not floor:
                upgrade(database, checkout)
        server = start_server(Path(tmp), database, floor=floor, checkout=checkout)
        try:
            cpu = cpu_seconds(server.proc.pid)
            elapsed, lat, codes = drive(server, split(corpus, senders))
            cpu = cpu_seconds(server.proc.pid) - cpu
        finally:
            server.stop()
    return Measured(len(lat) / elapsed, lat, codes, cpu / max(1, len(lat)) * 1000)


def _span(values: list[float], fmt: str = "{:.0f}") -> str:
    low, high = min(values), max(values)
    return fmt.format(low) if low == high else f"{fmt.format(low)}-{fmt.format(high)}"


def quick(args: argparse.Namespace) -> list[str]:
    """Cairn against the floor (and another checkout), SQLite and PostgreSQL, alternated."""
    lines = [header()]
    systems: list[tuple[str, bool, Path]] = [
        ("floor", True, ROOT),
        ("cairn", False, ROOT),
    ]
    if args.before:
        systems.append(("before", False, Path(args.before).resolve()))
    backends: list[tuple[str, str | None]] = [("SQLite (WAL, FULL)", None)]
    if args.database or not args.no_postgresql:
        backends.append(("PostgreSQL", args.database or _PG_QUICK))
    corpus = messages(args.messages)
    for name, url in backends:
        rates: dict[str, list[float]] = {label: [] for label, _f, _c in systems}
        p99: dict[str, list[float]] = {label: [] for label, _f, _c in systems}
        cpu: dict[str, list[float]] = {label: [] for label, _f, _c in systems}
        for _round in range(args.repeat):
            for label, floor, checkout in systems:
                run = measure(corpus, 8, url, floor=floor, checkout=checkout)
                rates[label].append(run.rate)
                p99[label].append(percentile(run.latencies, 99))
                cpu[label].append(run.cpu_ms)
                print(
                    f"  {name} {label}: {run.rate:.0f} VXU/s, ACK p99 {p99[label][-1]:.1f} ms, "
                    f"server CPU {run.cpu_ms:.2f} ms/VXU",
                    flush=True,
                )
        floor_rates = rates["floor"]
        parts = [
            f"floor {_span(floor_rates)} VXU/s (server CPU {_span(cpu['floor'], '{:.2f}')} ms/VXU)"
        ]
        for label, _f, _c in systems[1:]:
            ratios = [r / f for r, f in zip(rates[label], floor_rates, strict=True)]
            parts.append(
                f"{label} {_span(rates[label])} VXU/s = {_span(ratios, '{:.2f}')} x floor "
                f"(ACK p99 {_span(p99[label], '{:.0f}')} ms, server CPU {_span(cpu[label], '{:.2f}')} ms/VXU)"
            )
        lines.append(
            f"{name}, 8 senders, {len(corpus)} VXU, {args.repeat} round(s): "
            + "; ".join(parts)
        )
        print(lines[-1], flush=True)
    return lines


#: The quick comparison's PostgreSQL database (dropped and re-created each run).
_PG_QUICK = "postgresql+psycopg://postgres@127.0.0.1:5432/cairn_bench_quick"


def messages(count: int, seed: int = 7) -> list[bytes]:
    """Generated VXUs: new and repeat patients, 1-6 doses, a few resends and bad ones."""
    synth = Synth(seed)
    return [
        s.text.encode()
        for s in synth.traffic(count, duplicate_share=0.02, bad_share=0.02)
    ]


def drive(
    server: Server,
    batches: list[list[bytes]],
    rate_per_sender: float | None = None,
    arrivals: str = "lockstep",
) -> tuple[float, list[float], dict[str, int]]:
    """Send each batch on its own connection; return elapsed seconds, latencies (ms) and ACK counts.

    Without ``rate_per_sender`` each sender sends its next message as soon as
    the last is acknowledged. With it, ``arrivals`` says when messages are
    due: ``lockstep`` every sender at the same instants (1 / rate apart, so
    all of them at once), ``poisson`` each sender independently, with
    exponential gaps of mean 1 / rate (how independent EHR interfaces
    arrive). A Poisson sender's latency runs from the moment its message
    was due, so time spent waiting behind its own slow previous answer
    counts (no coordinated omission).
    """
    latencies: list[float] = []
    codes: dict[str, int] = {}
    lock = threading.Lock()

    def sender(batch: list[bytes], seed: int) -> None:
        local: list[float] = []
        local_codes: dict[str, int] = {}
        with contextlib.suppress(
            OSError
        ):  # the server stopped under a background sender
            send_batch(batch, local, local_codes, random.Random(seed))
        with lock:
            latencies.extend(local)
            for k, v in local_codes.items():
                codes[k] = codes.get(k, 0) + v

    def send_batch(
        batch: list[bytes],
        local: list[float],
        local_codes: dict[str, int],
        gaps: random.Random,
    ) -> None:
        poisson = arrivals == "poisson"
        with MllpSender(server.host, server.port, timeout=60) as client:
            next_at = time.perf_counter()
            if rate_per_sender and poisson:
                next_at += gaps.expovariate(rate_per_sender)
            for message in batch:
                due = time.perf_counter()
                if rate_per_sender:
                    delay = next_at - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    due = next_at
                    next_at += (
                        gaps.expovariate(rate_per_sender)
                        if poisson
                        else 1 / rate_per_sender
                    )
                t0 = due if poisson else time.perf_counter()
                reply = client.send(message)
                local.append((time.perf_counter() - t0) * 1000)
                code = ack_code(reply) or "none"
                local_codes[code] = local_codes.get(code, 0) + 1

    threads = [
        threading.Thread(target=sender, args=(b, i)) for i, b in enumerate(batches)
    ]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, latencies, codes


def offered(
    database: str | None,
    rate: float,
    seconds: float,
    arrivals: str = "poisson",
    senders: int = 8,
) -> tuple[float, list[float]]:
    """A fixed offered load on a fresh server: elapsed seconds and ACK latencies (ms).

    ``rate`` msgs/s in all, over ``senders`` connections, for ``seconds``;
    ``arrivals`` as :func:`drive` takes it.
    """
    with tempfile.TemporaryDirectory() as tmp:
        if database:
            fresh_postgresql(database)
            upgrade(database)
        server = start_server(Path(tmp), database)
        try:
            batch = messages(int(rate * seconds), seed=99)
            elapsed, lat, _codes = drive(
                server,
                split(batch, senders),
                rate_per_sender=rate / senders,
                arrivals=arrivals,
            )
        finally:
            server.stop()
    return elapsed, lat


def split(items: list[bytes], n: int) -> list[list[bytes]]:
    """Deal messages round-robin to n senders."""
    return [items[i::n] for i in range(n)]


def run(args: argparse.Namespace) -> list[str]:
    """Run every configured measurement; return the result lines."""
    lines = [header()]
    backend = "PostgreSQL" if args.database else "SQLite (WAL, synchronous=FULL)"
    corpus = messages(args.messages)
    for senders in args.senders:
        floor = measure(corpus, senders, args.database, floor=True)
        run = measure(corpus, senders, args.database)
        lat = run.latencies
        lines.append(
            f"ingest {backend}, {senders} sender(s): {len(lat)} VXU = {run.rate:.0f} VXU/s = "
            f"{run.rate / floor.rate:.2f} x the floor ({floor.rate:.0f} VXU/s, ACK p99 {percentile(floor.latencies, 99):.1f} ms, "
            f"server CPU {floor.cpu_ms:.2f} ms/VXU); ACK p50 {percentile(lat, 50):.1f} ms, p99 {percentile(lat, 99):.1f} ms; "
            f"server CPU {run.cpu_ms:.2f} ms/VXU; ACKs {dict(sorted(run.codes.items()))}"
        )
        print(lines[-1], flush=True)
    for arrivals in args.arrivals if args.rate else ():
        elapsed, lat = offered(args.database, args.rate, args.seconds, arrivals)
        how = {
            "lockstep": f"8 senders in lockstep: 8 messages at once every {8000 / args.rate:.0f} ms",
            "poisson": "8 senders, Poisson arrivals, latency from the due time",
        }[arrivals]
        lines.append(
            f"ACK latency {backend} at {args.rate} msgs/s offered ({how}, {args.seconds} s): "
            f"p50 {percentile(lat, 50):.1f} ms, p99 {percentile(lat, 99):.1f} ms, achieved {len(lat) / elapsed:.0f} msgs/s"
        )
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--senders", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument(
        "--rate",
        type=float,
        default=500.0,
        help="fixed offered load for the latency figure (0: skip)",
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--arrivals",
        nargs="+",
        choices=("poisson", "lockstep"),
        default=["poisson", "lockstep"],
        help="how the fixed offered load arrives (both by default)",
    )
    parser.add_argument(
        "--database",
        default=None,
        help="PostgreSQL URL (default: embedded SQLite); the database is dropped and re-created",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Cairn against the floor, 8 senders, SQLite and PostgreSQL (about 2 minutes)",
    )
    parser.add_argument(
        "--repeat", type=int, default=2, help="with --quick: rounds, alternated"
    )
    parser.add_argument(
        "--before",
        default=None,
        help="with --quick: another checkout (with its own .venv) to run in every round",
    )
    parser.add_argument(
        "--no-postgresql", action="store_true", help="with --quick: SQLite only"
    )
    args = parser.parse_args()
    if args.quick:
        if args.messages == 4000:
            args.messages = 1500
        quick(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
