"""Typed, immutable views of the parts of a message the registry reads.

Each view is built from tokenized segments and keeps the segment's
occurrence number, so that validation can point at ``RXA^2^5`` without going
back to the raw text. Values are unescaped strings; dates stay raw text here
(validation parses and judges them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from parsers.tokenizer import GluePoint, Message, Segment


@dataclass(frozen=True, slots=True)
class HD:
    """Hierarchic designator (MSH-3..6): namespace, universal id and its type."""

    namespace: str = ""
    universal_id: str = ""
    universal_id_type: str = ""

    @property
    def key(self) -> str:
        """The value that identifies it: namespace, else universal id."""
        return self.namespace or self.universal_id


@dataclass(frozen=True, slots=True)
class CodedValue:
    """CE/CWE: a code with text and coding system, plus the alternate triplet."""

    code: str = ""
    text: str = ""
    system: str = ""
    alt_code: str = ""
    alt_text: str = ""
    alt_system: str = ""

    @property
    def is_empty(self) -> bool:
        """Whether neither triplet carries a code or text."""
        return not (self.code or self.text or self.alt_code or self.alt_text)


@dataclass(frozen=True, slots=True)
class MessageHeader:
    """MSH, the envelope of every message."""

    encoding_chars: str
    field_separator: str
    sending_application: HD
    sending_facility: HD
    receiving_application: HD
    receiving_facility: HD
    timestamp: str
    message_code: str
    trigger_event: str
    structure: str
    control_id: str
    processing_id: str
    version: str
    accept_ack_type: str
    application_ack_type: str
    charset: str
    profiles: tuple[str, ...]
    responsible_org: str

    @property
    def message_type(self) -> str:
        """``CODE^EVENT`` (e.g. ``VXU^V04``), for journals and logs."""
        return (
            f"{self.message_code}^{self.trigger_event}"
            if self.trigger_event
            else self.message_code
        )

    @property
    def sender(self) -> str:
        """Who sent the message: MSH-4 (sending facility), the registry's key.

        MSH-4 is RE in the guide; when it is empty the sending application
        (MSH-3) identifies the sender instead.
        """
        return self.sending_facility.key or self.sending_application.key


@dataclass(frozen=True, slots=True)
class Identifier:
    """CX (PID-3, QPD-3): the id, its assigning authority and type."""

    value: str
    authority: str = ""
    type_code: str = ""
    repetition: int = 0


@dataclass(frozen=True, slots=True)
class PersonName:
    """XPN."""

    family: str = ""
    given: str = ""
    middle: str = ""
    suffix: str = ""
    prefix: str = ""
    name_type: str = ""

    @property
    def is_empty(self) -> bool:
        """Whether the name has neither family nor given name."""
        return not (self.family or self.given)


@dataclass(frozen=True, slots=True)
class Address:
    """XAD."""

    street: str = ""
    other: str = ""
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""
    address_type: str = ""

    @property
    def is_empty(self) -> bool:
        """Whether no part of the address is filled."""
        return not (self.street or self.city or self.state or self.postal_code)


@dataclass(frozen=True, slots=True)
class Phone:
    """XTN: telecom use and equipment, email, and the phone number digits."""

    use: str = ""
    equipment: str = ""
    email: str = ""
    area_code: str = ""
    number: str = ""
    legacy: str = ""

    @property
    def digits(self) -> str:
        """Area code and local number as digits only (legacy XTN-1 as fallback)."""
        raw = (self.area_code + self.number) or self.legacy
        return "".join(ch for ch in raw if ch.isdigit())


@dataclass(frozen=True, slots=True)
class PatientView:
    """PID."""

    occurrence: int
    set_id: str
    identifiers: tuple[Identifier, ...]
    names: tuple[PersonName, ...]
    mother_maiden_name: PersonName
    birth_date: str
    sex: str
    races: tuple[CodedValue, ...]
    addresses: tuple[Address, ...]
    phones: tuple[Phone, ...]
    ethnicity: tuple[CodedValue, ...]
    multiple_birth: str
    birth_order: str
    death_date: str
    death_indicator: str
    unsupported_fields: tuple[int, ...]

    @property
    def legal_name(self) -> PersonName:
        """The legal name (XPN-7 ``L``), else the first name given."""
        for name in self.names:
            if name.name_type == "L":
                return name
        return self.names[0] if self.names else PersonName()


@dataclass(frozen=True, slots=True)
class PatientAdditionalView:
    """PD1: publicity, protection (the lock) and registry status."""

    occurrence: int
    publicity: CodedValue
    protection: str
    protection_date: str
    registry_status: str
    registry_status_date: str
    publicity_date: str


@dataclass(frozen=True, slots=True)
class NextOfKinView:
    """NK1."""

    occurrence: int
    set_id: str
    name: PersonName
    relationship: CodedValue
    address: Address
    phone: Phone


@dataclass(frozen=True, slots=True)
class ObservationView:
    """OBX."""

    occurrence: int
    set_id: str
    value_type: str
    code: CodedValue
    sub_id: str
    value: CodedValue
    raw_value: str
    units: CodedValue
    result_status: str
    observed_at: str
    method: CodedValue


@dataclass(frozen=True, slots=True)
class OrderView:
    """ORC: one per dose."""

    occurrence: int
    order_control: str
    placer_id: str
    filler_id: str
    filler_namespace: str
    filler_universal_id: str
    ordering_provider: str
    entered_by: str


@dataclass(frozen=True, slots=True)
class AdministrationView:
    """RXA: the dose itself."""

    occurrence: int
    sub_id_counter: str
    administration_sub_id: str
    start: str
    end: str
    vaccine: CodedValue
    vaccines: tuple[CodedValue, ...]
    amount: str
    units: CodedValue
    information_source: CodedValue
    administering_provider: str
    location: str
    location_facility: str
    lot_numbers: tuple[str, ...]
    lot_expiration: str
    manufacturer: CodedValue
    refusal_reasons: tuple[CodedValue, ...]
    completion_status: str
    action_code: str


@dataclass(frozen=True, slots=True)
class RouteView:
    """RXR: route and site of administration."""

    occurrence: int
    route: CodedValue
    site: CodedValue


@dataclass(frozen=True, slots=True)
class OrderGroup:
    """One ORDER group: ORC, RXA, optional RXR and its OBX rows.

    ``order`` is None when a 2.3.1-style sender omitted ORC; ``administration``
    is None when the ORC had no RXA.
    """

    index: int
    order: OrderView | None
    administration: AdministrationView | None
    route: RouteView | None
    observations: tuple[ObservationView, ...]
    #: where the group's ORC or RXA was found glued into the segment before
    #: it (its terminator missing): the group cannot be trusted
    glued_into: GluePoint | None = None


@dataclass(frozen=True, slots=True)
class StructureProblem:
    """A segment where the grammar does not allow it (ERR 100)."""

    segment: str
    occurrence: int
    reason: str
    field: int | None = None


@dataclass(frozen=True, slots=True)
class VxuView:
    """A VXU^V04 message, grouped the way the Z22 grammar groups it."""

    header: MessageHeader
    patient: PatientView | None
    patient_additional: PatientAdditionalView | None
    next_of_kin: tuple[NextOfKinView, ...]
    orders: tuple[OrderGroup, ...]
    ignored_segments: tuple[tuple[str, int], ...] = ()
    problems: tuple[StructureProblem, ...] = field(default=())
    #: the tokenized message the view was read from (field checks use it)
    message: Message | None = field(default=None, repr=False, compare=False)


def _hd(seg: Segment, n: int) -> HD:
    c = seg.components(n)
    c += [""] * (3 - len(c))
    return HD(c[0].strip(), c[1].strip(), c[2].strip())


def coded(seg: Segment, n: int, rep: int = 0) -> CodedValue:
    """Read a CE/CWE field (one repetition) into a :class:`CodedValue`."""
    c = seg.components(n, rep)
    if len(c) < 6:
        c += [""] * (6 - len(c))
    return CodedValue(
        c[0].strip(),
        c[1].strip(),
        c[2].strip(),
        c[3].strip(),
        c[4].strip(),
        c[5].strip(),
    )


def coded_list(seg: Segment, n: int) -> tuple[CodedValue, ...]:
    """Every non-empty repetition of a CE/CWE field."""
    out = []
    for rep in range(len(seg.repetitions(n))):
        value = coded(seg, n, rep)
        if not value.is_empty:
            out.append(value)
    return tuple(out)


def person_name(seg: Segment, n: int, rep: int = 0) -> PersonName:
    """Read an XPN repetition."""
    c = seg.components(n, rep)
    if len(c) < 7:
        c += [""] * (7 - len(c))
    # XPN-1 is FN: the surname is its first subcomponent (split before unescaping).
    family = seg.subcomponents(n, rep, 1)[0]
    return PersonName(
        family.strip(),
        c[1].strip(),
        c[2].strip(),
        c[3].strip(),
        c[4].strip(),
        c[6].strip(),
    )


def address(seg: Segment, n: int, rep: int = 0) -> Address:
    """Read an XAD repetition."""
    c = seg.components(n, rep)
    if len(c) < 7:
        c += [""] * (7 - len(c))
    # XAD-1 is SAD: the street line is its first subcomponent.
    street = seg.subcomponents(n, rep, 1)[0]
    return Address(
        street.strip(),
        c[1].strip(),
        c[2].strip(),
        c[3].strip(),
        c[4].strip(),
        c[5].strip(),
        c[6].strip(),
    )


def phone(seg: Segment, n: int, rep: int = 0) -> Phone:
    """Read an XTN repetition."""
    c = seg.components(n, rep)
    if len(c) < 7:
        c += [""] * (7 - len(c))
    return Phone(
        c[1].strip(),
        c[2].strip(),
        c[3].strip(),
        c[5].strip(),
        c[6].strip(),
        c[0].strip(),
    )


def identifiers(seg: Segment, n: int) -> tuple[Identifier, ...]:
    """Read every CX repetition that carries an id."""
    out = []
    for rep in range(len(seg.repetitions(n))):
        c = seg.components(n, rep)
        if len(c) < 5:
            c += [""] * (5 - len(c))
        value = c[0].strip()
        if not value:
            continue
        # CX-4 is HD: namespace, else the universal id (an OID).
        hd = seg.subcomponents(n, rep, 4)
        authority = hd[0].strip() or (hd[1].strip() if len(hd) > 1 else "")
        out.append(Identifier(value, authority, c[4].strip(), rep))
    return tuple(out)


def read_header(msh: Segment) -> MessageHeader:
    """Build the header view from the MSH segment."""
    msg_type = msh.components(9)
    msg_type += [""] * (3 - len(msg_type))
    profiles = tuple(
        msh.value(21, rep, 1).strip()
        for rep in range(len(msh.repetitions(21)))
        if msh.value(21, rep, 1).strip()
    )
    return MessageHeader(
        encoding_chars=msh.raw(2),
        field_separator=msh.raw(1),
        sending_application=_hd(msh, 3),
        sending_facility=_hd(msh, 4),
        receiving_application=_hd(msh, 5),
        receiving_facility=_hd(msh, 6),
        timestamp=msh.value(7).strip(),
        message_code=msg_type[0].strip(),
        trigger_event=msg_type[1].strip(),
        structure=msg_type[2].strip(),
        control_id=msh.value(10).strip(),
        processing_id=msh.value(11).strip(),
        version=msh.value(12).strip(),
        accept_ack_type=msh.value(15).strip().upper(),
        application_ack_type=msh.value(16).strip().upper(),
        charset=msh.value(18).strip(),
        profiles=profiles,
        responsible_org=msh.value(22).strip(),
    )


#: PID fields the guide marks X (not supported): data there is ignored with a warning.
_PID_UNSUPPORTED = (2, 4, 9, 12, 19, 20, 21)


def read_patient(pid: Segment) -> PatientView:
    """Build the PID view."""
    return PatientView(
        occurrence=pid.occurrence,
        set_id=pid.value(1).strip(),
        identifiers=identifiers(pid, 3),
        names=tuple(
            name
            for name in (
                person_name(pid, 5, rep) for rep in range(len(pid.repetitions(5)))
            )
            if not name.is_empty
        ),
        mother_maiden_name=person_name(pid, 6),
        birth_date=pid.value(7).strip(),
        sex=pid.value(8).strip().upper(),
        races=coded_list(pid, 10),
        addresses=tuple(
            a
            for a in (address(pid, 11, rep) for rep in range(len(pid.repetitions(11))))
            if not a.is_empty
        ),
        phones=tuple(
            phone(pid, 13, rep)
            for rep in range(len(pid.repetitions(13)))
            if pid.repetitions(13)[rep]
        ),
        ethnicity=coded_list(pid, 22),
        multiple_birth=pid.value(24).strip().upper(),
        birth_order=pid.value(25).strip(),
        death_date=pid.value(29).strip(),
        death_indicator=pid.value(30).strip().upper(),
        unsupported_fields=tuple(n for n in _PID_UNSUPPORTED if pid.raw(n).strip()),
    )


def read_patient_additional(pd1: Segment) -> PatientAdditionalView:
    """Build the PD1 view."""
    return PatientAdditionalView(
        occurrence=pd1.occurrence,
        publicity=coded(pd1, 11),
        protection=pd1.value(12).strip().upper(),
        protection_date=pd1.value(13).strip(),
        registry_status=pd1.value(16).strip().upper(),
        registry_status_date=pd1.value(17).strip(),
        publicity_date=pd1.value(18).strip(),
    )


def read_next_of_kin(nk1: Segment) -> NextOfKinView:
    """Build an NK1 view."""
    return NextOfKinView(
        occurrence=nk1.occurrence,
        set_id=nk1.value(1).strip(),
        name=person_name(nk1, 2),
        relationship=coded(nk1, 3),
        address=address(nk1, 4),
        phone=phone(nk1, 5),
    )


def read_order(orc: Segment) -> OrderView:
    """Build an ORC view."""
    return OrderView(
        occurrence=orc.occurrence,
        order_control=orc.value(1).strip(),
        placer_id=orc.value(2).strip(),
        filler_id=orc.value(3, 0, 1).strip(),
        filler_namespace=orc.value(3, 0, 2).strip(),
        filler_universal_id=orc.value(3, 0, 3).strip(),
        ordering_provider=orc.value(12, 0, 1).strip(),
        entered_by=orc.value(10, 0, 1).strip(),
    )


def read_administration(rxa: Segment) -> AdministrationView:
    """Build an RXA view."""
    lots = tuple(
        v
        for v in (rxa.value(15, rep).strip() for rep in range(len(rxa.repetitions(15))))
        if v
    )
    return AdministrationView(
        occurrence=rxa.occurrence,
        sub_id_counter=rxa.value(1).strip(),
        administration_sub_id=rxa.value(2).strip(),
        start=rxa.value(3).strip(),
        end=rxa.value(4).strip(),
        vaccine=coded(rxa, 5),
        vaccines=coded_list(rxa, 5),
        amount=rxa.value(6).strip(),
        units=coded(rxa, 7),
        information_source=coded(rxa, 9),
        administering_provider=rxa.value(10, 0, 1).strip(),
        location=rxa.raw(11),
        location_facility=rxa.value(11, 0, 4).strip(),
        lot_numbers=lots,
        lot_expiration=rxa.value(16).strip(),
        manufacturer=coded(rxa, 17),
        refusal_reasons=coded_list(rxa, 18),
        completion_status=rxa.value(20).strip().upper(),
        action_code=rxa.value(21).strip().upper(),
    )


def read_route(rxr: Segment) -> RouteView:
    """Build an RXR view."""
    return RouteView(occurrence=rxr.occurrence, route=coded(rxr, 1), site=coded(rxr, 2))


def read_observation(obx: Segment) -> ObservationView:
    """Build an OBX view."""
    return ObservationView(
        occurrence=obx.occurrence,
        set_id=obx.value(1).strip(),
        value_type=obx.value(2).strip().upper(),
        code=coded(obx, 3),
        sub_id=obx.value(4).strip(),
        value=coded(obx, 5),
        raw_value=obx.value(5).strip(),
        units=coded(obx, 6),
        result_status=obx.value(11).strip().upper(),
        observed_at=obx.value(14).strip(),
        method=coded(obx, 17),
    )


# Segments the Z22 grammar allows outside the ORDER groups, in order of rank.
_HEAD_RANK = {
    "MSH": 0,
    "SFT": 1,
    "PID": 2,
    "PD1": 3,
    "NK1": 4,
    "PV1": 5,
    "PV2": 6,
    "GT1": 7,
    "IN1": 8,
    "IN2": 8,
    "IN3": 8,
}


@dataclass
class _GroupBuilder:
    """An ORDER group while its segments are being collected."""

    order: OrderView | None = None
    administration: AdministrationView | None = None
    route: RouteView | None = None
    observations: list[ObservationView] = field(default_factory=list)
    glued_into: GluePoint | None = None

    def build(self, index: int) -> OrderGroup:
        return OrderGroup(
            index,
            self.order,
            self.administration,
            self.route,
            tuple(self.observations),
            self.glued_into,
        )


def read_vxu(message: Message) -> VxuView:
    """Group a tokenized VXU into its Z22 structure.

    Segments out of order are reported as :class:`StructureProblem` (the guide
    treats them as empty); unknown and Z segments are listed as ignored.
    """
    header = read_header(message.msh)
    patient: PatientView | None = None
    pd1: PatientAdditionalView | None = None
    nk1s: list[NextOfKinView] = []
    orders: list[OrderGroup] = []
    ignored: list[tuple[str, int]] = []
    problems: list[StructureProblem] = []

    rank = 0
    current: _GroupBuilder | None = None

    def close_group() -> None:
        nonlocal current
        if current is not None:
            orders.append(current.build(len(orders) + 1))
            current = None

    for seg in message.segments[1:]:
        sid = seg.id
        glue = seg.glued_into
        if glue is not None and sid not in {"ORC", "RXA"}:
            problems.append(
                StructureProblem(
                    glue.segment,
                    glue.occurrence,
                    f"a {sid} segment is glued into {glue.segment}-{glue.field} "
                    "(the segment terminator before it is missing)",
                    glue.field,
                )
            )
            continue
        if sid in _HEAD_RANK and sid != "MSH":
            if current is not None or _HEAD_RANK[sid] < rank:
                problems.append(
                    StructureProblem(sid, seg.occurrence, f"{sid} is out of order")
                )
                continue
            rank = _HEAD_RANK[sid]
            if sid == "PID":
                if patient is not None:
                    problems.append(
                        StructureProblem(sid, seg.occurrence, "more than one PID")
                    )
                    continue
                patient = read_patient(seg)
            elif sid == "PD1":
                pd1 = read_patient_additional(seg)
            elif sid == "NK1":
                nk1s.append(read_next_of_kin(seg))
            else:
                ignored.append((sid, seg.occurrence))
            continue
        if sid == "ORC":
            close_group()
            current = _GroupBuilder(order=read_order(seg), glued_into=glue)
            rank = 99
        elif sid == "RXA":
            if current is not None and current.administration is None:
                current.administration = read_administration(seg)
                current.glued_into = current.glued_into or glue
            else:
                # RXA without ORC: a 2.3.1-style sender; it opens its own group.
                close_group()
                current = _GroupBuilder(
                    administration=read_administration(seg), glued_into=glue
                )
            rank = 99
        elif sid == "RXR":
            if (
                current is None
                or current.administration is None
                or current.route is not None
                or current.observations
            ):
                problems.append(
                    StructureProblem(sid, seg.occurrence, "RXR is out of order")
                )
                continue
            current.route = read_route(seg)
        elif sid == "OBX":
            if current is None or current.administration is None:
                problems.append(
                    StructureProblem(
                        sid, seg.occurrence, "OBX is not inside an order group"
                    )
                )
                continue
            current.observations.append(read_observation(seg))
        else:
            # Optional (SFT, PV1, IN1, NTE, TQ1...), unknown and Z segments: ignored.
            ignored.append((sid, seg.occurrence))
    close_group()
    return VxuView(
        header=header,
        patient=patient,
        patient_additional=pd1,
        next_of_kin=tuple(nk1s),
        orders=tuple(orders),
        ignored_segments=tuple(ignored),
        problems=tuple(problems),
        message=message,
    )
