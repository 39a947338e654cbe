"""What the VXU inventory draw-down costs the writer, measured against itself in one run.

Rates are VXUs per CPU second of the process (the pipeline and SQLite run
in it); wall time on a shared machine is too noisy to show a few percent.

Generates VXUs whose doses were all administered by the sender (RXA-9 00,
with lots), and runs them through the real pipeline (``process_batch``,
100 messages a transaction, SQLite with synchronous=NORMAL) three times,
each on a fresh database, interleaved and repeated to damp drift:

- ``off``: the draw-down patched out (the code before issue 19);
- ``no lots``: the sender keeps no inventory (one look-up per message);
- ``lots``: the sender has a lot for every dose (a look-up per dose, one
  transaction row each).

Run: .venv/bin/python -m bench.inventory [--messages 3000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import structlog

from bench._common import header
from bench.synth import Synth
from engine.pipeline import Inbound, MessagePipeline, Route, SenderPolicy
from handlers.codes import CodeTables
from handlers.inventory import Facility, InventoryService
from handlers.vxu import VxuHandler
from storage import open_database

SENDER = "CLINIC1"


def _messages(count: int) -> tuple[list[bytes], set[tuple[str, str]]]:
    synth = Synth(seed=19)
    out: list[bytes] = []
    lots: set[tuple[str, str]] = set()
    while len(out) < count:
        person = synth.person()
        events = [
            dataclasses.replace(e, clinic=SENDER) for e in synth.doses_for(person)
        ]
        if not events:
            continue
        lots.update((e.lot.upper(), e.cvx) for e in events)
        sub = synth.vxu(person, events, sender=SENDER, mrn=f"M{person.person_id:08d}")
        out.append(sub.text.encode())
    return out, lots


def _once(
    tmp: Path, mode: str, messages: list[bytes], lots: set[tuple[str, str]], codes: Any
) -> float:
    db = open_database(
        f"sqlite:///{tmp}/{mode.replace(' ', '-')}-{time.monotonic_ns()}.sqlite3",
        sqlite_synchronous="NORMAL",
    )
    db.upgrade()
    if mode == "lots":
        with db.transaction() as uow:
            service = InventoryService(uow.inventory, uow, lambda: datetime.now(UTC))
            for lot, cvx in sorted(lots):
                service.receive(
                    Facility("BAY", SENDER),
                    cvx=cvx,
                    mvx="MSD",
                    lot_number=lot,
                    expires_on=date(2099, 12, 31),
                    funding="VFC",
                    quantity=100_000,
                    on=date(2020, 1, 1),
                    by="bench",
                )
    pipeline = MessagePipeline(
        database=db,
        routes={"VXU": Route(VxuHandler(codes), "VXU_V04")},
        senders=SenderPolicy({SENDER: "BAY"}, "reject", "BAY"),
    )
    original: Callable[..., Any] = InventoryService.draw_down
    if mode == "off":
        InventoryService.draw_down = lambda self, origin, doses: []  # type: ignore[method-assign]
    try:
        # CPU time of this process (the pipeline and SQLite run in it): on
        # a machine shared with other work, wall time moved by 2x between
        # two runs of the same mode; CPU time is what the draw-down adds.
        started = time.process_time()
        for i in range(0, len(messages), 100):
            pipeline.process_batch(
                [Inbound(m, "bench", "bench") for m in messages[i : i + 100]]
            )
        elapsed = time.process_time() - started
    finally:
        InventoryService.draw_down = original  # type: ignore[method-assign]
    with db.engine.connect() as conn:
        drawn = conn.exec_driver_sql(
            "SELECT count(*) FROM inventory_transactions WHERE kind = 'administered'"
        ).scalar()
    db.close()
    if mode == "lots":
        assert drawn, "no dose drew its lot down"
    else:
        assert drawn == 0
    return len(messages) / elapsed


def run(args: argparse.Namespace) -> list[str]:
    """Measure the three modes; return the result lines."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING)
    )
    messages, lots = _messages(args.messages)
    codes = CodeTables.load()
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        modes = ["off", "no lots", "lots"]
        for n in range(args.rounds):
            # Each round starts with another mode: the first run of a round
            # pays for a cold cache, and the machine is shared.
            for mode in modes[n % 3 :] + modes[: n % 3]:
                rate = _once(Path(tmp), mode, messages, lots, codes)
                best[mode] = max(best.get(mode, 0.0), rate)
    base = best["off"]
    lines = [header()]
    lines.append(
        f"{len(messages)} VXU, every dose administered by the sender, 100 per transaction, "
        f"best of {args.rounds}: "
        + "; ".join(
            f"{m} {best[m]:.0f} VXU per CPU s ({best[m] / base:.2f}x off)"
            for m in ("off", "no lots", "lots")
        )
    )
    return lines


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000, help="VXUs per run")
    parser.add_argument(
        "--rounds", type=int, default=2, help="repetitions of each mode"
    )
    for line in run(parser.parse_args()):
        print(line)


if __name__ == "__main__":
    main()
