"""The VXU^V04 handler: a translator from a validated VXU to the registry's services.

The steps: validate (:mod:`handlers.vxu_validation`), file the patient
(:class:`handlers.patients.PatientService`), report the doses
(:class:`handlers.doses.DoseService`), and turn what the services did into
the acknowledgement's findings and counts. The registry's rules live in the
services; this module holds only the mapping between HL7 and them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import TYPE_CHECKING

from handlers.authorization import Refused, check_role
from handlers.context import CodeLookup, Logger, MessageContext
from handlers.dedup import DoseDeduplicator
from handlers.doses import DoseReport, DoseService
from handlers.filing import Origin
from handlers.inventory import (
    REASON_TEXT,
    AdministeredDose,
    DrawDown,
    InventoryService,
    funding_of,
)
from handlers.matching import PatientMatcher
from handlers.patients import FiledPatient, PatientService, PatientSubmission
from handlers.roles import Operation
from handlers.vxu_validation import (
    CleanDose,
    CleanNextOfKin,
    CleanPatient,
    ValidatedVxu,
    VxuValidator,
)
from parsers import (
    GIVEN,
    Acknowledgement,
    ActionCode,
    AppError,
    Hl7Error,
    InformationSource,
    Issue,
    Location,
    Message,
    Severity,
    ack_code_for,
    error,
    read_vxu,
    warning,
)
from storage import NewNextOfKin, NewObservation, NewPatient, NewVaccination

if TYPE_CHECKING:
    from storage import UnitOfWork


@dataclass(frozen=True, slots=True)
class VxuDecision:
    """A VXU read and validated: what the writer needs of it, and nothing else.

    Attributes:
        result: the validated patient, next of kin and doses, and the findings.
        orders: how many order groups the message carried.
    """

    result: ValidatedVxu
    orders: int


class VxuDecider:
    """Reads and validates a VXU: the part of the handler that needs no database.

    Picklable (the validator and its code tables), so that the engine can
    run it in a worker process.
    """

    def __init__(self, validator: VxuValidator) -> None:
        self._validator = validator

    def decide(self, message: Message, today: date) -> VxuDecision:
        """The message's views, validated; see :meth:`VxuHandler.decide`."""
        vxu = read_vxu(message)
        return VxuDecision(self._validator.validate(vxu, today), len(vxu.orders))


