"""Replay: what today's rules would have done with messages already filed.

Operators replay after a validation rule, a matching threshold or the CDSi
data changes. ``cairn replay`` (engine/commands/replay.py) re-runs the
journal's registry-writing messages, oldest first, through today's pipeline
on a scratch database, then this module compares each message in scope with
what it left in the registry:

- **answers**: the acknowledgement code and the ERR segments (severity, HL7
  code, application code, location) of the answer it got then and would get
  now;
- **doses**: the dose rows the message stored, matched by what they say
  (CVX, date, lot, filler order number, source, completion status), not by
  row id: rows that would be added, rows that would not be stored any more,
  and rows whose de-duplication would differ;
- **patients**: which messages land on one patient record. A record that
  today's matching would split, and records it would merge, are listed. A
  merge a person decided in review is not a difference: replay does not
  redo people's decisions.

Everything here is plain data in, plain data out; nothing reads HL7 views
except the ERR reader for stored answers.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from parsers.acks import read_errors
from storage.replay import MessageDose

#: An ERR as replay compares it: severity, HL7 code, application code, location.
ErrKey = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class FiledMessage:
    """One journaled message and what it left behind, on one side."""

    journal_id: int
    sender: str
    control_id: str
    ack_code: str
    response: bytes
    doses: tuple[MessageDose, ...] = ()
    patient_id: int | None = None


@dataclass(frozen=True, slots=True)
class DoseChange:
    """A dose whose de-duplication differs: the live row and the replayed one."""

    live: MessageDose
    replayed: MessageDose


@dataclass(frozen=True)
class MessageDifference:
    """How one message's answer and doses would differ."""

    journal_id: int
    sender: str
    control_id: str
    ack_before: str
    ack_after: str
    errs_added: tuple[ErrKey, ...] = ()
    errs_removed: tuple[ErrKey, ...] = ()
    doses_added: tuple[MessageDose, ...] = ()
    doses_removed: tuple[MessageDose, ...] = ()
    dedup_changed: tuple[DoseChange, ...] = ()

    @property
    def answer_changed(self) -> bool:
        """Whether the ACK code or its ERR segments differ."""
        return (
            self.ack_before != self.ack_after
            or bool(self.errs_added)
            or bool(self.errs_removed)
        )

    @property
    def doses_changed(self) -> bool:
        """Whether any dose row would be added, withdrawn or de-duplicated differently."""
        return bool(self.doses_added or self.doses_removed or self.dedup_changed)


@dataclass(frozen=True, slots=True)
class PatientDifference:
    """Records today's matching would merge, or a record it would split.

    ``groups`` are the in-scope journal ids, one tuple per record: for a
    merge, per live record that would become one; for a split, per record
    the live one would become.
    """

    kind: str  # "merge" | "split"
    live_patients: tuple[int, ...]
    groups: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class ReplayDiff:
    """Everything a replay found, for the messages in scope."""

    replayed: int
    in_scope: int
    messages: tuple[MessageDifference, ...] = ()
    patients: tuple[PatientDifference, ...] = ()
    #: in-scope messages the scratch run did not journal (unreadable keys)
    not_replayed: tuple[int, ...] = field(default=())

    @property
    def empty(self) -> bool:
        """Whether today's rules would change nothing in scope."""
        return not (self.messages or self.patients)


def _errs(response: bytes) -> Counter[ErrKey]:
    return Counter(
        (e.severity, e.hl7_code, e.app_code, e.location)
        for e in read_errors(response)
        # MSA-level notes (code 0, information) carry no rule's verdict.
        if e.severity in {"E", "W"}
    )


def _diff_doses(
    live: Sequence[MessageDose], replayed: Sequence[MessageDose]
) -> tuple[tuple[MessageDose, ...], tuple[MessageDose, ...], tuple[DoseChange, ...]]:
    """(added, removed, de-duplicated differently), matching rows by their key."""
    waiting: dict[tuple[object, ...], list[MessageDose]] = defaultdict(list)
    for dose in live:
        waiting[dose.key].append(dose)
    added: list[MessageDose] = []
    changed: list[DoseChange] = []
    for dose in replayed:
        candidates = waiting.get(dose.key)
        if not candidates:
            added.append(dose)
            continue
        before = candidates.pop(0)
        if before.deleted != dose.deleted or (before.duplicate_of is None) != (
            dose.duplicate_of is None
        ):
            changed.append(DoseChange(before, dose))
    removed = [dose for rows in waiting.values() for dose in rows]
    removed.sort(key=lambda d: d.id)
    return tuple(added), tuple(removed), tuple(changed)


def compare_message(live: FiledMessage, replayed: FiledMessage) -> MessageDifference:
    """The differences between one message's live and replayed results."""
    before, after = _errs(live.response), _errs(replayed.response)
    added, removed, changed = _diff_doses(live.doses, replayed.doses)
    return MessageDifference(
        journal_id=live.journal_id,
        sender=live.sender,
        control_id=live.control_id,
        ack_before=live.ack_code,
        ack_after=replayed.ack_code,
        errs_added=tuple(sorted((after - before).elements())),
        errs_removed=tuple(sorted((before - after).elements())),
        doses_added=added,
        doses_removed=removed,
        dedup_changed=changed,
    )


