"""Where an ingest's time goes: the in-process pipeline, timed and under cProfile.

Run: .venv/bin/python -m bench.profile [--messages 2000] [--batch 50]
     [--database postgresql+psycopg://postgres@127.0.0.1:5432/cairn_bench]
     [--no-profile]

The same generated traffic is run twice on fresh databases: once plain (the
VXU/s figure to compare between changes) and once under cProfile (where the
time goes; the profiler roughly doubles the cost of every Python call).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import pstats
import tempfile
import time
from collections.abc import Callable

import structlog

from bench._common import header
from bench.synth import Synth
from engine.pipeline import Inbound, MessagePipeline, Route, SenderPolicy
from handlers.codes import CodeTables
from handlers.vxu import VxuHandler
from storage import Database, open_database


def _reset_postgresql(url: str) -> None:
    """Drop and re-create the benchmark's schema so every run starts empty."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def _run(
    database: str | None,
    corpus: list[bytes],
    batch: int,
    around: Callable[[Callable[[], None]], None],
) -> float:
    """Ingest the corpus (first 100 as warm-up) and return the timed seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        if database:
            _reset_postgresql(database)
            db: Database = open_database(database)
        else:
            db = open_database(f"sqlite:///{tmp}/p.sqlite3")
        db.upgrade()
        pipeline = MessagePipeline(
            database=db,
            routes={"VXU": Route(VxuHandler(CodeTables.load()), "VXU_V04")},
            senders=SenderPolicy({}, "accept", "BAY"),
        )
        pipeline.process_batch([Inbound(m, "p", "p") for m in corpus[:100]])

        def work() -> None:
            for i in range(100, len(corpus), batch):
                pipeline.process_batch(
                    [Inbound(m, "p", "p") for m in corpus[i : i + batch]]
                )

        started = time.perf_counter()
        around(work)
        elapsed = time.perf_counter() - started
        db.close()
    return elapsed


def main() -> None:
    """Time and profile the pipeline on generated VXUs (group commit)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument(
        "--database",
        default=None,
        help="PostgreSQL URL (its public schema is dropped!); default: SQLite, synchronous=FULL",
    )
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING)
    )
    corpus = [s.text.encode() for s in Synth(7).traffic(args.messages)]
    count = len(corpus) - 100
    backend = "PostgreSQL" if args.database else "SQLite (WAL, synchronous=FULL)"
    print(header())
    plain = _run(args.database, corpus, args.batch, lambda work: work())
    print(
        f"{backend}: {count} VXU in {plain:.2f} s = {count / plain:.0f} VXU/s "
        f"({plain / count * 1000:.2f} ms per VXU), batches of {args.batch}"
    )
    if args.no_profile:
        return
    profiler = cProfile.Profile()

    def profiled(work: Callable[[], None]) -> None:
        profiler.enable()
        try:
            work()
        finally:
            profiler.disable()

    elapsed = _run(args.database, corpus, args.batch, profiled)
    print(f"under the profiler: {count / elapsed:.0f} VXU/s")
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)
    print(out.getvalue())


if __name__ == "__main__":
    main()
