"""`make bench`: run every benchmark and write bench/RESULTS.md.

Run: .venv/bin/python -m bench.run_all [--quick] [--only SECTION ...]

``--only`` reruns some sections and keeps the others already in the file;
sections: forecast, ingest, ingest-pg, auth, soap, spy, query, batch, memory, matching,
lock-timing, inventory, recall, fuzz, dashboard (the Grafana panels over a load run, drawn to
contrib/grafana/cairn-dashboard.png), limits; and, only when named, targets (every issue-18
target in one run, :mod:`bench.targets`, about 25 minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import (
    auth,
    batch,
    dashboard,
    forecast,
    ingest,
    inventory,
    limits,
    lock_timing,
    matching,
    query,
    recall,
    soap,
    spy,
)
from bench._common import ROOT, header
from bench.synth import Synth

RESULTS = ROOT / "bench" / "RESULTS.md"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PG_BENCH = "postgresql+psycopg://postgres@127.0.0.1:5432/cairn_bench"


def _fresh_pg() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            conn.execute("DROP DATABASE IF EXISTS cairn_bench WITH (FORCE)")
            conn.execute("CREATE DATABASE cairn_bench")
        return True
    except Exception:
        return False


def _rss_kb(pid: int) -> int:
    """Resident memory of a process and its descendants (the reader processes), kB."""
    total = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += _rss_kb(int(child))
    return total


@dataclass
class Memory:
    """A long ingest's figures: messages, seconds, and the server's RSS (kB, all its processes)."""

    sent: int
    elapsed: float
    before_kb: int
    after_kb: int
    peak_kb: int
    #: per chunk of ``chunk`` messages: its rate and the RSS after it
    chunks: list[str]
    chunk: int = 10000

    @property
    def growth_mb(self) -> float:
        """RSS after the run less RSS after the warm-up, in MB."""
        return (self.after_kb - self.before_kb) / 1024

    def lines(self) -> list[str]:
        """The result lines."""
        line = (
            f"memory: {self.sent} VXU over {self.elapsed:.0f} s after a 2000-message warm-up "
            f"({self.sent / self.elapsed:.0f} VXU/s, 8 senders); server RSS (all its processes) {self.before_kb / 1024:.1f} MB -> "
            f"{self.after_kb / 1024:.1f} MB (growth {self.growth_mb:.1f} MB, peak {self.peak_kb / 1024:.1f} MB)"
        )
        return [line, f"per {self.chunk:,}: " + ", ".join(self.chunks)]


def memory(messages: int, seconds: float) -> list[str]:
    """RSS of the server before and after a long ingest (at most ``seconds``)."""
    lines = measure_memory(messages, seconds).lines()
    print(*lines, sep="\n", flush=True)
    return lines


def measure_memory(messages: int, seconds: float, chunk: int = 10000) -> Memory:
    """RSS of the server before and after a long ingest (at most ``seconds``).

    The traffic is generated ``chunk`` messages at a time from one generator
    (so patients keep coming back and control ids stay unique): holding
    500,000 messages in the load generator would make it, not the server,
    the bottleneck.
    """
    synth = Synth(77)

    def generate(n: int) -> list[bytes]:
        return [
            s.text.encode()
            for s in synth.traffic(n, duplicate_share=0.02, bad_share=0.02)
        ]

    with tempfile.TemporaryDirectory() as tmp:
        server = ingest.start_server(Path(tmp))
        try:
            ingest.drive(server, ingest.split(generate(2000), 8))
            before = peak = _rss_kb(server.proc.pid)
            started = time.perf_counter()
            sent = 0
            rates: list[str] = []
            while sent < messages:
                batch = generate(min(chunk, messages - sent))
                took, _lat, _codes = ingest.drive(server, ingest.split(batch, 8))
                sent += len(batch)
                rss = _rss_kb(server.proc.pid)
                peak = max(peak, rss)
                rates.append(f"{len(batch) / took:.0f}/s {rss / 1024:.0f} MB")
                if time.perf_counter() - started >= seconds:
                    break
            elapsed = time.perf_counter() - started
            after = _rss_kb(server.proc.pid)
        finally:
            server.stop()
    return Memory(sent, elapsed, before, after, peak, rates, chunk)


def fuzz(examples: int) -> list[str]:
    """The hypothesis campaign of tests/fuzz with ``examples`` examples per test."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "tests/fuzz"],
        cwd=ROOT,
        env={**os.environ, "CAIRN_FUZZ_EXAMPLES": str(examples)},
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    summary = (proc.stdout.strip().splitlines() or ["no output"])[-1]
    tests = len(
        re.findall(r"def test_fuzz_", (ROOT / "tests/fuzz/test_fuzz.py").read_text())
    )
    line = (
        f"fuzz: {tests} properties x {examples} examples each ({tests * examples} generated inputs) "
        f"in {elapsed:.0f} s: {summary.strip('= ')}"
    )
    print(line, flush=True)
    return [f"{header()}", line]


SECTIONS = (
    "forecast",
    "ingest",
    "ingest-pg",
    "auth",
    "soap",
    "spy",
    "query",
    "batch",
    "memory",
    "matching",
    "lock-timing",
    "inventory",
    "recall",
    "fuzz",
    "dashboard",
    "limits",
)