class VxuHandler:
    """Applies a VXU to the registry through the patient and dose services.

    Args:
        codes: code tables for validation.
        matcher: finds the stored patient a message is about.
        dedup: compares doses.
        review_score: the score of the review item for two doses that may
            be one (an "unsure" verdict).
        may_report_for: whether a sender may draw down the inventory of
            another facility named in RXA-11, beyond the facility ids of its
            authenticated organization. By default a sender draws down only
            its own lots and its organization's.
    """

    #: A VXU changes the registry: MSH-11 T or D makes it a dry run.
    writes_registry = True

    def __init__(
        self,
        codes: CodeLookup,
        matcher: PatientMatcher | None = None,
        dedup: DoseDeduplicator | None = None,
        review_score: float = 0.5,
        may_report_for: Callable[[str, str], bool] | None = None,
    ) -> None:
        self._review_score = review_score
        self._may_report_for = may_report_for
        self._validator = VxuValidator(codes)
        #: what decides a VXU without storage (:class:`engine.pipeline.Decider`)
        self.decider = VxuDecider(self._validator)
        self._matcher = matcher or PatientMatcher()
        self._dedup = dedup or DoseDeduplicator(codes)

    def handle(
        self, message: Message, ctx: MessageContext, uow: UnitOfWork, log: Logger
    ) -> Acknowledgement:
        """Validate and store one VXU inside the caller's transaction.

        :meth:`decide` then :meth:`apply`; the pipeline calls them apart, so
        that the first runs before the write transaction (or in a worker
        process).

        Returns:
            The acknowledgement: AA when nothing is wrong beyond warnings, AE
            when errors were found (a message-level one stores nothing), AR
            when the sender's role may not submit (or delete) data.
        """
        return self.apply(self.decide(message, ctx.today), ctx, uow, log)

    def decide(self, message: Message, today: date) -> VxuDecision:
        """Read and validate a VXU: everything that needs no database.

        The result holds plain values only (the validated patient and doses,
        the findings), so that it can be worked out in another process and
        handed to the writer.
        """
        return self.decider.decide(message, today)

    def apply(
        self, decision: VxuDecision, ctx: MessageContext, uow: UnitOfWork, log: Logger
    ) -> Acknowledgement:
        """Store what :meth:`decide` found, inside the caller's transaction.

        The sender's role is checked first (AR when it may not submit, or
        delete). The decision is not changed: a group retried message by
        message applies it again.
        """
        refused = check_role(ctx, Operation.SUBMIT, "VXU")
        if refused is not None:
            return self._refuse(refused, ctx, uow, log)
        result = decision.result
        if any(d.action_code == ActionCode.DELETE for d in result.doses):
            refused = check_role(ctx, Operation.DELETE, "VXU")
            if refused is not None:
                return self._refuse(refused, ctx, uow, log)
        if result.rejected or result.patient is None:
            log.info(
                "vxu_rejected",
                errors=sum(1 for i in result.issues if i.severity == Severity.ERROR),
            )
            return Acknowledgement(
                "AE",
                tuple(result.issues),
                outcome="rejected: nothing stored",
                region=ctx.region,
            )
        issues = list(result.issues)
        stored, deleted = self._store(result, issues, ctx, uow, log)
        total = decision.orders
        outcome = f"stored {stored} of {total} order groups" + (
            f", deleted {deleted}" if deleted else ""
        )
        return Acknowledgement(
            ack_code_for(issues),
            tuple(issues),
            outcome=outcome,
            region=ctx.region,
            changed_registry=True,
            facts={
                "doses_stored": stored,
                "doses_deleted": deleted,
                "doses_rejected": result.rejected_doses
                + (len(result.doses) - stored - deleted),
            },
        )

    @staticmethod
    def _refuse(
        refused: Refused, ctx: MessageContext, uow: UnitOfWork, log: Logger
    ) -> Acknowledgement:
        """AR for an operation the sender's role does not allow, audited."""
        uow.audit.insert(refused.audit)
        log.info("message_refused_role", role=ctx.role.value)
        return Acknowledgement(
            "AR",
            (refused.issue,),
            outcome="rejected: " + refused.audit.detail,
            region=ctx.region,
            kept_audits=(refused.audit,),
        )

    def _store(
        self,
        result: ValidatedVxu,
        issues: list[Issue],
        ctx: MessageContext,
        uow: UnitOfWork,
        log: Logger,
    ) -> tuple[int, int]:
        """File the patient, then its doses; their refusals become ACK findings."""
        patient = result.patient
        assert patient is not None
        origin = Origin(ctx.region, ctx.sender, ctx.journal_id, "VXU")
        filed = self._patients(uow, ctx).file(
            _submission(patient, result.next_of_kin, ctx), origin
        )
        issues.extend(_patient_findings(filed))
        log.debug(
            "patient_matched",
            patient_row=filed.patient_id,
            outcome=filed.match.outcome,
            score=filed.match.score,
        )
        outcomes = self._doses(uow, ctx).report(
            filed.patient_id,
            [_report(dose, ctx, filed.patient_id) for dose in result.doses],
            origin,
            new_patient=filed.created,
        )
        stored = deleted = 0
        inventory = self._inventory(uow, ctx)
        administered: list[AdministeredDose] = []
        at: dict[int, CleanDose] = {}
        for dose, outcome in zip(result.doses, outcomes, strict=True):
            if outcome.action == "refused":
                issues.append(_refused(dose))
            elif outcome.action == "deleted":
                deleted += 1
                assert outcome.vaccination_id is not None
                inventory.give_back(origin, outcome.vaccination_id)
                log.debug("dose_deleted", dose_row=outcome.vaccination_id)
            else:
                if outcome.action == "added" and _draws_down(dose):
                    assert outcome.vaccination_id is not None
                    at[outcome.vaccination_id] = dose
                    administered.append(_administered(dose, outcome.vaccination_id))
                stored += 1
                if outcome.action == "updated":
                    log.debug("dose_updated", dose_row=outcome.vaccination_id)
        if administered:
            for drawn in inventory.draw_down(origin, administered):
                if drawn.reason is not None:
                    finding = _inventory_finding(at[drawn.vaccination_id], drawn)
                    if finding is not None:
                        issues.append(finding)
                    log.info(
                        "inventory_exception",
                        facility=drawn.facility,
                        reason=drawn.reason,
                        dose_row=drawn.vaccination_id,
                    )
        return stored, deleted

    def _patients(self, uow: UnitOfWork, ctx: MessageContext) -> PatientService:
        """The patient service over this message's unit of work."""
        return PatientService(
            uow.patients,
            uow.review,
            uow.audit,
            uow,
            partial(self._matcher.find, uow.patients),
            lambda: ctx.received_at,
        )

    def _inventory(self, uow: UnitOfWork, ctx: MessageContext) -> InventoryService:
        """The inventory service over this message's unit of work.

        An authenticated organization may draw down the lots of every
        facility id it sends as (a group practice's sites, a hub's client
        sites: issue 17's organization facilities), besides what
        ``may_report_for`` allows.
        """
        principal = ctx.principal
        configured = self._may_report_for

        def may_report_for(sender: str, facility: str) -> bool:
            if principal is not None and facility in principal.facility_ids:
                return True
            return configured is not None and configured(sender, facility)

        return InventoryService(
            uow.inventory, uow, lambda: ctx.received_at, may_report_for
        )

    def _doses(self, uow: UnitOfWork, ctx: MessageContext) -> DoseService:
        """The dose service over this message's unit of work."""
        return DoseService(
            uow.vaccinations,
            uow.patients,
            uow.observations,
            uow.review,
            uow.audit,
            self._dedup,
            lambda: ctx.received_at,
            self._review_score,
        )


