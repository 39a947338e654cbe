"""The patient immunization record ("yellow card"): what a parent is handed, as HTML or PDF.

The record is read once, through the services a Z44 uses, so it can never
show more than a query would:

- disclosure (:mod:`handlers.disclosure`): the requesting organization sees
  patients of the regions it may search; a locked record (PD1-12 ``Y``) only
  as far as it submitted the data itself; a locked record it did not submit
  to is refused exactly like a patient that does not exist;
- the evaluated history and the forecast per vaccine group
  (:class:`handlers.forecasting.CdsiForecastService`, CDC's CDSi logic);
- every disclosure, and every refusal, is audited (action ``record``).

Layout is :mod:`handlers.reporting`'s (``handlers/templates/patient_record.html``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import TYPE_CHECKING

from handlers.disclosure import Access, access_of, read_view
from handlers.reporting import Table, render_html
from handlers.roles import View
from parsers.codes import GIVEN, NOT_A_VACCINE
from storage import NewAuditEntry

if TYPE_CHECKING:
    from handlers.disclosure import PatientView
    from handlers.forecast_outcome import ForecastOutcome, GroupRecommendation
    from handlers.forecasting import CdsiForecastService
    from storage import UnitOfWork

__all__ = [
    "ForecastRow",
    "HistoryRow",
    "PatientRecord",
    "PatientRecordService",
    "RecordAnswer",
    "Requester",
]

#: The audit row's action and profile of a printed record.
AUDIT_ACTION = "record"
AUDIT_PROFILE = "RECORD"

#: Text of a code in a table (``""`` when unknown): vaccine and relationship names.
TextOf = Callable[[str, str], str]

_SEX = {"F": "Female", "M": "Male", "U": "Unknown", "X": "Non-binary", "O": "Other"}

#: The vaccine group a dose is listed under when CDSi evaluates it for none.
OTHER_GROUP = "Other vaccines"

#: Vaccine groups whose next dose cannot be given for longer than this (a
#: child's zoster, say) are named in a note instead of filling the table.
HORIZON_YEARS = 10

#: CDSi's group statuses in a parent's words.
_STATUS_WORDS = {
    "Aged Out": "Past recommended age",
    "Contraindicated": "Not to be given (contraindication)",
    "Not Recommended": "Not recommended",
}

#: The order of the forecast table: what needs doing first.
_STATUS_ORDER = {"Overdue": 0, "Due now": 1, "Due later": 2, "Not complete": 3}


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asks for the record.

    Attributes:
        organization: the organization (its staff print the record).
        region: the organization's own region.
        visible_regions: the regions it may search (its own; all in
            statewide mode).
        scope: its role's view (handlers/roles.py): ``requirements``
            (schools, child care) sees doses and forecast, no contact
            details or guardians.
    """

    organization: str
    region: str
    visible_regions: tuple[str, ...]
    scope: View = "full"


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One dose as the record lists it, under one vaccine group."""

    vaccine_group: str
    given_on: date
    vaccine: str
    cvx: str
    dose_number: str
    valid: bool | None
    validity: str
    given_by: str
    lot: str
    #: why CDSi did not count the dose (empty when valid or not evaluated)
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ForecastRow:
    """The forecast of one vaccine group as of the record's date."""

    vaccine_group: str
    status: str
    dose_number: str
    earliest: date | None
    due: date | None
    overdue: date | None