def main() -> None:
    """Run everything (or ``--only`` some sections) and write the results file."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="smaller runs (for a smoke check)"
    )
    parser.add_argument(
        "--only", nargs="+", choices=(*SECTIONS, "targets"), default=list(SECTIONS)
    )
    args = parser.parse_args()
    only = set(args.only)
    n = 1000 if args.quick else 4000
    sections: list[tuple[str, list[str]]] = []
    if "forecast" in only:
        sections.append(
            ("Forecast (`.venv/bin/python -m bench.forecast`)", _capture(forecast.main))
        )
    if "ingest" in only:
        sys.argv = [
            str(ROOT / "bench" / "ingest.py"),
            "--senders",
            "1",
            "8",
            "32",
            "--messages",
            str(n),
            "--rate",
            "500",
        ]
        sections.append(
            (
                f"Ingest, SQLite (`.venv/bin/python -m bench.ingest --senders 1 8 32 --messages {n} --rate 500`)",
                ingest.run(
                    argparse.Namespace(
                        senders=[1, 8, 32],
                        messages=n,
                        rate=500.0,
                        seconds=10.0,
                        arrivals=["poisson", "lockstep"],
                        database=None,
                    )
                ),
            )
        )
    if "ingest-pg" in only and _fresh_pg():
        sys.argv = [
            str(ROOT / "bench" / "ingest.py"),
            "--senders",
            "8",
            "--messages",
            str(n),
            "--rate",
            "0",
            "--database",
            PG_BENCH,
        ]
        sections.append(
            (
                f"Ingest, PostgreSQL (`.venv/bin/python -m bench.ingest --senders 8 --messages {n} --rate 0 --database {PG_BENCH}`)",
                ingest.run(
                    argparse.Namespace(
                        senders=[8],
                        messages=n,
                        rate=0.0,
                        seconds=10.0,
                        arrivals=[],
                        database=PG_BENCH,
                    )
                ),
            )
        )
    if "spy" in only:
        sys.argv = [str(ROOT / "bench" / "spy.py"), "--messages", str(n)]
        sections.append(
            (
                f"Profile of a running server (`.venv/bin/python -m bench.spy --messages {n}`)",
                spy.run(
                    argparse.Namespace(
                        senders=8,
                        messages=n,
                        warmup=500,
                        rate=250,
                        top=25,
                        database=None,
                    )
                ),
            )
        )
    if "query" in only:
        sys.argv = [str(ROOT / "bench" / "query.py")]
        sections.append(
            (
                "Query (`.venv/bin/python -m bench.query`)",
                query.run(
                    argparse.Namespace(
                        patients=100 if args.quick else 200,
                        queries=200 if args.quick else 500,
                        ingest_rate=200.0,
                    )
                ),
            )
        )
    if "batch" in only:
        m = 5000 if args.quick else 100000
        sys.argv = [str(ROOT / "bench" / "batch.py"), "--messages", str(m)]
        sections.append(
            (
                f"Batch load (`.venv/bin/python -m bench.batch --messages {m}`)",
                batch.run(argparse.Namespace(messages=m)),
            )
        )
    if "memory" in only:
        seconds = 60.0 if args.quick else 600.0
        sys.argv = [str(ROOT / "bench" / "run_all.py"), "--only", "memory"]
        sections.append(
            (
                "Memory (`.venv/bin/python -m bench.run_all --only memory`: a 10-minute ingest)",
                [header(), *memory(20000 if args.quick else 500000, seconds)],
            )
        )
    if "matching" in only:
        patients = 2000 if args.quick else 20000
        sys.argv = [
            str(ROOT / "bench" / "matching.py"),
            "--patients",
            str(patients),
        ]
        sections.append(
            (
                f"Patient matching and dose de-duplication (`.venv/bin/python -m bench.matching --patients {patients}`)",
                matching.run(
                    argparse.Namespace(
                        patients=patients,
                        seed=11,
                        match=0.55,
                        possible=0.30,
                        explain=0,
                    )
                ),
            )
        )
    if "auth" in only:
        count = 500 if args.quick else 2000
        sys.argv = [
            str(ROOT / "bench" / "auth.py"),
            "--senders",
            "8",
            "--messages",
            str(count),
        ]
        sections.append(
            (
                f"MLLP open, ip and TLS listeners (`.venv/bin/python -m bench.auth --senders 8 --messages {count}`)",
                auth.run(argparse.Namespace(senders=8, messages=count)),
            )
        )
    if "soap" in only:
        m = 200 if args.quick else 800
        sys.argv = [
            str(ROOT / "bench" / "soap.py"),
            "--messages",
            str(m),
            "--senders",
            "8",
        ]
        sections.append(
            (
                f"SOAP over HTTPS beside MLLP with and without TLS (`.venv/bin/python -m bench.soap --messages {m} --senders 8`)",
                soap.run(argparse.Namespace(messages=m, senders=8)),
            )
        )
    if "lock-timing" in only:
        queries = 400 if args.quick else 2000
        sections.append(
            (
                f"Locked versus absent, by time (`.venv/bin/python -m bench.lock_timing --queries {queries}`)",
                lock_timing.run(
                    argparse.Namespace(patients=300, queries=queries, database=None)
                ),
            )
        )
    if "inventory" in only:
        count = 1000 if args.quick else 3000
        sys.argv = [str(ROOT / "bench" / "inventory.py")]
        sections.append(
            (
                f"Inventory draw-down (`.venv/bin/python -m bench.inventory --messages {count} --rounds 3`)",
                inventory.run(argparse.Namespace(messages=count, rounds=3)),
            )
        )
    if "recall" in only:
        patients = 10000 if args.quick else 100000
        workers = os.cpu_count() or 1
        sys.argv = [
            str(ROOT / "bench" / "recall.py"),
            "--patients",
            str(patients),
            "--workers",
            str(workers),
        ]
        sections.append(
            (
                f"Reminder/recall and coverage (`.venv/bin/python -m bench.recall --patients {patients} --workers {workers}`)",
                recall.run(
                    argparse.Namespace(
                        patients=patients, workers=workers, sample=2000, keep=None
                    )
                ),
            )
        )
    if "fuzz" in only:
        examples = 500 if args.quick else 20000
        sys.argv = [str(ROOT / "bench" / "run_all.py"), "--only", "fuzz"]
        sections.append(
            (
                f"Fuzzing (`CAIRN_FUZZ_EXAMPLES={examples} .venv/bin/pytest -q -p no:randomly tests/fuzz`, as `make fuzz`)",
                fuzz(examples),
            )
        )
    if "dashboard" in only:
        m = 3000 if args.quick else 6000
        sys.argv = [str(ROOT / "bench" / "dashboard.py"), "--messages", str(m)]
        sections.append(
            (
                f"Dashboard (`.venv/bin/python -m bench.dashboard --messages {m}`: the Grafana panels over a load run, drawn to contrib/grafana/cairn-dashboard.png)",
                dashboard.run(
                    argparse.Namespace(
                        messages=m,
                        patients=100,
                        rate=150.0,
                        query_rate=10.0,
                        interval=1.0,
                        window=5.0,
                        out=str(
                            dashboard.ROOT
                            / "contrib"
                            / "grafana"
                            / "cairn-dashboard.png"
                        ),
                    )
                ),
            )
        )
    if "limits" in only:
        seconds = 10.0 if args.quick else 40.0
        sys.argv = [str(ROOT / "bench" / "limits.py"), "--seconds", f"{seconds:g}"]
        sections.append(
            (
                "A normal sender beside senders at the limits (`.venv/bin/python -m "
                f"bench.limits --seconds {seconds:g}`)",
                limits.run(
                    argparse.Namespace(
                        senders=4,
                        rate=40.0,
                        seconds=seconds,
                        rounds=4,
                        slow=300,
                        max_order_groups=0,
                        database=None,
                    )
                ),
            )
        )
    if "targets" in only:
        # Not in the default sections: it re-measures what others measure
        # (about 25 minutes), every issue-18 target in one run.
        from bench import targets

        argv = [] if not args.quick else ["--scale", "0.05"]
        sys.argv = [str(ROOT / "bench" / "targets.py"), *argv]
        sections.append(
            (
                f"{targets.TITLE} (`{targets.command(argv)}`)",
                targets.run(targets.parser().parse_args(argv)),
            )
        )
    write(sections)


def _capture(fn: object) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.forecast"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip().splitlines()


def _existing() -> dict[str, tuple[str, list[str]]]:
    """The sections already in RESULTS.md, by key, each with its lines as written.

    Lines are kept verbatim, figures (indented) and notes a person wrote
    between them (prose) alike: a section not rerun comes back unchanged.
    """
    found: dict[str, tuple[str, list[str]]] = {}
    if not RESULTS.exists():
        return found
    title = ""
    body: list[str] = []
    for line in RESULTS.read_text().splitlines():
        if line.startswith("## "):
            if title:
                found[_key(title)] = (title, body)
            title, body = line[3:], []
        elif title:
            body.append(line)
    if title:
        found[_key(title)] = (title, body)
    return found


def _key(title: str) -> str:
    return title.split(" (")[0].strip().lower()


def write(sections: list[tuple[str, list[str]]]) -> None:
    """Write bench/RESULTS.md, keeping the sections not rerun (the analysis lives in ANALYSIS.md)."""
    merged = _existing()
    for title, lines in sections:
        merged[_key(title)] = (title, ["", *(f"    {line}" for line in lines)])
    out = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`.venv/bin/python -m bench.run_all`); each section",
        "names the command that reproduces it, and each figure the machine's core",
        "count and the commit it was measured on. `--only SECTION` reruns one.",
        "",
        "See `bench/ANALYSIS.md` for targets, misses and the profile.",
        "",
    ]
    for title, lines in merged.values():
        while lines and not lines[-1].strip():
            lines = lines[:-1]
        out.append(f"## {title}")
        out.extend(lines)
        out.append("")
    RESULTS.write_text("\n".join(out))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
