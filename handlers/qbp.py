"""The QBP^Q11 handler: Z34 (history) and Z44 (evaluated history and forecast).

Validation follows the VXU path and reports through the same ERR values. The
patient is found with :mod:`handlers.matching`; the region and lock rules
decide what the requester may see; every disclosure and every refused or
locked lookup writes an audit row.

Outcomes (REFERENCE §8.2):

======================================  =======  =====  =====
situation                               profile  MSA-1  QAK-2
======================================  =======  =====  =====
Z34, one match                          Z32      AA     OK
Z34, several candidates within RCP-2    Z31      AA     OK
more candidates than RCP-2 allows       Z33      AA     TM
no match (or only locked records)       Z33      AA     NF
Z44, one match                          Z42      AA     OK
Z44, only possible matches              Z33      AA     NF
query with content errors               Z33      AE     AE
unknown query name                      Z33      AR     AR
======================================  =======  =====  =====
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING, Literal

from handlers.authorization import check_role
from handlers.context import CodeLookup, Logger, MessageContext
from handlers.disclosure import Access, PatientView, access_of, read_view
from handlers.forecast_outcome import ForecastOutcome, ForecastService
from handlers.matching import Candidate, PatientMatcher
from handlers.roles import Operation
from handlers.rsp_body import (
    patient_segments,
    recommendation_segments,
    vaccination_segments,
)
from parsers import (
    AppError,
    Hl7Error,
    Issue,
    Location,
    Message,
    PersonName,
    Severity,
    finding,
)
from parsers.builder import OutSegment
from parsers.datatypes import parse_date
from parsers.query import (
    QueryParameters,
    QueryResponse,
    QueryStatus,
    QueryView,
    read_query,
)
from parsers.tokenizer import CONTROL_CHARACTERS
from storage import NewAuditEntry

if TYPE_CHECKING:
    from storage import PatientRecord, UnitOfWork

#: The query names this registry answers (HL7 table 0471 values of the IG).
QUERY_NAMES = {
    "Z34": "Request Immunization History",
    "Z44": "Request Evaluated History and Forecast",
}

#: The most candidates this registry lists, whatever RCP-2 asks for, unless
#: configured otherwise (``query.max_candidates``).
MAX_CANDIDATES = 10


@dataclass(frozen=True, slots=True)
class QueryAnswer:
    """What a query's read step decided: the response and the audit rows to write.

    Attributes:
        response: the RSP^K11 decision.
        audits: the disclosures and refused look-ups to audit, in order; their
            journal row is set when they are written.
    """

    response: QueryResponse
    audits: tuple[NewAuditEntry, ...]


@dataclass(frozen=True, slots=True)
class QueryPolicy:
    """Which regions a requester may search (statewide mode joins them all)."""

    statewide: bool
    regions: tuple[str, ...]

    def visible_regions(self, own: str) -> tuple[str, ...]:
        """The regions a requester from region ``own`` sees."""
        return self.regions if self.statewide else (own,)


class QbpHandler:
    """Answers Z34 and Z44 queries.

    Args:
        codes: code tables.
        policy: region visibility.
        forecaster: the forecast service, or None when no CDSi release is installed.
        matcher: the patient matcher shared with the VXU path.
        max_candidates: the most patients one answer lists, whatever RCP-2
            asks for.
        registry: the registry's name (``registry.name``), the assigning
            authority of its own ids in answers (PID-3 SR, ORC-3).
    """

    #: Queries read; MSH-11 T or D does not make them a dry run (their
    #: disclosure is real and audited).
    writes_registry = False

    def __init__(
        self,
        codes: CodeLookup,
        policy: QueryPolicy,
        forecaster: ForecastService | None,
        matcher: PatientMatcher | None = None,
        forecaster_error: Callable[[], str] | None = None,
        max_candidates: int = MAX_CANDIDATES,
        registry: str = "CAIRN",
    ) -> None:
        self._codes = codes
        self._max_candidates = max_candidates
        #: registry.name: the assigning authority of the registry's own ids
        #: (PID-3 SR, ORC-3 of returned doses)
        self._registry = registry
        self._policy = policy
        self._forecaster = forecaster
        self._matcher = matcher or PatientMatcher()
        self._forecaster_error = forecaster_error

    def handle(
        self, message: Message, ctx: MessageContext, uow: UnitOfWork, log: Logger
    ) -> QueryResponse:
        """Validate the query, find the patient, apply region and lock, and answer.

        Both steps in the caller's transaction: :meth:`read`, then :meth:`record`.
        """
        return self.record(self.read(message, ctx, uow, log), ctx, uow)

    def record(
        self, answer: QueryAnswer, ctx: MessageContext, uow: UnitOfWork
    ) -> QueryResponse:
        """The write step: insert the answer's audit rows under this message's journal row.

        Args:
            answer: what :meth:`read` decided.
            ctx: the message's context, with its journal row.
            uow: the writer's unit of work.

        Returns:
            The response to encode and store.
        """
        for entry in answer.audits:
            uow.audit.insert(replace(entry, journal_id=ctx.journal_id))
        return answer.response

    def read(
        self, message: Message, ctx: MessageContext, uow: UnitOfWork, log: Logger
    ) -> QueryAnswer:
        """The read step: validate, search, apply region and lock, build the answer.

        Writes nothing, so it may run on a read-only unit of work outside the
        writer's transaction; the audit rows it decides are returned for
        :meth:`record` (their journal row is set there).

        Args:
            message: the tokenized QBP^Q11.
            ctx: the message's context (its journal row may not exist yet).
            uow: a unit of work to read from (read-only is enough).
            log: the message's bound logger.

        Returns:
            The response and the audit rows to insert with it.
        """
        audits: list[NewAuditEntry] = []
        response = self._answer(message, ctx, uow, log, audits)
        return QueryAnswer(response, tuple(audits))

    def _answer(
        self,
        message: Message,
        ctx: MessageContext,
        uow: UnitOfWork,
        log: Logger,
        audits: list[NewAuditEntry],
    ) -> QueryResponse:
        view = read_query(message)
        params = view.parameters
        tag = params.query_tag if params else ""
        name_raw = params.query_name_raw if params else ""
        qpd_raw = params.raw if params else None
        issues: list[Issue] = []

        def error(
            ack: Literal["AE", "AR"], status: QueryStatus, outcome: str
        ) -> QueryResponse:
            self._audit(audits, ctx, None, tag, "rejected", "Z33")
            return QueryResponse(
                ack,
                status,
                "Z33",
                tuple(issues),
                tag,
                name_raw,
                qpd_raw,
                (),
                outcome,
                ctx.region,
            )

        if params is None:
            issues.append(
                finding(
                    Severity.ERROR,
                    Hl7Error.SEGMENT_SEQUENCE_ERROR,
                    at=Location("QPD", 1),
                    app=AppError.REQUIRED_DATA_MISSING,
                    text="QPD segment is missing; query cannot be processed",
                )
            )
            return error("AE", "AE", "rejected: no QPD")
        query_name = params.query_name.code
        if query_name not in QUERY_NAMES:
            issues.append(
                finding(
                    Severity.ERROR,
                    Hl7Error.TABLE_VALUE_NOT_FOUND,
                    at=Location("QPD", params.occurrence, 1),
                    app=AppError.TABLE_VALUE_NOT_FOUND,
                    text="QPD-1 (query name) is not Z34 or Z44; query rejected",
                )
            )
            return error("AR", "AR", "rejected: unknown query name")
        operation = (
            Operation.QUERY_FORECAST if query_name == "Z44" else Operation.QUERY_HISTORY
        )
        denied = check_role(ctx, operation, query_name)
        if denied is not None:
            # Before any search: a refused role learns nothing of the registry.
            issues.append(denied.issue)
            audits.append(denied.audit)
            log.info("message_refused_role", role=ctx.role.value)
            return QueryResponse(
                "AR",
                "AR",
                "Z33",
                tuple(issues),
                tag,
                name_raw,
                qpd_raw,
                (),
                "rejected: " + denied.audit.detail,
                ctx.region,
            )
        if not params.query_tag:
            issues.append(
                finding(
                    Severity.ERROR,
                    Hl7Error.REQUIRED_FIELD_MISSING,
                    at=Location("QPD", params.occurrence, 2),
                    app=AppError.REQUIRED_DATA_MISSING,
                    text="QPD-2 (query tag) is missing",
                )
            )
        for field_no, label, values in (
            (2, "QPD-2 (query tag)", (params.query_tag,)),
            (3, "QPD-3 (patient identifier)", _identifier_values(params)),
            (4, "QPD-4 (patient name)", _name_values(params.name)),
            (
                5,
                "QPD-5 (mother's maiden name)",
                _name_values(params.mother_maiden_name),
            ),
        ):
            if any(_CONTROL.search(v) for v in values):
                issues.append(
                    finding(
                        Severity.ERROR,
                        Hl7Error.DATA_TYPE_ERROR,
                        at=Location("QPD", params.occurrence, field_no),
                        app=AppError.INVALID_VALUE,
                        text=f"{label} contains a control character; query rejected",
                    )
                )
        limit, limit_problem = self._limit(view, issues)
        birth = parse_date(params.birth_date)
        if birth.problem:
            issues.append(
                finding(
                    Severity.ERROR,
                    Hl7Error.DATA_TYPE_ERROR,
                    at=Location("QPD", params.occurrence, 6),
                    app=AppError.INVALID_DATE,
                    text=f"QPD-6 (birth date) {birth.problem}",
                )
            )
        if params.sex and not self._codes.has("HL70001", params.sex):
            issues.append(
                finding(
                    Severity.WARNING,
                    Hl7Error.TABLE_VALUE_NOT_FOUND,
                    at=Location("QPD", params.occurrence, 7),
                    app=AppError.TABLE_VALUE_NOT_FOUND,
                    text="QPD-7 (sex) is not F, M or U; ignored",
                )
            )
        has_keys = bool(params.identifiers) or (
            bool(params.name.family) and birth.value is not None
        )
        if not has_keys:
            issues.append(
                finding(
                    Severity.ERROR,
                    Hl7Error.REQUIRED_FIELD_MISSING,
                    at=Location("QPD", params.occurrence, 3),
                    app=AppError.REQUIRED_DATA_MISSING,
                    text="no search keys: QPD-3 (identifier) or QPD-4 (name) with QPD-6 (birth date) is required",
                )
            )
        if limit_problem or any(i.severity == Severity.ERROR for i in issues):
            return error("AE", "AE", "rejected: query content errors")

        refused: list[tuple[PatientRecord, str]] = []
        candidates = self._search(uow, ctx, view, birth.value, refused)
        for record, why in refused:
            self._audit(
                audits,
                ctx,
                Candidate(record, "none", ()),
                params.query_tag,
                "id-conflict",
                "Z33",
                why,
            )
        visible, hidden, access = self._apply_lock(uow, ctx, candidates)
        for cand in hidden:
            self._audit(audits, ctx, cand, params.query_tag, "locked", "Z33")
        matches = [c for c in visible if c.outcome == "match"]
        log.info("query_searched", query_name=query_name, candidates=len(visible))

        if query_name == "Z44":
            if len(matches) == 1:
                return self._evaluated(
                    uow, audits, ctx, view, matches[0], access, tuple(issues)
                )
            status: QueryStatus = "TM" if len(matches) > 1 else "NF"
            if status == "TM" or not hidden:  # a locked NF is audited as "locked"
                self._audit(
                    audits,
                    ctx,
                    None,
                    params.query_tag,
                    "too_many" if status == "TM" else "not_found",
                    "Z33",
                )
            return QueryResponse(
                "AA",
                status,
                "Z33",
                tuple(issues),
                params.query_tag,
                name_raw,
                qpd_raw,
                (),
                f"Z44 {status}",
                ctx.region,
            )

        if len(matches) == 1:
            return self._history(
                uow, audits, ctx, view, matches[0], access, tuple(issues)
            )
        if not visible:
            if not hidden:  # a locked NF is audited as "locked", one row as here
                self._audit(audits, ctx, None, params.query_tag, "not_found", "Z33")
            return QueryResponse(
                "AA",
                "NF",
                "Z33",
                tuple(issues),
                params.query_tag,
                name_raw,
                qpd_raw,
                (),
                "Z34 NF",
                ctx.region,
            )
        if len(visible) > limit:
            self._audit(audits, ctx, None, params.query_tag, "too_many", "Z33")
            return QueryResponse(
                "AA",
                "TM",
                "Z33",
                tuple(issues),
                params.query_tag,
                name_raw,
                qpd_raw,
                (),
                "Z34 TM",
                ctx.region,
            )
        body: list[OutSegment] = []
        for number, cand in enumerate(visible, start=1):
            shown = _shown(uow, ctx, cand, access, params)
            body.extend(self._patient_segments(shown, number, ctx.today))
            self._audit(audits, ctx, cand, params.query_tag, _disclosed(shown), "Z31")
        return QueryResponse(
            "AA",
            "OK",
            "Z31",
            tuple(issues),
            params.query_tag,
            name_raw,
            qpd_raw,
            tuple(body),
            f"Z31 {len(visible)} candidates",
            ctx.region,
        )

    # -- parts ---------------------------------------------------------------

    def _patient_segments(
        self, shown: PatientView, number: int, today: date
    ) -> list[OutSegment]:
        """PID, PD1 and NK1 of a patient view, as every answer writes them."""
        return list(
            patient_segments(
                shown,
                number,
                today,
                include_pd1=True,
                text=self._codes.text,
                registry=self._registry,
            )
        )

    def _dose_segments(
        self, shown: PatientView, outcome: ForecastOutcome | None
    ) -> list[OutSegment]:
        """ORC/RXA/RXR/OBX of every dose of a patient view (evaluated when given)."""
        return vaccination_segments(shown, outcome, self._codes.text, self._registry)

    def _limit(self, view: QueryView, issues: list[Issue]) -> tuple[int, bool]:
        rcp = view.limit
        cap = self._max_candidates
        if rcp is None:
            issues.append(
                finding(
                    Severity.WARNING,
                    Hl7Error.REQUIRED_FIELD_MISSING,
                    at=Location("RCP", 1),
                    app=AppError.REQUIRED_DATA_MISSING,
                    text=f"RCP segment is missing; at most {cap} candidates returned",
                )
            )
            return cap, False
        if rcp.priority and rcp.priority != "I":
            issues.append(
                finding(
                    Severity.WARNING,
                    Hl7Error.TABLE_VALUE_NOT_FOUND,
                    at=Location("RCP", rcp.occurrence, 1),
                    app=AppError.TABLE_VALUE_NOT_FOUND,
                    text="RCP-1 (query priority) should be I",
                )
            )
        if not rcp.quantity:
            return cap, False
        if not rcp.quantity.isdigit() or int(rcp.quantity) < 1:
            issues.append(
                finding(
                    Severity.ERROR,
                    Hl7Error.DATA_TYPE_ERROR,
                    at=Location("RCP", rcp.occurrence, 2),
                    app=AppError.INVALID_VALUE,
                    text="RCP-2 (quantity limited request) is not a positive whole number",
                )
            )
            return cap, True
        if rcp.unit and rcp.unit.upper() != "RD":
            issues.append(
                finding(
                    Severity.WARNING,
                    Hl7Error.TABLE_VALUE_NOT_FOUND,
                    at=Location("RCP", rcp.occurrence, 2),
                    app=AppError.TABLE_VALUE_NOT_FOUND,
                    text="RCP-2 unit should be RD (records)",
                )
            )
        return min(int(rcp.quantity), cap), False

    def _search(
        self,
        uow: UnitOfWork,
        ctx: MessageContext,
        view: QueryView,
        birth_date: date | None,
        refused: list[tuple[PatientRecord, str]],
    ) -> list[Candidate]:
        params = view.parameters
        assert params is not None
        found: list[Candidate] = []
        identifiers = [(i.value, i.authority) for i in params.identifiers]
        for region in self._policy.visible_regions(ctx.region):
            found.extend(
                self._matcher.search(
                    uow.patients,
                    region,
                    identifiers,
                    params.name.family,
                    params.name.given,
                    birth_date,
                    params.sex if params.sex in {"F", "M", "U"} else "",
                    refused,
                )
            )
        return found

    def _apply_lock(
        self, uow: UnitOfWork, ctx: MessageContext, candidates: Sequence[Candidate]
    ) -> tuple[list[Candidate], list[Candidate], dict[int, Access]]:
        """Split candidates into visible and locked-from-this-requester.

        The access of each visible candidate is kept for :func:`read_view`.
        When no candidate was found, one look-up of the same shape is made
        anyway, so that an empty search and a locked record cost the same
        (a locked record's NF must not be told from a real NF by its time).
        """
        visible: list[Candidate] = []
        hidden: list[Candidate] = []
        shown: dict[int, Access] = {}
        if not candidates:
            # The reads of access_of for one unmerged record.
            uow.patients.merged_into(ctx.region, 0)
            uow.patients.submitters(ctx.region, 0)
        for cand in candidates:
            access = access_of(uow, ctx.sender, cand.patient)
            if access == "hidden":
                hidden.append(cand)
            else:
                shown[cand.patient.id] = access
                visible.append(cand)
        return visible, hidden, shown

    def _history(
        self,
        uow: UnitOfWork,
        audits: list[NewAuditEntry],
        ctx: MessageContext,
        view: QueryView,
        cand: Candidate,
        access: dict[int, Access],
        issues: tuple[Issue, ...],
    ) -> QueryResponse:
        params = view.parameters
        assert params is not None
        shown = _shown(uow, ctx, cand, access, params)
        body = self._patient_segments(shown, 1, ctx.today)
        body.extend(self._dose_segments(shown, None))
        self._audit(audits, ctx, cand, params.query_tag, _disclosed(shown), "Z32")
        return QueryResponse(
            "AA",
            "OK",
            "Z32",
            issues,
            params.query_tag,
            params.query_name_raw,
            params.raw,
            tuple(body),
            "Z32 history",
            ctx.region,
        )

    def _evaluated(
        self,
        uow: UnitOfWork,
        audits: list[NewAuditEntry],
        ctx: MessageContext,
        view: QueryView,
        cand: Candidate,
        access: dict[int, Access],
        issues: tuple[Issue, ...],
    ) -> QueryResponse:
        params = view.parameters
        assert params is not None
        shown = _shown(uow, ctx, cand, access, params)
        extra = list(issues)
        body = self._patient_segments(shown, 1, ctx.today)
        outcome = None
        if self._forecaster is None:
            reason = (
                self._forecaster_error()
                if self._forecaster_error
                else "no CDSi supporting data is installed"
            )
            extra.append(
                finding(
                    Severity.WARNING,
                    Hl7Error.APPLICATION_INTERNAL_ERROR,
                    at=Location("QPD", params.occurrence, 1),
                    text=f"forecast not available: {reason}; evaluated history and forecast omitted",
                )
            )
        else:
            outcome = self._forecaster.forecast(shown, ctx.today)
        body.extend(self._dose_segments(shown, outcome))
        if outcome is not None:
            body.extend(
                recommendation_segments(
                    outcome,
                    ctx.today,
                    sum(1 for seg in body if seg.id == "OBX"),
                    self._registry,
                )
            )
        self._audit(audits, ctx, cand, params.query_tag, _disclosed(shown), "Z42")
        return QueryResponse(
            "AA",
            "OK",
            "Z42",
            tuple(extra),
            params.query_tag,
            params.query_name_raw,
            params.raw,
            tuple(body),
            "Z42 evaluated history",
            ctx.region,
        )

    @staticmethod
    def _audit(
        audits: list[NewAuditEntry],
        ctx: MessageContext,
        cand: Candidate | None,
        tag: str,
        outcome: str,
        profile: str,
        detail: str = "",
    ) -> None:
        audits.append(
            NewAuditEntry(
                at=ctx.received_at,
                requester=ctx.sender,
                requester_region=ctx.region,
                patient_id=cand.patient.id if cand else None,
                patient_region=cand.patient.region if cand else None,
                journal_id=ctx.journal_id,
                query_tag=_CONTROL.sub("", tag)[:64],
                action="query",
                outcome=outcome,
                profile=profile,
                detail=detail[:300],
            )
        )


#: C0, DEL and C1 control characters: never part of a query's values.
_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")


def _identifier_values(params: QueryParameters) -> tuple[str, ...]:
    return tuple(v for i in params.identifiers for v in (i.value, i.authority))


def _shown(
    uow: UnitOfWork,
    ctx: MessageContext,
    cand: Candidate,
    access: dict[int, Access],
    params: QueryParameters,
) -> PatientView:
    """What the requester may see of a candidate, with the identifiers its query named."""
    return read_view(
        uow, ctx.sender, cand.patient, access[cand.patient.id], ctx.view, _named(params)
    )


def _named(params: QueryParameters) -> tuple[tuple[str, str], ...]:
    """The (value, assigning authority) pairs a query named (QPD-3)."""
    return tuple((i.value, i.authority) for i in params.identifiers)


def _name_values(name: PersonName) -> tuple[str, ...]:
    return (name.family, name.given, name.middle)


def _disclosed(view: PatientView) -> str:
    """The audit outcome of a disclosure: whole, or a locked record's own data."""
    return "disclosed" if view.access == "full" else "disclosed-own"
