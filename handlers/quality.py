"""Data quality per sender: what an interface analyst checks during onboarding.

``cairn report quality --sender S --since D`` reads the sender's journaled
messages and their stored answers and counts, without touching the
registry's tables:

- **outcomes**: the acknowledgement code each message got (AA, AE, AR, or
  none: a message that asked for no answer, or is still in flight);
- **issues**: the ERR segments of the answers, grouped by severity, HL7
  table 0357 code, table 0533 code and location, most frequent first, each
  with an example control id (``cairn messages --control-id`` finds it);
- **timeliness**: for each dose the sender administered (RXA-9 ``00``,
  given, not a deletion), the days from administration (RXA-3) to receipt;
- **completeness**: of those doses, how many carry a lot number (RXA-15),
  VFC/funding eligibility (OBX 64994-7) and the date a VIS was given
  (OBX 29769-7); of the messages with a patient, how many carry a phone
  (PID-13) and an address (PID-11).

Doses reported as historical (RXA-9 other than ``00``) are counted but not
timed: their administration date is the past a record was copied from, not
the sender's delay. Messages that were refused (AR) are counted under
outcomes and issues only: their content was not accepted, so it says nothing
about what the sender's stored data look like.

No figure or text here carries patient data. ERR-8 texts are shown only for
issues located outside the patient's own segments (PID, PD1, NK1, PV1), so
that a message echoing a value cannot leak it into a report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Protocol

from handlers.reporting import Chart, Table, bar_chart, render_html
from parsers.acks import ReportedError, read_errors
from parsers.codes import GIVEN, NOT_A_VACCINE, ActionCode, InformationSource, Loinc
from parsers.datatypes import parse_date
from parsers.decoding import decode_message
from parsers.errors import ParseError
from parsers.tokenizer import tokenize
from parsers.views import OrderGroup, read_vxu

#: Segments whose values are the patient's: their ERR-8 texts are not shown.
_PATIENT_SEGMENTS = frozenset({"PID", "PD1", "NK1", "PV1", "PV2", "IN1"})

#: The timeliness buckets, as (label, lowest day count, highest day count).
TIMELINESS_BUCKETS: tuple[tuple[str, int, int], ...] = (
    ("same or next day", 0, 1),
    ("2-7 days", 2, 7),
    ("8-30 days", 8, 30),
    ("31-365 days", 31, 365),
    ("over a year", 366, 10**9),
)
#: A dose dated after the message that reported it.
AFTER_RECEIPT = "dated after receipt"
#: A dose whose RXA-3 is missing or not a date (validation said so in the ACK).
NO_DATE = "no usable date"

#: The completeness measures, in report order.
COMPLETENESS_FIELDS: tuple[tuple[str, str], ...] = (
    ("lot", "lot number (RXA-15)"),
    ("vfc", "VFC eligibility (OBX 64994-7)"),
    ("vis", "VIS given (OBX 29769-7)"),
    ("phone", "patient phone (PID-13)"),
    ("address", "patient address (PID-11)"),
)


class JournalRecord(Protocol):
    """What the report reads of one journal row (storage's JournalEntry fits)."""

    @property
    def control_id(self) -> str: ...

    @property
    def message_type(self) -> str: ...

    @property
    def received_at(self) -> datetime: ...

    @property
    def raw(self) -> bytes: ...

    @property
    def response(self) -> bytes | None: ...

    @property
    def ack_code(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class IssueCount:
    """One kind of ERR, how often it came and one message that had it."""

    severity: str
    hl7_code: str
    app_code: str
    location: str
    count: int
    example_control_id: str
    #: ERR-8 of the example, or "" where it could echo patient data
    text: str


@dataclass(frozen=True, slots=True)
class Completeness:
    """How many of the records that should carry a field do."""

    key: str
    label: str
    present: int
    total: int

    @property
    def percent(self) -> float | None:
        """Share present, in percent (one decimal); None when nothing was counted."""
        return round(100.0 * self.present / self.total, 1) if self.total else None


@dataclass(frozen=True)
class QualityReport:
    """The data-quality figures of one sender over a period."""

    sender: str
    since: datetime | None
    until: datetime | None
    messages: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    errors: tuple[IssueCount, ...] = ()
    warnings: tuple[IssueCount, ...] = ()
    administered_doses: int = 0
    historical_doses: int = 0
    timeliness: tuple[tuple[str, int], ...] = ()
    completeness: tuple[Completeness, ...] = ()


@dataclass
class _Tally:
    messages: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    issues: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    examples: dict[tuple[str, str, str, str], tuple[str, str]] = field(
        default_factory=dict
    )
    administered: int = 0
    historical: int = 0
    timeliness: Counter[str] = field(default_factory=Counter)
    present: Counter[str] = field(default_factory=Counter)
    totals: Counter[str] = field(default_factory=Counter)


def build_quality_report(
    sender: str,
    records: Iterable[JournalRecord],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    top: int = 10,
) -> QualityReport:
    """Count one sender's outcomes, issues, timeliness and completeness.

    Args:
        sender: the sending facility the records came from (for the title).
        records: the sender's journal rows over the period, in any order.
        since: the period's start (for the title only).
        until: the period's end (for the title only).
        top: how many error and warning kinds to keep, most frequent first.
    """
    tally = _Tally()
    for record in records:
        tally.messages += 1
        tally.outcomes[record.ack_code or "none"] += 1
        _count_issues(tally, record)
        if record.ack_code != "AR" and record.message_type.startswith("VXU"):
            _count_content(tally, record)
    return QualityReport(
        sender=sender,
        since=since,
        until=until,
        messages=tally.messages,
        outcomes=dict(sorted(tally.outcomes.items())),
        errors=_top(tally, "E", top),
        warnings=_top(tally, "W", top),
        administered_doses=tally.administered,
        historical_doses=tally.historical,
        timeliness=tuple(
            (label, tally.timeliness[label])
            for label in (
                *(b[0] for b in TIMELINESS_BUCKETS),
                AFTER_RECEIPT,
                NO_DATE,
            )
        ),
        completeness=tuple(
            Completeness(key, label, tally.present[key], tally.totals[key])
            for key, label in COMPLETENESS_FIELDS
        ),
    )


def _count_issues(tally: _Tally, record: JournalRecord) -> None:
    for err in read_errors(record.response or b""):
        if err.severity not in {"E", "W"}:
            continue
        key = (err.severity, err.hl7_code, err.app_code, err.location)
        tally.issues[key] += 1
        if key not in tally.examples:
            tally.examples[key] = (record.control_id, _shown_text(err))


def _shown_text(err: ReportedError) -> str:
    segment = err.location.split("-", 1)[0]
    return "" if segment in _PATIENT_SEGMENTS else err.text


def _top(tally: _Tally, severity: str, top: int) -> tuple[IssueCount, ...]:
    kinds = [(count, key) for key, count in tally.issues.items() if key[0] == severity]
    # Most frequent first; ties in code and location order, so output is stable.
    kinds.sort(key=lambda item: (-item[0], item[1]))
    return tuple(
        IssueCount(*key, count, *tally.examples[key]) for count, key in kinds[:top]
    )


def _count_content(tally: _Tally, record: JournalRecord) -> None:
    try:
        view = read_vxu(tokenize(decode_message(record.raw).text))
    except ParseError:
        return
    if view.patient is not None:
        tally.totals["phone"] += 1
        tally.totals["address"] += 1
        if any(p.digits or p.email for p in view.patient.phones):
            tally.present["phone"] += 1
        if any(not a.is_empty for a in view.patient.addresses):
            tally.present["address"] += 1
    received = record.received_at.date()
    for group in view.orders:
        _count_dose(tally, group, received)


def _count_dose(tally: _Tally, group: OrderGroup, received: date) -> None:
    rxa = group.administration
    if rxa is None or rxa.vaccine.code in NOT_A_VACCINE:
        return
    if rxa.action_code == ActionCode.DELETE:
        return
    if rxa.completion_status and rxa.completion_status not in GIVEN:
        return
    if rxa.information_source.code != InformationSource.NEW_RECORD:
        tally.historical += 1
        return
    tally.administered += 1
    given = parse_date(rxa.start).value
    if given is None:
        tally.timeliness[NO_DATE] += 1
    else:
        days = (received - given).days
        tally.timeliness[_bucket(days)] += 1
    observed = {o.code.code for o in group.observations}
    for key, present in (
        ("lot", any(lot.strip() for lot in rxa.lot_numbers)),
        ("vfc", Loinc.FUNDING_ELIGIBILITY in observed),
        ("vis", Loinc.VIS_PRESENTED in observed),
    ):
        tally.totals[key] += 1
        tally.present[key] += int(present)


def _bucket(days: int) -> str:
    if days < 0:
        return AFTER_RECEIPT
    for label, low, high in TIMELINESS_BUCKETS:
        if low <= days <= high:
            return label
    raise AssertionError(f"no bucket for {days} days")  # the last bucket is open


# -- the report's layout: tables for the terminal and CSV, charts for HTML --


def quality_tables(report: QualityReport) -> list[Table]:
    """The report's sections as tables, in the order they are printed."""
    total = report.messages

    def share(count: int, of: int) -> float | str:
        return round(100.0 * count / of, 1) if of else "-"

    outcomes = Table(
        "outcomes",
        "Outcomes",
        ("acknowledgement", "messages", "%"),
        tuple(
            (_OUTCOME_LABELS.get(code, code), count, share(count, total))
            for code, count in report.outcomes.items()
        ),
        note=f"{total} message(s) journaled for this sender in the period",
    )

    def issues(name: str, title: str, kinds: tuple[IssueCount, ...]) -> Table:
        return Table(
            name,
            title,
            ("location", "HL7 code", "app code", "count", "example control id", "text"),
            tuple(
                (
                    k.location or "-",
                    k.hl7_code,
                    k.app_code or "-",
                    k.count,
                    k.example_control_id,
                    k.text,
                )
                for k in kinds
            ),
            note="ERR segments of the answers, most frequent first "
            "(codes: HL7 tables 0357 and 0533; texts about the patient's own "
            "segments are not shown)",
        )

    timeliness = Table(
        "timeliness",
        "Timeliness of administered doses",
        ("days from administration to receipt", "doses", "%"),
        tuple(
            (label, count, share(count, report.administered_doses))
            for label, count in report.timeliness
        ),
        note=f"{report.administered_doses} dose(s) administered by the sender "
        f"(RXA-9 00); {report.historical_doses} historical dose(s) not timed",
    )
    completeness = Table(
        "completeness",
        "Completeness of key fields",
        ("field", "present", "of", "%"),
        tuple(
            (c.label, c.present, c.total, "-" if c.percent is None else c.percent)
            for c in report.completeness
        ),
        note="lot, VFC and VIS per administered dose; phone and address per "
        "message with a patient",
    )
    return [
        outcomes,
        issues("errors", "Top errors", report.errors),
        issues("warnings", "Top warnings", report.warnings),
        timeliness,
        completeness,
    ]


def quality_charts(report: QualityReport) -> list[Chart]:
    """One chart per section: outcomes, issues, timeliness, completeness."""
    outcomes = list(report.outcomes.items())
    kinds = [*report.errors, *report.warnings]
    return [
        bar_chart(
            "outcomes",
            "Messages by acknowledgement",
            [_OUTCOME_LABELS.get(code, code) for code, _n in outcomes],
            {"messages": [n for _c, n in outcomes]},
            ylabel="messages",
        ),
        bar_chart(
            "issues",
            "Errors and warnings by code and location",
            [f"{k.location or '-'} {k.hl7_code}/{k.app_code or '-'}" for k in kinds],
            {
                "errors": [k.count if k.severity == "E" else 0 for k in kinds],
                "warnings": [k.count if k.severity == "W" else 0 for k in kinds],
            },
            ylabel="ERR segments",
        ),
        bar_chart(
            "timeliness",
            "Days from administration to receipt",
            [label for label, _n in report.timeliness],
            {"doses": [n for _l, n in report.timeliness]},
            ylabel="doses",
        ),
        bar_chart(
            "completeness",
            "Key fields present (%)",
            [c.key for c in report.completeness],
            {"present": [c.percent or 0.0 for c in report.completeness]},
            ylabel="%",
        ),
    ]


def quality_html(report: QualityReport, generated: str) -> str:
    """The report as one self-contained HTML page, its charts embedded."""
    return render_html(
        "report.html",
        title=f"Data quality: {report.sender}",
        meta=[
            ("Sender", report.sender),
            ("Since", report.since or "the first message"),
            ("Until", report.until or "now"),
            ("Messages", report.messages),
        ],
        tables=quality_tables(report),
        charts=quality_charts(report),
        footer=f"Cairn immunization information system. Generated {generated}.",
    )


def quality_json(report: QualityReport) -> dict[str, object]:
    """The report as plain JSON-ready data."""
    return {
        "sender": report.sender,
        "since": report.since.isoformat() if report.since else None,
        "until": report.until.isoformat() if report.until else None,
        "messages": report.messages,
        "outcomes": report.outcomes,
        "errors": [asdict(k) for k in report.errors],
        "warnings": [asdict(k) for k in report.warnings],
        "administered_doses": report.administered_doses,
        "historical_doses": report.historical_doses,
        "timeliness": dict(report.timeliness),
        "completeness": {
            c.key: {"present": c.present, "total": c.total, "percent": c.percent}
            for c in report.completeness
        },
    }


_OUTCOME_LABELS = {
    "AA": "AA (accepted)",
    "AE": "AE (accepted with errors)",
    "AR": "AR (rejected)",
    "none": "no answer",
}