@dataclass(frozen=True, slots=True)
class PatientRecord:
    """Everything the printed record shows, and nothing else."""

    registry: str
    requester: str
    patient_id: int
    region: str
    name: str
    birth_date: date | None
    sex: str
    guardians: tuple[str, ...]
    access: Access
    as_of: date
    history: tuple[HistoryRow, ...]
    forecast: tuple[ForecastRow, ...]
    release: str
    forecast_note: str = ""
    #: False for a ``requirements`` view: guardians are not shown
    contacts_shown: bool = True

    def tables(self) -> list[Table]:
        """The history and the forecast as report tables (terminal, CSV)."""
        return [
            Table(
                "history",
                "Vaccination history",
                (
                    "vaccine group",
                    "date given",
                    "vaccine",
                    "dose",
                    "validity",
                    "given by",
                    "lot",
                ),
                tuple(
                    (
                        r.vaccine_group,
                        r.given_on,
                        r.vaccine,
                        r.dose_number,
                        r.validity,
                        r.given_by,
                        r.lot,
                    )
                    for r in self.history
                ),
                empty="no vaccinations recorded",
            ),
            Table(
                "forecast",
                f"Recommended next doses as of {self.as_of.isoformat()}",
                ("vaccine group", "status", "dose", "earliest", "due", "overdue after"),
                tuple(
                    (
                        f.vaccine_group,
                        f.status,
                        f.dose_number,
                        f.earliest,
                        f.due,
                        f.overdue,
                    )
                    for f in self.forecast
                ),
                note=self.forecast_note,
                empty="no forecast",
            ),
        ]

    def html(self, printed: datetime) -> str:
        """The record as a printable HTML page."""
        groups: dict[str, list[HistoryRow]] = {}
        for row in self.history:
            groups.setdefault(row.vaccine_group, []).append(row)
        return render_html(
            "patient_record.html",
            record=self,
            groups=groups,
            printed=printed.strftime("%Y-%m-%d %H:%M UTC"),
        )


@dataclass(frozen=True, slots=True)
class RecordAnswer:
    """The record, or why it is not shown (the audit row is written either way)."""

    record: PatientRecord | None
    refusal: str = ""


