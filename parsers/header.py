"""One header (MSH) checker for every message type.

The pipeline checks every message's MSH here, once, before any handler runs:
whether the journal can key it (:func:`check_key`), and what the registry
thinks of its envelope (:func:`check_header`). What differs between message
types (the MSH-9 structure, the MSH-21 profile expected, whether the IG's
conventions on delimiters, MSH-7 and MSH-15/16 are checked) is data, a
:class:`HeaderRules` per route. Pure: reads a parsed header, returns findings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from parsers.codes import AppError, Hl7Error
from parsers.datatypes import parse_date
from parsers.query import read_query
from parsers.response import Issue, Location, error, warning
from parsers.tokenizer import Message, has_control_character
from parsers.views import MessageHeader

__all__ = [
    "ACK_CONDITIONS",
    "QBP_HEADER",
    "SUPPORTED_VERSION",
    "VXU_HEADER",
    "HeaderCheck",
    "HeaderRules",
    "check_header",
    "check_key",
]

#: The one HL7 version this registry accepts (MSH-12).
SUPPORTED_VERSION = "2.5.1"

#: HL7 table 0155, accept/application acknowledgment conditions (MSH-15/16),
#: compared upper-cased as the code tables compare it.
ACK_CONDITIONS = frozenset({"AL", "NE", "ER", "SU"})

#: MSH-21 profiles a query may name: its own query name (QPD-1).
_QUERY_PROFILES = frozenset({"Z34", "Z44"})


@dataclass(frozen=True, slots=True)
class HeaderRules:
    """What the MSH of one message type must carry.

    Attributes:
        structure: the MSH-9.3 message structure (``VXU_V04``); its event
            part is the MSH-9.2 trigger event expected.
        profile_of: the MSH-21 profile this message must name, read from the
            message (a query names its own query name); None when no
            particular profile can be expected.
        missing_profile: what the warning on an empty MSH-21 says is expected.
        conventions: whether the IG's conventions are checked too: standard
            delimiters (MSH-1/2), a valid MSH-7, the MSH-9.3 structure and
            table 0155 in MSH-15/16.
    """

    structure: str
    profile_of: Callable[[Message], str | None]
    missing_profile: str
    conventions: bool = True

    @property
    def trigger_event(self) -> str:
        """The MSH-9.2 trigger event expected (``V04``)."""
        return self.structure.split("_")[1]


def _query_profile(message: Message) -> str | None:
    """A query's expected MSH-21 profile: its QPD-1 query name, when it is one we answer."""
    params = read_query(message).parameters
    if params is None:
        return None
    name = params.query_name.code
    return name if name in _QUERY_PROFILES else None


#: VXU^V04: profile Z22 (send immunization update), every convention checked.
VXU_HEADER = HeaderRules(
    structure="VXU_V04",
    profile_of=lambda _message: "Z22",
    missing_profile="Z22^CDCPHINVS",
)

#: QBP^Q11: the profile is the query name (Z34 or Z44).
QBP_HEADER = HeaderRules(
    structure="QBP_Q11",
    profile_of=_query_profile,
    missing_profile="Z34 or Z44",
    conventions=False,
)


@dataclass(frozen=True, slots=True)
class HeaderCheck:
    """What :func:`check_header` found, in the order the answer lists it.

    Attributes:
        rejections: errors that reject the message before any handler runs
            (unsupported type, event, processing id or version; an
            unidentified or unregistered sender). Empty when it may proceed.
        leading: warnings listed before the handler's own findings.
        trailing: warnings listed after the handler's own findings.
    """

    rejections: tuple[Issue, ...] = ()
    leading: tuple[Issue, ...] = ()
    trailing: tuple[Issue, ...] = ()

    @property
    def issues(self) -> tuple[Issue, ...]:
        """Every finding, each with its severity."""
        return (*self.rejections, *self.leading, *self.trailing)


def _msh(field_no: int) -> Location:
    return Location("MSH", 1, field_no)


