"""Every issue-18 target, measured in one run on this machine, with met or not met.

One line per target: the figure, the floor's figure beside it where the
target is a ratio (the floor run in this same run, on the same backend, with
the same traffic), the target, and met / not met:

1. SQLite (WAL, synchronous=FULL), 8 senders: >= 0.6 x the floor and
   >= 1,000 VXU/s (on 2 cores);
2. PostgreSQL, 8 senders: >= 0.5 x the PostgreSQL floor and >= 500 VXU/s;
3. the rate at 300,000 messages relative to a new database: >= 0.8 (in
   process, :func:`bench.profile.new_and_grown`; needs ``--seed-file``,
   built once by ``bench.profile --preload 300000 --seed-file PATH``, about
   15 minutes on a quiet machine, else skipped);
4. ACK p99 at half the capacity < 20 ms (capacity: item 1's rate in this run;
   half of it offered over 8 senders with Poisson arrivals, latency from the
   due time);
5. Z44 p99 under ingest (half the capacity, Poisson, beside it) for patients
   of exactly 30 and 100 doses: < 25 ms and < 50 ms;
6. a normal sender's p99 beside a sender at the limits, and beside 300 slow
   connections: <= 2x its p99 alone (:mod:`bench.limits`);
7. the server's memory over a 10-minute ingest at capacity: growth < 50 MB.

Run: .venv/bin/python -m bench.targets [--scale 1] [--seed-file PATH [--preload 300000]]
     [--memory-seconds S] [--database URL | --no-postgresql] [--write]

``--scale 0.05`` is a dry run (about 3 minutes; figures too short to judge
by); the default, about 25 minutes, is the one to read. ``--write`` puts the
lines into bench/RESULTS.md as their own section (``bench.run_all --only
targets`` does the same at the default scale).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from bench import ingest, limits, profile, query, run_all
from bench._common import header, percentile

#: The PostgreSQL database of the run (dropped and re-created).
PG_TARGETS = "postgresql+psycopg://postgres@127.0.0.1:5432/cairn_bench_targets"

TITLE = "Issue 18 targets, one run"


@dataclass(frozen=True)
class Check:
    """One bound a figure must keep: ``figure op bound``."""

    what: str
    figure: float
    op: str
    bound: float

    def holds(self) -> bool:
        """True when the figure keeps the bound (a figure not measured never does)."""
        if math.isnan(self.figure):
            return False
        return {
            ">=": self.figure >= self.bound,
            ">": self.figure > self.bound,
            "<=": self.figure <= self.bound,
            "<": self.figure < self.bound,
        }[self.op]


def verdict(checks: list[Check]) -> str:
    """``met`` when every check holds, else ``not met`` naming the ones that do not."""
    if not checks:
        raise ValueError("a target has at least one check")
    missed = [c for c in checks if not c.holds()]
    if not missed:
        return "met"
    return "not met (" + ", ".join(f"{c.what} {c.figure:.3g}" for c in missed) + ")"


def target_line(name: str, figures: str, checks: list[Check]) -> str:
    """One target's line: what, the figures, the target, the verdict."""
    wanted = " and ".join(f"{c.what} {c.op} {c.bound:g}" for c in checks)
    return f"{name}: {figures}; target {wanted}: {verdict(checks)}"


@dataclass(frozen=True)
class Plan:
    """What a run measures, from the command line's scale."""

    ingest_messages: int
    pg_messages: int
    half_seconds: float
    z44_queries: int
    limits_seconds: float
    limits_rounds: int
    memory_seconds: float
    memory_chunk: int
    grown_messages: int

    @classmethod
    def at(cls, scale: float, memory_seconds: float | None = None) -> Plan:
        """The full run at 1; shorter runs (dry runs) below 1, never below a floor of sense."""
        memory = (
            memory_seconds if memory_seconds is not None else max(30.0, 600 * scale)
        )
        return cls(
            ingest_messages=max(300, int(4000 * scale)),
            pg_messages=max(300, int(4000 * scale)),
            half_seconds=max(5.0, 60 * scale),
            z44_queries=max(30, int(300 * scale)),
            limits_seconds=max(3.0, 40 * scale),
            limits_rounds=4 if scale >= 0.5 else 2,
            memory_seconds=memory,
            memory_chunk=10000 if memory >= 300 else 2000,
            grown_messages=max(300, int(1100 * scale)),
        )


def _emit(lines: list[str], line: str) -> None:
    lines.append(line)
    print(line, flush=True)


