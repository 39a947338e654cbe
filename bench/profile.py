"""Where an ingest's time goes: the in-process pipeline under cProfile.

Run: .venv/bin/python -m bench.profile [--messages 2000] [--batch 50]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import pstats
import tempfile
import time

import structlog

from bench._common import header
from bench.synth import Synth
from engine.pipeline import Inbound, MessagePipeline, Route, SenderPolicy
from handlers.codes import CodeTables
from handlers.vxu import VxuHandler
from storage import open_database


def main() -> None:
    """Profile the pipeline on generated VXUs (SQLite, synchronous=FULL, group commit)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING)
    )
    corpus = [s.text.encode() for s in Synth(7).traffic(args.messages)]
    with tempfile.TemporaryDirectory() as tmp:
        db = open_database(f"sqlite:///{tmp}/p.sqlite3")
        db.upgrade()
        pipeline = MessagePipeline(
            database=db,
            routes={"VXU": Route(VxuHandler(CodeTables.load()), "VXU_V04")},
            senders=SenderPolicy({}, "accept", "BAY"),
        )
        pipeline.process_batch([Inbound(m, "p", "p") for m in corpus[:100]])
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for i in range(100, len(corpus), args.batch):
            pipeline.process_batch(
                [Inbound(m, "p", "p") for m in corpus[i : i + args.batch]]
            )
        profiler.disable()
        elapsed = time.perf_counter() - started
        db.close()
    print(header())
    print(
        f"{len(corpus) - 100} VXU in {elapsed:.2f} s under the profiler ({(len(corpus) - 100) / elapsed:.0f} VXU/s)"
    )
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
    print(out.getvalue())


if __name__ == "__main__":
    main()
