"""``cairn replay``: re-run journaled messages through today's rules.

After a validation rule, a matching threshold or the CDSi data changes, an
operator asks what the registry would look like had today's rules been in
force. Replay answers on a scratch database, never on the registry:

1. every VXU in the journal, oldest first, goes through today's pipeline
   (the same configuration, code tables and CDSi data ``cairn serve`` loads)
   on a fresh SQLite database in a temporary directory, so that matching and
   de-duplication see the same history they saw then;
2. the messages in scope (``--since``, ``--until``, ``--sender``,
   ``--control-id``) are compared with what they left in the registry
   (handlers/replay.py): answers, doses, patient records;
3. ``--dry-run`` prints the differences and changes nothing. Without it,
   the differences are applied in one audited run:

   - in one transaction: dose rows the replay adds are filed on the
     message's patient, rows it would not store are withdrawn (kept, marked
     deleted, as RXA-21 ``D`` does), de-duplication marks are set as the
     replay set them; records that would be one become review items
     (``cairn review``): a merge is a person's decision; a record that
     would split is listed, for the same reason; one audit row records the
     run and its counts;
   - then messages that were refused (AR) and today's rules accept are
     filed through the registry's own pipeline, as new journal rows whose
     peer names the replay run.

Queries are not replayed: they change no data, and answering one again
would disclose a record again.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from engine import app
from engine.commands._common import add_database_options, settings_from
from engine.commands.messages import when
from engine.logging import configure_logging
from engine.pipeline import Inbound
from handlers.replay import FiledMessage, ReplayDiff, compare, describe
from storage import (
    Database,
    JournalEntry,
    NewAuditEntry,
    NewReviewItem,
    StorageError,
    open_database,
)
from storage.replay import ReplayStore

#: Messages handed to the scratch pipeline at once (one transaction each).
_BATCH = 64


def register(subparsers: Any) -> None:
    """Add the ``replay`` sub-command."""
    parser = subparsers.add_parser(
        "replay",
        help="re-run journaled VXUs through today's rules; show or apply what differs",
    )
    add_database_options(parser)
    parser.add_argument(
        "--since",
        type=when,
        required=True,
        help="messages received at or after (ISO date or date-time)",
    )
    parser.add_argument(
        "--until", type=when, help="messages received at or before (ISO)"
    )
    parser.add_argument("--sender", help="only this sending facility (MSH-4)")
    parser.add_argument("--control-id", help="only this message control id (MSH-10)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would differ and change nothing",
    )
    parser.add_argument(
        "--scratch-dir",
        type=Path,
        help="where the scratch database goes (default: the system's temporary "
        "directory; it is deleted afterwards)",
    )
    parser.set_defaults(func=run_replay)


def _replayable(entry: JournalEntry) -> bool:
    return entry.message_type.startswith("VXU")


def run_replay(args: argparse.Namespace) -> int:
    """Replay on a scratch database, print the differences, apply them unless dry."""
    settings = settings_from(args)
    # The report is the output. Per-message events (debug, info) and the
    # scratch run's warnings (an unregistered sender, a reused control id:
    # what the journaled answers already said) would bury it; errors show.
    configure_logging(settings.logging.format, "error")
    try:
        live = app.open_registry_database(settings, upgrade=False)
    except StorageError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    try:
        scope = [
            e.id
            for e in live.journal_scan(
                sender=args.sender,
                control_id=args.control_id,
                since=args.since,
                until=args.until,
            )
            if _replayable(e)
        ]
        if not scope:
            print(
                "cairn: replay: no VXU in the journal matches --since/--until/"
                "--sender/--control-id",
                file=sys.stderr,
            )
            return 1
        with tempfile.TemporaryDirectory(
            prefix="cairn-replay-", dir=args.scratch_dir
        ) as tmp:
            scratch = open_database(f"sqlite:///{Path(tmp) / 'replay.sqlite3'}")
            try:
                scratch.upgrade()
                run = _Run(live, scratch, settings)
                run.replay()
                diff = run.compare(scope)
                for line in describe(diff):
                    print(line)
                if args.dry_run or diff.empty:
                    print(
                        "dry run: nothing changed"
                        if args.dry_run
                        else "nothing to apply"
                    )
                    return 0
                for line in run.apply(diff):
                    print(line)
            finally:
                scratch.close()
    except StorageError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    finally:
        live.close()
    return 0


class _Run:
    """One replay: the scratch run, the comparison, and applying it."""

    def __init__(self, live: Database, scratch: Database, settings: Any) -> None:
        self.live = live
        self.scratch = scratch
        self.settings = settings
        #: live journal id -> scratch journal id
        self.mapping: dict[int, int] = {}
        self.live_entries: dict[int, JournalEntry] = {}
        self.started = datetime.now(UTC)

    def replay(self) -> None:
        """Every VXU of the journal, oldest first, through today's pipeline on scratch."""
        pipeline = app.build_pipeline(self.settings, self.scratch)
        self.identity = app.build_identity(self.settings, self.live)
        self.principals: dict[str, Any] = {}
        batch: list[JournalEntry] = []
        entries = (e for e in self.live.journal_scan() if _replayable(e))
        for entry in tqdm(entries, desc="replaying", unit="msg", file=sys.stderr):
            self.live_entries[entry.id] = entry
            batch.append(entry)
            if len(batch) == _BATCH:
                self._file(pipeline, batch)
                batch = []
        if batch:
            self._file(pipeline, batch)

    def _file(self, pipeline: Any, batch: Sequence[JournalEntry]) -> None:
        outcomes = pipeline.process_batch(
            [
                Inbound(e.raw, e.peer or "replay", "replay", principal=self._as(e))
                for e in batch
            ]
        )
        for entry, outcome in zip(batch, outcomes, strict=True):
            if outcome.journal_id is not None:
                self.mapping[entry.id] = outcome.journal_id

    def _as(self, entry: JournalEntry) -> Any:
        """The organization owning the message's sending facility, if one does.

        Journaled messages are filed again as an authenticated listener
        would file them: as the organization (region, role, facility ids)
        that owns the MSH-4 the journal keyed them by; a sender no
        organization owns is filed by the [[facilities]] map, as on an open
        listener.
        """
        if entry.sender not in self.principals:
            self.principals[entry.sender] = self.identity.principal_for_facility(
                entry.sender
            )
        return self.principals[entry.sender]

    def compare(self, scope: Sequence[int]) -> ReplayDiff:
        """Read both sides and compare the messages in scope."""
        everything = sorted(self.mapping)
        with self.live.reading() as uow:
            store = ReplayStore(uow.connection)
            live_doses = store.doses_of(scope)
            live_patients = store.patients_of(everything)
            self.live_patients = live_patients
            merged_by_review = store.merged_by_review()
            survivors = store.survivors()
        back = {s: j for j, s in self.mapping.items()}
        scratch_entries = {e.id: e for e in self.scratch.journal_scan()}
        with self.scratch.reading() as uow:
            store = ReplayStore(uow.connection)
            new_doses = store.doses_of(
                [self.mapping[j] for j in scope if j in self.mapping]
            )
            new_patients = store.patients_of(list(back))
        live = {
            j: FiledMessage(
                j,
                e.sender,
                e.control_id,
                e.ack_code or "",
                e.response or b"",
                tuple(live_doses.get(j, ())),
                live_patients.get(j),
            )
            for j, e in self.live_entries.items()
        }
        replayed = {}
        for j, s in self.mapping.items():
            entry = scratch_entries[s]
            replayed[j] = FiledMessage(
                j,
                entry.sender,
                entry.control_id,
                entry.ack_code or "",
                entry.response or b"",
                tuple(new_doses.get(s, ())),
                new_patients.get(s),
            )
        return compare(
            live,
            replayed,
            scope,
            merged_by_review=merged_by_review,
            survivors=survivors,
        )

    def apply(self, diff: ReplayDiff) -> list[str]:
        """Apply the differences in one audited run; what was done, as lines."""
        now = datetime.now(UTC)
        added = withdrawn = remarked = reviews = 0
        refile: list[int] = []
        with self.scratch.reading() as uow:
            source = ReplayStore(uow.connection)
            wanted = [d.id for m in diff.messages for d in m.doses_added]
            rows = source.dose_rows(wanted)
            observations = {
                dose_id: source.observation_rows([dose_id]) for dose_id in wanted
            }
        with self.live.transaction() as uow:
            store = ReplayStore(uow.connection)
            for m in diff.messages:
                patient = self.live_patients.get(m.journal_id)
                if m.ack_before == "AR" and m.ack_after in {"AA", "AE"}:
                    refile.append(m.journal_id)
                    continue
                for dose in m.doses_added:
                    if patient is None:
                        continue
                    store.add_dose(
                        rows[dose.id],
                        observations[dose.id],
                        patient_id=patient,
                        journal_id=m.journal_id,
                        now=now,
                    )
                    added += 1
                for dose in m.doses_removed:
                    if not dose.deleted:
                        store.withdraw_dose(dose.id, now)
                        withdrawn += 1
                for change in m.dedup_changed:
                    if change.replayed.duplicate_of is None:
                        store.set_duplicate_of(
                            change.live.id, None, "replay: not a duplicate", now
                        )
                        remarked += 1
            for p in diff.patients:
                if p.kind != "merge":
                    continue
                region = self._region_of(p.groups)
                for other in p.live_patients[1:]:
                    uow.review.insert(
                        NewReviewItem(
                            region=region,
                            kind="patient",
                            left_id=p.live_patients[0],
                            right_id=other,
                            score=0.0,
                            reasons="replay: today's matching files these "
                            "records' messages on one patient",
                            created_at=now,
                        )
                    )
                    reviews += 1
            uow.audit.insert(
                NewAuditEntry(
                    at=now,
                    requester="cairn replay",
                    requester_region="",
                    patient_id=None,
                    patient_region=None,
                    journal_id=None,
                    query_tag="",
                    action="replay",
                    outcome="applied",
                    profile="",
                    detail=(
                        f"in scope {diff.in_scope}; doses added {added}, withdrawn "
                        f"{withdrawn}, de-duplication changed {remarked}; merge "
                        f"reviews {reviews}; refused messages re-filed {len(refile)}"
                    )[:300],
                )
            )
        refiled = self._refile(refile, now)
        return [
            f"applied: {added} dose(s) added, {withdrawn} withdrawn, {remarked} "
            f"de-duplication mark(s) changed, {reviews} review item(s) for records "
            f"that would be one, {refiled} refused message(s) re-filed",
            *(
                f"patient #{p.live_patients[0]} would split: left as it is "
                "(separating a record is a person's decision)"
                for p in diff.patients
                if p.kind == "split"
            ),
        ]

    def _region_of(self, groups: Iterable[tuple[int, ...]]) -> str:
        for group in groups:
            for journal_id in group:
                entry = self.live_entries.get(journal_id)
                if entry is not None and entry.region:
                    return entry.region
        return ""

    def _refile(self, journal_ids: Sequence[int], now: datetime) -> int:
        """File once-refused messages through the registry's own pipeline."""
        if not journal_ids:
            return 0
        pipeline = app.build_pipeline(self.settings, self.live)
        peer = f"replay {now.strftime('%Y%m%dT%H%M%SZ')}"
        outcomes = pipeline.process_batch(
            [
                Inbound(
                    self.live_entries[j].raw,
                    peer,
                    "replay",
                    principal=self._as(self.live_entries[j]),
                )
                for j in journal_ids
            ]
        )
        return sum(1 for o in outcomes if o.ack_code in {"AA", "AE"})
