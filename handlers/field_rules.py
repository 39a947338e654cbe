"""The simple VXU field rules as a table: required, in a code table, one of a few values.

One row per field (STYLE rule 18): where the value is read from the segment's
view, what to do when it is empty, which code tables (or fixed values) it
must come from, and what to do when it does not. One function,
:func:`check_fields`, evaluates rows. The codes are always the same: an
empty required field is ``101`` required field missing / 0533 ``7`` required
data missing; a value outside its table is ``103`` table value not found /
0533 ``5``. Each row says the severity, the effect (IG Table 3-1,
REFERENCE §9.3) and the exact ERR-8 text.

Rules that compare fields with each other or with dates (RXA-3 against the
birth date, RXA-9 against RXA-20, the NDC crosswalk...) stay code in
:mod:`handlers.vxu_validation`; length and control-character rules are rows
of :mod:`handlers.field_limits`. The validator evaluates the rows of a
segment where its own order of findings puts them, so ERR segments keep
their order.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter

from handlers.context import CodeLookup
from parsers import (
    ActionCode,
    AppError,
    CompletionStatus,
    Hl7Error,
    Issue,
    Location,
    Severity,
    finding,
)

__all__ = [
    "FIELD_RULES",
    "Broken",
    "Checked",
    "Effect",
    "FieldRule",
    "check_fields",
    "rules_for",
]


class Effect(enum.Enum):
    """What a broken rule does to the data (IG Table 3-1)."""

    #: reported only; the value is kept
    REPORT = enum.auto()
    #: the value is treated as empty
    IGNORE_VALUE = enum.auto()
    #: the value is replaced by the row's default
    USE_DEFAULT = enum.auto()
    #: the segment is ignored; its later rows are not checked
    IGNORE_SEGMENT = enum.auto()
    #: the order group (dose) is rejected; ERR-8 says which
    REJECT_DOSE = enum.auto()
    #: the message is rejected
    REJECT_MESSAGE = enum.auto()


@dataclass(frozen=True, slots=True)
class Broken:
    """What happens when a row's condition fails: ERR-4, the effect, ERR-8."""

    severity: Severity
    effect: Effect
    text: str


_E = Severity.ERROR
_W = Severity.WARNING

