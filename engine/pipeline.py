"""The message pipeline: journal, idempotency, routing, and the durable ACK.

Each raw message goes down one straight line. First what needs no lock:
decode, tokenize, and check the header once, whatever the message type
(:mod:`parsers.header`: type, event, processing id, version, sender, the
IG's conventions, the MSH-21 profile). Then, in one database transaction:
look up (sending facility, MSH-10, content digest) in the journal so that a
resend gets its original answer, journal the raw bytes, refuse or apply
(the handler of the message type), encode the response and store it with
the journal row. Commit, then answer: an AA always means the data is
durable.

A query (Z34/Z44) is read beforehand on a reader connection, outside the
writer's transaction (:meth:`MessagePipeline.read_step`); the writer then
only journals it, writes its audit rows and stores its response. The read
starts after the sender's previous answers were committed, so a query sent
after a VXU's AA sees that VXU.

A resend is the same (sending facility, MSH-10) with the same content, MSH-7
aside (:func:`content_digest` says what "the same" means): it gets the
original answer and changes nothing. The same control id with other content
is a new message: it is processed, gets its own journal row, and its answer
warns at MSH-10 that the id was reused. Queries are never replayed: each one
is answered afresh from current data, with its own row.

Messages that arrive together share one transaction (group commit, as
DESIGN.md's performance budget requires). The group is written without
savepoints; when a message fails, the whole group rolls back and is written
again with each message in its own savepoint, so the failing message rolls
back alone and the others commit. :meth:`MessagePipeline.process_batch` is
synchronous and needs no reactor; :class:`GroupCommitter` runs it on a worker
thread and hands the answers back to the reactor.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any, NamedTuple, Protocol, runtime_checkable

import structlog

from engine.logging import exception_summary
from engine.metrics import EngineMetrics
from handlers.context import MessageContext
from handlers.identity import Principal
from parsers import (
    STANDARD_ENCODING,
    Acknowledgement,
    AppError,
    DecodedText,
    Encoding,
    Hl7Error,
    Issue,
    Location,
    Message,
    MessageHeader,
    ParseError,
    ResponseHeader,
    Severity,
    decode_message,
    read_header,
    tokenize,
)
from parsers.header import (
    QBP_HEADER,
    SUPPORTED_VERSION,
    VXU_HEADER,
    HeaderCheck,
    HeaderRules,
    check_header,
    check_key,
)
from parsers.limits import MessageLimits, check_limits
from parsers.tokenizer import read_encoding
from storage import (
    JOURNAL_KEY_LIMITS,
    TEST_OUTCOME_PREFIX,
    Database,
    JournalLookup,
    NewAuditEntry,
    NewJournalEntry,
    PermanentStorageError,
    TransientStorageError,
    UnitOfWork,
)

logger = structlog.get_logger()

__all__ = [
    "SUPPORTED_VERSION",
    "Decider",
    "GroupCommitter",
    "Handler",
    "Inbound",
    "MessageDecider",
    "MessagePipeline",
    "MessageReader",
    "Outcome",
    "Prepared",
    "QueryHandler",
    "Response",
    "Route",
    "SenderPolicy",
    "content_digest",
]


class Response(Protocol):
    """What a handler returns: a decision the pipeline can encode."""

    @property
    def ack_code(self) -> str:
        """MSA-1."""

    @property
    def outcome(self) -> str:
        """A short outcome for the journal and the log (no PHI)."""

    @property
    def issues(self) -> tuple[Issue, ...]:
        """The findings that become ERR segments."""

    @property
    def changed_registry(self) -> bool:
        """Whether applying the message stored or changed registry data."""

    def with_issues(
        self, extra: Sequence[Issue], *, leading: Sequence[Issue] = ()
    ) -> Response:
        """The same response with the header's findings first and the pipeline's last."""

    def encode(
        self, ours: ResponseHeader, theirs: MessageHeader | None, encoding: Encoding
    ) -> bytes:
        """Encode the response message."""


class Handler(Protocol):
    """A message-type handler (VXU, QBP)."""

    def handle(
        self, message: Message, ctx: MessageContext, uow: UnitOfWork, log: Any
    ) -> Response:
        """Apply the message inside the caller's transaction and decide the answer."""


@runtime_checkable
class QueryHandler(Protocol):
    """A handler whose work is a read (Z34/Z44) plus a few small writes.

    :meth:`read` runs on a reader connection, outside the writer's
    transaction; :meth:`record` writes what it decided (audit rows) in the
    writer's transaction, with the message's journal row.
    """

    def handle(
        self, message: Message, ctx: MessageContext, uow: UnitOfWork, log: Any
    ) -> Response:
        """Both steps in the caller's transaction."""

    def read(
        self, message: Message, ctx: MessageContext, uow: UnitOfWork, log: Any
    ) -> Any:
        """Decide the answer from a read-only unit of work."""

    def record(self, answer: Any, ctx: MessageContext, uow: UnitOfWork) -> Response:
        """Write what :meth:`read` decided; return the response."""


#: The header rules of the message structures Cairn knows.
_HEADER_RULES = {rules.structure: rules for rules in (VXU_HEADER, QBP_HEADER)}


@dataclass(frozen=True, slots=True)
class Route:
    """Where a message type goes: its handler and the MSH-9 it must carry."""

    handler: Handler
    structure: str
    #: whether a resend gets the original answer (VXU changes the registry;
    #: a query is read-only and is answered afresh from current data, with
    #: a journal row of its own)
    replay_resends: bool = True
    #: what its MSH must carry; by default the rules of ``structure``
    header: HeaderRules | None = None

    @property
    def header_rules(self) -> HeaderRules:
        """The MSH rules of this message type (see :mod:`parsers.header`)."""
        if self.header is not None:
            return self.header
        known = _HEADER_RULES.get(self.structure)
        if known is not None:
            return known
        return HeaderRules(self.structure, lambda _message: None, "", False)

    @property
    def query(self) -> QueryHandler | None:
        """The handler as a query handler (read step apart), or None."""
        return self.handler if isinstance(self.handler, QueryHandler) else None

    @property
    def decides(self) -> Decider | None:
        """The handler as a decider (decision apart from the write), or None."""
        return self.handler if isinstance(self.handler, Decider) else None


