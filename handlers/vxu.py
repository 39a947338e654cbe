"""The VXU^V04 handler: validate, match the patient, store doses, decide the ACK."""

from __future__ import annotations

from bisect import insort
from dataclasses import fields, replace
from datetime import date
from typing import TYPE_CHECKING

from handlers.context import CodeLookup, Logger, MessageContext
from handlers.dedup import DoseDeduplicator
from handlers.disclosure import LOCKED
from handlers.matching import MatchResult, PatientMatcher
from handlers.vxu_validation import (
    CleanDose,
    CleanPatient,
    ValidatedVxu,
    VxuValidator,
)
from parsers import (
    CHANGES,
    PLACEHOLDER_FILLER_ID,
    Acknowledgement,
    ActionCode,
    AppError,
    Hl7Error,
    Location,
    Message,
    Severity,
    ack_code_for,
    error,
    read_vxu,
    warning,
)
from storage import (
    NewAuditEntry,
    NewMatchDecision,
    NewNextOfKin,
    NewObservation,
    NewPatient,
    NewPatientVersion,
    NewReviewItem,
    NewVaccination,
)

if TYPE_CHECKING:
    from storage import PatientRecord, UnitOfWork, VaccinationRecord


def _view_order(record: VaccinationRecord) -> tuple[date, int]:
    """The consolidated view's order (VaccinationRepository.for_patient)."""
    return (record.administered_on, record.id)