def run(args: argparse.Namespace) -> list[str]:
    """Measure every target; the result lines (also printed as they come)."""
    plan = Plan.at(args.scale, args.memory_seconds)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR)
    )
    lines = [header()]
    print(lines[0], flush=True)
    cores = os.cpu_count()
    started = time.perf_counter()

    # 1. SQLite, 8 senders, against the floor.
    corpus = ingest.messages(plan.ingest_messages)
    floor = ingest.measure(corpus, 8, None, floor=True)
    cairn = ingest.measure(corpus, 8, None)
    capacity = cairn.rate
    _emit(
        lines,
        target_line(
            f"SQLite (WAL, FULL), 8 senders, {len(corpus)} VXU",
            f"{cairn.rate:.0f} VXU/s = {cairn.rate / floor.rate:.2f} x the floor "
            f"({floor.rate:.0f} VXU/s), {cores} cores; ACK p99 "
            f"{percentile(cairn.latencies, 99):.0f} ms, server CPU {cairn.cpu_ms:.2f} ms/VXU "
            f"(floor {floor.cpu_ms:.2f})",
            [
                Check("x floor", cairn.rate / floor.rate, ">=", 0.6),
                Check("VXU/s", cairn.rate, ">=", 1000),
            ],
        ),
    )

    # 2. PostgreSQL, 8 senders, against its floor.
    pg = None if args.no_postgresql else args.database
    if pg is not None:
        try:
            ingest.fresh_postgresql(pg)
        except Exception as exc:  # no server: say so, measure the rest
            _emit(
                lines, f"PostgreSQL, 8 senders: skipped ({type(exc).__name__}: {exc})"
            )
            pg = None
    if pg is not None:
        corpus = ingest.messages(plan.pg_messages)
        floor = ingest.measure(corpus, 8, pg, floor=True)
        cairn_pg = ingest.measure(corpus, 8, pg)
        _emit(
            lines,
            target_line(
                f"PostgreSQL, 8 senders, {len(corpus)} VXU",
                f"{cairn_pg.rate:.0f} VXU/s = {cairn_pg.rate / floor.rate:.2f} x the floor "
                f"({floor.rate:.0f} VXU/s); ACK p99 {percentile(cairn_pg.latencies, 99):.0f} ms, "
                f"server CPU {cairn_pg.cpu_ms:.2f} ms/VXU (floor {floor.cpu_ms:.2f})",
                [
                    Check("x floor", cairn_pg.rate / floor.rate, ">=", 0.5),
                    Check("VXU/s", cairn_pg.rate, ">=", 500),
                ],
            ),
        )
    elif args.no_postgresql:
        _emit(lines, "PostgreSQL, 8 senders: skipped (--no-postgresql)")

    # 3. The rate at 300k messages against a new database, in process.
    if args.seed_file and Path(args.seed_file).exists():
        rounds = profile.new_and_grown(
            args.seed_file, args.preload, plan.grown_messages, batch=8
        )
        ratios = [grown / new for new, grown in rounds]
        _emit(
            lines,
            target_line(
                f"rate at {args.preload:,} messages relative to a new database "
                f"(in process, SQLite FULL, groups of 8, {plan.grown_messages - 100} timed VXU, "
                f"{len(rounds)} rounds alternated)",
                "; ".join(
                    f"new {new:.0f} VXU/s, grown {grown:.0f} VXU/s = {grown / new:.2f}"
                    for new, grown in rounds
                ),
                [Check("grown / new (worst round)", min(ratios), ">=", 0.8)],
            ),
        )
    else:
        _emit(
            lines,
            f"rate at {args.preload:,} messages relative to a new database: skipped "
            f"(no --seed-file{' at ' + args.seed_file if args.seed_file else ''}; build one once, "
            f"about 15 minutes: .venv/bin/python -m bench.profile --preload {args.preload} "
            f"--seed-file PATH --messages 1100 --no-profile)",
        )

    # 4. ACK p99 at half the capacity measured in 1.
    half = capacity / 2
    elapsed, lat = ingest.offered(None, half, plan.half_seconds, "poisson")
    _emit(
        lines,
        target_line(
            f"ACK at half the capacity (SQLite, {half:.0f} msgs/s offered = half of "
            f"{capacity:.0f}, 8 senders, Poisson, from the due time, {plan.half_seconds:g} s)",
            f"p50 {percentile(lat, 50):.1f} ms, p99 {percentile(lat, 99):.1f} ms, "
            f"{len(lat)} messages, achieved {len(lat) / elapsed:.0f} msgs/s",
            [Check("p99 ms", percentile(lat, 99), "<", 20)],
        ),
    )

    # 5. Z44 beside ingest at half the capacity, 30 and 100 doses exactly.
    z44 = query.under_ingest(
        {"30": [30] * 4, "100": [100] * 4},
        plan.z44_queries,
        half,
        exact=True,
        ingest_seconds=max(30.0, 120 * args.scale),
        arrivals="poisson",
    )
    for label, bound in (("30", 25), ("100", 50)):
        latencies, codes, rxa = z44[label]
        _emit(
            lines,
            target_line(
                f"Z44, patients of {label} doses, ingest at {half:.0f} msgs/s beside "
                f"(half the capacity, Poisson, SQLite)",
                f"{len(latencies)} queries, p50 {percentile(latencies, 50):.1f} ms, "
                f"p99 {percentile(latencies, 99):.1f} ms; {rxa} doses in an answer; "
                f"answers {dict(sorted(codes.items()))}",
                [Check("p99 ms", percentile(latencies, 99), "<", bound)],
            ),
        )

    # 6. A normal sender beside the limits and beside slow connections.
    phases = limits.phases(
        argparse.Namespace(
            senders=4,
            rate=40.0,
            seconds=plan.limits_seconds,
            rounds=plan.limits_rounds,
            slow=300,
            max_order_groups=0,
            database=None,
        )
    )
    heavy_ratio, slow_ratio = phases.ratios()
    base = percentile(phases.alone, 99)
    _emit(
        lines,
        target_line(
            f"normal senders (4 at 40 msgs/s, Poisson, SQLite, {plan.limits_seconds:g} s a phase "
            f"in {plan.limits_rounds} rounds) beside a sender at the limits / 300 slow connections",
            f"p99 alone {base:.1f} ms; beside the limits {percentile(phases.beside_heavy, 99):.1f} ms "
            f"= {heavy_ratio:.2f}x; beside slow connections {percentile(phases.beside_slow, 99):.1f} ms "
            f"= {slow_ratio:.2f}x (heavy answers {dict(sorted(phases.heavy.items()))}, "
            f"slow {phases.trickled})",
            [
                Check("x alone (limits)", heavy_ratio, "<=", 2),
                Check("x alone (slow)", slow_ratio, "<=", 2),
            ],
        ),
    )

    # 7. Memory over a long ingest at capacity.
    memory = run_all.measure_memory(500_000, plan.memory_seconds, plan.memory_chunk)
    _emit(
        lines,
        target_line(
            f"memory over {memory.elapsed:.0f} s of ingest at capacity (SQLite, 8 senders)",
            f"{memory.sent:,} VXU ({memory.sent / memory.elapsed:.0f} VXU/s), server RSS (all its processes) "
            f"{memory.before_kb / 1024:.1f} -> {memory.after_kb / 1024:.1f} MB, peak "
            f"{memory.peak_kb / 1024:.1f} MB; {memory.lines()[1]}",
            [Check("growth MB", memory.growth_mb, "<", 50)],
        ),
    )
    _emit(
        lines,
        f"run took {time.perf_counter() - started:.0f} s at --scale {args.scale:g}",
    )
    return lines