#: HL7 table 0136 (yes/no) compared exactly, as the guide writes it.
YES_NO = frozenset({"Y", "N"})


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One field's simple rules.

    Attributes:
        segment: the segment id (``PID``).
        field: the field number (ERR-2.3).
        attribute: where the view holds the value (``relationship.code``);
            a value that is not text counts as empty when it ``is_empty``.
        missing: what an empty value does; None when empty is fine.
        tables: code tables of which one must hold the value (codes compared
            as :class:`handlers.codes.CodeTables` does).
        values: or the exact values allowed.
        invalid: what a value outside ``tables``/``values`` does.
        required_with: an empty value is reported only when this field of
            the same segment was kept (checked earlier in the same call).
        default: the value used when empty, and for
            :attr:`Effect.USE_DEFAULT`.
    """

    segment: str
    field: int
    attribute: str
    missing: Broken | None = None
    tables: tuple[str, ...] = ()
    values: frozenset[str] = frozenset()
    invalid: Broken | None = None
    required_with: int | None = None
    default: str = ""


#: The rows, per segment in the order the validator reports them.
FIELD_RULES: tuple[FieldRule, ...] = (
    FieldRule(
        "MSH",
        15,
        "accept_ack_type",
        tables=("HL70155",),
        invalid=Broken(
            _W,
            Effect.REPORT,
            "MSH-15 value is not in HL7 table 0155; answering always",
        ),
    ),
    FieldRule(
        "MSH",
        16,
        "application_ack_type",
        tables=("HL70155",),
        invalid=Broken(
            _W,
            Effect.REPORT,
            "MSH-16 value is not in HL7 table 0155; answering always",
        ),
    ),
    FieldRule(
        "PID",
        8,
        "sex",
        missing=Broken(
            _E,
            Effect.REJECT_MESSAGE,
            "PID-8 (administrative sex) is missing; message rejected",
        ),
        tables=("HL70001",),
        invalid=Broken(
            _E,
            Effect.REJECT_MESSAGE,
            "PID-8 (administrative sex) is not F, M or U (table 0001); message rejected",
        ),
    ),
    FieldRule(
        "PID",
        24,
        "multiple_birth",
        values=YES_NO,
        invalid=Broken(
            _W,
            Effect.IGNORE_VALUE,
            "PID-24 (multiple birth indicator) is not Y or N; ignored",
        ),
    ),
    FieldRule(
        "PID",
        30,
        "death_indicator",
        values=YES_NO,
        invalid=Broken(
            _W, Effect.IGNORE_VALUE, "PID-30 (death indicator) is not Y or N; ignored"
        ),
    ),
    FieldRule(
        "PD1",
        12,
        "protection",
        values=YES_NO,
        invalid=Broken(
            _W,
            Effect.IGNORE_VALUE,
            "PD1-12 (protection indicator) is not Y or N; ignored",
        ),
    ),
    FieldRule(
        "PD1",
        13,
        "protection_date",
        missing=Broken(
            _W,
            Effect.REPORT,
            "PD1-13 (protection indicator effective date) is missing",
        ),
        required_with=12,
    ),
    FieldRule(
        "PD1",
        16,
        "registry_status",
        tables=("HL70441",),
        invalid=Broken(
            _W,
            Effect.IGNORE_VALUE,
            "PD1-16 (registry status) is not in HL7 table 0441; ignored",
        ),
    ),
    FieldRule(
        "PD1",
        17,
        "registry_status_date",
        missing=Broken(
            _W, Effect.REPORT, "PD1-17 (registry status effective date) is missing"
        ),
        required_with=16,
    ),
    FieldRule(
        "PD1",
        11,
        "publicity.code",
        tables=("HL70215",),
        invalid=Broken(
            _W,
            Effect.IGNORE_VALUE,
            "PD1-11 (publicity code) is not in HL7 table 0215; ignored",
        ),
    ),
    FieldRule(
        "NK1",
        2,
        "name",
        missing=Broken(
            _E,
            Effect.IGNORE_SEGMENT,
            "NK1-2 (next of kin name) is missing; NK1 segment ignored",
        ),
    ),
    FieldRule(
        "NK1",
        3,
        "relationship.code",
        missing=Broken(
            _E,
            Effect.IGNORE_SEGMENT,
            "NK1-3 (relationship) is missing; NK1 segment ignored",
        ),
        tables=("HL70063",),
        invalid=Broken(
            _W, Effect.REPORT, "NK1-3 (relationship) is not in HL7 table 0063"
        ),
    ),
    FieldRule(
        "RXA",
        20,
        "completion_status",
        tables=("HL70322",),
        invalid=Broken(
            _W,
            Effect.USE_DEFAULT,
            "RXA-20 (completion status) is not in HL7 table 0322; treated as CP",
        ),
        default=CompletionStatus.COMPLETE,
    ),
    FieldRule(
        "RXA",
        21,
        "action_code",
        tables=("HL70323",),
        invalid=Broken(
            _E,
            Effect.REJECT_DOSE,
            "RXA-21 (action code) is not A, U or D (table 0323)",
        ),
        default=ActionCode.ADD,
    ),
    FieldRule(
        "ORC",
        1,
        "order_control",
        values=frozenset({"RE"}),
        invalid=Broken(_W, Effect.REPORT, "ORC-1 (order control) should be RE"),
    ),
    FieldRule(
        "RXR",
        1,
        "route.code",
        tables=("NCIT_ROUTE", "HL70162"),
        invalid=Broken(
            _W,
            Effect.REPORT,
            "RXR-1 (route) is not an NCIT or HL7 0162 route code",
        ),
    ),
    FieldRule(
        "RXR",
        2,
        "site.code",
        tables=("HL70163",),
        invalid=Broken(_W, Effect.REPORT, "RXR-2 (site) is not in HL7 table 0163"),
    ),
    FieldRule(
        "OBX",
        3,
        "code.code",
        missing=Broken(
            _W,
            Effect.IGNORE_SEGMENT,
            "OBX-3 (observation identifier) is missing; OBX ignored",
        ),
        tables=("NIP003",),
        invalid=Broken(
            _W,
            Effect.IGNORE_SEGMENT,
            "OBX-3 is not an immunization observation (NIP003); OBX ignored",
        ),
    ),
    FieldRule(
        "OBX",
        5,
        "raw_value",
        missing=Broken(
            _W,
            Effect.IGNORE_SEGMENT,
            "OBX-5 (observation value) is missing; OBX ignored",
        ),
    ),
    FieldRule(
        "OBX",
        4,
        "sub_id",
        missing=Broken(_W, Effect.REPORT, "OBX-4 (observation sub-id) is missing"),
    ),
    FieldRule(
        "OBX",
        11,
        "result_status",
        values=frozenset({"F"}),
        invalid=Broken(_W, Effect.REPORT, "OBX-11 (result status) should be F"),
    ),
)


def rules_for(segment: str, *fields: int) -> tuple[FieldRule, ...]:
    """The rows of a segment (only ``fields``, when given), in table order.

    Args:
        segment: the segment id.
        *fields: field numbers to keep; none keeps every row of the segment.

    Returns:
        The rows.
    """
    return tuple(
        rule
        for rule in FIELD_RULES
        if rule.segment == segment and (not fields or rule.field in fields)
    )


@dataclass
class Checked:
    """What :func:`check_fields` found.

    Attributes:
        values: each checked field's value after the rules (ignored values
            empty, defaults put in).
        issues: the findings, in row order.
        effects: the effects of the broken rules.
    """

    values: dict[int, str] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    effects: set[Effect] = field(default_factory=set)

    def value(self, field_no: int) -> str:
        """A checked field's value (``""`` for a field not checked)."""
        return self.values.get(field_no, "")


