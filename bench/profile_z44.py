"""Where a Z44's time goes, per dose: the query path in process, timed and under cProfile.

Run: .venv/bin/python -m bench.profile_z44 [--doses 1 30 100] [--queries 200] [--top 40]

Loads one patient per dose count (generated doses, as bench.query does),
then answers Z44s for each as ``cairn serve`` does (the read step on a
reader connection, then the writer's journal row), without sockets: the
time per query for each dose count (wall clock, which includes the
commit's fsync, and this process's CPU, which other load on the machine
moves less), the CPU's growth per dose, and cProfile of the largest.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import tempfile
import time
from pathlib import Path

import structlog

from bench._common import ROOT, header, percentile, print_profile
from bench.synth import CHILD_DOSES, Synth
from config import load_settings
from engine.app import build_pipeline
from engine.pipeline import Inbound
from storage import open_database

_CONFIG = """
[registry]
unknown_sender = "accept"
unknown_sender_region = "BAY"
"""


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--doses", type=int, nargs="+", default=[1, 30, 100])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING)
    )
    os.environ.setdefault(
        "CAIRN_CDSI_DIR", str(ROOT.parent / "shared" / "cdsi" / "supporting-data")
    )
    print(header())
    synth = Synth(seed=31)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cairn.toml"
        path.write_text(_CONFIG)
        settings = load_settings(path, environ=dict(os.environ))
        db = open_database(f"sqlite:///{tmp}/z44.sqlite3")
        db.upgrade()
        pipeline = build_pipeline(settings, db)
        people: dict[int, tuple[object, str]] = {}
        for count in args.doses:
            person = synth.person()
            doses: list = []
            while len(doses) < count:
                doses += synth.doses_for(
                    person, count=min(count - len(doses), len(CHILD_DOSES))
                )
            mrn = f"Z{count:07d}"
            message = synth.vxu(person, doses, sender="CLINIC1", mrn=mrn)
            pipeline.process_batch([Inbound(message.text.encode(), "p", "p")])
            people[count] = (person, mrn)

        def answer(count: int) -> bytes:
            person, mrn = people[count]
            # A new control id each time, as real queries have.
            raw = synth.z44(person, sender="CLINIC1", mrn=mrn, limit=1).encode()  # type: ignore[arg-type]
            item = pipeline.read_step(Inbound(raw, "p", "p"))
            (outcome,) = pipeline.process_batch([item])
            return outcome.payload

        medians = {}
        for count in people:
            assert b"Z42" in answer(count), "no Z42 answer"
            took, cpu = [], []
            for _ in range(args.queries):
                started, cpu_started = time.perf_counter(), time.process_time()
                answer(count)
                took.append((time.perf_counter() - started) * 1000)
                cpu.append((time.process_time() - cpu_started) * 1000)
            medians[count] = percentile(cpu, 50)
            print(
                f"Z44, {count} dose(s), in process: p50 {percentile(took, 50):.2f} ms, "
                f"p99 {percentile(took, 99):.2f} ms; CPU p50 {medians[count]:.2f} ms"
            )
        if len(medians) > 1:
            low, high = min(medians), max(medians)
            per_dose = (medians[high] - medians[low]) / (high - low)
            print(
                f"growth: {per_dose:.3f} ms of CPU per dose ({low} to {high} doses, p50)"
            )
        profiler = cProfile.Profile()
        largest = max(people)
        profiler.enable()
        for _ in range(max(20, args.queries // 5)):
            answer(largest)
        profiler.disable()
        db.close()
    print_profile(profiler, args.top)


if __name__ == "__main__":
    main()
