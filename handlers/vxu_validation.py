"""VXU^V04 validation as the CDC HL7 2.5.1 immunization guide defines it.

The rules follow IG Table 3-1 (REFERENCE §9.3) and the practical split of
§9.3: problems that make the patient unusable reject the message; a bad
ORDER group rejects that dose only; missing RE data and unknown optional codes
are warnings. Every finding is an :class:`parsers.Issue` that names the field
and the reason and carries no patient data.

Simple rules (a required field, a code from a table) are rows of
:mod:`handlers.field_rules`, lengths and control characters rows of
:mod:`handlers.field_limits`; the rules that compare fields or dates are the
named steps below, run in the order the findings are reported.

The outcome is a :class:`ValidatedVxu`: the cleaned patient, next of kin and
doses to store, and the issues to report.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import date

from handlers.context import CodeLookup
from handlers.field_limits import DOSE_SEGMENTS, MESSAGE_FIELDS, VXU_FIELD_RULES
from handlers.field_rules import Effect, FieldRule, check_fields, rules_for
from handlers.ndc import VaccineCode, resolve_vaccine_code
from parsers import (
    CODED_VALUE_TYPES,
    GIVEN,
    UNKNOWN_AMOUNT,
    AdministrationView,
    AppError,
    CodedValue,
    CompletionStatus,
    Cvx,
    Hl7Error,
    InformationSource,
    Issue,
    Location,
    Loinc,
    NextOfKinView,
    ObservationView,
    OrderGroup,
    OrderView,
    PatientAdditionalView,
    PatientView,
    PersonName,
    RouteView,
    Severity,
    VxuView,
    error,
    finding,
    read_vxu,
    warning,
)
from parsers.datatypes import ParsedDate, is_number, parse_date
from parsers.fields import FieldFinding

#: vaccinations.lot_numbers holds every RXA-15 repetition joined by ``~``.
_LOTS_MAX = 200

#: Segments VXU^V04 may carry that Cairn reads nothing from: ignored quietly.
_QUIETLY_IGNORED = frozenset(
    {"SFT", "PV1", "PV2", "GT1", "IN1", "IN2", "IN3", "NTE", "TQ1", "TQ2"}
)

#: PID fields marked X by the guide.
_PID_FIELD_NAMES = {
    2: "patient id",
    4: "alternate patient id",
    9: "patient alias",
    12: "county code",
    19: "SSN",
    20: "driver's license",
    21: "mother's identifier",
}

#: The table rows, per step (handlers.field_rules).
_PID_SEX = rules_for("PID", 8)
_PID_MULTIPLE_BIRTH = rules_for("PID", 24)
_PID_DEATH_INDICATOR = rules_for("PID", 30)
_PD1 = rules_for("PD1")
_NK1 = rules_for("NK1")
_RXA_STATUS = rules_for("RXA", 20, 21)
_ORC = rules_for("ORC")
_RXR = rules_for("RXR")
_OBX = rules_for("OBX")


def _is_digits(value: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts ``²``, which ``int`` refuses."""
    return value.isascii() and value.isdigit()


def _at(segment: str, occurrence: int, field_no: int | None = None) -> Location:
    """ERR-2 for a segment or one of its fields."""
    return Location(segment, occurrence, field_no)


def _component(segment: str, occurrence: int, field_no: int, comp: int) -> Location:
    """ERR-2 for a component, in the first repetition of its field."""
    return Location(segment, occurrence, field_no, repetition=1, component=comp)


def _field_findings(
    vxu: VxuView, findings: tuple[FieldFinding, ...], out: ValidatedVxu
) -> bool:
    """Report each broken field limit (handlers.field_limits) at its field.

    Returns:
        Whether one of them rejects the message (a required patient field).
    """
    groups: dict[tuple[str, int], int] = {}
    for group in vxu.orders:
        for name, seg in (
            ("ORC", group.order),
            ("RXA", group.administration),
            ("RXR", group.route),
        ):
            if seg is not None:
                groups[(name, seg.occurrence)] = group.index
    fatal = False
    for f in findings:
        key = (f.segment, f.occurrence)
        where = f"{f.segment}-{f.field}.{f.component}" + (
            f".{f.subcomponent}" if f.subcomponent > 1 else ""
        )
        if f.kind == "truncated":
            assert f.limit is not None
            severity = Severity.WARNING
            app = AppError.DATA_IGNORED
            text = (
                f"{where} ({f.limit.name}) is longer than {f.limit.max_length} "
                f"characters; truncated to {f.limit.max_length}"
            )
        else:
            severity, app = Severity.ERROR, AppError.INVALID_VALUE
            reason = (
                "contains a control character"
                if f.limit is None
                else f"({f.limit.name}) is longer than {f.limit.max_length} characters"
            )
            if (f.segment, f.field) in MESSAGE_FIELDS:
                consequence = "message rejected"
                fatal = True
            elif f.segment in DOSE_SEGMENTS and key in groups:
                consequence = f"order group {groups[key]} rejected"
                out.rejected_segments.add(key)
            else:
                consequence = "value ignored"
            text = f"{where} {reason}; {consequence}"
        out.add(
            finding(
                severity,
                Hl7Error.DATA_TYPE_ERROR,
                at=Location(
                    f.segment,
                    f.occurrence,
                    f.field,
                    f.repetition + 1,
                    f.component,
                    f.subcomponent if f.subcomponent > 1 else None,
                ),
                app=app,
                text=text,
            )
        )
    return fatal