class MessageReader:
    """Decode, tokenize, check the header, digest and decide: all that needs no database.

    Picklable apart from what the routes' header rules hold, so the engine
    runs it in forked worker processes (:meth:`read` is a pure function of
    the bytes and the date); the pipeline runs it on the writer when there
    are none.

    Args:
        routes: message code to its route (header rules, decider).
        senders: the sending-facility policy.
        limits: the sizes a message may not exceed (checked first).
    """

    def __init__(
        self,
        routes: Mapping[str, Route],
        senders: SenderPolicy,
        limits: MessageLimits | None = None,
    ) -> None:
        self._limits = limits or MessageLimits()
        self._rules = {code: route.header_rules for code, route in routes.items()}
        self._deciders = {
            code: route.decides.decider
            for code, route in routes.items()
            if route.decides is not None
        }
        self._senders = senders

    def read(
        self,
        raw: bytes,
        today: date,
        *,
        keep_tokens: bool = True,
        authenticated: bool = False,
    ) -> _Reading | None:
        """The message's reading; None when it cannot be read (the writer answers it)."""
        try:
            decoded = decode_message(raw)
            return self.reading_of(
                decoded,
                tokenize(decoded.text),
                today,
                keep_tokens=keep_tokens,
                authenticated=authenticated,
            )
        except Exception:  # answered (or logged) per message by the writer
            return None

    def reading_of(
        self,
        decoded: DecodedText,
        message: Message,
        today: date,
        *,
        keep_tokens: bool = True,
        authenticated: bool = False,
    ) -> _Reading:
        """The header read and checked once, for every message type; then the decision.

        ``authenticated``: the message came from an organization an
        authenticated listener established, whose sender is accepted
        whatever MSH-4 says (the writer refuses an MSH-4 not its own).
        """
        header = read_header(message.msh)
        # A message over a limit is refused before anything else is read of it.
        over = check_limits(message, self._limits)
        if over is not None:
            return _Reading(
                message.encoding,
                header,
                content_digest(message),
                HeaderCheck(rejections=(over,)),
                message if keep_tokens else None,
                over_limit=True,
            )
        accepted = (
            authenticated or self._senders.region_of(header.sender)[0] is not None
        )
        check = check_header(
            message,
            header,
            self._rules,
            processing_ids=self._senders.processing_ids,
            sender_accepted=accepted,
            charset_problem=decoded.problem,
        )
        decision = None
        decider = self._deciders.get(header.message_code)
        if (
            decider is not None
            and not check.rejections
            and check_key(header, JOURNAL_KEY_LIMITS) is None
        ):
            try:
                decision = decider.decide(message, today)
            except Exception:  # the writer handles it whole, and answers AE
                decision = None
        return _Reading(
            message.encoding,
            header,
            content_digest(message),
            check,
            message if keep_tokens or decision is None else None,
            decision,
        )


@dataclass(frozen=True, slots=True)
class SenderPolicy:
    """How the registry treats sending facilities (from config)."""

    facilities: Mapping[str, str]
    unknown_sender: str  # "accept" or "reject"
    unknown_sender_region: str
    processing_ids: frozenset[str] = frozenset({"P", "T", "D"})
    #: senders in test mode (``[[facilities]] test = true``)
    test_senders: frozenset[str] = frozenset()
    #: listeners in test mode (``server.test_listen``), by listener name
    test_listeners: frozenset[str] = frozenset()

    def region_of(self, sender: str) -> tuple[str | None, bool]:
        """(region, known) for a sender; region None means reject."""
        region = self.facilities.get(sender)
        if region is not None:
            return region, True
        if self.unknown_sender == "accept":
            return self.unknown_sender_region, False
        return None, False


@runtime_checkable
class Decider(Protocol):
    """A handler whose decision needs no database (VXU: read and validate).

    ``decider.decide`` runs before the write transaction, on the writer
    thread or in a worker process (so ``decider`` must be picklable and its
    decision plain data); :meth:`apply` stores the decision in the writer's
    transaction. ``handle`` is the two in one.
    """

    @property
    def decider(self) -> MessageDecider:
        """The part that decides (no storage)."""

    def apply(
        self, decision: Any, ctx: MessageContext, uow: UnitOfWork, log: Any
    ) -> Response:
        """Store a decision inside the caller's transaction; must not change it."""


class MessageDecider(Protocol):
    """Decides a message from its tokens and the date alone."""

    def decide(self, message: Message, today: date) -> Any:
        """The decision (plain, picklable data)."""


class PendingReading(Protocol):
    """A reading being worked out elsewhere (a worker process, a Future)."""

    def result(self) -> Any:
        """The reading (None: unreadable); raises when it could not be worked out."""


class _Reading(NamedTuple):
    """A message decoded, tokenized, its header read and checked (once per message)."""

    encoding: Encoding
    header: MessageHeader
    digest: str
    check: HeaderCheck
    #: the tokens; None when the message was read in a worker process
    message: Message | None = None
    #: the route's decision (:class:`Decider`), worked out before the write
    #: transaction; None when there is none (a query, a refused header, a
    #: decision that failed: the writer then handles the message whole)
    decision: Any = None
    #: the message goes over one of the limits (its one rejection says which)
    over_limit: bool = False


class Prepared(NamedTuple):
    """What was worked out for a message before it reached the writer.

    ``reading`` spares the writer the decoding; ``ctx`` and ``answer`` are a
    query's read step, done on a reader connection (None when it was not).
    """

    reading: _Reading
    ctx: MessageContext | None = None
    answer: Any = None


@dataclass(frozen=True, slots=True)
class Inbound:
    """One raw message waiting to be processed."""

    raw: bytes
    peer: str
    listener: str
    #: set by :meth:`MessagePipeline.read_step` on a reader thread
    prepared: Prepared | None = None
    #: the organization an authenticated listener established (None: open)
    principal: Principal | None = None
    #: the reading being worked out in a worker process (the engine's
    #: :class:`MessageReader` pool); the writer waits for it
    pending: PendingReading | None = None


#: (sending facility, MSH-10, content digest): how the journal finds a resend.
_Key = tuple[str, str, str]


def content_digest(message: Message) -> str:
    """SHA-256 (hex) of a message's content with MSH-7 left out.

    What counts as the same content: the decoded text (so the same text in
    another declared character set is the same message), segment by segment
    as the tokenizer splits it (a CR, LF or CRLF terminator, blank lines,
    trailing terminators and a leading byte-order mark make no difference),
    with MSH-7 (date/time of message) emptied, since a sender's resend
    restamps it. Every other character counts, spaces and delimiters
    included.

    Args:
        message: the tokenized message.

    Returns:
        64 lowercase hex digits.
    """
    separator = message.encoding.field
    digest = hashlib.sha256()
    for segment in message.segments:
        fields = segment.fields
        if segment.index == 0:
            fields = list(fields)
            if len(fields) > 7:
                fields[7] = ""
            # fields[1] is MSH-1, the separator itself (see Segment.raw).
            del fields[1]
        digest.update(separator.join(fields).encode("utf-8", "surrogatepass"))
        digest.update(b"\r")
    return digest.hexdigest()


#: The warning on a message whose control id the sender used before for
#: other content (table 0357 code 205, duplicate key identifier).
_REUSED_ID = Issue(
    Severity.WARNING,
    Hl7Error.DUPLICATE_KEY_IDENTIFIER,
    Location("MSH", 1, 10),
    AppError.INVALID_VALUE,
    "MSH-10 (message control id) was used before by this sender for a different "
    "message; processed as a new message (use a new control id for every message)",
)


