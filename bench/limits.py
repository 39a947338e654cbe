"""A normal sender's ACK latency beside senders that push the limits (issue 18).

One `cairn serve` (SQLite unless ``--database``), default limits. Normal
senders send ordinary VXUs (Poisson arrivals, latency from the due time)
in three phases of the same length, in one run:

1. alone;
2. beside a sender that sends messages at the limits back to back (a VXU of
   ``limits.max_order_groups`` order groups for a new child, one just over
   the limit, a Z44 with ``limits.max_query_identifiers`` QPD-3
   identifiers), waiting for each answer as an EHR does;
3. beside ``--slow`` connections that each trickle one byte a second of a
   frame that never ends.

Prints each phase's p50/p99 and the ratio of phases 2 and 3 to phase 1
(target: no more than 2x). Figures from different runs are not compared.

``--cost`` instead measures, in process on SQLite (no sockets), how long the
writer takes for an ordinary VXU and for one of 50, 100 and 250 order
groups: the time every other sender may wait behind one message at the
limit.

Run: .venv/bin/python -m bench.limits [--rate 40] [--seconds 40] [--rounds 4]
     [--slow 300] [--max-order-groups N] [--cost]
     [--database postgresql+psycopg://postgres@127.0.0.1/bench]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import selectors
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bench._common import header, percentile
from bench.ingest import Server, messages, start_server, upgrade
from bench.synth import CHILD_DOSES, DoseEvent, Synth
from config import LimitsSettings
from engine.client import MllpSender
from parsers.client import ack_code

#: The server's configuration for the run: every connection of the run
#: comes from 127.0.0.1, so the per-address cap is raised to let all the
#: slow connections in (the harder case for the server).
ENV = {"CAIRN_SERVER__MAX_CONNECTIONS_PER_ADDRESS": "1000"}


def heavy_messages(
    count: int, limits: LimitsSettings | None = None, seed: int = 5
) -> list[bytes]:
    """Messages at (and just over) the limits, for new children each."""
    limits = limits or LimitsSettings()
    synth = Synth(seed)
    out: list[bytes] = []
    for i in range(count):
        person = synth.person()
        kind = i % 3
        if kind == 2:
            ids = "~".join(
                f"M{person.person_id:08d}-{n}^^^CLINICA^MR"
                for n in range(limits.max_query_identifiers)
            )
            text = synth.z44(person, sender="CLINICA", mrn="HEAVY")
            out.append(text.replace("HEAVY^^^CLINICA^MR", ids, 1).encode())
            continue
        groups = limits.max_order_groups + (1 if kind == 1 else 0)
        doses = []
        for n in range(groups):
            cvx, mvx, _day = CHILD_DOSES[n % len(CHILD_DOSES)]
            given = synth.today - timedelta(days=7 * (groups - n))
            doses.append(
                DoseEvent(100_000 * (i + 1) + n, cvx, mvx, given, f"L{n}", "CLINICA")
            )
        out.append(
            synth.vxu(
                person, doses, sender="CLINICA", mrn=f"H{person.person_id:08d}"
            ).text.encode()
        )
    return out


def normal_senders(
    server: Server, batch: list[bytes], senders: int, rate: float
) -> list[float]:
    """Send ``batch`` from ``senders`` connections at ``rate`` msgs/s in all; latencies (ms)."""
    latencies: list[float] = []
    lock = threading.Lock()

    def run(part: list[bytes], seed: int) -> None:
        gaps = random.Random(seed)
        local: list[float] = []
        with MllpSender(server.host, server.port, timeout=120) as client:
            due = time.perf_counter() + gaps.expovariate(rate / senders)
            for message in part:
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                client.send(message)
                local.append((time.perf_counter() - due) * 1000)
                due += gaps.expovariate(rate / senders)
        with lock:
            latencies.extend(local)

    threads = [
        threading.Thread(target=run, args=(batch[i::senders], i))
        for i in range(senders)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def heavy_sender(
    server: Server, corpus: Iterator[bytes], stop: threading.Event
) -> dict[str, int]:
    """Send messages at the limits back to back until told to stop; ACK codes."""
    codes: dict[str, int] = {}
    with MllpSender(server.host, server.port, timeout=300) as client:
        for message in corpus:
            if stop.is_set():
                break
            code = ack_code(client.send(message)) or "none"
            codes[code] = codes.get(code, 0) + 1
    return codes


def trickle(server: Server, count: int, stop: threading.Event) -> dict[str, int]:
    """Hold ``count`` connections, each sending one byte a second of an endless frame."""
    selector = selectors.DefaultSelector()
    stats = {"opened": 0, "closed_by_server": 0}

    def connect() -> None:
        sock = socket.create_connection((server.host, server.port), timeout=30)
        sock.setblocking(False)
        sock.sendall(b"\x0bMSH|^~\\&|")
        selector.register(sock, selectors.EVENT_READ)
        stats["opened"] += 1

    for _ in range(count):
        connect()
    while not stop.is_set():
        started = time.monotonic()
        for key in list(selector.get_map().values()):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                sock.send(b"x")
            except OSError:
                selector.unregister(sock)
                sock.close()
                stats["closed_by_server"] += 1
                connect()
        for key, _ in selector.select(timeout=0):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            with contextlib.suppress(OSError):
                if sock.recv(4096):
                    continue
            selector.unregister(sock)
            sock.close()
            stats["closed_by_server"] += 1
            connect()
        stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    return stats


@dataclass
class Phases:
    """The normal senders' latencies (ms) in each phase, and what the others got."""

    alone: list[float]
    beside_heavy: list[float]
    beside_slow: list[float]
    heavy: dict[str, int]
    trickled: dict[str, int]
    limits: LimitsSettings

    def ratios(self) -> tuple[float, float]:
        """p99 beside the sender at the limits, and beside the slow connections, over p99 alone."""
        base = percentile(self.alone, 99)
        return (
            percentile(self.beside_heavy, 99) / base,
            percentile(self.beside_slow, 99) / base,
        )