@dataclass(frozen=True, slots=True)
class CleanPatient:
    """Patient data that passed validation, ready to store."""

    identifiers: tuple[tuple[str, str, str], ...]  # (value, authority, type)
    name: PersonName
    mother_maiden_name: PersonName
    birth_date: date
    sex: str
    race: str
    ethnicity: str
    street: str
    city: str
    state: str
    postal_code: str
    country: str
    phone: str
    email: str
    multiple_birth: str
    birth_order: int | None
    death_indicator: str
    death_date: date | None
    protection: str
    protection_date: date | None
    registry_status: str
    registry_status_date: date | None
    publicity_code: str
    #: PD1-18, the publicity code's effective date (kept only with a code)
    publicity_date: date | None = None


@dataclass(frozen=True, slots=True)
class CleanNextOfKin:
    """An NK1 that passed validation."""

    sequence: int
    name: PersonName
    relationship: str
    street: str
    city: str
    state: str
    postal_code: str
    phone: str


@dataclass(frozen=True, slots=True)
class CleanObservation:
    """An OBX that passed validation."""

    set_id: int
    sub_id: str
    value_type: str
    loinc: str
    loinc_text: str
    value_code: str
    value_text: str
    value_system: str
    observed_on: date | None


@dataclass(frozen=True, slots=True)
class CleanDose:
    """One ORDER group that passed validation."""

    group: int
    rxa_occurrence: int
    filler_id: str
    filler_namespace: str
    placer_id: str
    cvx: str
    cvx_text: str
    ndc: str
    mvx: str
    administered_on: date
    administered_at_raw: str
    amount: str
    units: str
    lot_numbers: tuple[str, ...]
    lot_expiration: date | None
    information_source: str
    completion_status: str
    action_code: str
    refusal_reason: str
    administering_provider: str
    administered_location: str
    route: str
    site: str
    funding_eligibility: str
    funding_source: str
    observations: tuple[CleanObservation, ...]

    @property
    def is_patient_observation(self) -> bool:
        """CVX 998 carries observations about the patient, not a dose."""
        return self.cvx == Cvx.NO_VACCINE


@dataclass
class ValidatedVxu:
    """The outcome of validating a VXU."""

    issues: list[Issue] = field(default_factory=list)
    patient: CleanPatient | None = None
    next_of_kin: list[CleanNextOfKin] = field(default_factory=list)
    doses: list[CleanDose] = field(default_factory=list)
    rejected_doses: int = 0
    #: a message-level problem: nothing is stored
    rejected: bool = False
    #: segments (id, occurrence) holding a rejected value (handlers.field_limits)
    rejected_segments: set[tuple[str, int]] = field(default_factory=set)

    def add(self, item: Issue) -> None:
        """Record one finding."""
        self.issues.append(item)


class _DoseFindings:
    """The findings of one order group: warnings, and errors that reject it.

    Args:
        out: where findings go.
        group: the order group's index (named in ERR-8 of a rejection).
        occurrence: the RXA's occurrence, the default ERR-2 segment.
        rejected: whether the group is already rejected (a rejected value
            found by the field limits).
    """

    def __init__(
        self, out: ValidatedVxu, group: int, occurrence: int, *, rejected: bool
    ) -> None:
        self._out = out
        self.group = group
        self.occurrence = occurrence
        self.rejected = rejected

    def warn(
        self,
        code: Hl7Error,
        *,
        field_no: int | None,
        app: AppError,
        text: str,
        segment: str = "RXA",
        occurrence: int | None = None,
    ) -> None:
        """A warning at a field of the RXA (or of ``segment``)."""
        where = _at(
            segment, self.occurrence if occurrence is None else occurrence, field_no
        )
        self._out.add(warning(code, at=where, app=app, text=text))

    def reject(
        self,
        code: Hl7Error,
        *,
        field_no: int | None,
        app: AppError,
        text: str,
        segment: str = "RXA",
        occurrence: int | None = None,
    ) -> None:
        """An error that rejects the order group; ERR-8 says so."""
        self.rejected = True
        where = _at(
            segment, self.occurrence if occurrence is None else occurrence, field_no
        )
        text = f"{text}; order group {self.group} rejected"
        self._out.add(error(code, at=where, app=app, text=text))

    def add(
        self, issues: Sequence[Issue], effects: AbstractSet[Effect] = frozenset()
    ) -> None:
        """Findings already worded (table rows of handlers.field_rules)."""
        for item in issues:
            self._out.add(item)
        if Effect.REJECT_DOSE in effects:
            self.rejected = True