def compare_patients(
    live: Mapping[int, int],
    replayed: Mapping[int, int],
    in_scope: Iterable[int],
    merged_by_review: set[int] | frozenset[int] = frozenset(),
    survivors: Mapping[int, int] | None = None,
) -> tuple[PatientDifference, ...]:
    """Records that would merge or split, for groups holding an in-scope message.

    Args:
        live: journal id -> live patient (merges followed).
        replayed: journal id (live numbering) -> scratch patient.
        in_scope: the journal ids the operator asked about.
        merged_by_review: live patients merged into another by a person.
        survivors: live merged id -> survivor, to recognise review merges.
    """
    scope = set(in_scope)
    both = [j for j in live if j in replayed]
    by_live: dict[int, set[int]] = defaultdict(set)
    by_replayed: dict[int, set[int]] = defaultdict(set)
    for j in both:
        by_live[live[j]].add(replayed[j])
        by_replayed[replayed[j]].add(live[j])
    reviewed_survivors = {(survivors or {}).get(p, p) for p in merged_by_review}
    found: list[PatientDifference] = []
    for patient, targets in sorted(by_live.items()):
        if len(targets) < 2 or patient in reviewed_survivors:
            continue
        groups = [
            tuple(sorted(j for j in both if live[j] == patient and replayed[j] == t))
            for t in sorted(targets)
        ]
        if any(j in scope for g in groups for j in g):
            found.append(PatientDifference("split", (patient,), tuple(groups)))
    for target, patients in sorted(by_replayed.items()):
        if len(patients) < 2:
            continue
        ordered = sorted(patients)
        groups = [
            tuple(sorted(j for j in both if replayed[j] == target and live[j] == p))
            for p in ordered
        ]
        if any(j in scope for g in groups for j in g):
            found.append(PatientDifference("merge", tuple(ordered), tuple(groups)))
    return tuple(found)


def compare(
    live: Mapping[int, FiledMessage],
    replayed: Mapping[int, FiledMessage],
    in_scope: Sequence[int],
    *,
    merged_by_review: set[int] | frozenset[int] = frozenset(),
    survivors: Mapping[int, int] | None = None,
) -> ReplayDiff:
    """Compare every in-scope message, and the patient records they land on.

    ``live`` and ``replayed`` are keyed by the live journal id; ``replayed``
    holds every message the scratch run re-filed (in scope or not), so that
    patient groupings take the whole history into account.
    """
    messages = []
    missing = []
    for journal_id in in_scope:
        before = live.get(journal_id)
        after = replayed.get(journal_id)
        if before is None:
            continue
        if after is None:
            missing.append(journal_id)
            continue
        difference = compare_message(before, after)
        if difference.answer_changed or difference.doses_changed:
            messages.append(difference)
    patients = compare_patients(
        {j: m.patient_id for j, m in live.items() if m.patient_id is not None},
        {j: m.patient_id for j, m in replayed.items() if m.patient_id is not None},
        in_scope,
        merged_by_review,
        survivors,
    )
    return ReplayDiff(
        replayed=len(replayed),
        in_scope=len(in_scope),
        messages=tuple(messages),
        patients=patients,
        not_replayed=tuple(missing),
    )


def describe(diff: ReplayDiff) -> list[str]:
    """The differences as lines for a person: ids, codes and locations only (no PHI)."""
    lines = [
        f"replayed {diff.replayed} message(s) on a scratch database; "
        f"{diff.in_scope} in scope; {len(diff.messages)} would be answered or "
        f"filed differently; {len(diff.patients)} patient record change(s)"
    ]
    for m in diff.messages:
        head = f"journal {m.journal_id} ({m.sender} {m.control_id}):"
        if m.answer_changed:
            lines.append(f"{head} ACK {m.ack_before or '--'} -> {m.ack_after or '--'}")
            lines.extend(f"    + ERR {' '.join(_err(e))}" for e in m.errs_added)
            lines.extend(f"    - ERR {' '.join(_err(e))}" for e in m.errs_removed)
        for dose in m.doses_added:
            lines.append(f"{head} dose CVX {dose.cvx} would be added")
        for dose in m.doses_removed:
            lines.append(f"{head} dose #{dose.id} (CVX {dose.cvx}) would not be stored")
        for change in m.dedup_changed:
            now = (
                "would become a duplicate"
                if change.replayed.duplicate_of
                else "would no longer be a duplicate"
            )
            lines.append(f"{head} dose #{change.live.id} (CVX {change.live.cvx}) {now}")
    for p in diff.patients:
        groups = " | ".join(",".join(str(j) for j in g) for g in p.groups)
        if p.kind == "merge":
            ids = ", ".join(f"#{i}" for i in p.live_patients)
            lines.append(f"patients {ids} would be one record (messages {groups})")
        else:
            lines.append(
                f"patient #{p.live_patients[0]} would be {len(p.groups)} records "
                f"(messages {groups})"
            )
    for journal_id in diff.not_replayed:
        lines.append(f"journal {journal_id}: not re-filed (its header cannot be keyed)")
    return lines


def _err(key: ErrKey) -> tuple[str, str, str]:
    severity, hl7_code, app_code, location = key
    return (severity, f"{hl7_code}/{app_code or '-'}", location or "-")