def phases(args: argparse.Namespace) -> Phases:
    """The three phases on one server, in alternating rounds.

    The machine is shared: its load drifts over a run. Alternating the
    phases (alone, at the limits, trickling; again and again) spreads the
    drift over all three instead of charging it to one.
    """
    per_round = int(args.rate * args.seconds / args.rounds)
    corpus = iter(messages(per_round * (3 * args.rounds + 1), seed=31))

    def next_batch() -> list[bytes]:
        return [next(corpus) for _ in range(per_round)]

    limits = LimitsSettings()
    env = dict(ENV)
    if args.max_order_groups:
        limits = LimitsSettings(max_order_groups=args.max_order_groups)
        env["CAIRN_LIMITS__MAX_ORDER_GROUPS"] = str(args.max_order_groups)
    # Distinct messages all through the run (a resend would be answered
    # from the journal, which is no work at all).
    heavy_corpus = iter(heavy_messages(100 * args.rounds, limits))
    alone: list[float] = []
    beside_heavy: list[float] = []
    beside_slow: list[float] = []
    heavy: dict[str, int] = {}
    trickled: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.database:
            upgrade(args.database)
        server = start_server(Path(tmp), args.database, extra_env=env)
        try:
            # Warm-up: the first messages pay for imports and caches.
            normal_senders(server, next_batch(), args.senders, args.rate)
            for _ in range(args.rounds):
                alone += normal_senders(server, next_batch(), args.senders, args.rate)

                stop = threading.Event()
                worker = threading.Thread(
                    target=lambda stop=stop: _add(
                        heavy, heavy_sender(server, heavy_corpus, stop)
                    )
                )
                worker.start()
                beside_heavy += normal_senders(
                    server, next_batch(), args.senders, args.rate
                )
                stop.set()
                worker.join()

                stop = threading.Event()
                slow = threading.Thread(
                    target=lambda stop=stop: _add(
                        trickled, trickle(server, args.slow, stop)
                    )
                )
                slow.start()
                time.sleep(2)  # every slow connection open before the phase starts
                beside_slow += normal_senders(
                    server, next_batch(), args.senders, args.rate
                )
                stop.set()
                slow.join()
        finally:
            server.stop()
    return Phases(alone, beside_heavy, beside_slow, heavy, trickled, limits)


