"""`make bench`: run every benchmark and write bench/RESULTS.md.

Run: .venv/bin/python -m bench.run_all [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import batch, forecast, ingest, query
from bench._common import ROOT, header

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
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def memory(messages: int) -> list[str]:
    """RSS of the server before and after a long ingest."""
    corpus = ingest.messages(messages, seed=77)
    with tempfile.TemporaryDirectory() as tmp:
        server = ingest.start_server(Path(tmp))
        try:
            warm = corpus[:2000]
            ingest.drive(server, ingest.split(warm, 8))
            before = _rss_kb(server.proc.pid)
            started = time.perf_counter()
            ingest.drive(server, ingest.split(corpus[2000:], 8))
            elapsed = time.perf_counter() - started
            after = _rss_kb(server.proc.pid)
        finally:
            server.stop()
    line = f"memory: {messages - 2000} VXU over {elapsed:.0f} s after warm-up; server RSS {before / 1024:.1f} MB -> {after / 1024:.1f} MB (growth {(after - before) / 1024:.1f} MB)"
    print(line, flush=True)
    return [line]


def main() -> None:
    """Run everything and write the results file."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="smaller runs (for a smoke check)"
    )
    args = parser.parse_args()
    n = 1000 if args.quick else 4000
    sections: list[tuple[str, list[str]]] = []
    sections.append(
        ("Forecast (`.venv/bin/python -m bench.forecast`)", _capture(forecast.main))
    )
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
                    database=None,
                )
            ),
        )
    )
    if _fresh_pg():
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
                        database=PG_BENCH,
                    )
                ),
            )
        )
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
    m = 5000 if args.quick else 100000
    sys.argv = [str(ROOT / "bench" / "batch.py"), "--messages", str(m)]
    sections.append(
        (
            f"Batch load (`.venv/bin/python -m bench.batch --messages {m}`)",
            batch.run(argparse.Namespace(messages=m)),
        )
    )
    sections.append(
        (
            "Memory (`.venv/bin/python -m bench.run_all`)",
            memory(6000 if args.quick else 40000),
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


def write(sections: list[tuple[str, list[str]]]) -> None:
    """Write bench/RESULTS.md (figures only; the analysis lives in bench/ANALYSIS.md)."""
    out = [
        "# Benchmark results",
        "",
        f"Generated by `make bench` ({header()}).",
        "",
        "See `bench/ANALYSIS.md` for targets, misses and the profile.",
        "",
    ]
    for title, lines in sections:
        out.append(f"## {title}")
        out.append("")
        out.extend(f"    {line}" for line in lines)
        out.append("")
    RESULTS.write_text("\n".join(out))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