def _read(view: object, attribute: str) -> str:
    value = attrgetter(attribute)(view)
    if isinstance(value, str):
        return value
    return "" if value.is_empty else str(value)


def _allowed(rule: FieldRule, value: str, codes: CodeLookup) -> bool:
    if not (rule.values or rule.tables):
        return True
    return value in rule.values or any(codes.has(table, value) for table in rule.tables)


def check_fields(
    rules: Sequence[FieldRule],
    view: object,
    occurrence: int,
    codes: CodeLookup,
    *,
    group: int | None = None,
) -> Checked:
    """Evaluate rows against one segment's view.

    Args:
        rules: the rows (see :func:`rules_for`), evaluated in order.
        view: the segment's view (``PatientView``, ``ObservationView``...).
        occurrence: the segment's occurrence in the message (ERR-2.2).
        codes: the code tables.
        group: the order group, named in ERR-8 of a rejected dose.

    Returns:
        The values, findings and effects; after an
        :attr:`Effect.IGNORE_SEGMENT` the remaining rows are not evaluated.
    """
    out = Checked()
    for rule in rules:
        value = _read(view, rule.attribute)
        broken: Broken | None = None
        if not value:
            value = rule.default
            required = rule.required_with is None or out.value(rule.required_with)
            if required:
                broken = rule.missing
            codes_of = (Hl7Error.REQUIRED_FIELD_MISSING, AppError.REQUIRED_DATA_MISSING)
        else:
            if not _allowed(rule, value, codes):
                broken = rule.invalid
            codes_of = (Hl7Error.TABLE_VALUE_NOT_FOUND, AppError.TABLE_VALUE_NOT_FOUND)
        if broken is not None:
            text = broken.text
            if broken.effect is Effect.REJECT_DOSE and group is not None:
                text = f"{text}; order group {group} rejected"
            out.issues.append(
                finding(
                    broken.severity,
                    codes_of[0],
                    at=Location(rule.segment, occurrence, rule.field),
                    app=codes_of[1],
                    text=text,
                )
            )
            out.effects.add(broken.effect)
            if broken.effect is Effect.IGNORE_VALUE:
                value = ""
            elif broken.effect is Effect.USE_DEFAULT:
                value = rule.default
            elif broken.effect is Effect.IGNORE_SEGMENT:
                out.values[rule.field] = value
                return out
        out.values[rule.field] = value
    return out