class PatientRecordService:
    """Reads one patient for one organization, evaluates and forecasts, and audits it.

    Args:
        forecaster: the CDSi service (None: the record says the forecast is
            unavailable, and why).
        text: names of codes (``CVX``, ``HL70063``) for the page.
        registry: the registry's name, printed on the record.
        forecaster_error: why there is no forecaster.
    """

    def __init__(
        self,
        forecaster: CdsiForecastService | None,
        text: TextOf,
        registry: str,
        forecaster_error: str = "",
    ) -> None:
        self._forecaster = forecaster
        self._text = text
        self._registry = registry
        self._forecaster_error = forecaster_error

    def read(
        self,
        uow: UnitOfWork,
        requester: Requester,
        region: str,
        patient_id: int,
        as_of: date,
        at: datetime,
    ) -> RecordAnswer:
        """The record of ``patient_id`` in ``region`` as ``requester`` may see it.

        A patient of a region the requester may not search, one that does
        not exist, and a locked one it never submitted to get the same
        refusal, so the answer does not tell them apart; each is audited
        with its own outcome.
        """
        refusal = (
            f"no patient {patient_id} in region {region} that "
            f"{requester.organization} may see"
        )
        if region not in requester.visible_regions:
            self._audit(uow, requester, at, None, region, "other-region", patient_id)
            return RecordAnswer(None, refusal)
        survivor = uow.patients.survivor(region, patient_id)
        stored = uow.patients.get(region, survivor)
        if stored is None:
            self._audit(uow, requester, at, None, region, "not_found", patient_id)
            return RecordAnswer(None, refusal)
        access = access_of(uow, requester.organization, stored)
        if access == "hidden":
            self._audit(uow, requester, at, stored.id, region, "locked")
            return RecordAnswer(None, refusal)
        view = read_view(uow, requester.organization, stored, access, requester.scope)
        outcome = (
            self._forecaster.forecast(view, as_of)
            if self._forecaster is not None
            else None
        )
        self._audit(
            uow,
            requester,
            at,
            stored.id,
            region,
            "disclosed" if access == "full" else "disclosed-own",
        )
        return RecordAnswer(
            replace(
                self._record(requester, view, outcome, as_of),
                contacts_shown=requester.scope == "full",
            )
        )

    def _audit(
        self,
        uow: UnitOfWork,
        requester: Requester,
        at: datetime,
        patient_id: int | None,
        region: str,
        outcome: str,
        asked: int | None = None,
    ) -> None:
        uow.audit.insert(
            NewAuditEntry(
                at=at,
                requester=requester.organization,
                requester_region=requester.region,
                patient_id=patient_id,
                patient_region=region,
                journal_id=None,
                query_tag="",
                action=AUDIT_ACTION,
                outcome=outcome,
                profile=AUDIT_PROFILE,
                detail=f"asked for registry id {asked}" if asked is not None else "",
            )
        )

    def _record(
        self,
        requester: Requester,
        view: PatientView,
        outcome: ForecastOutcome | None,
        as_of: date,
    ) -> PatientRecord:
        p = view.record
        name = " ".join(
            part
            for part in (p.given_name, p.middle_name, p.family_name, p.suffix)
            if part
        )
        # Each clinic reports the same mother: list each person once.
        guardians = tuple(
            dict.fromkeys(
                _guardian(
                    k.given_name, k.family_name, self._text("HL70063", k.relationship)
                )
                for k in view.next_of_kin
                if k.family_name or k.given_name
            )
        )
        history: list[HistoryRow] = []
        for dose in view.doses:
            if dose.completion_status not in GIVEN or dose.cvx in NOT_A_VACCINE:
                continue
            vaccine = self._text("CVX", dose.cvx) or dose.cvx_text or f"CVX {dose.cvx}"
            evaluations = outcome.evaluations.get(dose.id, ()) if outcome else ()
            common = {
                "given_on": dose.administered_on,
                "vaccine": vaccine,
                "cvx": dose.cvx,
                "given_by": dose.sending_facility,
                "lot": dose.lot_numbers.split("~")[0],
            }
            if not evaluations:
                history.append(
                    HistoryRow(
                        vaccine_group=OTHER_GROUP,
                        dose_number="",
                        valid=None,
                        validity="not evaluated",
                        **common,  # type: ignore[arg-type]
                    )
                )
            for ev in evaluations:
                history.append(
                    HistoryRow(
                        vaccine_group=ev.vaccine_group,
                        dose_number=ev.dose_number,
                        valid=ev.valid,
                        validity="valid"
                        if ev.valid
                        else "not valid" + (f": {ev.reason}" if ev.reason else ""),
                        reason="" if ev.valid else ev.reason,
                        **common,  # type: ignore[arg-type]
                    )
                )
        history.sort(
            key=lambda r: (r.vaccine_group == OTHER_GROUP, r.vaccine_group, r.given_on)
        )
        rows = [
            _forecast_row(g, as_of)
            for g in (outcome.recommendations if outcome else ())
        ]
        horizon = _years_after(as_of, HORIZON_YEARS)
        later = [r for r in rows if r.earliest is not None and r.earliest > horizon]
        forecast = tuple(sorted((r for r in rows if r not in later), key=_urgency))
        if outcome is None:
            note = (
                f"Forecast not available: {self._forecaster_error or 'no CDSi data'}."
            )
        elif later:
            names = ", ".join(sorted(r.vaccine_group for r in later))
            note = (
                f"Not due for more than {HORIZON_YEARS} years, so not listed: {names}."
            )
        else:
            note = ""
        return PatientRecord(
            registry=self._registry,
            requester=requester.organization,
            patient_id=p.id,
            region=p.region,
            name=name,
            birth_date=p.birth_date,
            sex=_SEX.get(p.sex or "", p.sex or ""),
            guardians=guardians,
            access=view.access,
            as_of=as_of,
            history=tuple(history),
            forecast=forecast,
            release=outcome.release if outcome else "",
            forecast_note=note,
        )


def _guardian(given: str, family: str, relationship: str) -> str:
    name = " ".join(part for part in (given, family) if part)
    return f"{name} ({relationship.lower()})" if relationship else name


def _years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _urgency(row: ForecastRow) -> tuple[int, date, str]:
    """Overdue first, then due now, then due later by date; complete and the like last."""
    return (
        _STATUS_ORDER.get(row.status, 9),
        row.due or row.earliest or date.max,
        row.vaccine_group,
    )


def _forecast_row(g: GroupRecommendation, as_of: date) -> ForecastRow:
    """A vaccine group's forecast in a parent's words: overdue, due now, due later, complete."""
    if g.status == "Not Complete":
        if g.past_due is not None and as_of >= g.past_due:
            status = "Overdue"
        elif g.recommended is not None and as_of >= g.recommended:
            status = "Due now"
        elif g.recommended is not None or g.earliest is not None:
            status = "Due later"
        else:
            status = "Not complete"
        return ForecastRow(
            g.vaccine_group,
            status,
            g.dose_number,
            g.earliest,
            g.recommended,
            g.past_due,
        )
    return ForecastRow(
        g.vaccine_group, _STATUS_WORDS.get(g.status, g.status), "", None, None, None
    )