def run(args: argparse.Namespace) -> list[str]:
    """The three phases (:func:`phases`); the result lines."""
    lines = [header()]
    backend = "PostgreSQL" if args.database else "SQLite (WAL, synchronous=FULL)"
    measured = phases(args)
    alone, beside_heavy, beside_slow = (
        measured.alone,
        measured.beside_heavy,
        measured.beside_slow,
    )
    heavy, trickled, limits = measured.heavy, measured.trickled, measured.limits
    base = percentile(alone, 99)
    what = (
        f"{args.senders} normal sender(s) at {args.rate:g} msgs/s in all, "
        f"Poisson arrivals, {args.seconds:g} s a phase in {args.rounds} rounds, "
        f"{backend}"
    )
    lines.append(
        f"normal senders alone ({what}): p50 {percentile(alone, 50):.1f} ms, "
        f"p99 {base:.1f} ms ({len(alone)} messages)"
    )
    lines.append(
        f"beside a sender at the limits (VXU of {limits.max_order_groups} order "
        f"groups, one over it, Z44 of {limits.max_query_identifiers} QPD-3 ids, back "
        f"to back; answers {dict(sorted(heavy.items()))}): p50 "
        f"{percentile(beside_heavy, 50):.1f} ms, p99 {percentile(beside_heavy, 99):.1f}"
        f" ms = {percentile(beside_heavy, 99) / base:.2f}x alone"
    )
    lines.append(
        f"beside {args.slow} connections trickling a byte a second "
        f"({trickled}): p50 {percentile(beside_slow, 50):.1f} ms, p99 "
        f"{percentile(beside_slow, 99):.1f} ms = "
        f"{percentile(beside_slow, 99) / base:.2f}x alone"
    )
    for line in lines:
        print(line, flush=True)
    return lines


def cost() -> list[str]:
    """The writer's time for one ordinary VXU and for VXUs at growing limits."""
    import statistics

    from config import load_settings, with_overrides
    from engine.app import build_pipeline
    from engine.logging import configure_logging
    from engine.pipeline import Inbound
    from storage import open_database

    configure_logging("json", "error")
    lines = [header()]
    with tempfile.TemporaryDirectory() as tmp:
        settings = with_overrides(
            load_settings(None, environ={}), server={"data_dir": tmp}
        )
        db = open_database(f"sqlite:///{tmp}/cairn.sqlite3")
        db.upgrade(tuple(r.code for r in settings.regions))
        pipeline = build_pipeline(settings, db)

        def each(batch: list[bytes]) -> list[float]:
            times = []
            for message in batch:
                started = time.perf_counter()
                pipeline.process_batch([Inbound(message, "bench:1", "mllp")])
                times.append((time.perf_counter() - started) * 1000)
            return times

        normal = messages(300, seed=3)
        each(normal[:100])  # warm-up
        parts = [f"ordinary VXU median {statistics.median(each(normal[100:])):.1f} ms"]
        for groups in (50, 100, 250):
            corpus = heavy_messages(18, LimitsSettings(max_order_groups=groups), groups)
            # Control ids of their own (each corpus counts from 1 again).
            at_limit = [
                m.replace(b"|SYN", f"|G{groups}-".encode(), 1) for m in corpus[::3]
            ]
            parts.append(
                f"{groups} order groups ({len(at_limit[0]) // 1024} KiB) median "
                f"{statistics.median(each(at_limit)):.0f} ms"
            )
        db.close()
    lines.append("writer time per message, in process, SQLite: " + "; ".join(parts))
    print("\n".join(lines), flush=True)
    return lines


def _add(total: dict[str, int], more: dict[str, int]) -> None:
    for key, value in more.items():
        total[key] = total.get(key, 0) + value


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument(
        "--seconds", type=float, default=40.0, help="length of each phase, in all"
    )
    parser.add_argument("--slow", type=int, default=300)
    parser.add_argument(
        "--rounds", type=int, default=4, help="alternations of the three phases"
    )
    parser.add_argument(
        "--max-order-groups",
        type=int,
        default=0,
        help="run the server with this limits.max_order_groups (0: the default)",
    )
    parser.add_argument(
        "--database", default=None, help="PostgreSQL URL (default: embedded SQLite)"
    )
    parser.add_argument(
        "--cost",
        action="store_true",
        help="measure the writer's time per message at the limits, in process",
    )
    args = parser.parse_args()
    if args.cost:
        cost()
    else:
        run(args)


if __name__ == "__main__":
    main()