def check_key(header: MessageHeader, limits: Mapping[str, int]) -> Issue | None:
    """Why the journal cannot key this message, as an AR issue; None when it can.

    The journal keys every message on (sender, MSH-10): a value that does not
    fit its column, or holds a control character, would make the journal
    insert fail on PostgreSQL (and be stored on SQLite), so it is refused the
    same way on both, naming the field and the limit.

    Args:
        header: the message's header.
        limits: the journal's column lengths, ``control_id`` and ``sender``.

    Returns:
        The error, or None when the message can be journaled.
    """
    if not header.control_id:
        return error(
            Hl7Error.REQUIRED_FIELD_MISSING,
            at=_msh(10),
            app=AppError.REQUIRED_DATA_MISSING,
            text="MSH-10 (message control id) is missing; rejected",
        )
    sender_field = 4 if header.sending_facility.key else 3
    checks = (
        ("MSH-10 (message control id)", 10, header.control_id, "control_id"),
        (f"MSH-{sender_field} (sender)", sender_field, header.sender, "sender"),
    )
    for name, field_no, value, column in checks:
        limit = limits[column]
        if len(value) > limit:
            return error(
                Hl7Error.DATA_TYPE_ERROR,
                at=_msh(field_no),
                app=AppError.INVALID_VALUE,
                text=f"{name} is {len(value)} characters long; at most {limit} are "
                "accepted; rejected, nothing stored",
            )
        if has_control_character(value):
            return error(
                Hl7Error.DATA_TYPE_ERROR,
                at=_msh(field_no),
                app=AppError.INVALID_VALUE,
                text=f"{name} contains a control character; rejected, nothing stored",
            )
    return None


def check_header(
    message: Message,
    header: MessageHeader,
    rules: Mapping[str, HeaderRules],
    *,
    processing_ids: frozenset[str],
    sender_accepted: bool,
    charset_problem: str = "",
) -> HeaderCheck:
    """Check a message's MSH against the rules of its type.

    Args:
        message: the tokenized message (a query's expected profile is its
            QPD-1).
        header: its header.
        rules: message code (``VXU``, ``QBP``) to the rules of that type; a
            code not here is unsupported.
        processing_ids: the MSH-11 values accepted.
        sender_accepted: whether the sending facility may send (registered,
            or accepted by the unknown-sender policy).
        charset_problem: why the MSH-18 character set could not be honoured
            (from decoding), or empty.

    Returns:
        The findings; a message with rejections goes no further.
    """
    type_rules = rules.get(header.message_code)
    rejections = list(_envelope(header, type_rules, processing_ids))
    if not sender_accepted:
        rejections.append(_sender_refused(header))
    if rejections or type_rules is None:
        return HeaderCheck(tuple(rejections))
    return HeaderCheck(
        (),
        tuple(_leading(message, header, type_rules)),
        tuple(_trailing(header, charset_problem)),
    )


def _envelope(
    header: MessageHeader, rules: HeaderRules | None, processing_ids: frozenset[str]
) -> list[Issue]:
    """Type, event, processing id and version: errors that stop the message."""
    if rules is None:
        return [
            error(
                Hl7Error.UNSUPPORTED_MESSAGE_TYPE,
                at=_msh(9),
                app=AppError.INVALID_VALUE,
                text=f"MSH-9 message type {header.message_code[:8]!r} is not "
                "supported (VXU^V04 and QBP^Q11 are)",
            )
        ]
    issues: list[Issue] = []
    expected_event = rules.trigger_event
    if header.trigger_event != expected_event:
        issues.append(
            error(
                Hl7Error.UNSUPPORTED_EVENT_CODE,
                at=_msh(9),
                app=AppError.INVALID_VALUE,
                text=f"MSH-9.2 event {header.trigger_event[:8]!r} is not supported "
                f"for {header.message_code}; expected {expected_event}",
            )
        )
    if header.processing_id not in processing_ids:
        issues.append(
            error(
                Hl7Error.UNSUPPORTED_PROCESSING_ID,
                at=_msh(11),
                app=AppError.INVALID_VALUE,
                text=f"MSH-11 processing id {header.processing_id[:4]!r} is not "
                "supported (P, T or D)",
            )
        )
    if header.version != SUPPORTED_VERSION:
        issues.append(
            error(
                Hl7Error.UNSUPPORTED_VERSION_ID,
                at=_msh(12),
                app=AppError.INVALID_VALUE,
                text=f"MSH-12 version {header.version[:8]!r} is not supported; "
                "this registry accepts 2.5.1",
            )
        )
    return issues


def _sender_refused(header: MessageHeader) -> Issue:
    """The error for a sender the registry does not take messages from."""
    if header.sender:
        return error(
            Hl7Error.TABLE_VALUE_NOT_FOUND,
            at=_msh(4),
            app=AppError.TABLE_VALUE_NOT_FOUND,
            text="MSH-4 (sending facility) is not registered with this registry; "
            "rejected",
        )
    return error(
        Hl7Error.REQUIRED_FIELD_MISSING,
        at=_msh(4),
        app=AppError.REQUIRED_DATA_MISSING,
        text="MSH-4 (sending facility) is empty, so the sender cannot be "
        "identified; rejected",
    )