class VxuHandler:
    """Applies a VXU to the registry.

    Args:
        codes: code tables for validation.
        matcher: finds the stored patient a message is about.
        dedup: compares doses.
        review_score: the score of the review item for two doses that may
            be one (an "unsure" verdict).
    """

    #: A VXU changes the registry: MSH-11 T or D makes it a dry run.
    writes_registry = True

    def __init__(
        self,
        codes: CodeLookup,
        matcher: PatientMatcher | None = None,
        dedup: DoseDeduplicator | None = None,
        review_score: float = 0.5,
    ) -> None:
        self._review_score = review_score
        self._validator = VxuValidator(codes)
        self._matcher = matcher or PatientMatcher()
        self._dedup = dedup or DoseDeduplicator(codes)

    def _deduplicate(
        self,
        uow: UnitOfWork,
        ctx: MessageContext,
        patient_id: int,
        stored: VaccinationRecord,
        new: NewVaccination,
        view: list[VaccinationRecord] | None,
    ) -> list[VaccinationRecord]:
        """Compare a newly stored record with the patient's consolidated doses.

        ``view`` is the consolidated view as this message left it (None: read
        it from storage); it is returned kept up to date, so the doses of one
        message cost one read, not one per dose.
        """
        vaccination_id = stored.id
        if view is None:
            view = uow.vaccinations.for_patient(ctx.region, patient_id)
        else:
            insort(view, stored, key=_view_order)
        for other in view:
            if other.id == vaccination_id:
                continue
            verdict = self._dedup.compare(new, other)
            if verdict.outcome == "same":
                if verdict.keep_new:
                    uow.vaccinations.mark_duplicate(
                        ctx.region, other.id, vaccination_id, verdict.reason
                    )
                    view.remove(other)
                else:
                    uow.vaccinations.mark_duplicate(
                        ctx.region, vaccination_id, other.id, verdict.reason
                    )
                    view[:] = [r for r in view if r.id != vaccination_id]
                return view
            if verdict.outcome == "unsure":
                uow.review.insert(
                    NewReviewItem(
                        ctx.region,
                        "dose",
                        vaccination_id,
                        other.id,
                        self._review_score,
                        verdict.reason,
                        ctx.received_at,
                    )
                )
                return view
        return view

    def handle(
        self, message: Message, ctx: MessageContext, uow: UnitOfWork, log: Logger
    ) -> Acknowledgement:
        """Validate and store one VXU inside the caller's transaction.

        Returns:
            The acknowledgement: AA when nothing is wrong beyond warnings, AE
            when errors were found (a message-level one stores nothing).
        """
        vxu = read_vxu(message)
        result = self._validator.validate(vxu, ctx.today)
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
        stored, deleted = self._store(result, ctx, uow, log)
        issues = list(result.issues)
        total = len(vxu.orders)
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

    def _audit(
        self,
        uow: UnitOfWork,
        ctx: MessageContext,
        patient_id: int,
        action: str,
        outcome: str,
        detail: str = "",
    ) -> None:
        uow.audit.insert(
            NewAuditEntry(
                at=ctx.received_at,
                requester=ctx.sender,
                requester_region=ctx.region,
                patient_id=patient_id,
                patient_region=ctx.region,
                journal_id=ctx.journal_id,
                query_tag="",
                action=action,
                outcome=outcome,
                profile="VXU",
                detail=detail[:300],
            )
        )

    def _update(
        self,
        uow: UnitOfWork,
        ctx: MessageContext,
        result: ValidatedVxu,
        patient_id: int,
        record: NewPatient,
        match: MatchResult,
    ) -> None:
        """Apply a submission to a stored patient: the demographics and lock rules.

        - An organization that already submitted for the patient updates what
          it sends (a scored match never rewrites who the person is).
        - Any other organization only fills fields that are empty.
        - Setting the lock is honoured from any submitter at once; clearing
          it only from one that was a submitter when it was set.
        Every change of lock, submitter or demographics is audited, and the
        record as it then stands is kept as a version.
        """
        stored = match.record or uow.patients.get(ctx.region, patient_id)
        if stored is None:  # merged away under us: nothing to compare with
            uow.patients.update(ctx.region, patient_id, _refresh(record, match))
            return
        since = {
            s.facility: s.first_seen
            for s in uow.patients.submitters_since(ctx.region, patient_id)
        }
        submitter = ctx.sender in since
        if not submitter:
            self._audit(uow, ctx, patient_id, "submitter-added", "added")
            update = _fill_empty(record, stored)
        elif match.record is not None:
            update = _refresh(record, match)
        else:
            update = record
        update = replace(update, protection="", protection_date=None, locked_at=None)
        wanted = record.protection
        if wanted == LOCKED and stored.protection != LOCKED:
            update = replace(
                update,
                protection=LOCKED,
                protection_date=record.protection_date,
                locked_at=ctx.received_at,
            )
            self._audit(uow, ctx, patient_id, "lock-set", "set", "PD1-12 = Y")
        elif wanted and wanted != LOCKED and stored.protection == LOCKED:
            locked_at = stored.locked_at or stored.created_at
            first = since.get(ctx.sender)
            if first is not None and first <= locked_at:
                update = replace(
                    update, protection=wanted, protection_date=record.protection_date
                )
                self._audit(
                    uow,
                    ctx,
                    patient_id,
                    "lock-cleared",
                    "cleared",
                    f"PD1-12 = {wanted}",
                )
            else:
                result.add(
                    warning(
                        Hl7Error.MESSAGE_ACCEPTED,
                        at=Location("PD1", 1, 12),
                        app=AppError.INVALID_VALUE,
                        text="PD1-12 (protection indicator) not applied: the record stays locked; "
                        "only an organization that submitted data for this patient before "
                        "it was locked may clear the lock",
                    )
                )
                self._audit(
                    uow,
                    ctx,
                    patient_id,
                    "lock-clear-refused",
                    "refused",
                    "not a submitter before the lock was set",
                )
        elif wanted == stored.protection:
            update = replace(update, protection_date=record.protection_date)
        changed = _changes(update, stored)
        uow.patients.update(ctx.region, patient_id, update)
        if changed:
            self._audit(
                uow, ctx, patient_id, "demographics", "changed", ", ".join(changed)
            )
            after = replace(
                _as_new(stored), **{name: getattr(update, name) for name in changed}
            )
            uow.patients.insert_version(_version(after, ctx, patient_id, "stored"))

    def _hold_conflict(
        self,
        uow: UnitOfWork,
        ctx: MessageContext,
        result: ValidatedVxu,
        patient_id: int,
        match: MatchResult,
    ) -> None:
        """An identifier held by someone whose demographics disagree: warn, review."""
        assert match.conflict_id is not None
        result.add(
            warning(
                Hl7Error.MESSAGE_ACCEPTED,
                at=Location("PID", 1, 3),
                app=AppError.INVALID_VALUE,
                text="PID-3 (patient identifier) is held by another patient in this registry "
                f"whose {match.conflict} disagree; the data was not filed onto that "
                "patient and is held for review",
            )
        )
        if patient_id != match.conflict_id:
            uow.review.insert(
                NewReviewItem(
                    ctx.region,
                    "patient",
                    patient_id,
                    match.conflict_id,
                    0.0,
                    f"identifier conflict: {match.conflict} disagree",
                    ctx.received_at,
                )
            )
        self._audit(
            uow,
            ctx,
            match.conflict_id,
            "identifier-conflict",
            "held",
            f"{match.conflict} disagree",
        )

    def _store(
        self, result: ValidatedVxu, ctx: MessageContext, uow: UnitOfWork, log: Logger
    ) -> tuple[int, int]:
        patient = result.patient
        assert patient is not None
        record = _new_patient(patient, ctx)
        # Two nodes receiving the same new patient at once must create one:
        # serialize on the identifiers before matching.
        uow.lock(
            f"patient:{ctx.region}:{authority or ctx.sender}:{value}"
            for value, authority, _t in patient.identifiers
        )
        match = self._matcher.find(uow, ctx.region, ctx.sender, patient, ctx.today)
        if match.patient_id is None:
            if record.protection == LOCKED:
                record = replace(record, locked_at=ctx.received_at)
            patient_id = uow.patients.insert(record)
            self._audit(uow, ctx, patient_id, "submitter-added", "new record")
            if record.protection == LOCKED:
                self._audit(uow, ctx, patient_id, "lock-set", "set", "PD1-12 = Y")
        else:
            patient_id = match.patient_id
            self._update(uow, ctx, result, patient_id, record, match)
        reasons = "; ".join(match.reasons)
        if match.conflict_id is not None:
            self._hold_conflict(uow, ctx, result, patient_id, match)
        uow.patients.insert_version(_version(record, ctx, patient_id, "submitted"))
        uow.patients.record_decision(
            NewMatchDecision(
                ctx.region,
                ctx.journal_id,
                patient_id,
                match.candidate_id,
                match.outcome,
                match.score,
                reasons,
                ctx.received_at,
            )
        )
        if match.outcome == "possible" and match.candidate_id is not None:
            # Not merged silently: a person decides (cairn review).
            uow.review.insert(
                NewReviewItem(
                    ctx.region,
                    "patient",
                    patient_id,
                    match.candidate_id,
                    match.score,
                    reasons,
                    ctx.received_at,
                )
            )
        log.debug(
            "patient_matched",
            patient_row=patient_id,
            outcome=match.outcome,
            score=match.score,
        )
        uow.patients.add_identifiers(
            ctx.region,
            patient_id,
            [_scoped(i, ctx.sender) for i in patient.identifiers],
            ctx.sender,
        )
        if result.next_of_kin:
            uow.patients.replace_next_of_kin(
                ctx.region,
                patient_id,
                [
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
                    for k in result.next_of_kin
                ],
                ctx.sender,
            )
        uow.patients.add_submitter(ctx.region, patient_id, ctx.sender, ctx.received_at)
        stored = deleted = 0
        observations: list[NewObservation] = []
        # One read for every ORC-3 of the message; doses stored by this
        # message are found in ``by_filler`` as they are added.
        by_filler = uow.vaccinations.find_by_fillers(
            ctx.region,
            ctx.sender,
            [
                (dose.filler_namespace, dose.filler_id)
                for dose in result.doses
                if not dose.is_patient_observation
                and dose.filler_id
                and dose.filler_id != PLACEHOLDER_FILLER_ID
            ],
        )
        survivors: dict[int, int] = {}
        # The consolidated view: a new patient has no doses yet.
        view: list[VaccinationRecord] | None = [] if match.patient_id is None else None
        for dose in result.doses:
            if dose.is_patient_observation:
                observations.extend(_observations(dose, ctx, patient_id, None))
                stored += 1
                continue
            key = (dose.filler_namespace, dose.filler_id)
            existing = (
                by_filler.get(key)
                if dose.filler_id and dose.filler_id != PLACEHOLDER_FILLER_ID
                else None
            )
            if existing is not None and existing.patient_id not in survivors:
                survivors[existing.patient_id] = uow.patients.survivor(
                    ctx.region, existing.patient_id
                )
            owned = (
                existing is not None and survivors[existing.patient_id] == patient_id
            )
            if dose.action_code in CHANGES and not owned:
                result.add(
                    error(
                        Hl7Error.UNKNOWN_KEY_IDENTIFIER,
                        at=Location("ORC", dose.group, 3),
                        app=AppError.ILLOGICAL_VALUE,
                        text=f"RXA-21 is {dose.action_code} but no dose with this ORC-3 was reported by this sender for this patient; order group {dose.group} ignored",
                    )
                )
                continue
            if dose.action_code == ActionCode.DELETE:
                assert existing is not None
                uow.vaccinations.soft_delete(ctx.region, existing.id, ctx.received_at)
                view = None
                # Soft and audited: the record stays, and who removed it is kept.
                uow.audit.insert(
                    NewAuditEntry(
                        at=ctx.received_at,
                        requester=ctx.sender,
                        requester_region=ctx.region,
                        patient_id=patient_id,
                        patient_region=ctx.region,
                        journal_id=ctx.journal_id,
                        query_tag="",
                        action="delete-dose",
                        outcome="soft-deleted",
                        profile="VXU",
                    )
                )
                deleted += 1
                log.debug("dose_deleted", dose_row=existing.id)
                continue
            new = _new_vaccination(dose, ctx, patient_id)
            if existing is not None and owned:
                uow.vaccinations.update(ctx.region, existing.id, new)
                view = None
                vaccination_id = existing.id
                log.debug("dose_updated", dose_row=vaccination_id)
            else:
                added = uow.vaccinations.add(new)
                vaccination_id = added.id
                if dose.filler_id and dose.filler_id != PLACEHOLDER_FILLER_ID:
                    by_filler[key] = added
                view = self._deduplicate(uow, ctx, patient_id, added, new, view)
            observations.extend(_observations(dose, ctx, patient_id, vaccination_id))
            stored += 1
        if observations:
            uow.observations.insert_many(observations)
        return stored, deleted


