"""Validation findings as values, and the ACK^V04 (Z23) encoder.

Handlers return :class:`Issue` values; the pipeline encodes them into ERR
segments. ERR-2 location, ERR-3 (table 0357), ERR-4 severity (0516), ERR-5
application code (CDC 0533) and ERR-8 readable text are always filled, as
AIRA's acknowledgement guidance asks (REFERENCE §9.1, §9.2).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from parsers.builder import FieldValue, OutSegment, encode_segment
from parsers.codes import AppError, Hl7Error, Severity
from parsers.tokenizer import STANDARD_ENCODING, Encoding
from parsers.views import HD, MessageHeader


@dataclass(frozen=True, slots=True)
class Location:
    """ERR-2 (ERL): segment, occurrence, field, repetition, component."""

    segment: str
    occurrence: int = 1
    field: int | None = None
    repetition: int | None = None
    component: int | None = None
    subcomponent: int | None = None

    def __str__(self) -> str:
        """``RXA-5`` style text for logs and ERR-8."""
        text = self.segment
        if self.field is not None:
            text += f"-{self.field}"
            if self.component is not None:
                text += f".{self.component}"
        return text


@dataclass(frozen=True, slots=True)
class Issue:
    """One validation finding; becomes one ERR segment.

    Build one with :func:`error`, :func:`warning` or :func:`finding`.

    Attributes:
        severity: error, warning or information (ERR-4, table 0516).
        hl7_code: table 0357 code (ERR-3, e.g. required field missing).
        location: where in the message (ERR-2); None for the message as a
            whole.
        app_code: CDC table 0533 code (ERR-5, e.g. required data missing);
            None (or ``""``) leaves ERR-5 empty.
        text: short readable text naming the field and the reason, never
            patient data (ERR-8).
    """

    severity: Severity
    hl7_code: Hl7Error
    location: Location | None
    app_code: AppError | None
    text: str


def finding(
    severity: Severity,
    code: Hl7Error,
    *,
    at: Location | None,
    app: AppError | None = None,
    text: str,
) -> Issue:
    """One validation finding, every part named.

    Args:
        severity: ERR-4.
        code: ERR-3, the HL7 error code.
        at: ERR-2, where; None for the message as a whole.
        app: ERR-5, the CDC application error code, if any.
        text: ERR-8, naming the field and the reason (no patient data).

    Returns:
        The issue, which becomes one ERR segment.
    """
    return Issue(severity, code, at, app, text)


def error(
    code: Hl7Error, *, at: Location | None, app: AppError | None = None, text: str
) -> Issue:
    """An ERR-4 ``E`` finding (see :func:`finding`): data lost or rejected."""
    return Issue(Severity.ERROR, code, at, app, text)


def warning(
    code: Hl7Error, *, at: Location | None, app: AppError | None = None, text: str
) -> Issue:
    """An ERR-4 ``W`` finding (see :func:`finding`): accepted, a possible problem."""
    return Issue(Severity.WARNING, code, at, app, text)


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """What a handler decided about a message: the MSA-1 code and the issues."""

    ack_code: Literal["AA", "AE", "AR"]
    issues: tuple[Issue, ...] = ()
    #: a short outcome for journal and logs, e.g. "stored 3 of 3 doses"
    outcome: str = ""
    region: str | None = None
    facts: dict[str, int] = field(default_factory=dict)
    #: MSH-9.2 of the ACK: the trigger event of the message acknowledged
    trigger: str = "V04"
    #: whether applying the message stored or changed registry data
    changed_registry: bool = False
    #: audit rows (storage NewAuditEntry) the handler inserted that record
    #: who tried what, not what changed: a test-mode message's changes are
    #: rolled back, and the pipeline inserts these again after the rollback
    kept_audits: tuple[object, ...] = ()

    def with_issues(
        self, extra: Sequence[Issue], *, leading: Sequence[Issue] = ()
    ) -> Acknowledgement:
        """This acknowledgement with more findings (the pipeline's own) around its ERRs.

        ``leading`` go before its own findings (the header's), ``extra``
        after them. MSA-1 follows the worst finding of all (an AR stays AR).
        """
        if not extra and not leading:
            return self
        issues = (*leading, *self.issues, *extra)
        code = self.ack_code if self.ack_code == "AR" else ack_code_for(issues)
        return replace(self, ack_code=code, issues=issues)

    def encode(
        self, ours: ResponseHeader, theirs: MessageHeader | None, encoding: Encoding
    ) -> bytes:
        """Encode this decision as an ACK (Z23) to the message ``theirs``."""
        return encode_ack(
            self,
            ours=ours,
            theirs=theirs,
            acked_control_id=theirs.control_id if theirs else "",
            encoding=encoding,
            trigger=self.trigger,
        )


def ack_code_for(issues: Iterable[Issue]) -> Literal["AA", "AE"]:
    """MSA-1 follows the worst ERR-4: any error gives AE, else AA."""
    return "AE" if any(i.severity == Severity.ERROR for i in issues) else "AA"


@dataclass(frozen=True, slots=True)
class ResponseHeader:
    """Our side of a response's MSH."""

    sending_application: str
    sending_facility: str
    control_id: str
    timestamp: str


def msh_segment(
    ours: ResponseHeader,
    theirs: MessageHeader | None,
    message_type: str,
    profile: str,
) -> OutSegment:
    """A response MSH as a value, addressed back to the sender of ``theirs``.

    ``message_type`` is given with ``^`` between components (e.g.
    ``ACK^V04^ACK``); each component is a value of its own.
    """
    processing = (
        theirs.processing_id
        if theirs and theirs.processing_id in {"P", "T", "D"}
        else "P"
    )
    return OutSegment(
        "MSH",
        (
            ours.sending_application,
            ours.sending_facility,
            _hd(theirs.sending_application) if theirs else "",
            _hd(theirs.sending_facility) if theirs else "",
            ours.timestamp,
            "",
            tuple(message_type.split("^")),
            ours.control_id,
            processing,
            "2.5.1",
            "",
            "",
            "NE",
            "NE",
            "",
            "",
            "",
            "",
            (profile, "CDCPHINVS"),
        ),
    )


def _hd(hd: HD) -> FieldValue:
    return (hd.namespace, hd.universal_id, hd.universal_id_type)


def encode_msh(
    encoding: Encoding,
    ours: ResponseHeader,
    theirs: MessageHeader | None,
    message_type: str,
    profile: str,
) -> str:
    """Encode a response MSH (see :func:`msh_segment`), every value escaped."""
    return encode_segment(encoding, msh_segment(ours, theirs, message_type, profile))


def err_segment(issue: Issue) -> OutSegment:
    """One ERR segment as a value (ERR-2, -3, -4, -5, -8)."""
    loc: FieldValue = ""
    if issue.location is not None:
        where = issue.location
        loc = tuple(
            "" if part is None else str(part)
            for part in (
                where.segment,
                where.occurrence,
                where.field,
                where.repetition,
                where.component,
                where.subcomponent,
            )
        )
    app: FieldValue = (
        (issue.app_code, _text(AppError, issue.app_code), "HL70533")
        if issue.app_code
        else ""
    )
    return OutSegment(
        "ERR",
        (
            "",
            loc,
            (issue.hl7_code, _text(Hl7Error, issue.hl7_code), "HL70357"),
            issue.severity,
            app,
            "",
            "",
            issue.text,
        ),
    )


def _text(table: type[Hl7Error] | type[AppError], code: str) -> str:
    """The table's text for a code; ``""`` for a code the table lacks."""
    try:
        return table(code).text
    except ValueError:
        return ""


def encode_err(encoding: Encoding, issue: Issue) -> str:
    """Encode one ERR segment (see :func:`err_segment`), every value escaped."""
    return encode_segment(encoding, err_segment(issue))


#: HL7 table 0211 values we answer in, and their Python codecs.
_RESPONSE_CHARSETS = {
    "ASCII": "ascii",
    "8859/1": "latin-1",
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "UNICODE": "utf-8",
}
UTF8 = "UNICODE UTF-8"
_MSH18 = 15  # MSH-18's index in an MSH OutSegment (MSH-3 is index 0)


def _with_charset(segments: list[OutSegment], charset: str) -> list[OutSegment]:
    """The segments with MSH-18 set to ``charset``."""
    out = []
    for seg in segments:
        if seg.id == "MSH" and len(seg.fields) > _MSH18:
            fields = list(seg.fields)
            fields[_MSH18] = charset
            seg = OutSegment("MSH", tuple(fields))
        out.append(seg)
    return out


def encode_segments(
    encoding: Encoding, segments: Iterable[OutSegment], charset: str = ""
) -> bytes:
    """A whole response: every segment encoded, each ended by CR.

    The only way a response leaves parsers/: every value in it has gone
    through :func:`parsers.builder.encode_segment`.

    The character set is the one the message declared (``charset``, its
    MSH-18) when Cairn supports it and every character of the response fits
    it; otherwise UTF-8. MSH-18 of the response always names the set used,
    except for a response that is plain ASCII to a message that declared
    none (the HL7 default).
    """
    listed = list(segments)
    declared = charset.strip().upper()
    codec = _RESPONSE_CHARSETS.get(declared)
    if codec is not None:
        text = _join(encoding, _with_charset(listed, declared))
        try:
            return text.encode(codec)
        except UnicodeEncodeError:
            pass  # a character the declared set cannot carry: answer in UTF-8
    text = _join(encoding, listed)
    if not declared and text.isascii():
        return text.encode("ascii")
    return _join(encoding, _with_charset(listed, UTF8)).encode("utf-8")


def _join(encoding: Encoding, segments: Iterable[OutSegment]) -> str:
    return "".join(encode_segment(encoding, s) + "\r" for s in segments)


def encode_ack(
    ack: Acknowledgement,
    *,
    ours: ResponseHeader,
    theirs: MessageHeader | None,
    acked_control_id: str,
    encoding: Encoding = STANDARD_ENCODING,
    trigger: str = "V04",
) -> bytes:
    """Encode an ACK (profile Z23) for a message.

    Args:
        ack: the decision and its issues.
        ours: our MSH-3/4/10/7.
        theirs: the header of the message acknowledged (None if unreadable).
        acked_control_id: MSA-2, the MSH-10 of the message acknowledged.
        encoding: the delimiters to write with (the sender's own).
        trigger: MSH-9.2 (``V04`` for VXU; the query's event for QBP rejects).

    Returns:
        The ACK as bytes in the message's declared character set (see
        :func:`encode_segments`), segments ended by CR.
    """
    return encode_segments(
        encoding.for_response(),
        [
            msh_segment(ours, theirs, f"ACK^{trigger}^ACK", "Z23"),
            OutSegment("MSA", (ack.ack_code, acked_control_id)),
            *(err_segment(issue) for issue in ack.issues),
        ],
        theirs.charset if theirs else "",
    )


def summarize(issues: Sequence[Issue]) -> dict[str, int]:
    """Counts of issues per severity, for logs."""
    counts = dict.fromkeys(Severity, 0)
    for issue in issues:
        counts[issue.severity] += 1
    return {str(severity): n for severity, n in counts.items()}