def command(argv: list[str]) -> str:
    """The command that reproduces the run (without ``--write``)."""
    return " ".join(
        [
            ".venv/bin/python",
            "-m",
            "bench.targets",
            *(a for a in argv if a != "--write"),
        ]
    )


def parser() -> argparse.ArgumentParser:
    """The command line."""
    parse = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parse.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="durations and message counts, times this (1: the full run, ~25 min; 0.05: a dry run, ~3 min)",
    )
    parse.add_argument(
        "--seed-file",
        default=None,
        help="a SQLite database preloaded by bench.profile --preload N --seed-file PATH (target 3)",
    )
    parse.add_argument(
        "--preload",
        type=int,
        default=300_000,
        help="how many messages the seed file holds (bench.profile's --preload)",
    )
    parse.add_argument(
        "--memory-seconds",
        type=float,
        default=None,
        help="length of the memory run (default 600 x scale, at least 30)",
    )
    parse.add_argument(
        "--database", default=PG_TARGETS, help="PostgreSQL URL (dropped and re-created)"
    )
    parse.add_argument("--no-postgresql", action="store_true")
    parse.add_argument(
        "--write",
        action="store_true",
        help="also write the lines into bench/RESULTS.md",
    )
    return parse


def main() -> None:
    """Command line."""
    args = parser().parse_args()
    lines = run(args)
    if args.write:
        run_all.write([(f"{TITLE} (`{command(sys.argv[1:])}`)", lines)])


if __name__ == "__main__":
    main()