#: Fields that say who a person is. A match made on a score (not on the
#: sender's own identifier) may fill them when empty but never rewrites
#: them: another clinic's typo must not become the registry's record, and the
#: next submission must be compared with what was first confirmed.
_IDENTITY = (
    "family_name",
    "given_name",
    "middle_name",
    "suffix",
    "birth_date",
    "sex",
    "mother_maiden_family",
    "mother_maiden_given",
    "multiple_birth",
    "birth_order",
)


def _refresh(record: NewPatient, match: MatchResult) -> NewPatient:
    """The demographics a matched submission may change on the stored patient."""
    stored = match.record
    if stored is None:  # matched on an identifier: the sender's own patient
        return record
    kept = {
        name: None if name in {"birth_date", "birth_order"} else ""
        for name in _IDENTITY
        if getattr(stored, name, None) not in ("", None)
    }
    return replace(record, **kept)  # type: ignore[arg-type]


#: Demographic fields compared, audited and versioned (the NewPatient fields
#: that describe the person, not bookkeeping).
_DEMOGRAPHICS = tuple(
    f.name
    for f in fields(NewPatient)
    if f.name not in {"region", "created_by_journal_id", "locked_at"}
)


#: Fields whose empty value is None rather than "".
_OPTIONAL = frozenset(f.name for f in fields(NewPatient) if "None" in str(f.type))