def _leading(
    message: Message, header: MessageHeader, rules: HeaderRules
) -> list[Issue]:
    """The IG's conventions and the MSH-21 profile, in MSH field order."""
    issues: list[Issue] = []
    if rules.conventions:
        issues.extend(_conventions(header, rules))
    expected = rules.profile_of(message)
    if not header.profiles:
        issues.append(
            warning(
                Hl7Error.REQUIRED_FIELD_MISSING,
                at=_msh(21),
                app=AppError.REQUIRED_DATA_MISSING,
                text="MSH-21 (message profile) is missing; expected "
                + rules.missing_profile,
            )
        )
    elif expected is not None and expected not in header.profiles:
        issues.append(
            warning(
                Hl7Error.TABLE_VALUE_NOT_FOUND,
                at=_msh(21),
                app=AppError.TABLE_VALUE_NOT_FOUND,
                text=f"MSH-21 does not name profile {expected}^CDCPHINVS",
            )
        )
    if rules.conventions:
        issues.extend(_ack_types(header))
    return issues


def _conventions(header: MessageHeader, rules: HeaderRules) -> list[Issue]:
    """MSH-1/2 delimiters, MSH-7 timestamp and MSH-9.3 structure."""
    issues: list[Issue] = []
    if header.field_separator != "|" or header.encoding_chars != "^~\\&":
        issues.append(
            warning(
                Hl7Error.DATA_TYPE_ERROR,
                at=_msh(2),
                app=AppError.INVALID_VALUE,
                text="MSH-1/MSH-2 are not the standard |^~\\& delimiters (IZ-12, "
                "IZ-13); read as declared",
            )
        )
    if not header.timestamp:
        issues.append(
            warning(
                Hl7Error.REQUIRED_FIELD_MISSING,
                at=_msh(7),
                app=AppError.REQUIRED_DATA_MISSING,
                text="MSH-7 (date/time of message) is missing",
            )
        )
    elif parse_date(header.timestamp).problem:
        issues.append(
            warning(
                Hl7Error.DATA_TYPE_ERROR,
                at=_msh(7),
                app=AppError.INVALID_DATE,
                text="MSH-7 (date/time of message) is not a valid HL7 timestamp",
            )
        )
    if header.structure and header.structure != rules.structure:
        issues.append(
            warning(
                Hl7Error.DATA_TYPE_ERROR,
                at=Location("MSH", 1, 9, repetition=1, component=3),
                app=AppError.INVALID_VALUE,
                text=f"MSH-9.3 message structure should be {rules.structure}, got "
                f"{header.structure[:10]!r}",
            )
        )
    return issues


def _ack_types(header: MessageHeader) -> list[Issue]:
    """MSH-15 and MSH-16 in HL7 table 0155 when present (IG: answering always)."""
    issues: list[Issue] = []
    for field_no, value in (
        (15, header.accept_ack_type),
        (16, header.application_ack_type),
    ):
        if value and value.strip().upper() not in ACK_CONDITIONS:
            issues.append(
                warning(
                    Hl7Error.TABLE_VALUE_NOT_FOUND,
                    at=_msh(field_no),
                    app=AppError.TABLE_VALUE_NOT_FOUND,
                    text=f"MSH-{field_no} value is not in HL7 table 0155; "
                    "answering always",
                )
            )
    return issues


def _trailing(header: MessageHeader, charset_problem: str) -> list[Issue]:
    """MSH-18 and an empty MSH-4: listed after the handler's findings."""
    issues: list[Issue] = []
    if charset_problem:
        issues.append(
            warning(
                Hl7Error.DATA_TYPE_ERROR,
                at=_msh(18),
                app=AppError.INVALID_VALUE,
                text=f"MSH-18 character set: {charset_problem}",
            )
        )
    if not header.sending_facility.key:
        issues.append(
            warning(
                Hl7Error.REQUIRED_FIELD_MISSING,
                at=_msh(4),
                app=AppError.REQUIRED_DATA_MISSING,
                text="MSH-4 (sending facility) is empty; "
                + (
                    "MSH-3 identifies the sender"
                    if header.sender
                    else "the sender is anonymous"
                ),
            )
        )
    return issues
