"""Where an ingest's time goes: the in-process pipeline, timed and under cProfile.

Run: .venv/bin/python -m bench.profile [--messages 2000] [--batch 50]
     [--database postgresql+psycopg://postgres@127.0.0.1:5432/cairn_bench]
     [--preload 100000] [--no-profile] [--writer-only]

The same generated traffic is run twice on fresh databases: once plain (the
VXU/s figure to compare between changes) and once under cProfile (where the
time goes; the profiler roughly doubles the cost of every Python call).

``--preload N`` (SQLite only) first ingests N messages of the same traffic
into a database that both runs start from as a copy, so that the timed
messages meet a registry that has grown: where the time goes at 200,000
messages is not where it goes in an empty one. ``--seed-file PATH`` keeps
that database (or reuses it when it exists), so that comparing two changes
does not pay for the preload twice.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import structlog

from bench._common import header, print_profile
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


def _pipeline(db: Database) -> MessagePipeline:
    return MessagePipeline(
        database=db,
        routes={"VXU": Route(VxuHandler(CodeTables.load()), "VXU_V04")},
        senders=SenderPolicy({}, "accept", "BAY"),
    )


def _ingest(
    pipeline: MessagePipeline, db: Database, messages: list[bytes], batch: int
) -> None:
    items = [Inbound(m, "p", "p") for m in messages]
    for n, i in enumerate(range(0, len(items), batch)):
        pipeline.process_batch(items[i : i + batch])
        if n % 10 == 9:
            # What cairn serve does on a timer (PostgreSQL with autovacuum off).
            db.refresh_statistics()


def _read(pipeline: MessagePipeline, messages: list[bytes]) -> list[Inbound]:
    """What the reader processes do (server.reader_processes), done beforehand."""
    today = pipeline.today()
    items = []
    for raw in messages:
        done: Future[Any] = Future()
        done.set_result(pipeline.reader.read(raw, today, keep_tokens=False))
        items.append(Inbound(raw, "p", "p", pending=done))
    return items


def _preload(path: str, messages: list[bytes], batch: int) -> None:
    """Ingest ``messages`` into a new SQLite database at ``path`` (untimed)."""
    db = open_database(f"sqlite:///{path}", sqlite_synchronous="OFF")
    db.upgrade()
    started = time.perf_counter()
    _ingest(_pipeline(db), db, messages, 200)
    db.close()
    print(
        f"preloaded {len(messages)} messages in {time.perf_counter() - started:.0f} s"
    )


def _run(
    database: str | None,
    corpus: list[bytes],
    batch: int,
    around: Callable[[Callable[[], None]], None],
    seed: str | None = None,
    read: bool = False,
) -> float:
    """Ingest the corpus (first 100 as warm-up) and return the timed seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        if database:
            _reset_postgresql(database)
            db: Database = open_database(database)
        else:
            if seed:
                shutil.copyfile(seed, f"{tmp}/p.sqlite3")
            db = open_database(f"sqlite:///{tmp}/p.sqlite3")
        db.upgrade()
        pipeline = _pipeline(db)
        _ingest(pipeline, db, corpus[:100], batch)

        # Read beforehand (untimed) when only the writer's work is timed.
        timed = _read(pipeline, corpus[100:]) if read else None

        def work() -> None:
            if timed is None:
                _ingest(pipeline, db, corpus[100:], batch)
                return
            for n, i in enumerate(range(0, len(timed), batch)):
                pipeline.process_batch(timed[i : i + batch])
                if n % 10 == 9:
                    db.refresh_statistics()

        started = time.perf_counter()
        around(work)
        elapsed = time.perf_counter() - started
        db.close()
    return elapsed


def new_and_grown(
    seed_file: str,
    preload: int,
    messages: int,
    batch: int,
    rounds: int = 2,
) -> list[tuple[float, float]]:
    """VXU/s on a new database and on the preloaded one, alternated ``rounds`` times.

    ``seed_file`` holds the first ``preload`` messages of ``Synth(7).traffic``
    (as ``--preload N --seed-file PATH`` builds it); both runs time the same
    next ``messages`` (the first 100 a warm-up), so that the registry's size
    is the only difference. Returns (new, grown) per round.
    """
    # The same generator as the preload's, its first ``preload`` messages
    # skipped (not kept: 300,000 messages would hold half a gigabyte).
    corpus = [
        s.text.encode()
        for n, s in enumerate(Synth(7).traffic(preload + messages))
        if n >= preload
    ]
    count = len(corpus) - 100
    out = []
    for _round in range(rounds):
        new = _run(None, corpus, batch, lambda work: work())
        grown = _run(None, corpus, batch, lambda work: work(), seed_file)
        out.append((count / new, count / grown))
    return out


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
    parser.add_argument(
        "--preload",
        type=int,
        default=0,
        help="first ingest this many messages (SQLite), then time the next --messages",
    )
    parser.add_argument(
        "--seed-file",
        default=None,
        help="with --preload: keep the preloaded database here, or reuse it if present",
    )
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument(
        "--writer-only",
        action="store_true",
        help="read and validate the messages beforehand, untimed (as the reader processes do)",
    )
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING)
    )
    if args.preload and args.database:
        parser.error("--preload works on SQLite only")
    traffic = [s.text.encode() for s in Synth(7).traffic(args.preload + args.messages)]
    corpus = traffic[args.preload :]
    count = len(corpus) - 100
    backend = "PostgreSQL" if args.database else "SQLite (WAL, synchronous=FULL)"
    print(header())
    seed_dir = tempfile.TemporaryDirectory()
    seed = None
    if args.preload:
        seed = args.seed_file or f"{seed_dir.name}/seed.sqlite3"
        if args.seed_file and os.path.exists(args.seed_file):
            print(f"reusing the preloaded database {args.seed_file}")
        else:
            _preload(seed, traffic[: args.preload], args.batch)
    plain = _run(
        args.database, corpus, args.batch, lambda work: work(), seed, args.writer_only
    )
    print(
        f"{backend}: {count} VXU in {plain:.2f} s = {count / plain:.0f} VXU/s "
        f"({plain / count * 1000:.2f} ms per VXU), batches of {args.batch}"
        + (", the writer's work only" if args.writer_only else "")
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

    elapsed = _run(args.database, corpus, args.batch, profiled, seed, args.writer_only)
    print(f"under the profiler: {count / elapsed:.0f} VXU/s")
    print_profile(profiler, args.top)


if __name__ == "__main__":
    main()