def _failure_issue(exc: Exception) -> tuple[Issue, str]:
    """The ERR and journal outcome for a message that failed inside.

    A failure a resend can fix (the database unavailable) asks for a resend;
    one that would happen again (the database refused a value) says the
    message must be corrected instead. Anything else is our own error:
    nothing was stored, and a resend after the fix is processed afresh.
    """
    if isinstance(exc, PermanentStorageError):
        return (
            _issue(
                Hl7Error.APPLICATION_INTERNAL_ERROR,
                "",
                None,
                AppError.INVALID_VALUE,
                f"the message cannot be stored as sent: {exc.reason}; nothing was "
                "stored. Correct the message: sending it again unchanged will fail "
                "the same way",
            ),
            "cannot be stored as sent",
        )
    if isinstance(exc, TransientStorageError):
        return (
            _issue(
                Hl7Error.APPLICATION_INTERNAL_ERROR,
                "",
                None,
                None,
                "the database is unavailable; nothing was stored, please resend",
            ),
            "database unavailable",
        )
    return (
        _issue(
            Hl7Error.APPLICATION_INTERNAL_ERROR,
            "",
            None,
            None,
            "internal error while processing; nothing was stored, please resend",
        ),
        "internal error",
    )


#: How much of a message refused from an unregistered sender (or over a
#: limit) the journal keeps, with its content digest: enough to see what it
#: was, not a disk filled by strangers (issue 18 item 7).
JOURNAL_HEAD_BYTES = 4096


#: MSH-11 processing ids whose data never reaches the registry (HL7 table
#: 0103: T training, D debugging). They are validated and answered as usual,
#: then the registry's changes are rolled back; the journal keeps them.
NOT_STORED_PROCESSING_IDS = frozenset({"T", "D"})

#: The journal outcome of a message kept out of the registry starts so.
NOT_STORED = TEST_OUTCOME_PREFIX


def not_stored_reason(
    header: MessageHeader, listener: str, senders: SenderPolicy
) -> str | None:
    """Why a message's registry changes are not kept (test mode), or None.

    MSH-11 ``T`` or ``D``, a sender marked ``test``, or a listener marked
    ``test``: each is validated and answered as usual, journaled with its
    outcome marked, and nothing reaches the registry's tables.
    """
    if header.processing_id in NOT_STORED_PROCESSING_IDS:
        return f"MSH-11 {header.processing_id}"
    if header.sender in senders.test_senders:
        return "test sender"
    if listener in senders.test_listeners:
        return "test listener"
    return None


class _GroupFailed(Exception):
    """A message of a group written without savepoints failed: write it again, isolated."""


class _Discard(Exception):
    """Raised inside a savepoint to roll back what a test-mode message changed."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the pipeline decided for one message.

    ``payload`` is what goes back to the sender (empty when MSH-16 says not
    to answer); ``response`` is the full encoded response kept in the journal.
    """

    payload: bytes
    ack_code: str
    journal_id: int | None


def _issue(
    code: Hl7Error,
    segment: str,
    field_no: int | None,
    app_code: AppError | None,
    text: str,
) -> Issue:
    location = Location(segment, 1, field_no) if segment else None
    return Issue(Severity.ERROR, code, location, app_code, text)


def _wants_answer(header: MessageHeader, ack_code: str) -> bool:
    """Honour MSH-16 (application acknowledgment type), original mode.

    ``NE`` never answers, ``ER`` answers only errors, ``SU`` only successes;
    empty or unknown values always answer. MSH-15 ``AL`` with MSH-16 ``ER``
    is the reversed pair that 2012 NIST messages carry: answer always, as
    REFERENCE §1 advises.
    """
    mode = header.application_ack_type
    if mode == "NE":
        return False
    if mode == "ER":
        return header.accept_ack_type == "AL" or ack_code != "AA"
    if mode == "SU":
        return ack_code == "AA"
    return True


#: The metrics' sender label of a message whose MSH-4 is not its
#: authenticated organization's.
_SPOOFED_LABEL = "_spoofed"


def _spoofed(header: MessageHeader, principal: Principal | None) -> Issue | None:
    """The error for an MSH-4 that is not one of the authenticated organization's facility ids.

    Every part of MSH-4 that names a facility must be one of its ids: the
    namespace id (MSH-4.1) and the universal id (MSH-4.2). An empty MSH-4 is
    refused too, even with MSH-3 set: an authenticated listener never falls
    back to another field to say who is sending.
    """
    if principal is None:
        return None
    facility = header.sending_facility
    parts = [p for p in (facility.namespace, facility.universal_id) if p]
    if parts and all(p in principal.facility_ids for p in parts):
        return None
    if not parts:
        text = (
            "MSH-4 (sending facility) is empty; on an authenticated connection it "
            f"must be one of the facility ids of {principal.organization}; rejected"
        )
        return _issue(
            Hl7Error.REQUIRED_FIELD_MISSING,
            "MSH",
            4,
            AppError.REQUIRED_DATA_MISSING,
            text,
        )
    return _issue(
        Hl7Error.TABLE_VALUE_NOT_FOUND,
        "MSH",
        4,
        AppError.TABLE_VALUE_NOT_FOUND,
        "MSH-4 (sending facility) is not one of the facility ids of the "
        f"authenticated organization {principal.organization}; rejected, "
        "nothing stored",
    )


def _plain_message_code(raw: bytes) -> str | None:
    """MSH-9.1 read straight from the bytes when the header is plain ASCII; else None.

    Only a shortcut: None (a byte-order mark, an unusual header, anything
    not letters and digits) sends the caller to the full reading.
    """
    head = raw[:1024].lstrip()
    if not head.startswith(b"MSH") or len(head) < 9:
        return None
    first = head.split(b"\r", 1)[0].split(b"\n", 1)[0]
    fields = first.split(head[3:4])
    if len(fields) < 9 or not fields[1]:
        return None
    code = fields[8].split(fields[1][:1], 1)[0].strip()
    if not code or not code.isalnum() or not code.isascii():
        return None
    return code.decode("ascii")


