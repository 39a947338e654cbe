"""QBP^Q11 (Z34/Z44) views and the RSP^K11 (Z31/Z32/Z33/Z42) encoder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from parsers.builder import OutSegment, read_field, read_segment
from parsers.response import (
    Issue,
    ResponseHeader,
    encode_segments,
    err_segment,
    msh_segment,
)
from parsers.tokenizer import Encoding, Message
from parsers.views import (
    Address,
    CodedValue,
    Identifier,
    MessageHeader,
    PersonName,
    Phone,
    address,
    coded,
    identifiers,
    person_name,
    phone,
    read_header,
)

QueryStatus = Literal["OK", "NF", "TM", "AE", "AR", "PD"]
Profile = Literal["Z31", "Z32", "Z33", "Z42"]


@dataclass(frozen=True, slots=True)
class QueryParameters:
    """QPD of a Z34/Z44 query (REFERENCE §7.2)."""

    occurrence: int
    raw: str
    query_name: CodedValue
    query_name_raw: str
    query_tag: str
    identifiers: tuple[Identifier, ...]
    name: PersonName
    mother_maiden_name: PersonName
    birth_date: str
    sex: str
    address: Address
    phone: Phone
    multiple_birth: str
    birth_order: str


@dataclass(frozen=True, slots=True)
class QuantityLimit:
    """RCP: priority and the most records the sender will accept."""

    occurrence: int
    priority: str
    quantity: str
    unit: str


@dataclass(frozen=True, slots=True)
class QueryView:
    """A QBP^Q11 message."""

    header: MessageHeader
    parameters: QueryParameters | None
    limit: QuantityLimit | None
    unexpected: tuple[tuple[str, int], ...]


def read_query(message: Message) -> QueryView:
    """Build the QBP view from a tokenized message."""
    header = read_header(message.msh)
    qpd_seg = message.first("QPD")
    rcp_seg = message.first("RCP")
    params = None
    if qpd_seg is not None:
        sep = message.encoding.field
        params = QueryParameters(
            occurrence=qpd_seg.occurrence,
            raw=sep.join(qpd_seg.fields),
            query_name=coded(qpd_seg, 1),
            query_name_raw=qpd_seg.raw(1),
            query_tag=qpd_seg.value(2).strip(),
            identifiers=identifiers(qpd_seg, 3),
            name=person_name(qpd_seg, 4),
            mother_maiden_name=person_name(qpd_seg, 5),
            birth_date=qpd_seg.value(6).strip(),
            sex=qpd_seg.value(7).strip().upper(),
            address=address(qpd_seg, 8),
            phone=phone(qpd_seg, 9),
            multiple_birth=qpd_seg.value(10).strip().upper(),
            birth_order=qpd_seg.value(11).strip(),
        )
    limit = None
    if rcp_seg is not None:
        limit = QuantityLimit(
            occurrence=rcp_seg.occurrence,
            priority=rcp_seg.value(1).strip(),
            quantity=rcp_seg.value(2, 0, 1).strip(),
            unit=rcp_seg.value(2, 0, 2, 1).strip(),
        )
    unexpected = tuple(
        (s.id, s.occurrence)
        for s in message.segments[1:]
        if s.id not in {"QPD", "RCP", "SFT", "DSC"}
    )
    return QueryView(header, params, limit, unexpected)


@dataclass(frozen=True, slots=True)
class QueryResponse:
    """An RSP^K11 decision: profile, statuses, errors and the body to send."""

    ack_code: Literal["AA", "AE", "AR"]
    query_status: QueryStatus
    profile: Profile
    issues: tuple[Issue, ...] = ()
    query_tag: str = ""
    query_name_raw: str = ""
    qpd_raw: str | None = None
    body: tuple[OutSegment, ...] = ()
    outcome: str = ""
    region: str | None = None

    def encode(
        self, ours: ResponseHeader, theirs: MessageHeader | None, encoding: Encoding
    ) -> bytes:
        """Encode the RSP^K11 in the query's own delimiters (standard ones if unsafe).

        QAK-3 and the QPD echo are read from the query's text into values and
        re-encoded, like everything else: a sender cannot inject delimiters
        or control characters through them.
        """
        theirs_enc, encoding = encoding, encoding.for_response()
        segments = [
            msh_segment(ours, theirs, "RSP^K11^RSP_K11", self.profile),
            OutSegment("MSA", (self.ack_code, theirs.control_id if theirs else "")),
            *(err_segment(issue) for issue in self.issues),
            OutSegment(
                "QAK",
                (
                    self.query_tag,
                    self.query_status,
                    read_field(theirs_enc, self.query_name_raw),
                ),
            ),
        ]
        if self.qpd_raw is not None:
            segments.append(_echo(theirs_enc, self.qpd_raw))
        segments.extend(self.body)
        return encode_segments(encoding, segments, theirs.charset if theirs else "")

    @property
    def changed_registry(self) -> bool:
        """A query changes no registry data (its audit row aside)."""
        return False

    def with_issues(
        self, extra: Sequence[Issue], *, leading: Sequence[Issue] = ()
    ) -> QueryResponse:
        """This response with more findings (the pipeline's own) around its ERRs.

        ``leading`` go before its own findings (the header's), ``extra``
        after them. Warnings leave MSA-1 as it is; an error added makes an
        AA an AE.
        """
        if not extra and not leading:
            return self
        code = self.ack_code
        if code == "AA" and any(i.severity == "E" for i in (*leading, *extra)):
            code = "AE"
        return replace(self, ack_code=code, issues=(*leading, *self.issues, *extra))


def _echo(enc: Encoding, raw: str) -> OutSegment:
    """The query's QPD, read into values for re-encoding (``QPD`` if unreadable)."""
    try:
        segment = read_segment(enc, raw)
    except ValueError:
        return OutSegment("QPD")
    return segment if segment.id == "QPD" else OutSegment("QPD", segment.fields)