def _patient_findings(filed: FiledPatient) -> list[Issue]:
    """What the ACK says about how the patient was filed (PD1-12, PID-3)."""
    issues: list[Issue] = []
    if filed.lock_clear_refused:
        issues.append(
            warning(
                Hl7Error.MESSAGE_ACCEPTED,
                at=Location("PD1", 1, 12),
                app=AppError.INVALID_VALUE,
                text="PD1-12 (protection indicator) not applied: the record stays locked; "
                "only an organization that submitted data for this patient before "
                "it was locked may clear the lock",
            )
        )
    if filed.match.conflict_id is not None:
        issues.append(
            warning(
                Hl7Error.MESSAGE_ACCEPTED,
                at=Location("PID", 1, 3),
                app=AppError.INVALID_VALUE,
                text="PID-3 (patient identifier) is held by another patient in this registry "
                f"whose {filed.match.conflict} disagree; the data was not filed onto that "
                "patient and is held for review",
            )
        )
    return issues


def _draws_down(dose: CleanDose) -> bool:
    """A dose the sender administered (RXA-9 00, RXA-20 CP or PA) takes a unit of stock."""
    return (
        dose.information_source == InformationSource.NEW_RECORD
        and dose.completion_status in GIVEN
        and not dose.is_patient_observation
    )


def _administered(dose: CleanDose, vaccination_id: int) -> AdministeredDose:
    return AdministeredDose(
        vaccination_id,
        dose.cvx,
        dose.lot_numbers,
        dose.administered_on,
        funding_of(dose.funding_source, dose.funding_eligibility),
        dose.administered_location,
    )


def _inventory_finding(dose: CleanDose, drawn: DrawDown) -> Issue | None:
    """The warning of a dose stored without (or despite) its inventory lot.

    None for a dose without RXA-15: validation has already said it is missing.
    """
    assert drawn.reason is not None
    if drawn.reason == "no-lot":
        return None
    if drawn.reason == "not-permitted":
        return warning(
            Hl7Error.MESSAGE_ACCEPTED,
            at=Location("RXA", dose.rxa_occurrence, 11),
            app=AppError.INVALID_VALUE,
            text=f"RXA-11 (administered-at location) {REASON_TEXT[drawn.reason]}; "
            f"dose stored, no inventory drawn down (order group {dose.group})",
        )
    consequence = (
        "dose stored and drawn down from that lot"
        if drawn.drawn
        else f"dose stored, inventory of {drawn.facility} not drawn down"
    )
    app = {
        "unknown-lot": AppError.INVALID_VALUE,
        "expired": AppError.ILLOGICAL_DATE,
        "out-of-stock": AppError.ILLOGICAL_VALUE,
    }[drawn.reason]
    return warning(
        Hl7Error.MESSAGE_ACCEPTED,
        at=Location("RXA", dose.rxa_occurrence, 15),
        app=app,
        text=f"RXA-15 (lot number) {REASON_TEXT[drawn.reason]}; {consequence} "
        f"(order group {dose.group})",
    )


