"""``cairn load FILE...``: load batch files exported from an EHR, resumably.

Messages go through the same pipeline as MLLP traffic, many to a transaction
(group commit). The journal's (sending facility, MSH-10) key makes a rerun
resume where a stopped load left off: messages already loaded are answered
from the journal and stored nothing twice. The acknowledgements are written
to an acknowledgement file, one message per acknowledgement, in input order.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tqdm import tqdm

from engine.app import build_identity, build_pipeline, open_registry_database
from engine.commands._common import add_database_options, settings_from
from engine.logging import configure_logging
from engine.pipeline import Inbound
from parsers.batch import read_batch
from parsers.client import ack_code
from storage import StorageError


def register(subparsers: Any) -> None:
    """Add the ``load`` sub-command."""
    parser = subparsers.add_parser(
        "load", help="load HL7 batch files (FHS/BHS or plain) into the registry"
    )
    parser.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="batch files (FHS/BHS...BTS/FTS, or plain messages one after another);"
        " a rerun resumes where the last one stopped",
    )
    parser.add_argument(
        "--ack-file",
        metavar="PATH",
        help="where to write the acknowledgements (default FILE.ack)",
    )
    parser.add_argument(
        "--batch", type=int, default=200, help="messages per transaction (default 200)"
    )
    parser.add_argument(
        "--org",
        metavar="CODE",
        help="file the messages as this organization (cairn org add): its region"
        " and role apply and each MSH-4 must be one of its facility ids, as on an"
        " authenticated listener (default: trust MSH-4 and [[facilities]], as the"
        " open listener does)",
    )
    add_database_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load every file; print a summary of the acknowledgement codes."""
    settings = settings_from(args)
    configure_logging(settings.logging.format, "warning")
    try:
        db = open_registry_database(settings, upgrade=True)
    except StorageError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    principal = None
    if args.org:
        principal = build_identity(settings, db).principal_of(args.org)
        if principal is None:
            db.close()
            print(
                f"cairn: --org: no enabled organization {args.org!r} (cairn org list)",
                file=sys.stderr,
            )
            return 1
    pipeline = build_pipeline(settings, db)
    total: Counter[str] = Counter()
    started = time.perf_counter()
    count = 0
    # A bulk load changes the tables' make-up fastest of all: keep PostgreSQL's
    # planner statistics current as it goes (a no-op under autovacuum or SQLite).
    interval = settings.database.statistics_interval_seconds
    next_refresh = started + interval
    for name in args.files:
        path = Path(name)
        try:
            batch = read_batch(path.read_bytes())
        except OSError as exc:
            print(f"cairn: cannot read {path}: {exc}", file=sys.stderr)
            return 1
        if batch.trailer_count is not None and batch.trailer_count != len(
            batch.messages
        ):
            print(
                f"cairn: {path}: BTS-1 says {batch.trailer_count} messages, the file holds {len(batch.messages)}",
                file=sys.stderr,
            )
        ack_path = (
            Path(args.ack_file) if args.ack_file else path.with_name(path.name + ".ack")
        )
        with (
            ack_path.open("wb") as acks,
            tqdm(
                total=len(batch.messages),
                unit="msg",
                file=sys.stderr,
                disable=None,
                desc=path.name,
            ) as bar,
        ):
            for start in range(0, len(batch.messages), args.batch):
                chunk = batch.messages[start : start + args.batch]
                outcomes = pipeline.process_batch(
                    [Inbound(m, "file", str(path), principal=principal) for m in chunk]
                )
                for outcome in outcomes:
                    acks.write(outcome.payload + b"\n")
                    total[ack_code(outcome.payload) or "none"] += 1
                count += len(chunk)
                bar.update(len(chunk))
                if interval > 0 and time.perf_counter() >= next_refresh:
                    db.refresh_statistics()
                    next_refresh = time.perf_counter() + interval
        print(
            f"{path}: {len(batch.messages)} message(s); acknowledgements in {ack_path}"
        )
    if interval > 0:
        db.refresh_statistics()
    db.close()
    seconds = time.perf_counter() - started
    rate = count / seconds if seconds else 0.0
    print(
        f"loaded {count} message(s) in {seconds:.1f} s ({rate:.0f} msgs/s): "
        + "  ".join(f"{k} {v}" for k, v in sorted(total.items()))
    )
    return 0