class VxuValidator:
    """Validates a grouped VXU against the Z22 profile and local rules.

    Args:
        codes: the code tables.
    """

    def __init__(self, codes: CodeLookup) -> None:
        self._codes = codes

    def validate(self, vxu: VxuView, today: date) -> ValidatedVxu:
        """Validate a message; see the module docstring for the policy."""
        out = ValidatedVxu()
        fatal = False
        if vxu.message is not None:
            checked, findings = VXU_FIELD_RULES.apply(vxu.message)
            if findings:
                vxu = read_vxu(checked)
                fatal = _field_findings(vxu, findings, out)
        self._structure(vxu, out)
        patient = self._patient(vxu.patient, vxu.patient_additional, today, out)
        if patient is None or fatal:
            out.rejected = True
            return out
        out.patient = patient
        for nk1 in vxu.next_of_kin:
            kin = self._next_of_kin(nk1, out)
            if kin is not None:
                out.next_of_kin.append(kin)
        for group in vxu.orders:
            dose = self._order_group(group, patient.birth_date, today, out)
            if dose is None:
                out.rejected_doses += 1
            else:
                out.doses.append(dose)
        if vxu.orders and not out.doses:
            out.add(
                error(
                    Hl7Error.SEGMENT_SEQUENCE_ERROR,
                    at=_at("RXA", 1),
                    app=AppError.REQUIRED_DATA_MISSING,
                    text="no valid order group in the message; message rejected",
                )
            )
            out.rejected = True
        return out

    def _rows(
        self,
        rules: tuple[FieldRule, ...],
        view: object,
        occurrence: int,
        out: ValidatedVxu,
    ) -> tuple[dict[int, str], set[Effect]]:
        """Evaluate table rows on a segment; report their findings."""
        checked = check_fields(rules, view, occurrence, self._codes)
        for item in checked.issues:
            out.add(item)
        return checked.values, checked.effects

    # -- message structure (MSH is checked once for every type: parsers/header.py)

    def _structure(self, vxu: VxuView, out: ValidatedVxu) -> None:
        """Segments out of place, and segments VXU^V04 does not carry."""
        for problem in vxu.problems:
            out.add(
                error(
                    Hl7Error.SEGMENT_SEQUENCE_ERROR,
                    at=_at(problem.segment, problem.occurrence, problem.field),
                    app=AppError.ILLOGICAL_VALUE,
                    text=f"{problem.reason}; segment ignored",
                )
            )
        for seg_id, occurrence in vxu.ignored_segments:
            if seg_id.startswith("Z") or seg_id not in _QUIETLY_IGNORED:
                out.add(
                    warning(
                        Hl7Error.MESSAGE_ACCEPTED,
                        at=_at(seg_id, occurrence),
                        app=AppError.DATA_IGNORED,
                        text=f"segment {seg_id[:3]} is not part of VXU^V04 (Z22); ignored",
                    )
                )

    # -- PID / PD1 ---------------------------------------------------------

    def _patient(
        self,
        pid: PatientView | None,
        pd1: PatientAdditionalView | None,
        today: date,
        out: ValidatedVxu,
    ) -> CleanPatient | None:
        if pid is None:
            out.add(
                error(
                    Hl7Error.SEGMENT_SEQUENCE_ERROR,
                    at=_at("PID", 1),
                    app=AppError.REQUIRED_DATA_MISSING,
                    text="PID segment is missing; message rejected",
                )
            )
            return None
        occ = pid.occurrence
        if pid.set_id and pid.set_id != "1":
            out.add(
                warning(
                    Hl7Error.DATA_TYPE_ERROR,
                    at=_at("PID", occ, 1),
                    app=AppError.ILLOGICAL_VALUE,
                    text="PID-1 (set id) should be 1",
                )
            )
        ids = self._identifiers(pid, out)
        fatal = not ids
        fatal |= self._name(pid, out)
        birth = self._birth_date(pid, today, out)
        fatal |= birth is None
        _, effects = self._rows(_PID_SEX, pid, occ, out)
        fatal |= Effect.REJECT_MESSAGE in effects
        for n in pid.unsupported_fields:
            out.add(
                warning(
                    Hl7Error.MESSAGE_ACCEPTED,
                    at=_at("PID", occ, n),
                    app=AppError.DATA_IGNORED,
                    text=f"PID-{n} ({_PID_FIELD_NAMES.get(n, 'not supported')}) is not supported; ignored",
                )
            )
        race = self._codes_in(pid.races, "HL70005", "PID", occ, 10, "race", out, 100)
        ethnicity = self._codes_in(
            pid.ethnicity, "HL70189", "PID", occ, 22, "ethnicity", out, 40
        )
        self._address_and_phone(pid, out)
        addr = pid.addresses[0] if pid.addresses else None
        phone = next((p for p in pid.phones if p.digits), None)
        email = next((p.email for p in pid.phones if p.email), "")
        multiple_birth = self._rows(_PID_MULTIPLE_BIRTH, pid, occ, out)[0][24]
        birth_order = self._birth_order(pid, out)
        death = parse_date(pid.death_date)
        if death.problem:
            out.add(
                warning(
                    Hl7Error.DATA_TYPE_ERROR,
                    at=_at("PID", occ, 29),
                    app=AppError.INVALID_DATE,
                    text=f"PID-29 (death date) {death.problem}; ignored",
                )
            )
        death_indicator = self._rows(_PID_DEATH_INDICATOR, pid, occ, out)[0][30]
        protection, protection_date, status, status_date, publicity = self._pd1(
            pd1, out
        )
        if fatal or birth is None:
            return None
        return CleanPatient(
            identifiers=tuple(ids),
            name=pid.legal_name,
            mother_maiden_name=pid.mother_maiden_name,
            birth_date=birth,
            sex=pid.sex,
            race=race,
            ethnicity=ethnicity,
            street=addr.street if addr else "",
            city=addr.city if addr else "",
            state=addr.state.upper() if addr else "",
            postal_code=addr.postal_code if addr else "",
            country=addr.country if addr else "",
            phone=phone.digits if phone else "",
            email=email,
            multiple_birth=multiple_birth,
            birth_order=birth_order,
            death_indicator=death_indicator,
            death_date=death.value,
            protection=protection,
            protection_date=protection_date,
            registry_status=status,
            registry_status_date=status_date,
            publicity_code=publicity,
            publicity_date=(
                parse_date(pd1.publicity_date).value if pd1 and publicity else None
            ),
        )

    def _identifiers(
        self, pid: PatientView, out: ValidatedVxu
    ) -> list[tuple[str, str, str]]:
        """PID-3: each repetition's authority and type; none at all rejects."""
        occ = pid.occurrence
        ids: list[tuple[str, str, str]] = []
        for ident in pid.identifiers:
            rep = ident.repetition + 1
            if not ident.authority:
                out.add(
                    warning(
                        Hl7Error.REQUIRED_FIELD_MISSING,
                        at=_component("PID", occ, 3, 4),
                        app=AppError.REQUIRED_DATA_MISSING,
                        text=f"PID-3 repetition {rep}: assigning authority (CX-4) is missing; scoped to the sending facility",
                    )
                )
            if ident.type_code and not self._codes.has("HL70203", ident.type_code):
                out.add(
                    warning(
                        Hl7Error.TABLE_VALUE_NOT_FOUND,
                        at=_component("PID", occ, 3, 5),
                        app=AppError.TABLE_VALUE_NOT_FOUND,
                        text=f"PID-3 repetition {rep}: identifier type is not in HL7 table 0203",
                    )
                )
            ids.append((ident.value, ident.authority, ident.type_code))
        if not ids:
            out.add(
                error(
                    Hl7Error.REQUIRED_FIELD_MISSING,
                    at=_at("PID", occ, 3),
                    app=AppError.REQUIRED_DATA_MISSING,
                    text="PID-3 (patient identifier list) is missing; message rejected",
                )
            )
        return ids

    def _name(self, pid: PatientView, out: ValidatedVxu) -> bool:
        """PID-5: a family name is required, a given name expected.

        Returns:
            Whether the message is rejected.
        """
        name = pid.legal_name
        if not name.family:
            out.add(
                error(
                    Hl7Error.REQUIRED_FIELD_MISSING,
                    at=_component("PID", pid.occurrence, 5, 1),
                    app=AppError.REQUIRED_DATA_MISSING,
                    text="PID-5 (patient name) family name is missing; message rejected",
                )
            )
            return True
        if not name.given:
            out.add(
                warning(
                    Hl7Error.REQUIRED_FIELD_MISSING,
                    at=_component("PID", pid.occurrence, 5, 2),
                    app=AppError.REQUIRED_DATA_MISSING,
                    text="PID-5.2 (given name) is missing",
                )
            )
        return False

    def _birth_date(
        self, pid: PatientView, today: date, out: ValidatedVxu
    ) -> date | None:
        """PID-7: required, a valid date, not in the future (0533 illogical date).

        Returns:
            The birth date, or None when it rejects the message.
        """
        birth = parse_date(pid.birth_date).value
        where = _at("PID", pid.occurrence, 7)
        if not pid.birth_date:
            out.add(
                error(
                    Hl7Error.REQUIRED_FIELD_MISSING,
                    at=where,
                    app=AppError.REQUIRED_DATA_MISSING,
                    text="PID-7 (birth date) is missing; message rejected",
                )
            )
        elif birth is None:
            out.add(
                error(
                    Hl7Error.DATA_TYPE_ERROR,
                    at=where,
                    app=AppError.INVALID_DATE,
                    text=f"PID-7 (birth date) {parse_date(pid.birth_date).problem}; message rejected",
                )
            )
        elif birth > today:
            out.add(
                error(
                    Hl7Error.DATA_TYPE_ERROR,
                    at=where,
                    app=AppError.ILLOGICAL_DATE,
                    text="PID-7 (birth date) is in the future; message rejected",
                )
            )
            return None
        return birth

    def _address_and_phone(self, pid: PatientView, out: ValidatedVxu) -> None:
        """PID-11.4 a USPS state code, PID-13 a phone number of 7 or 10 digits."""
        occ = pid.occurrence
        addr = pid.addresses[0] if pid.addresses else None
        if addr is not None and addr.state and len(addr.state) != 2:
            out.add(
                warning(
                    Hl7Error.DATA_TYPE_ERROR,
                    at=_component("PID", occ, 11, 4),
                    app=AppError.INVALID_VALUE,
                    text="PID-11.4 (state) is not a 2-letter USPS code",
                )
            )
        phone = next((p for p in pid.phones if p.digits), None)
        if phone is not None and len(phone.digits) not in (7, 10, 11):
            out.add(
                warning(
                    Hl7Error.DATA_TYPE_ERROR,
                    at=_at("PID", occ, 13),
                    app=AppError.INVALID_VALUE,
                    text="PID-13 phone number does not have 7 or 10 digits",
                )
            )

    def _birth_order(self, pid: PatientView, out: ValidatedVxu) -> int | None:
        """PID-25 as a number; anything else is ignored."""
        if not pid.birth_order:
            return None
        if _is_digits(pid.birth_order):
            return int(pid.birth_order)
        out.add(
            warning(
                Hl7Error.DATA_TYPE_ERROR,
                at=_at("PID", pid.occurrence, 25),
                app=AppError.INVALID_VALUE,
                text="PID-25 (birth order) is not a number; ignored",
            )
        )
        return None

    def _codes_in(
        self,
        values: tuple[CodedValue, ...],
        table: str,
        segment: str,
        occurrence: int,
        field_no: int,
        what: str,
        out: ValidatedVxu,
        max_length: int,
    ) -> str:
        kept = []
        for value in values:
            code = value.code if value.code else value.alt_code
            if code and self._codes.has(table, code):
                kept.append(code)
            elif value.alt_code and self._codes.has(table, value.alt_code):
                kept.append(value.alt_code)
            else:
                out.add(
                    warning(
                        Hl7Error.TABLE_VALUE_NOT_FOUND,
                        at=_at(segment, occurrence, field_no),
                        app=AppError.TABLE_VALUE_NOT_FOUND,
                        text=f"{segment}-{field_no} ({what}) code is not in table {table[-4:]}; ignored",
                    )
                )
        # Each code once, and no more than the column holds (race 100,
        # ethnicity 40: handlers.field_limits); the rest is reported.
        joined = ""
        for code in dict.fromkeys(kept):
            candidate = f"{joined}~{code}" if joined else code
            if len(candidate) > max_length:
                out.add(
                    warning(
                        Hl7Error.DATA_TYPE_ERROR,
                        at=_at(segment, occurrence, field_no),
                        app=AppError.DATA_IGNORED,
                        text=f"{segment}-{field_no} ({what}) has more codes than the registry keeps ({max_length} characters); the rest ignored",
                    )
                )
                break
            joined = candidate
        return joined

    def _pd1(
        self, pd1: PatientAdditionalView | None, out: ValidatedVxu
    ) -> tuple[str, date | None, str, date | None, str]:
        """PD1-11/12/13/16/17: every rule is a row of handlers.field_rules."""
        if pd1 is None:
            return "", None, "", None, ""
        kept, _ = self._rows(_PD1, pd1, pd1.occurrence, out)
        return (
            kept[12],
            parse_date(pd1.protection_date).value,
            kept[16],
            parse_date(pd1.registry_status_date).value,
            kept[11],
        )

    # -- NK1 ---------------------------------------------------------------

    def _next_of_kin(
        self, nk1: NextOfKinView, out: ValidatedVxu
    ) -> CleanNextOfKin | None:
        """NK1-2 and NK1-3 are required (rows of handlers.field_rules)."""
        occ = nk1.occurrence
        kept, effects = self._rows(_NK1, nk1, occ, out)
        if Effect.IGNORE_SEGMENT in effects:
            return None
        return CleanNextOfKin(
            sequence=int(nk1.set_id) if _is_digits(nk1.set_id) else occ,
            name=nk1.name,
            relationship=kept[3],
            street=nk1.address.street,
            city=nk1.address.city,
            state=nk1.address.state,
            postal_code=nk1.address.postal_code,
            phone=nk1.phone.digits,
        )

    # -- ORDER groups -------------------------------------------------------

    def _vaccine_code(self, rxa: AdministrationView) -> tuple[str, str, str]:
        """Pick the CVX (and NDC) out of RXA-5's two triplets."""
        v = rxa.vaccine
        cvx, text, ndc = "", "", ""
        for code, label, system in (
            (v.code, v.text, v.system),
            (v.alt_code, v.alt_text, v.alt_system),
        ):
            system_u = system.upper()
            if system_u == "CVX" or (not system_u and code):
                if not cvx:
                    cvx, text = code, label
            elif system_u.startswith("NDC"):
                ndc = code
        if cvx.isdigit() and len(cvx) == 1:
            cvx = "0" + cvx
        return cvx, text, ndc

    def _order_group(
        self, group: OrderGroup, birth_date: date, today: date, out: ValidatedVxu
    ) -> CleanDose | None:
        """One ORDER group, step by step; None when the dose is rejected."""
        rxa = group.administration
        orc = group.order
        if not self._group_readable(group, out) or rxa is None:
            return None
        occ = rxa.occurrence
        # A rejected value in its ORC, RXA or RXR (reported already).
        f = _DoseFindings(
            out,
            group.index,
            occ,
            rejected=any(
                (name, seg.occurrence) in out.rejected_segments
                for name, seg in (("ORC", orc), ("RXA", rxa), ("RXR", group.route))
                if seg is not None
            ),
        )
        status = check_fields(_RXA_STATUS, rxa, occ, self._codes, group=group.index)
        f.add(status.issues, status.effects)
        completion, action = status.value(20), status.value(21)
        administered = completion in GIVEN
        filler_id, filler_ns, placer = self._order(orc, administered, f)
        self._sub_ids(rxa, f)
        start = self._administration_date(rxa, birth_date, today, f)
        coded = self._vaccine(rxa, f)
        amount, units = self._amount(rxa, coded.cvx, completion, f)
        source = self._information_source(rxa, administered, f)
        new_record = (
            source == InformationSource.NEW_RECORD
            and administered
            and coded.cvx != Cvx.NO_VACCINE
        )
        lot_exp = self._lot(rxa, new_record, start, f)
        mvx = self._manufacturer(rxa, new_record, f)
        refusal = self._refusal(rxa, completion, f)
        route, site = self._route(group.route, out)
        observations, eligibility, funding = self._observations(group.observations, out)
        if new_record and not eligibility:
            f.warn(
                Hl7Error.REQUIRED_FIELD_MISSING,
                field_no=None,
                app=AppError.REQUIRED_OBSERVATION_MISSING,
                text="no OBX 64994-7 (funding eligibility) for a newly administered dose (IZ-23)",
            )
        if f.rejected or start.value is None:
            return None
        return CleanDose(
            group=group.index,
            rxa_occurrence=occ,
            filler_id=filler_id,
            filler_namespace=filler_ns,
            placer_id=placer,
            cvx=coded.cvx,
            cvx_text=coded.cvx_text,
            ndc=coded.ndc,
            mvx=mvx or coded.mvx,
            administered_on=start.value,
            administered_at_raw=rxa.start,
            amount=amount,
            units=units,
            lot_numbers=rxa.lot_numbers,
            lot_expiration=lot_exp.value,
            information_source=source,
            completion_status=completion,
            action_code=action,
            refusal_reason=refusal,
            administering_provider=rxa.administering_provider,
            administered_location=rxa.location_facility,
            route=route,
            site=site,
            funding_eligibility=eligibility,
            funding_source=funding,
            observations=tuple(observations),
        )

    def _group_readable(self, group: OrderGroup, out: ValidatedVxu) -> bool:
        """An order group glued into another segment, or without RXA, is rejected."""
        glue = group.glued_into
        if glue is not None:
            # Its first segment lost the terminator before it (issue 15 item
            # 7): which fields belong to which segment is a guess, so the
            # dose is not stored, and the ACK names it.
            out.add(
                error(
                    Hl7Error.SEGMENT_SEQUENCE_ERROR,
                    at=_at(glue.segment, glue.occurrence, glue.field),
                    app=AppError.ILLOGICAL_VALUE,
                    text=f"order group {group.index} is glued into {glue.segment}-{glue.field} "
                    f"(the segment terminator before it is missing); order group {group.index} rejected",
                )
            )
            return False
        if group.administration is None:
            orc = group.order
            out.add(
                error(
                    Hl7Error.REQUIRED_FIELD_MISSING,
                    at=_at("RXA", orc.occurrence if orc else 1),
                    app=AppError.REQUIRED_DATA_MISSING,
                    text=f"order group {group.index}: ORC has no RXA segment; order group rejected",
                )
            )
            return False
        return True

    def _order(
        self, orc: OrderView | None, administered: bool, f: _DoseFindings
    ) -> tuple[str, str, str]:
        """ORC: present, ORC-1 RE, ORC-3 required for a given dose.

        Returns:
            ORC-3 filler id and namespace, ORC-2 placer id.
        """
        if orc is None:
            f.reject(
                Hl7Error.SEGMENT_SEQUENCE_ERROR,
                field_no=None,
                app=AppError.REQUIRED_DATA_MISSING,
                text="RXA has no ORC before it (2.3.1-style order group); ORC-3 is needed to update or delete the dose",
                segment="ORC",
            )
            return "", "", ""
        checked = check_fields(_ORC, orc, orc.occurrence, self._codes, group=f.group)
        f.add(checked.issues, checked.effects)
        if not orc.filler_id:
            (f.reject if administered else f.warn)(
                Hl7Error.REQUIRED_FIELD_MISSING,
                field_no=3,
                app=AppError.REQUIRED_DATA_MISSING,
                text="ORC-3 (filler order number) is missing",
                segment="ORC",
                occurrence=orc.occurrence,
            )
        return (
            orc.filler_id,
            orc.filler_namespace or orc.filler_universal_id,
            orc.placer_id,
        )

    def _sub_ids(self, rxa: AdministrationView, f: _DoseFindings) -> None:
        """RXA-1 is 0 and RXA-2 is 1 in this guide (not a dose number)."""
        if rxa.sub_id_counter and rxa.sub_id_counter != "0":
            f.warn(
                Hl7Error.DATA_TYPE_ERROR,
                field_no=1,
                app=AppError.ILLOGICAL_VALUE,
                text="RXA-1 (give sub-id counter) should be 0",
            )
        if rxa.administration_sub_id and rxa.administration_sub_id != "1":
            f.warn(
                Hl7Error.DATA_TYPE_ERROR,
                field_no=2,
                app=AppError.ILLOGICAL_VALUE,
                text="RXA-2 (administration sub-id) should be 1; it is not a dose number",
            )

    def _administration_date(
        self, rxa: AdministrationView, birth_date: date, today: date, f: _DoseFindings
    ) -> ParsedDate:
        """RXA-3: required, valid, not in the future, not before birth; RXA-4 the same day."""
        start = parse_date(rxa.start)
        if not rxa.start:
            f.reject(
                Hl7Error.REQUIRED_FIELD_MISSING,
                field_no=3,
                app=AppError.REQUIRED_DATA_MISSING,
                text="RXA-3 (administration date) is missing",
            )
        elif start.value is None:
            f.reject(
                Hl7Error.DATA_TYPE_ERROR,
                field_no=3,
                app=AppError.INVALID_DATE,
                text=f"RXA-3 (administration date) {start.problem}",
            )
        elif start.value > today:
            f.reject(
                Hl7Error.DATA_TYPE_ERROR,
                field_no=3,
                app=AppError.ILLOGICAL_DATE,
                text="RXA-3 (administration date) is in the future",
            )
        elif start.value < birth_date:
            f.reject(
                Hl7Error.DATA_TYPE_ERROR,
                field_no=3,
                app=AppError.ILLOGICAL_DATE,
                text="RXA-3 (administration date) is before the patient's birth date",
            )
        if rxa.end and rxa.end[:8] != rxa.start[:8]:
            f.warn(
                Hl7Error.DATA_TYPE_ERROR,
                field_no=4,
                app=AppError.ILLOGICAL_VALUE,
                text="RXA-4 (end date) differs from RXA-3",
            )
        return start

    def _vaccine(self, rxa: AdministrationView, f: _DoseFindings) -> VaccineCode:
        """RXA-5: a known CVX, or an NDC the crosswalk maps to one (handlers/ndc.py)."""
        coded = resolve_vaccine_code(*self._vaccine_code(rxa), self._codes)
        for found in coded.findings:  # the NDC rules (handlers/ndc.py)
            (f.reject if found.reject else f.warn)(
                Hl7Error(found.hl7_code),
                field_no=5,
                app=AppError(found.app_code),
                text=found.text,
            )
        if rxa.vaccine.is_empty:
            f.reject(
                Hl7Error.REQUIRED_FIELD_MISSING,
                field_no=5,
                app=AppError.REQUIRED_DATA_MISSING,
                text="RXA-5 (administered code) is missing",
            )
        elif not coded.cvx and not coded.findings:
            f.reject(
                Hl7Error.TABLE_VALUE_NOT_FOUND,
                field_no=5,
                app=AppError.TABLE_VALUE_NOT_FOUND,
                text="RXA-5 (administered code) has neither a CVX nor an NDC code (coding system CVX or NDC)",
            )
        elif coded.cvx and not self._codes.has("CVX", coded.cvx):
            # IG Table 3-1's cascade: the bad code (103), then the field
            # treated as empty (101), each reported.
            f.add(
                [
                    error(
                        Hl7Error.TABLE_VALUE_NOT_FOUND,
                        at=_component("RXA", f.occurrence, 5, 1),
                        app=AppError.TABLE_VALUE_NOT_FOUND,
                        text="RXA-5 (administered code) is not a known CVX code",
                    )
                ]
            )
            f.reject(
                Hl7Error.REQUIRED_FIELD_MISSING,
                field_no=5,
                app=AppError.REQUIRED_DATA_MISSING,
                text="RXA-5 (administered code) treated as empty",
            )
        return coded

    def _amount(
        self, rxa: AdministrationView, cvx: str, completion: str, f: _DoseFindings
    ) -> tuple[str, str]:
        """RXA-6 a number (999 when unknown or nothing given), RXA-7 its units.

        Returns:
            The amount and the units to store.
        """
        amount = rxa.amount
        if not amount:
            f.warn(
                Hl7Error.REQUIRED_FIELD_MISSING,
                field_no=6,
                app=AppError.REQUIRED_DATA_MISSING,
                text="RXA-6 (administered amount) is missing; 999 assumed",
            )
            amount = UNKNOWN_AMOUNT
        elif not is_number(amount):
            f.warn(
                Hl7Error.DATA_TYPE_ERROR,
                field_no=6,
                app=AppError.INVALID_VALUE,
                text="RXA-6 (administered amount) is not a number; 999 assumed",
            )
            amount = UNKNOWN_AMOUNT
        elif amount != UNKNOWN_AMOUNT and (
            cvx == Cvx.NO_VACCINE or completion == CompletionStatus.REFUSED
        ):
            f.warn(
                Hl7Error.DATA_TYPE_ERROR,
                field_no=6,
                app=AppError.ILLOGICAL_VALUE,
                text="RXA-6 should be 999 when no vaccine was given (IZ-48, IZ-49)",
            )
        units = rxa.units.code
        if amount != UNKNOWN_AMOUNT and not units:
            f.warn(
                Hl7Error.REQUIRED_FIELD_MISSING,
                field_no=7,
                app=AppError.REQUIRED_DATA_MISSING,
                text="RXA-7 (administered units) is missing",
            )
        return amount, units

    def _information_source(
        self, rxa: AdministrationView, administered: bool, f: _DoseFindings
    ) -> str:
        """RXA-9: required for a given dose, from NIP001, empty for RE and NA."""
        source = rxa.information_source.code
        if not source and administered:
            f.warn(
                Hl7Error.REQUIRED_FIELD_MISSING,
                field_no=9,
                app=AppError.REQUIRED_DATA_MISSING,
                text="RXA-9 (information source) is missing (IZ-31)",
            )
        elif source and not self._codes.has("NIP001", source):
            f.warn(
                Hl7Error.TABLE_VALUE_NOT_FOUND,
                field_no=9,
                app=AppError.TABLE_VALUE_NOT_FOUND,
                text="RXA-9 (information source) is not in NIP001; ignored",
            )
            source = ""
        elif source and not administered:
            f.warn(
                Hl7Error.DATA_TYPE_ERROR,
                field_no=9,
                app=AppError.ILLOGICAL_VALUE,
                text="RXA-9 should be empty when RXA-20 is RE or NA (IZ-47)",
            )
        return source

    def _lot(
        self,
        rxa: AdministrationView,
        new_record: bool,
        start: ParsedDate,
        f: _DoseFindings,
    ) -> ParsedDate:
        """RXA-15 lot numbers (required for a new dose), RXA-16 expiration.

        Returns:
            The parsed lot expiration date.
        """
        if new_record and not rxa.lot_numbers:
            f.warn(
                Hl7Error.REQUIRED_FIELD_MISSING,
                field_no=15,
                app=AppError.REQUIRED_DATA_MISSING,
                text="RXA-15 (lot number) is missing for a newly administered dose",
            )
        if len("~".join(rxa.lot_numbers)) > _LOTS_MAX:
            f.reject(
                Hl7Error.DATA_TYPE_ERROR,
                field_no=15,
                app=AppError.INVALID_VALUE,
                text=f"RXA-15 (lot numbers) together are longer than {_LOTS_MAX} characters",
            )
        lot_exp = parse_date(rxa.lot_expiration)
        if lot_exp.problem:
            f.warn(
                Hl7Error.DATA_TYPE_ERROR,
                field_no=16,
                app=AppError.INVALID_DATE,
                text=f"RXA-16 (lot expiration date) {lot_exp.problem}; ignored",
            )
        elif lot_exp.value and start.value and lot_exp.value < start.value:
            f.warn(
                Hl7Error.DATA_TYPE_ERROR,
                field_no=16,
                app=AppError.ILLOGICAL_DATE,
                text="RXA-16: the lot had expired on the administration date",
            )
        return lot_exp

    def _manufacturer(
        self, rxa: AdministrationView, new_record: bool, f: _DoseFindings
    ) -> str:
        """RXA-17: required for a new dose, a known MVX code."""
        mvx = rxa.manufacturer.code
        if new_record and not mvx:
            f.warn(
                Hl7Error.REQUIRED_FIELD_MISSING,
                field_no=17,
                app=AppError.REQUIRED_DATA_MISSING,
                text="RXA-17 (manufacturer) is missing for a newly administered dose",
            )
        elif mvx and not self._codes.has("MVX", mvx):
            f.warn(
                Hl7Error.TABLE_VALUE_NOT_FOUND,
                field_no=17,
                app=AppError.TABLE_VALUE_NOT_FOUND,
                text="RXA-17 (manufacturer) is not a known MVX code",
            )
        return mvx

    def _refusal(
        self, rxa: AdministrationView, completion: str, f: _DoseFindings
    ) -> str:
        """RXA-18: required for a refusal (RXA-20 RE) and only then, from NIP002."""
        refusal = rxa.refusal_reasons[0].code if rxa.refusal_reasons else ""
        refused = completion == CompletionStatus.REFUSED
        if refused and not refusal:
            f.warn(
                Hl7Error.REQUIRED_FIELD_MISSING,
                field_no=18,
                app=AppError.REQUIRED_DATA_MISSING,
                text="RXA-18 (refusal reason) is missing for a refusal",
            )
        elif refusal and not refused:
            f.warn(
                Hl7Error.DATA_TYPE_ERROR,
                field_no=18,
                app=AppError.ILLOGICAL_VALUE,
                text="RXA-18 is valued but RXA-20 is not RE (IZ-32)",
            )
        elif refusal and not self._codes.has("NIP002", refusal):
            f.warn(
                Hl7Error.TABLE_VALUE_NOT_FOUND,
                field_no=18,
                app=AppError.TABLE_VALUE_NOT_FOUND,
                text="RXA-18 (refusal reason) is not in NIP002",
            )
        return refusal

    def _route(self, rxr: RouteView | None, out: ValidatedVxu) -> tuple[str, str]:
        """RXR-1 route and RXR-2 site (rows of handlers.field_rules)."""
        if rxr is None:
            return "", ""
        self._rows(_RXR, rxr, rxr.occurrence, out)
        return rxr.route.code, rxr.site.code

    def _observations(
        self, rows: tuple[ObservationView, ...], out: ValidatedVxu
    ) -> tuple[list[CleanObservation], str, str]:
        kept: list[CleanObservation] = []
        eligibility = funding = ""
        for obx in rows:
            occ = obx.occurrence
            _, effects = self._rows(_OBX, obx, occ, out)
            if Effect.IGNORE_SEGMENT in effects:
                continue
            loinc = obx.code.code
            if loinc == Loinc.FUNDING_ELIGIBILITY:
                eligibility = obx.value.code
                if (
                    eligibility
                    and not self._codes.has("HL70064", eligibility)
                    and len(eligibility) < 5
                ):
                    out.add(
                        warning(
                            Hl7Error.TABLE_VALUE_NOT_FOUND,
                            at=_at("OBX", occ, 5),
                            app=AppError.TABLE_VALUE_NOT_FOUND,
                            text="OBX-5 funding eligibility is not in HL7 table 0064",
                        )
                    )
            elif loinc == Loinc.FUNDING_SOURCE:
                funding = obx.value.code
            value_type = obx.value_type
            value_code = obx.value.code if value_type in CODED_VALUE_TYPES else ""
            kept.append(
                CleanObservation(
                    set_id=int(obx.set_id) if _is_digits(obx.set_id) else occ,
                    sub_id=obx.sub_id,
                    value_type=value_type,
                    loinc=loinc,
                    loinc_text=obx.code.text,
                    value_code=value_code,
                    value_text=obx.value.text if value_code else obx.raw_value,
                    value_system=obx.value.system if value_code else "",
                    observed_on=parse_date(obx.observed_at).value,
                )
            )
        return kept, eligibility, funding