class MessagePipeline:
    """Turns raw messages into durable, journaled responses.

    Args:
        database: the registry's storage.
        routes: message code (``VXU``, ``QBP``) to its route.
        senders: the sending-facility policy.
        application: our MSH-3.
        facility: our MSH-5/4 value.
        now: the clock (UTC).
        metrics: where messages answered and failures are counted
            (``self.metrics``); a private one by default.
        limits: the most work one message may ask for (``[limits]``).
    """

    def __init__(
        self,
        *,
        database: Database,
        routes: Mapping[str, Route],
        senders: SenderPolicy,
        application: str = "CAIRN",
        facility: str = "CAIRN",
        now: Callable[[], datetime] | None = None,
        metrics: EngineMetrics | None = None,
        limits: MessageLimits | None = None,
    ) -> None:
        self._db = database
        self.metrics = metrics if metrics is not None else EngineMetrics()
        self._limits = limits or MessageLimits()
        self._routes = dict(routes)
        self._senders = senders
        self._application = application
        self._facility = facility
        self._now = now or (lambda: datetime.now(UTC))
        self._node = uuid.uuid4().hex[:6]
        self.reader = MessageReader(routes, senders, self._limits)
        # Looked up once: a runtime Protocol check per message costs more
        # than the look-up it guards.
        self._queries = {code: route.query for code, route in routes.items()}
        self._decides = {code: route.decides for code, route in routes.items()}
        self._query_codes = frozenset(
            code.upper() for code, query in self._queries.items() if query is not None
        )
        #: unregistered senders already announced in the log (once each)
        self._announced: set[str] = set()

    # -- responses ---------------------------------------------------------

    def _ours(self, journal_id: int | None) -> ResponseHeader:
        stamp = self._now().strftime("%Y%m%d%H%M%S+0000")
        # Unique across nodes and restarts: a journal id is unique in the
        # shared database; an answer with no journal row gets a random id.
        control = f"{self._node}{journal_id}" if journal_id else uuid.uuid4().hex[:20]
        return ResponseHeader(self._application, self._facility, control, stamp)

    def reject(
        self,
        issues: Sequence[Issue],
        header: MessageHeader | None,
        encoding: Encoding,
        journal_id: int | None = None,
    ) -> bytes:
        """Encode an AR acknowledgement (nothing stored)."""
        trigger = header.trigger_event if header and header.trigger_event else "V04"
        ack = Acknowledgement("AR", tuple(issues), outcome="rejected", trigger=trigger)
        return ack.encode(self._ours(journal_id), header, encoding)

    def oversize(self, head: bytes, peer: str, listener: str) -> bytes:
        """The answer to a message over the size limit: AR, then the listener closes."""
        header: MessageHeader | None = None
        encoding = STANDARD_ENCODING
        try:
            text = decode_message(head).text
            encoding = read_encoding(text)
            header = read_header(tokenize(text.split("\r")[0].split("\n")[0]).msh)
        except ParseError:
            header = None
        log = logger.bind(peer=peer, listener=listener, **self._log_fields(header))
        log.warning("message_too_large")
        issue = _issue(
            Hl7Error.APPLICATION_INTERNAL_ERROR,
            "",
            None,
            AppError.ILLOGICAL_VALUE,
            "message exceeds the maximum message size; rejected, nothing stored",
        )
        answer = self.reject([issue], header, encoding)
        self.metrics.messages_answered([self._metric_labels_of(header, "AR")])
        return answer

    def refuse(self, raw: bytes, text: str) -> bytes:
        """AR for a message refused before it is read (a limit); nothing stored.

        The ERR says why (``text``, which names the limit); MSA-2 echoes the
        message's control id when its header can be read.
        """
        encoding, header = self._peek(raw)
        issue = _issue(Hl7Error.APPLICATION_INTERNAL_ERROR, "", None, None, text)
        return self.reject([issue], header, encoding)

    # -- processing --------------------------------------------------------

    def process_batch(self, batch: Sequence[Inbound]) -> list[Outcome]:
        """Process messages in one transaction (a failing one rolls back alone).

        The straight line: decode and check every header (no lock needed),
        then, in one transaction, look the batch up in the journal and, per
        message, journal, apply and store the response; commit; answer. A
        query not read beforehand (:meth:`read_step`) is read inline.

        Returns the outcomes in order once the transaction has committed. If
        the commit fails, the exception propagates: no answer may leave.
        """
        readings = [self._prepare(item) for item in batch]
        try:
            return self._write(batch, readings, isolated=False)
        except _GroupFailed:
            # Rare: one message failed (logged where it failed). Nothing of
            # the group was kept; each message now goes in a savepoint of its
            # own, so the failing one rolls back alone and answers AE, and
            # the others commit. (Outside this except block, so that a
            # failure in the retry is not chained to the group's.)
            pass
        return self._write(batch, readings, isolated=True)

    def _write(
        self,
        batch: Sequence[Inbound],
        readings: Sequence[_Reading | None],
        *,
        isolated: bool,
    ) -> list[Outcome]:
        """One transaction for the group: journal look-up, then message by message.

        Not ``isolated`` (the usual case), no savepoints: any message's
        failure, or a queued statement failing when sent, raises
        :class:`_GroupFailed` and rolls the whole group back, to be written
        again isolated. A savepoint per message cost a third of the SQL.
        """
        outcomes: list[Outcome] = []
        done: list[tuple[Any, dict[str, Any]]] = []
        with self._db.transaction() as uow:
            answers = self._prefetch(uow, readings)
            for item, reading in zip(batch, readings, strict=True):
                outcomes.append(
                    self._process_isolated(uow, item, reading, answers, isolated, done)
                )
            if not isolated:
                try:
                    uow.flush()
                except Exception as exc:
                    logger.info(
                        "group_retried_one_by_one",
                        batch_size=len(batch),
                        reason="a queued statement failed",
                        **self._log_fields(None),
                    )
                    raise _GroupFailed from exc
        # Counted once committed: an answer that never left is not counted.
        self.metrics.messages_answered(
            [
                self._metric_labels(item, reading, outcome)
                for item, reading, outcome in zip(
                    batch, readings, outcomes, strict=True
                )
            ]
        )
        # Said once the group is durable (a group retried says it once).
        for log, line in done:
            log.info("message_done", **line)
        return outcomes

    def _metric_labels(
        self, item: Inbound, reading: _Reading | None, outcome: Outcome
    ) -> tuple[str, str, bool, str]:
        """(message type, sender, registered, MSA-1) of one answered message.

        An MSH-4 refused on an authenticated connection is counted as
        ``_spoofed``: it names someone else, whose line must not show the
        spoofer's traffic (nor spend the unregistered senders' labels).
        """
        header = reading.header if reading is not None else None
        labels = self._metric_labels_of(header, outcome.ack_code)
        if header is not None and _spoofed(header, item.principal) is not None:
            return (labels[0], _SPOOFED_LABEL, True, labels[3])
        return labels

    def _metric_labels_of(
        self, header: MessageHeader | None, ack_code: str
    ) -> tuple[str, str, bool, str]:
        """The same from a header (None: the message could not be read)."""
        if header is None:
            return "unreadable", "_none", True, ack_code
        code = header.message_code if header.message_code in self._routes else "other"
        sender = header.sender[: JOURNAL_KEY_LIMITS["sender"]]
        return code, sender, self._senders.region_of(sender)[1], ack_code

    def _log_fields(self, header: MessageHeader | None) -> dict[str, str]:
        """What every log line about a message carries (empty when unreadable).

        The control id, sender and message type cut to the journal's key
        lengths, and the region the sender's data goes to ("" when refused).
        Metadata only: never a field of the message's content.
        """
        if header is None:
            return {"control_id": "", "sender": "", "message_type": "", "region": ""}
        region, _known = self._senders.region_of(header.sender)
        return {
            "control_id": header.control_id[: JOURNAL_KEY_LIMITS["control_id"]],
            "sender": header.sender[: JOURNAL_KEY_LIMITS["sender"]],
            "message_type": header.message_type[:20],
            "region": region or "",
        }

    def reads_only(self, raw: bytes) -> bool:
        """Whether a message is a query, whose read step runs on a reader.

        Reads MSH alone; anything unreadable goes to the writer, which answers it.
        The reactor asks this of every message: a plain MSH-9 naming no
        query route is answered from the bytes, without decoding the message.
        """
        code = _plain_message_code(raw)
        if code is not None and code.upper() not in self._query_codes:
            return False
        header = self._msh_of(raw)
        if header is None:  # the writer reads it again and answers it
            return False
        return self._queries.get(header.message_code) is not None

    def log_fields(self, raw: bytes) -> dict[str, str]:
        """The log fields of a message not processed (yet), read from its MSH alone."""
        return self._log_fields(self._msh_of(raw))

    @staticmethod
    def _msh_of(raw: bytes) -> MessageHeader | None:
        """The header of a raw message, from its first line; None when unreadable."""
        try:
            text = decode_message(raw).text
            first = re.split(r"\r\n|\r|\n", text.lstrip(), maxsplit=1)[0]
            return read_header(tokenize(first).msh)
        except Exception:  # unreadable: the caller decides what that means
            return None

    def read_step(self, item: Inbound) -> Inbound:
        """A query's read step, on a reader connection outside the writer's transaction.

        Runs on a reader thread. It decodes and checks the message and, when
        it is a query the registry will answer, reads the answer from a
        read-only unit of work; the writer then only journals, writes the
        audit rows and stores the response (:meth:`process_batch`). The read
        starts after this call does, so it sees every commit whose answer
        the sender already has. Anything else (or a read that failed) is
        left to the writer, which answers it as usual.

        Args:
            item: the raw message.

        Returns:
            The message with what was worked out for it.
        """
        reading = self._prepare(item)
        if reading is None:
            return item
        decoded_only = replace(item, prepared=Prepared(reading))
        header = reading.header
        query = self._queries.get(header.message_code)
        region, known = self._region_of(header, item.principal)
        if (
            query is None
            or region is None
            or _spoofed(header, item.principal) is not None
            or reading.check.rejections
            or check_key(header, JOURNAL_KEY_LIMITS) is not None
        ):
            return decoded_only
        log = logger.bind(
            peer=item.peer, listener=item.listener, **self._log_fields(header)
        ).bind(region=region)
        ctx = self._context(header, region, 0, known, item.principal)
        try:
            with self._db.reading() as reader:
                answer = query.read(self._message(item, reading), ctx, reader, log)
        except Exception as exc:  # the writer reads it again, and answers AE if it must
            log.warning("query_read_failed", **exception_summary(exc))
            self.metrics.message_failed(exc)
            return decoded_only
        return replace(item, prepared=Prepared(reading, ctx, answer))

    def today(self) -> date:
        """The registry's date (UTC), for a decision made elsewhere."""
        return self._now().date()

    def _prepare(self, item: Inbound) -> _Reading | None:
        """Decode, tokenize, check the header and decide: work that needs no lock.

        Done by a worker process when the engine has them (``item.pending``),
        else here. None when the message cannot be read; :meth:`_read` reads
        it again inside its savepoint and answers it.
        """
        if item.prepared is not None:
            return item.prepared.reading
        if item.pending is not None:
            try:
                reading = item.pending.result()
            except Exception as exc:  # the worker died: read it here
                logger.warning("message_reader_failed", **exception_summary(exc))
            else:
                if reading is None or isinstance(reading, _Reading):
                    return reading
        return self.reader.read(
            item.raw, self.today(), authenticated=item.principal is not None
        )

    @staticmethod
    def _message(item: Inbound, reading: _Reading) -> Message:
        """The message's tokens (tokenized again when read in a worker process)."""
        if reading.message is not None:
            return reading.message
        return tokenize(decode_message(item.raw).text)

    def _prefetch(
        self, uow: UnitOfWork, readings: Sequence[_Reading | None]
    ) -> dict[_Key, JournalLookup]:
        """Look the batch's journal rows up in one query.

        On PostgreSQL the message locks are taken first, all together and in
        sorted order: another node handling the same message commits before
        the lookup, so its row (and answer) is what this one sees. Only the
        first message of the batch with a given (sender, MSH-10) is looked up
        here: a later one is looked up after the first one's row exists, so
        that it is seen as a resend or a reuse.
        """
        keys: list[_Key] = []
        pairs: set[tuple[str, str]] = set()
        for reading in readings:
            if reading is None:
                continue
            header = reading.header
            pair = (header.sender, header.control_id)
            if (
                header.message_code not in {"ACK", "RSP"}
                and check_key(header, JOURNAL_KEY_LIMITS) is None
                and pair not in pairs
            ):
                pairs.add(pair)
                keys.append((*pair, reading.digest))
        if not keys:
            return {}
        uow.lock(f"message:{sender}:{control_id}" for sender, control_id in pairs)
        return uow.journal.answers(keys)

    def _process_isolated(
        self,
        uow: UnitOfWork,
        item: Inbound,
        reading: _Reading | None = None,
        answers: dict[_Key, JournalLookup] | None = None,
        isolated: bool = True,
        done: list[tuple[Any, dict[str, Any]]] | None = None,
    ) -> Outcome:
        started = time.perf_counter()
        # Every line about the message (message_done, message_failed, the
        # handler's) says which message it was.
        log = logger.bind(
            peer=item.peer,
            listener=item.listener,
            **self._log_fields(reading.header if reading is not None else None),
        )
        try:
            if isolated:
                with uow.savepoint():
                    outcome = self._process(uow, item, log, reading, answers or {})
            else:
                try:
                    outcome = self._process(uow, item, log, reading, answers or {})
                except Exception as exc:
                    log.info("group_retried_one_by_one", reason="this message failed")
                    raise _GroupFailed from exc
        except _GroupFailed:
            raise
        except (
            Exception
        ) as exc:  # the pipeline alone catches broadly: log, answer AE, stay up
            # Type and place only: an exception's text can quote patient data.
            log.error("message_failed", **exception_summary(exc))
            self.metrics.message_failed(exc)
            encoding, header = self._peek(item.raw)
            issue, outcome_text = _failure_issue(exc)
            ack = Acknowledgement(
                "AE",
                (issue,),
                outcome=outcome_text,
                trigger=header.trigger_event
                if header and header.trigger_event
                else "V04",
            )
            return Outcome(ack.encode(self._ours(None), header, encoding), "AE", None)
        line = {
            "ack_code": outcome.ack_code,
            "journal_row": outcome.journal_id,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        if done is None:
            log.info("message_done", **line)
        else:
            done.append((log, line))
        return outcome

    def _peek(self, raw: bytes) -> tuple[Encoding, MessageHeader | None]:
        try:
            text = decode_message(raw).text
            message = tokenize(text)
            return message.encoding, read_header(message.msh)
        except Exception:  # called while handling a failure: must not raise again
            return STANDARD_ENCODING, None

    def _process(
        self,
        uow: UnitOfWork,
        item: Inbound,
        log: Any,
        reading: _Reading | None,
        answers: dict[_Key, JournalLookup],
    ) -> Outcome:
        if reading is None:
            read = self._read(item, log)
            if isinstance(read, Outcome):
                return read
            reading = read
        return self._process_read(uow, item, log, reading, answers)

    def _read(self, item: Inbound, log: Any) -> _Reading | Outcome:
        """Decode, tokenize and read the header; an unreadable message gets AR."""
        decoded = decode_message(item.raw)
        try:
            message = tokenize(decoded.text)
        except ParseError as exc:
            batch = self._batch_in_frame(decoded.text, log)
            if batch is not None:
                return batch
            log.warning("message_unreadable", location=exc.location, reason=exc.reason)
            issue = _issue(
                Hl7Error.SEGMENT_SEQUENCE_ERROR
                if exc.location == "MSH"
                else Hl7Error.DATA_TYPE_ERROR,
                "MSH",
                None if exc.location == "MSH" else 2,
                AppError.INVALID_VALUE,
                f"message cannot be read: {exc}; rejected",
            )
            return Outcome(self.reject([issue], None, STANDARD_ENCODING), "AR", None)
        return self.reader.reading_of(
            decoded, message, self.today(), authenticated=item.principal is not None
        )

    def _batch_in_frame(self, text: str, log: Any) -> Outcome | None:
        """AR for a batch (FHS/BHS … BTS/FTS) sent inside one MLLP frame.

        MLLP carries one message per frame (REFERENCE §1); batches are files,
        for ``cairn load``. The answer names the batch header and echoes the
        first message's MSH-10 in MSA-2, so the sender can tell which
        transmission it was. Nothing is stored or journaled.
        """
        lines = [line for line in re.split(r"\r\n|\r|\n", text.lstrip()) if line]
        if not lines or lines[0][:3] not in {"FHS", "BHS"}:
            return None
        header: MessageHeader | None = None
        encoding = STANDARD_ENCODING
        first = next((line for line in lines if line.startswith("MSH")), None)
        if first is not None:
            try:
                msh = tokenize(first)
                encoding, header = msh.encoding, read_header(msh.msh)
            except ParseError:
                header = None
        messages = sum(1 for line in lines if line.startswith("MSH"))
        log.warning("batch_in_one_frame", messages=messages)
        issue = _issue(
            Hl7Error.SEGMENT_SEQUENCE_ERROR,
            lines[0][:3],
            None,
            None,
            f"a batch ({lines[0][:3]} header, {messages} message(s)) was sent in one "
            "MLLP frame; nothing was processed. Send one message per frame, or load "
            "the batch file with `cairn load`",
        )
        return Outcome(self.reject([issue], header, encoding), "AR", None)

    def _process_read(
        self,
        uow: UnitOfWork,
        item: Inbound,
        log: Any,
        reading: _Reading,
        answers: dict[_Key, JournalLookup],
    ) -> Outcome:
        """One readable message, in a straight line: key, resend, journal, check, apply, answer."""
        header = reading.header
        log = log.bind(**self._log_fields(header))
        if header.message_code in {"ACK", "RSP"}:
            # The receiver of an ACK or RSP never acknowledges it (IG, original mode).
            log.info("response_ignored")
            return Outcome(b"", "", None)
        key_issue = check_key(header, JOURNAL_KEY_LIMITS)
        if key_issue is not None:
            # Not journaled: the journal cannot key it (DESIGN.md, "Durability").
            log.warning(
                "message_rejected",
                location=str(key_issue.location),
                reason="header key unusable",
            )
            return Outcome(
                self.reject([key_issue], header, reading.encoding), "AR", None
            )
        spoofed = _spoofed(header, item.principal)
        if spoofed is not None:
            # Before the journal is looked up: a spoofer gets no stored answer
            # of the facility it names, and takes none of its control ids.
            return self._refuse_sender(uow, item, reading, spoofed, log)
        found = self._look_up(uow, reading, answers)
        test_mode = not_stored_reason(header, item.listener, self._senders)
        replayed = self._replay(header, found, log, test_mode is not None)
        if replayed is not None:
            return replayed
        if found.other_content:
            log.warning("control_id_reused")

        region, known = self._region_of(header, item.principal)
        refused = bool(reading.check.rejections)
        journal_id = self._journal(
            uow,
            item,
            header,
            region,
            reading.digest,
            abridged=refused and (region is None or reading.over_limit),
        )
        if item.principal is not None:
            # The organization's region, not the one MSH-4 would map to.
            log = log.bind(region=region)
        if refused:
            if reading.over_limit:
                log.warning(
                    "message_over_limit",
                    location=str(reading.check.rejections[0].location or ""),
                    bytes=len(item.raw),
                )
            return self._refuse(uow, reading, journal_id, region)
        assert region is not None

        route = self._routes[header.message_code]
        ctx = self._context(header, region, journal_id, known, item.principal)
        result, not_stored = self._apply(uow, route, item, reading, ctx, log, test_mode)
        trailing = list(reading.check.trailing)
        if found.other_content:
            trailing.append(_REUSED_ID)
        if not known:
            self._announce_unregistered(header.sender, region, log)
            # Said where it changed what happened: data was filed in the
            # fallback region. A rejected message or a query is not told.
            if result.changed_registry and not not_stored:
                trailing.append(
                    Issue(
                        Severity.WARNING,
                        Hl7Error.MESSAGE_ACCEPTED,
                        Location("MSH", 1, 4),
                        None,
                        f"MSH-4 sending facility is not registered; data filed in region {region}",
                    )
                )
        result = result.with_issues(trailing, leading=reading.check.leading)
        outcome = result.outcome
        if not_stored:
            outcome = f"{NOT_STORED}{test_mode}): {outcome}"
        return self._store_answer(uow, reading, result, outcome, journal_id, region)

    def _context(
        self,
        header: MessageHeader,
        region: str,
        journal_id: int,
        known: bool,
        principal: Principal | None,
    ) -> MessageContext:
        now = self._now()
        return MessageContext(
            sender=header.sender,
            region=region,
            journal_id=journal_id,
            received_at=now,
            today=now.date(),
            sender_known=known,
            principal=principal,
        )

    def _region_of(
        self, header: MessageHeader, principal: Principal | None
    ) -> tuple[str | None, bool]:
        """(region, known) of a sender: the authenticated organization's, else by MSH-4.

        An authenticated organization's region is its own, whatever MSH-4
        says (an MSH-4 not among its facility ids is refused before use);
        an open listener trusts MSH-4 and the ``[[facilities]]`` map.
        """
        if principal is not None:
            return principal.region, True
        return self._senders.region_of(header.sender)

    def _refuse_sender(
        self,
        uow: UnitOfWork,
        item: Inbound,
        reading: _Reading,
        issue: Issue,
        log: Any,
    ) -> Outcome:
        """AR for an MSH-4 that is not the authenticated organization's, with an audit row.

        Not journaled: the journal is keyed on MSH-4, and the facility named
        is not the sender's.
        """
        principal = item.principal
        assert principal is not None
        log.warning(
            "sender_refused",
            organization=principal.organization,
            location="MSH-4",
        )
        uow.audit.insert(
            NewAuditEntry(
                at=self._now(),
                requester=principal.organization,
                requester_region=principal.region,
                patient_id=None,
                patient_region=None,
                journal_id=None,
                query_tag="",
                action="authenticate",
                outcome="refused-msh4",
                profile=reading.header.message_code[:8],
                detail=f"MSH-4 is not a facility id of {principal.organization}; "
                f"peer {item.peer}"[:300],
            )
        )
        header = reading.header
        response = self.reject([issue], header, reading.encoding)
        return Outcome(response if _wants_answer(header, "AR") else b"", "AR", None)

    @staticmethod
    def _look_up(
        uow: UnitOfWork, reading: _Reading, answers: dict[_Key, JournalLookup]
    ) -> JournalLookup:
        """This message's earlier journal rows (same key, same or other content).

        Another node may be handling the same message right now: wait for
        it, then its journal row (and response) is visible here. The batch's
        look-ups were made together (_prefetch); a key seen a second time in
        one batch is looked up again, after the first one's work.
        """
        header = reading.header
        key = (header.sender, header.control_id, reading.digest)
        found = answers.pop(key, None)
        if found is None:
            uow.lock([f"message:{header.sender}:{header.control_id}"])
            found = uow.journal.answers([key])[key]
        return found

    def _replay(
        self, header: MessageHeader, found: JournalLookup, log: Any, test_mode: bool
    ) -> Outcome | None:
        """The original answer to a resend, or None when the message is new.

        A resend is answered from the newest row of its own mode: a sender
        that went live resends what it sent in test mode, and that must now
        be stored; a stored message sent again through a test listener stays
        a test; and a test copy in between never hides the live original
        (which would file the live message twice).
        """
        route = self._routes.get(header.message_code)
        previous = found.test_resend_of if test_mode else found.resend_of
        if (
            previous is None
            or previous.response is None
            or previous.ack_code == "AR"
            or (route is not None and not route.replay_resends)
        ):
            return None
        log.info("message_resent", journal_row=previous.id, ack_code=previous.ack_code)
        return Outcome(
            previous.response
            if _wants_answer(header, previous.ack_code or "")
            else b"",
            previous.ack_code or "",
            previous.id,
        )

    def _refuse(
        self,
        uow: UnitOfWork,
        reading: _Reading,
        journal_id: int,
        region: str | None,
    ) -> Outcome:
        """AR for a header the registry refuses; journaled with its answer."""
        header, rejections = reading.header, reading.check.rejections
        response = self.reject(rejections, header, reading.encoding, journal_id)
        uow.journal.set_response(
            journal_id,
            response,
            "AR",
            "rejected: " + rejections[0].text,
            len(rejections),
            region,
        )
        return Outcome(
            response if _wants_answer(header, "AR") else b"", "AR", journal_id
        )

    def _apply(
        self,
        uow: UnitOfWork,
        route: Route,
        item: Inbound,
        reading: _Reading,
        ctx: MessageContext,
        log: Any,
        test_mode: str | None,
    ) -> tuple[Response, bool]:
        """Run the handler in the writer's transaction; (response, not stored).

        A query read beforehand on a reader only records its audit rows here.
        A handler that writes registry data (VXU) says so; in test mode
        (:func:`not_stored_reason`) it is validated and answered, and nothing
        is kept. A query is answered from the registry in any mode, and its
        audit rows are kept: it disclosed real data.
        """
        header = reading.header
        query = self._queries.get(header.message_code)
        prepared = item.prepared
        if query is not None:
            if prepared is not None and prepared.ctx is not None:
                # The read's own clock and region; this message's journal row.
                read_ctx = replace(prepared.ctx, journal_id=ctx.journal_id)
                return query.record(prepared.answer, read_ctx, uow), False
            return query.handle(self._message(item, reading), ctx, uow, log), False

        def handle() -> Response:
            decider = self._decides.get(header.message_code)
            if decider is not None and reading.decision is not None:
                return decider.apply(reading.decision, ctx, uow, log)
            return route.handler.handle(self._message(item, reading), ctx, uow, log)

        writes = bool(getattr(route.handler, "writes_registry", True))
        if writes and test_mode is not None:
            return self._dry_run(handle, ctx, log, uow, header, test_mode), True
        return handle(), False

    def _store_answer(
        self,
        uow: UnitOfWork,
        reading: _Reading,
        result: Response,
        outcome: str,
        journal_id: int,
        region: str,
    ) -> Outcome:
        """Encode the response and store it with the journal row; what to send back."""
        header = reading.header
        response = result.encode(self._ours(journal_id), header, reading.encoding)
        uow.journal.set_response(
            journal_id, response, result.ack_code, outcome, len(result.issues), region
        )
        return Outcome(
            response if _wants_answer(header, result.ack_code) else b"",
            result.ack_code,
            journal_id,
        )

    def _dry_run(
        self,
        handle: Callable[[], Response],
        ctx: MessageContext,
        log: Any,
        uow: UnitOfWork,
        header: MessageHeader,
        test_mode: str,
    ) -> Response:
        """Apply a test-mode message in a savepoint, keep its answer, roll it back."""
        answer: list[Response] = []
        try:
            with uow.savepoint():
                answer.append(handle())
                raise _Discard
        except _Discard:
            pass
        # Who tried what (a role refused) is kept: MSH-11 T must not erase
        # a school's attempt to write from the audit trail.
        for audit in getattr(answer[0], "kept_audits", ()):
            if isinstance(audit, NewAuditEntry):
                uow.audit.insert(audit)
        log.info(
            "message_not_stored",
            processing_id=header.processing_id[:4],
            reason=test_mode,
        )
        if test_mode.startswith("MSH-11"):
            kind = "training" if header.processing_id == "T" else "debugging"
            location = Location("MSH", 1, 11)
            why = f"MSH-11 processing id {header.processing_id} ({kind})"
        elif test_mode == "test sender":
            location = Location("MSH", 1, 4)
            why = "this sending facility is in test mode"
        else:
            location = None
            why = "this connection is a test listener"
        note = Issue(
            Severity.INFORMATION,
            Hl7Error.MESSAGE_ACCEPTED,
            location,
            None,
            f"{why}: validated and answered as if stored, but nothing was kept "
            "in the registry",
        )
        return answer[0].with_issues([note])

    def _announce_unregistered(self, sender: str, region: str, log: Any) -> None:
        """Log once per sender (per node) that an unregistered sender was accepted."""
        if sender in self._announced:
            return
        self._announced.add(sender)
        log.warning("unregistered_sender_accepted", fallback_region=region)

    def _journal(
        self,
        uow: UnitOfWork,
        item: Inbound,
        header: MessageHeader,
        region: str | None,
        digest: str,
        *,
        abridged: bool = False,
    ) -> int:
        """A new journal row for this message (every message has its own).

        ``abridged``: the message is refused and comes from a stranger (or
        goes over a limit): the row keeps its digest and first
        :data:`JOURNAL_HEAD_BYTES`, with the size received.
        """
        raw, raw_size = item.raw, None
        if abridged and len(raw) > JOURNAL_HEAD_BYTES:
            raw, raw_size = raw[:JOURNAL_HEAD_BYTES], len(item.raw)
        return uow.journal.insert(
            NewJournalEntry(
                sender=header.sender,
                control_id=header.control_id,
                message_type=header.message_type,
                received_at=self._now(),
                raw=raw,
                peer=item.peer,
                region=region,
                content_digest=digest,
                raw_size=raw_size,
            )
        )


#: A message at least this large (a typical VXU is 2 KiB; one at the order
#: group limit about 75 KiB) is written after the small ones queued with it.
LARGE_MESSAGE_BYTES = 32 * 1024


def _large_last(
    batch: list[tuple[Inbound, Any]], large_bytes: int
) -> list[list[tuple[Inbound, Any]]]:
    """The batch as transactions: the small messages first, then the large ones.

    A large message takes the writer far longer than a small one; the
    small messages queued with it need not wait for it, nor for its share of
    a commit. It goes in a transaction of its own after them, and so does
    whatever its connection sent after it (one connection's messages are
    applied in the order they were sent).
    """
    if all(len(item.raw) < large_bytes for item, _ in batch):
        return [batch]
    first: list[tuple[Inbound, Any]] = []
    later: list[list[tuple[Inbound, Any]]] = []
    held: dict[str, list[tuple[Inbound, Any]]] = {}
    for entry in batch:
        item = entry[0]
        group = held.get(item.peer)
        if group is not None:
            group.append(entry)
        elif len(item.raw) >= large_bytes:
            held[item.peer] = group = [entry]
            later.append(group)
        else:
            first.append(entry)
    return [group for group in (first, *later) if group]


#: how often the writer looks again for a parked message's reading
_PARKED_POLL_SECONDS = 0.002
#: "nothing arrived" (the queue's own sentinel, None, means stop)
_NOTHING: Any = object()


def _unparked(
    entries: list[tuple[Inbound, Any]],
) -> tuple[list[tuple[Inbound, Any]], list[tuple[Inbound, Any]]]:
    """(what the writer stores now, what stays parked), each in arrival order.

    A message whose reading a worker is still working out (``pending.slow``
    and not ``ready()``) stays parked, and so does everything its connection
    sent after it: one connection's messages are applied in the order they
    were sent. The other connections' messages go ahead.
    """
    now: list[tuple[Inbound, Any]] = []
    later: list[tuple[Inbound, Any]] = []
    held: set[str] = set()
    for entry in entries:
        item = entry[0]
        pending = item.pending
        if item.peer in held or (
            getattr(pending, "slow", False) and not pending.ready()  # type: ignore[union-attr]
        ):
            held.add(item.peer)
            later.append(entry)
        else:
            now.append(entry)
    return now, later


class GroupCommitter:
    """Runs the pipeline on one worker thread, grouping queued messages.

    Messages that arrive while a transaction is being written wait in a
    bounded queue and go into the next one together (group commit). When the
    queue is full :meth:`submit` reports back-pressure to the caller, which
    stops reading from its socket.

    Args:
        pipeline: the synchronous pipeline.
        deliver: called on the worker thread with a finished item and its
            outcome (or exception); the engine hands it to the reactor.
        deliver_many: when given, called instead of ``deliver`` once per
            committed batch with every (token, outcome) pair, so the reactor
            is woken once per transaction rather than once per message.
        max_batch: the most messages in one transaction.
        max_queue: the most messages waiting.
        large_bytes: a message at least this large is written after the
            others queued with it, in a transaction of its own (see
            :func:`_large_last`).
        linger_seconds: when fewer messages are queued than the last
            transaction held, how long to wait for more before writing
            (``database.group_commit_wait_ms``): with senders that wait for
            each ACK, the stragglers of one round otherwise make a
            transaction, and a commit, of their own.
    """

    def __init__(
        self,
        pipeline: MessagePipeline,
        deliver: Callable[[Any, Outcome | BaseException], None],
        *,
        max_batch: int = 64,
        max_queue: int = 1024,
        deliver_many: Callable[[list[tuple[Any, Outcome | BaseException]]], None]
        | None = None,
        large_bytes: int = LARGE_MESSAGE_BYTES,
        linger_seconds: float = 0.0,
    ) -> None:
        self._pipeline = pipeline
        self._metrics = pipeline.metrics
        self._large_bytes = large_bytes
        self._deliver = deliver
        self._deliver_many = deliver_many
        self._max_batch = max_batch
        self._queue: queue.Queue[tuple[Inbound, Any] | None] = queue.Queue(max_queue)
        self._thread = threading.Thread(
            target=self._run, name="cairn-writer", daemon=True
        )
        self._started = False
        #: messages set aside until their reading arrives (written by the thread)
        self._parked = 0
        self._linger = linger_seconds
        #: the size of the last transaction's group
        self._last_size = 0

    def start(self) -> None:
        """Start the worker thread."""
        if not self._started:
            self._started = True
            self._thread.start()

    def submit(self, item: Inbound, token: Any) -> None:
        """Queue a message; blocks briefly when the queue is full."""
        self._queue.put((item, token))

    def pending(self) -> int:
        """Messages waiting for the worker (queued, or parked while a worker reads them)."""
        return self._queue.qsize() + self._parked

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then stop the worker."""
        if self._started:
            # A full queue behind a hung database must not block shutdown
            # beyond its grace: the worker is a daemon thread, and what it
            # has not committed is rolled back when the process exits.
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=timeout)
            self._thread.join(timeout)

    def _run(self) -> None:
        # Messages whose reading a worker is still working out (a large
        # message, see engine/readers.py) wait here, with whatever their
        # connection sent after them, while the others are stored.
        parked: list[tuple[Inbound, Any]] = []
        while True:
            if parked:
                try:
                    first = self._queue.get(timeout=_PARKED_POLL_SECONDS)
                except queue.Empty:
                    first = _NOTHING
            else:
                first = self._queue.get()
            if first is None:
                break
            batch = [] if first is _NOTHING else [first]
            stop = False
            # Linger (a little) only while fewer have come than last time:
            # the other senders' next messages are on their way.
            linger_until = (
                time.perf_counter() + self._linger
                if self._linger and batch and len(batch) < self._last_size
                else 0.0
            )
            while len(batch) < self._max_batch:
                try:
                    wait = linger_until - time.perf_counter()
                    if wait > 0 and len(batch) < self._last_size:
                        nxt = self._queue.get(timeout=wait)
                    else:
                        nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._last_size = len(batch)
            batch, parked = _unparked(parked + batch)
            self._parked = len(parked)
            if batch:
                for group in _large_last(batch, self._large_bytes):
                    self._process(group)
            if stop:
                break
        # Stopping: what waited for a worker is stored before the thread ends
        # (waiting for the worker now; a dead one leaves it to the writer).
        if parked:
            for group in _large_last(parked, self._large_bytes):
                self._process(group)
            self._parked = 0

    def _process(self, batch: list[tuple[Inbound, Any]]) -> None:
        started = time.perf_counter()
        try:
            outcomes: Sequence[Outcome | BaseException] = self._pipeline.process_batch(
                [item for item, _ in batch]
            )
        except Exception as exc:  # commit failed: no answer may claim durability
            logger.error(
                "batch_failed", batch_size=len(batch), **exception_summary(exc)
            )
            outcomes = [exc] * len(batch)
        self._metrics.batch_done(
            len(batch),
            time.perf_counter() - started,
            committed=not isinstance(outcomes[0], BaseException),
        )
        if self._deliver_many is not None:
            self._deliver_many(
                [
                    (token, outcome)
                    for (_, token), outcome in zip(batch, outcomes, strict=True)
                ]
            )
            return
        for (_, token), outcome in zip(batch, outcomes, strict=True):
            self._deliver(token, outcome)