def _refused(dose: CleanDose) -> Issue:
    """The error of an RXA-21 U or D of a dose the sender did not report."""
    return error(
        Hl7Error.UNKNOWN_KEY_IDENTIFIER,
        at=Location("ORC", dose.group, 3),
        app=AppError.ILLOGICAL_VALUE,
        text=f"RXA-21 is {dose.action_code} but no dose with this ORC-3 was reported by this sender for this patient; order group {dose.group} ignored",
    )


def _submission(
    patient: CleanPatient, kin: list[CleanNextOfKin], ctx: MessageContext
) -> PatientSubmission:
    """A validated PID/PD1/NK1 as a patient submission."""
    return PatientSubmission(
        _new_patient(patient, ctx),
        patient.identifiers,
        tuple(
            NewNextOfKin(
                sequence=k.sequence,
                family_name=k.name.family,
                given_name=k.name.given,
                relationship=k.relationship,
                street=k.street,
                city=k.city,
                state=k.state,
                postal_code=k.postal_code,
                phone=k.phone,
            )
            for k in kin
        ),
    )


def _report(dose: CleanDose, ctx: MessageContext, patient_id: int) -> DoseReport:
    """A validated order group as a dose report (CVX 998: observations only)."""
    vaccination = (
        None if dose.is_patient_observation else _new_vaccination(dose, ctx, patient_id)
    )
    return DoseReport(vaccination, tuple(_observations(dose, ctx, patient_id)))


def _new_patient(p: CleanPatient, ctx: MessageContext) -> NewPatient:
    return NewPatient(
        region=ctx.region,
        birth_date=p.birth_date,
        sex=p.sex,
        family_name=p.name.family,
        given_name=p.name.given,
        middle_name=p.name.middle,
        suffix=p.name.suffix,
        mother_maiden_family=p.mother_maiden_name.family,
        mother_maiden_given=p.mother_maiden_name.given,
        race=p.race,
        ethnicity=p.ethnicity,
        street=p.street,
        city=p.city,
        state=p.state,
        postal_code=p.postal_code,
        country=p.country,
        phone=p.phone,
        email=p.email,
        multiple_birth=p.multiple_birth,
        birth_order=p.birth_order,
        protection=p.protection,
        protection_date=p.protection_date,
        registry_status=p.registry_status,
        registry_status_date=p.registry_status_date,
        publicity_code=p.publicity_code,
        publicity_date=p.publicity_date,
        death_indicator=p.death_indicator,
        death_date=p.death_date,
        created_by_journal_id=ctx.journal_id,
    )


def _new_vaccination(
    d: CleanDose, ctx: MessageContext, patient_id: int
) -> NewVaccination:
    return NewVaccination(
        region=ctx.region,
        patient_id=patient_id,
        journal_id=ctx.journal_id,
        sending_facility=ctx.sender,
        filler_id=d.filler_id,
        filler_namespace=d.filler_namespace,
        placer_id=d.placer_id,
        cvx=d.cvx,
        cvx_text=d.cvx_text,
        ndc=d.ndc,
        mvx=d.mvx,
        administered_on=d.administered_on,
        administered_at_raw=d.administered_at_raw,
        amount=d.amount,
        units=d.units,
        lot_numbers="~".join(d.lot_numbers),
        lot_expiration=d.lot_expiration,
        information_source=d.information_source,
        completion_status=d.completion_status,
        action_code=d.action_code,
        refusal_reason=d.refusal_reason,
        administering_provider=d.administering_provider,
        administered_location=d.administered_location,
        route=d.route,
        site=d.site,
        funding_eligibility=d.funding_eligibility,
        funding_source=d.funding_source,
    )


def _observations(
    d: CleanDose, ctx: MessageContext, patient_id: int
) -> list[NewObservation]:
    return [
        NewObservation(
            region=ctx.region,
            patient_id=patient_id,
            vaccination_id=None,
            journal_id=ctx.journal_id,
            set_id=o.set_id,
            sub_id=o.sub_id,
            value_type=o.value_type,
            loinc=o.loinc,
            loinc_text=o.loinc_text,
            value_code=o.value_code,
            value_text=o.value_text,
            value_system=o.value_system,
            observed_on=o.observed_on,
        )
        for o in d.observations
    ]
