"""VXU^V04 validation as the CDC HL7 2.5.1 immunization guide defines it.

The rules follow IG Table 3-1 (REFERENCE §9.3) and the practical split of
§9.3: problems that make the patient unusable reject the message; a bad
ORDER group rejects that dose only; missing RE data and unknown optional codes
are warnings. Every finding is an :class:`parsers.Issue` that names the field
and the reason and carries no patient data.

The outcome is a :class:`ValidatedVxu`: the cleaned patient, next of kin and
doses to store, and the issues to report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from handlers.context import CodeLookup
from handlers.field_limits import DOSE_SEGMENTS, MESSAGE_FIELDS, VXU_FIELD_RULES
from handlers.ndc import resolve_vaccine_code
from parsers import (
    AdministrationView,
    CodedValue,
    Issue,
    Location,
    NextOfKinView,
    ObservationView,
    OrderGroup,
    PatientAdditionalView,
    PatientView,
    PersonName,
    Severity,
    VxuView,
    read_vxu,
)
from parsers.datatypes import is_number, parse_date
from parsers.fields import FieldFinding

#: CVX codes with a special meaning (REFERENCE §4.6).
NO_VACCINE_CVX = "998"
UNKNOWN_CVX = "999"

#: vaccinations.lot_numbers holds every RXA-15 repetition joined by ``~``.
_LOTS_MAX = 200

#: Information sources meaning "administered by the sender" (NIP001).
NEW_RECORD = "00"

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


def issue(
    severity: Severity,
    hl7_code: str,
    segment: str,
    occurrence: int,
    field_no: int | None,
    app_code: str,
    text: str,
    component: int | None = None,
) -> Issue:
    """Build an Issue with an ERR-2 location."""
    rep = 1 if field_no is not None and component is not None else None
    return Issue(
        severity,
        hl7_code,
        Location(segment, occurrence, field_no, rep, component),
        app_code,
        text,
    )


def _is_digits(value: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts ``²``, which ``int`` refuses."""
    return value.isascii() and value.isdigit()


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
            severity: Severity = "W"
            app_code = "8"
            text = (
                f"{where} ({f.limit.name}) is longer than {f.limit.max_length} "
                f"characters; truncated to {f.limit.max_length}"
            )
        else:
            severity, app_code = "E", "4"
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
            Issue(
                severity,
                "102",
                Location(
                    f.segment,
                    f.occurrence,
                    f.field,
                    f.repetition + 1,
                    f.component,
                    f.subcomponent if f.subcomponent > 1 else None,
                ),
                app_code,
                text,
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
        return self.cvx == NO_VACCINE_CVX


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
        self._header(vxu, out)
        for problem in vxu.problems:
            out.add(
                issue(
                    "E",
                    "100",
                    problem.segment,
                    problem.occurrence,
                    problem.field,
                    "3",
                    f"{problem.reason}; segment ignored",
                )
            )
        for seg_id, occurrence in vxu.ignored_segments:
            if seg_id.startswith("Z") or seg_id not in {
                "SFT",
                "PV1",
                "PV2",
                "GT1",
                "IN1",
                "IN2",
                "IN3",
                "NTE",
                "TQ1",
                "TQ2",
            }:
                out.add(
                    issue(
                        "W",
                        "0",
                        seg_id,
                        occurrence,
                        None,
                        "8",
                        f"segment {seg_id[:3]} is not part of VXU^V04 (Z22); ignored",
                    )
                )
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
                issue(
                    "E",
                    "100",
                    "RXA",
                    1,
                    None,
                    "7",
                    "no valid order group in the message; message rejected",
                )
            )
            out.rejected = True
        return out

    # -- MSH ---------------------------------------------------------------

    def _header(self, vxu: VxuView, out: ValidatedVxu) -> None:
        header = vxu.header
        if header.field_separator != "|" or header.encoding_chars != "^~\\&":
            out.add(
                issue(
                    "W",
                    "102",
                    "MSH",
                    1,
                    2,
                    "4",
                    "MSH-1/MSH-2 are not the standard |^~\\& delimiters (IZ-12, IZ-13); read as declared",
                )
            )
        if not header.timestamp:
            out.add(
                issue(
                    "W",
                    "101",
                    "MSH",
                    1,
                    7,
                    "7",
                    "MSH-7 (date/time of message) is missing",
                )
            )
        elif parse_date(header.timestamp).problem:
            out.add(
                issue(
                    "W",
                    "102",
                    "MSH",
                    1,
                    7,
                    "2",
                    "MSH-7 (date/time of message) is not a valid HL7 timestamp",
                )
            )
        if header.structure and header.structure != "VXU_V04":
            out.add(
                issue(
                    "W",
                    "102",
                    "MSH",
                    1,
                    9,
                    "4",
                    f"MSH-9.3 message structure should be VXU_V04, got {header.structure[:10]!r}",
                    component=3,
                )
            )
        if not header.profiles:
            out.add(
                issue(
                    "W",
                    "101",
                    "MSH",
                    1,
                    21,
                    "7",
                    "MSH-21 (message profile) is missing; expected Z22^CDCPHINVS",
                )
            )
        elif "Z22" not in header.profiles:
            out.add(
                issue(
                    "W",
                    "103",
                    "MSH",
                    1,
                    21,
                    "5",
                    "MSH-21 does not name profile Z22^CDCPHINVS",
                )
            )
        for n, value in (
            (15, header.accept_ack_type),
            (16, header.application_ack_type),
        ):
            if value and not self._codes.has("HL70155", value):
                out.add(
                    issue(
                        "W",
                        "103",
                        "MSH",
                        1,
                        n,
                        "5",
                        f"MSH-{n} value is not in HL7 table 0155; answering always",
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
                issue(
                    "E",
                    "100",
                    "PID",
                    1,
                    None,
                    "7",
                    "PID segment is missing; message rejected",
                )
            )
            return None
        occ = pid.occurrence
        fatal = False
        if pid.set_id and pid.set_id != "1":
            out.add(issue("W", "102", "PID", occ, 1, "3", "PID-1 (set id) should be 1"))
        ids: list[tuple[str, str, str]] = []
        for ident in pid.identifiers:
            if not ident.authority:
                out.add(
                    issue(
                        "W",
                        "101",
                        "PID",
                        occ,
                        3,
                        "7",
                        f"PID-3 repetition {ident.repetition + 1}: assigning authority (CX-4) is missing; scoped to the sending facility",
                        component=4,
                    )
                )
            if ident.type_code and not self._codes.has("HL70203", ident.type_code):
                out.add(
                    issue(
                        "W",
                        "103",
                        "PID",
                        occ,
                        3,
                        "5",
                        f"PID-3 repetition {ident.repetition + 1}: identifier type is not in HL7 table 0203",
                        component=5,
                    )
                )
            ids.append((ident.value, ident.authority, ident.type_code))
        if not ids:
            out.add(
                issue(
                    "E",
                    "101",
                    "PID",
                    occ,
                    3,
                    "7",
                    "PID-3 (patient identifier list) is missing; message rejected",
                )
            )
            fatal = True
        name = pid.legal_name
        if not name.family:
            out.add(
                issue(
                    "E",
                    "101",
                    "PID",
                    occ,
                    5,
                    "7",
                    "PID-5 (patient name) family name is missing; message rejected",
                    component=1,
                )
            )
            fatal = True
        elif not name.given:
            out.add(
                issue(
                    "W",
                    "101",
                    "PID",
                    occ,
                    5,
                    "7",
                    "PID-5.2 (given name) is missing",
                    component=2,
                )
            )
        birth = parse_date(pid.birth_date)
        if not pid.birth_date:
            out.add(
                issue(
                    "E",
                    "101",
                    "PID",
                    occ,
                    7,
                    "7",
                    "PID-7 (birth date) is missing; message rejected",
                )
            )
            fatal = True
        elif birth.value is None:
            out.add(
                issue(
                    "E",
                    "102",
                    "PID",
                    occ,
                    7,
                    "2",
                    f"PID-7 (birth date) {birth.problem}; message rejected",
                )
            )
            fatal = True
        elif birth.value > today:
            out.add(
                issue(
                    "E",
                    "102",
                    "PID",
                    occ,
                    7,
                    "1",
                    "PID-7 (birth date) is in the future; message rejected",
                )
            )
            fatal = True
        if not pid.sex:
            out.add(
                issue(
                    "E",
                    "101",
                    "PID",
                    occ,
                    8,
                    "7",
                    "PID-8 (administrative sex) is missing; message rejected",
                )
            )
            fatal = True
        elif not self._codes.has("HL70001", pid.sex):
            out.add(
                issue(
                    "E",
                    "103",
                    "PID",
                    occ,
                    8,
                    "5",
                    "PID-8 (administrative sex) is not F, M or U (table 0001); message rejected",
                )
            )
            fatal = True
        for n in pid.unsupported_fields:
            out.add(
                issue(
                    "W",
                    "0",
                    "PID",
                    occ,
                    n,
                    "8",
                    f"PID-{n} ({_PID_FIELD_NAMES.get(n, 'not supported')}) is not supported; ignored",
                )
            )
        race = self._codes_in(pid.races, "HL70005", "PID", occ, 10, "race", out, 100)
        ethnicity = self._codes_in(
            pid.ethnicity, "HL70189", "PID", occ, 22, "ethnicity", out, 40
        )
        addr = pid.addresses[0] if pid.addresses else None
        if addr is not None and addr.state and len(addr.state) != 2:
            out.add(
                issue(
                    "W",
                    "102",
                    "PID",
                    occ,
                    11,
                    "4",
                    "PID-11.4 (state) is not a 2-letter USPS code",
                    component=4,
                )
            )
        phone = next((p for p in pid.phones if p.digits), None)
        email = next((p.email for p in pid.phones if p.email), "")
        if phone is not None and len(phone.digits) not in (7, 10, 11):
            out.add(
                issue(
                    "W",
                    "102",
                    "PID",
                    occ,
                    13,
                    "4",
                    "PID-13 phone number does not have 7 or 10 digits",
                )
            )
        multiple_birth = pid.multiple_birth
        if multiple_birth and multiple_birth not in {"Y", "N"}:
            out.add(
                issue(
                    "W",
                    "103",
                    "PID",
                    occ,
                    24,
                    "5",
                    "PID-24 (multiple birth indicator) is not Y or N; ignored",
                )
            )
            multiple_birth = ""
        birth_order: int | None = None
        if pid.birth_order:
            if _is_digits(pid.birth_order):
                birth_order = int(pid.birth_order)
            else:
                out.add(
                    issue(
                        "W",
                        "102",
                        "PID",
                        occ,
                        25,
                        "4",
                        "PID-25 (birth order) is not a number; ignored",
                    )
                )
        death = parse_date(pid.death_date)
        if death.problem:
            out.add(
                issue(
                    "W",
                    "102",
                    "PID",
                    occ,
                    29,
                    "2",
                    f"PID-29 (death date) {death.problem}; ignored",
                )
            )
        death_indicator = pid.death_indicator
        if death_indicator and death_indicator not in {"Y", "N"}:
            out.add(
                issue(
                    "W",
                    "103",
                    "PID",
                    occ,
                    30,
                    "5",
                    "PID-30 (death indicator) is not Y or N; ignored",
                )
            )
            death_indicator = ""
        protection, protection_date, status, status_date, publicity = self._pd1(
            pd1, out
        )
        if fatal or birth.value is None:
            return None
        return CleanPatient(
            identifiers=tuple(ids),
            name=name,
            mother_maiden_name=pid.mother_maiden_name,
            birth_date=birth.value,
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
                    issue(
                        "W",
                        "103",
                        segment,
                        occurrence,
                        field_no,
                        "5",
                        f"{segment}-{field_no} ({what}) code is not in table {table[-4:]}; ignored",
                    )
                )
        # Each code once, and no more than the column holds (race 100,
        # ethnicity 40: handlers.field_limits); the rest is reported.
        joined = ""
        for code in dict.fromkeys(kept):
            candidate = f"{joined}~{code}" if joined else code
            if len(candidate) > max_length:
                out.add(
                    issue(
                        "W",
                        "102",
                        segment,
                        occurrence,
                        field_no,
                        "8",
                        f"{segment}-{field_no} ({what}) has more codes than the registry keeps ({max_length} characters); the rest ignored",
                    )
                )
                break
            joined = candidate
        return joined

    def _pd1(
        self, pd1: PatientAdditionalView | None, out: ValidatedVxu
    ) -> tuple[str, date | None, str, date | None, str]:
        if pd1 is None:
            return "", None, "", None, ""
        occ = pd1.occurrence
        protection = pd1.protection
        if protection and protection not in {"Y", "N"}:
            out.add(
                issue(
                    "W",
                    "103",
                    "PD1",
                    occ,
                    12,
                    "5",
                    "PD1-12 (protection indicator) is not Y or N; ignored",
                )
            )
            protection = ""
        protection_date = parse_date(pd1.protection_date).value
        if protection and not pd1.protection_date:
            out.add(
                issue(
                    "W",
                    "101",
                    "PD1",
                    occ,
                    13,
                    "7",
                    "PD1-13 (protection indicator effective date) is missing",
                )
            )
        status = pd1.registry_status
        if status and not self._codes.has("HL70441", status):
            out.add(
                issue(
                    "W",
                    "103",
                    "PD1",
                    occ,
                    16,
                    "5",
                    "PD1-16 (registry status) is not in HL7 table 0441; ignored",
                )
            )
            status = ""
        status_date = parse_date(pd1.registry_status_date).value
        if status and not pd1.registry_status_date:
            out.add(
                issue(
                    "W",
                    "101",
                    "PD1",
                    occ,
                    17,
                    "7",
                    "PD1-17 (registry status effective date) is missing",
                )
            )
        publicity = pd1.publicity.code
        if publicity and not self._codes.has("HL70215", publicity):
            out.add(
                issue(
                    "W",
                    "103",
                    "PD1",
                    occ,
                    11,
                    "5",
                    "PD1-11 (publicity code) is not in HL7 table 0215; ignored",
                )
            )
            publicity = ""
        return protection, protection_date, status, status_date, publicity

    # -- NK1 ---------------------------------------------------------------

    def _next_of_kin(
        self, nk1: NextOfKinView, out: ValidatedVxu
    ) -> CleanNextOfKin | None:
        occ = nk1.occurrence
        if nk1.name.is_empty:
            out.add(
                issue(
                    "E",
                    "101",
                    "NK1",
                    occ,
                    2,
                    "7",
                    "NK1-2 (next of kin name) is missing; NK1 segment ignored",
                )
            )
            return None
        relationship = nk1.relationship.code
        if not relationship:
            out.add(
                issue(
                    "E",
                    "101",
                    "NK1",
                    occ,
                    3,
                    "7",
                    "NK1-3 (relationship) is missing; NK1 segment ignored",
                )
            )
            return None
        if not self._codes.has("HL70063", relationship):
            out.add(
                issue(
                    "W",
                    "103",
                    "NK1",
                    occ,
                    3,
                    "5",
                    "NK1-3 (relationship) is not in HL7 table 0063",
                )
            )
        sequence = int(nk1.set_id) if _is_digits(nk1.set_id) else occ
        return CleanNextOfKin(
            sequence=sequence,
            name=nk1.name,
            relationship=relationship,
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
        rxa = group.administration
        orc = group.order
        glue = group.glued_into
        if glue is not None:
            # Its first segment lost the terminator before it (issue 15 item
            # 7): which fields belong to which segment is a guess, so the
            # dose is not stored, and the ACK names it.
            out.add(
                issue(
                    "E",
                    "100",
                    glue.segment,
                    glue.occurrence,
                    glue.field,
                    "3",
                    f"order group {group.index} is glued into {glue.segment}-{glue.field} "
                    f"(the segment terminator before it is missing); order group {group.index} rejected",
                )
            )
            return None
        if rxa is None:
            occ = orc.occurrence if orc else 1
            out.add(
                issue(
                    "E",
                    "101",
                    "RXA",
                    occ,
                    None,
                    "7",
                    f"order group {group.index}: ORC has no RXA segment; order group rejected",
                )
            )
            return None
        occ = rxa.occurrence
        # A rejected value in its ORC, RXA or RXR (reported already).
        rejected = any(
            (name, seg.occurrence) in out.rejected_segments
            for name, seg in (("ORC", orc), ("RXA", rxa), ("RXR", group.route))
            if seg is not None
        )

        def reject(
            hl7_code: str,
            field_no: int | None,
            app_code: str,
            text: str,
            seg: str = "RXA",
            seg_occ: int = occ,
        ) -> None:
            nonlocal rejected
            rejected = True
            out.add(
                issue(
                    "E",
                    hl7_code,
                    seg,
                    seg_occ,
                    field_no,
                    app_code,
                    f"{text}; order group {group.index} rejected",
                )
            )

        def warn(
            hl7_code: str,
            field_no: int | None,
            app_code: str,
            text: str,
            seg: str = "RXA",
            seg_occ: int = occ,
        ) -> None:
            out.add(issue("W", hl7_code, seg, seg_occ, field_no, app_code, text))

        completion = rxa.completion_status or "CP"
        if not self._codes.has("HL70322", completion):
            warn(
                "103",
                20,
                "5",
                "RXA-20 (completion status) is not in HL7 table 0322; treated as CP",
            )
            completion = "CP"
        administered = completion in {"CP", "PA"}
        action = rxa.action_code or "A"
        if not self._codes.has("HL70323", action):
            reject("103", 21, "5", "RXA-21 (action code) is not A, U or D (table 0323)")

        if orc is None:
            reject(
                "100",
                None,
                "7",
                "RXA has no ORC before it (2.3.1-style order group); ORC-3 is needed to update or delete the dose",
                "ORC",
                occ,
            )
            filler_id = filler_ns = placer = ""
        else:
            filler_id, filler_ns, placer = (
                orc.filler_id,
                orc.filler_namespace or orc.filler_universal_id,
                orc.placer_id,
            )
            if orc.order_control and orc.order_control != "RE":
                warn(
                    "103",
                    1,
                    "5",
                    "ORC-1 (order control) should be RE",
                    "ORC",
                    orc.occurrence,
                )
            if not filler_id and administered:
                reject(
                    "101",
                    3,
                    "7",
                    "ORC-3 (filler order number) is missing",
                    "ORC",
                    orc.occurrence,
                )
            elif not filler_id:
                warn(
                    "101",
                    3,
                    "7",
                    "ORC-3 (filler order number) is missing",
                    "ORC",
                    orc.occurrence,
                )

        if rxa.sub_id_counter and rxa.sub_id_counter != "0":
            warn("102", 1, "3", "RXA-1 (give sub-id counter) should be 0")
        if rxa.administration_sub_id and rxa.administration_sub_id != "1":
            warn(
                "102",
                2,
                "3",
                "RXA-2 (administration sub-id) should be 1; it is not a dose number",
            )

        start = parse_date(rxa.start)
        if not rxa.start:
            reject("101", 3, "7", "RXA-3 (administration date) is missing")
        elif start.value is None:
            reject("102", 3, "2", f"RXA-3 (administration date) {start.problem}")
        elif start.value > today:
            reject("102", 3, "1", "RXA-3 (administration date) is in the future")
        elif start.value < birth_date:
            reject(
                "102",
                3,
                "1",
                "RXA-3 (administration date) is before the patient's birth date",
            )
        if rxa.end and rxa.end[:8] != rxa.start[:8]:
            warn("102", 4, "3", "RXA-4 (end date) differs from RXA-3")

        coded = resolve_vaccine_code(*self._vaccine_code(rxa), self._codes)
        cvx, cvx_text, ndc, ndc_mvx = coded.cvx, coded.cvx_text, coded.ndc, coded.mvx
        for found in coded.findings:  # the NDC rules (handlers/ndc.py)
            (reject if found.reject else warn)(
                found.hl7_code, 5, found.app_code, found.text
            )
        if rxa.vaccine.is_empty:
            reject("101", 5, "7", "RXA-5 (administered code) is missing")
        elif not cvx and not coded.findings:
            reject(
                "103",
                5,
                "5",
                "RXA-5 (administered code) has neither a CVX nor an NDC code (coding system CVX or NDC)",
            )
        elif cvx and not self._codes.has("CVX", cvx):
            out.add(
                issue(
                    "E",
                    "103",
                    "RXA",
                    occ,
                    5,
                    "5",
                    "RXA-5 (administered code) is not a known CVX code",
                    component=1,
                )
            )
            reject("101", 5, "7", "RXA-5 (administered code) treated as empty")

        amount = rxa.amount
        if not amount:
            warn("101", 6, "7", "RXA-6 (administered amount) is missing; 999 assumed")
            amount = "999"
        elif not is_number(amount):
            warn(
                "102",
                6,
                "4",
                "RXA-6 (administered amount) is not a number; 999 assumed",
            )
            amount = "999"
        elif amount != "999" and (cvx == NO_VACCINE_CVX or completion == "RE"):
            warn(
                "102",
                6,
                "3",
                "RXA-6 should be 999 when no vaccine was given (IZ-48, IZ-49)",
            )
        units = rxa.units.code
        if amount != "999" and not units:
            warn("101", 7, "7", "RXA-7 (administered units) is missing")

        source = rxa.information_source.code
        if not source and administered:
            warn("101", 9, "7", "RXA-9 (information source) is missing (IZ-31)")
        elif source and not self._codes.has("NIP001", source):
            warn("103", 9, "5", "RXA-9 (information source) is not in NIP001; ignored")
            source = ""
        elif source and not administered:
            warn("102", 9, "3", "RXA-9 should be empty when RXA-20 is RE or NA (IZ-47)")
        new_record = source == NEW_RECORD and administered and cvx != NO_VACCINE_CVX

        if new_record and not rxa.lot_numbers:
            warn(
                "101",
                15,
                "7",
                "RXA-15 (lot number) is missing for a newly administered dose",
            )
        if len("~".join(rxa.lot_numbers)) > _LOTS_MAX:
            reject(
                "102",
                15,
                "4",
                f"RXA-15 (lot numbers) together are longer than {_LOTS_MAX} characters",
            )
        lot_exp = parse_date(rxa.lot_expiration)
        if lot_exp.problem:
            warn(
                "102",
                16,
                "2",
                f"RXA-16 (lot expiration date) {lot_exp.problem}; ignored",
            )
        elif lot_exp.value and start.value and lot_exp.value < start.value:
            warn(
                "102", 16, "1", "RXA-16: the lot had expired on the administration date"
            )
        mvx = rxa.manufacturer.code
        if new_record and not mvx:
            warn(
                "101",
                17,
                "7",
                "RXA-17 (manufacturer) is missing for a newly administered dose",
            )
        elif mvx and not self._codes.has("MVX", mvx):
            warn("103", 17, "5", "RXA-17 (manufacturer) is not a known MVX code")

        refusal = rxa.refusal_reasons[0].code if rxa.refusal_reasons else ""
        if completion == "RE" and not refusal:
            warn("101", 18, "7", "RXA-18 (refusal reason) is missing for a refusal")
        elif refusal and completion != "RE":
            warn("102", 18, "3", "RXA-18 is valued but RXA-20 is not RE (IZ-32)")
        elif refusal and not self._codes.has("NIP002", refusal):
            warn("103", 18, "5", "RXA-18 (refusal reason) is not in NIP002")

        route = site = ""
        if group.route is not None:
            rxr = group.route
            route = rxr.route.code
            if route and not (
                self._codes.has("NCIT_ROUTE", route)
                or self._codes.has("HL70162", route)
            ):
                warn(
                    "103",
                    1,
                    "5",
                    "RXR-1 (route) is not an NCIT or HL7 0162 route code",
                    "RXR",
                    rxr.occurrence,
                )
            site = rxr.site.code
            if site and not self._codes.has("HL70163", site):
                warn(
                    "103",
                    2,
                    "5",
                    "RXR-2 (site) is not in HL7 table 0163",
                    "RXR",
                    rxr.occurrence,
                )

        observations, eligibility, funding = self._observations(group.observations, out)
        if new_record and not eligibility:
            warn(
                "101",
                None,
                "6",
                "no OBX 64994-7 (funding eligibility) for a newly administered dose (IZ-23)",
            )

        if rejected or start.value is None:
            return None
        return CleanDose(
            group=group.index,
            rxa_occurrence=occ,
            filler_id=filler_id,
            filler_namespace=filler_ns,
            placer_id=placer,
            cvx=cvx,
            cvx_text=cvx_text,
            ndc=ndc,
            mvx=mvx or ndc_mvx,
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

    def _observations(
        self, rows: tuple[ObservationView, ...], out: ValidatedVxu
    ) -> tuple[list[CleanObservation], str, str]:
        kept: list[CleanObservation] = []
        eligibility = funding = ""
        for obx in rows:
            occ = obx.occurrence
            loinc = obx.code.code
            if not loinc:
                out.add(
                    issue(
                        "W",
                        "101",
                        "OBX",
                        occ,
                        3,
                        "7",
                        "OBX-3 (observation identifier) is missing; OBX ignored",
                    )
                )
                continue
            if not self._codes.has("NIP003", loinc):
                out.add(
                    issue(
                        "W",
                        "103",
                        "OBX",
                        occ,
                        3,
                        "5",
                        "OBX-3 is not an immunization observation (NIP003); OBX ignored",
                    )
                )
                continue
            if not obx.raw_value:
                out.add(
                    issue(
                        "W",
                        "101",
                        "OBX",
                        occ,
                        5,
                        "7",
                        "OBX-5 (observation value) is missing; OBX ignored",
                    )
                )
                continue
            if not obx.sub_id:
                out.add(
                    issue(
                        "W",
                        "101",
                        "OBX",
                        occ,
                        4,
                        "7",
                        "OBX-4 (observation sub-id) is missing",
                    )
                )
            if obx.result_status and obx.result_status != "F":
                out.add(
                    issue(
                        "W",
                        "103",
                        "OBX",
                        occ,
                        11,
                        "5",
                        "OBX-11 (result status) should be F",
                    )
                )
            if loinc == "64994-7":
                eligibility = obx.value.code
                if (
                    eligibility
                    and not self._codes.has("HL70064", eligibility)
                    and len(eligibility) < 5
                ):
                    out.add(
                        issue(
                            "W",
                            "103",
                            "OBX",
                            occ,
                            5,
                            "5",
                            "OBX-5 funding eligibility is not in HL7 table 0064",
                        )
                    )
            elif loinc == "30963-3":
                funding = obx.value.code
            observed = parse_date(obx.observed_at)
            value_type = obx.value_type
            value_code = (
                obx.value.code if value_type in {"CE", "CWE", "ID", "IS"} else ""
            )
            value_text = obx.value.text if value_code else obx.raw_value
            kept.append(
                CleanObservation(
                    set_id=int(obx.set_id) if _is_digits(obx.set_id) else occ,
                    sub_id=obx.sub_id,
                    value_type=value_type,
                    loinc=loinc,
                    loinc_text=obx.code.text,
                    value_code=value_code,
                    value_text=value_text,
                    value_system=obx.value.system if value_code else "",
                    observed_on=observed.value,
                )
            )
        return kept, eligibility, funding