def _fill_empty(record: NewPatient, stored: PatientRecord) -> NewPatient:
    """Another organization's submission: it may fill empty fields, nothing more."""
    kept = {
        name: None if name in _OPTIONAL else ""
        for name in _DEMOGRAPHICS
        if getattr(stored, name, None) not in ("", None)
    }
    return replace(record, **kept)  # type: ignore[arg-type]


def _changes(update: NewPatient, stored: PatientRecord) -> list[str]:
    """The fields an update would change (empty values change nothing)."""
    return [
        name
        for name in _DEMOGRAPHICS
        if getattr(update, name) not in ("", None)
        and getattr(update, name) != getattr(stored, name)
    ]


def _as_new(stored: PatientRecord) -> NewPatient:
    return NewPatient(
        **{name: getattr(stored, name) for name in (f.name for f in fields(NewPatient))}
    )


def _version(
    record: NewPatient, ctx: MessageContext, patient_id: int, kind: str
) -> NewPatientVersion:
    values: dict[str, str | int | None] = {}
    for name in _DEMOGRAPHICS:
        value = getattr(record, name)
        values[name] = value.isoformat() if isinstance(value, date) else value
    return NewPatientVersion(
        region=ctx.region,
        patient_id=patient_id,
        journal_id=ctx.journal_id,
        sender=ctx.sender,
        kind=kind,
        recorded_at=ctx.received_at,
        demographics=values,
    )


def _scoped(identifier: tuple[str, str, str], sender: str) -> tuple[str, str, str]:
    """An identifier with no assigning authority is scoped to its sender."""
    value, authority, type_code = identifier
    return (value, authority or sender, type_code)


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
    d: CleanDose, ctx: MessageContext, patient_id: int, vaccination_id: int | None
) -> list[NewObservation]:
    return [
        NewObservation(
            region=ctx.region,
            patient_id=patient_id,
            vaccination_id=vaccination_id,
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
