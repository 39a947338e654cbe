"""The engine's Prometheus metrics, on a registry of its own (``/metrics``).

One :class:`EngineMetrics` per running engine holds every metric on its own
``CollectorRegistry``, never prometheus-client's global one: two engines in
one process (the tests) count apart, and nothing a library registers
globally leaks into Cairn's page. The pipeline, the group committer, the
sink and the forecast service report through a handful of methods; each is
one call at one place, so the code that does the work reads as before.

Metrics (all names start with ``cairn_``):

``cairn_messages_total{message_type, outcome, sender}``
    Messages answered, counted after their transaction committed.
    ``message_type`` is the MSH-9 message code the registry routes (``VXU``,
    ``QBP``), ``other`` for a code it does not take, ``unreadable`` when no
    header could be read. ``outcome`` is the MSA-1 sent (``AA``, ``AE``,
    ``AR``) or ``none`` when no answer is due (an ACK received, MSH-16).
    ``sender`` is MSH-4 for a registered facility; unregistered ones keep
    their own label up to :data:`UNREGISTERED_SENDER_LABELS` of them, then
    share ``_other`` (junk MSH-4 values must not grow the page forever);
    ``_none`` when MSH-4 is empty or unreadable; ``_spoofed`` when an
    authenticated connection's MSH-4 is not one of its organization's
    facility ids (refused; not counted as the facility it names).
``cairn_messages_refused_total{reason}``
    Messages refused without an answer: ``overloaded`` (``server.max_in_flight``
    messages were already waiting; the connection is closed and the sender
    resends later).
``cairn_connections_limited_total{reason}``
    MLLP connections closed by a per-peer limit (issue 18 item 7):
    ``connections`` and ``address`` (refused when accepted: the listener's
    or the source address's cap), ``frame_timeout`` (a frame did not arrive
    whole in time), ``buffer`` (unfinished frames over the listener's
    budget).
``cairn_ack_latency_seconds{path}``
    From the listener handing a message over to its answer being handed
    back, for answered messages; ``path`` is ``ingest`` (the writer) or
    ``query`` (a reader, then the writer).
``cairn_queue_depth``
    Messages waiting for the writer or a reader (``server.max_in_flight``
    bounds it).
``cairn_writer_busy_seconds_total``
    Time the writer thread spent processing and committing batches: its
    rate is the writer's utilisation (1.0 = saturated).
``cairn_group_commit_size``
    Messages per committed transaction.
``cairn_database_errors_total{kind}``
    ``unavailable`` (a message failed because the database could not be
    reached or timed out: resend), ``refused`` (the database refused a
    value: correct the message), ``commit`` (a whole batch's commit failed:
    none of its messages was answered).
``cairn_forecast_seconds``
    Time of one CDSi evaluation and forecast (a Z44 patient).
``cairn_cdsi_loaded``
    1 when CDSi supporting data is loaded (Z44 carries a forecast), else 0.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from storage import PermanentStorageError, TransientStorageError

if TYPE_CHECKING:
    from handlers.disclosure import PatientView
    from handlers.forecast_outcome import ForecastOutcome
    from handlers.forecasting import CdsiForecastService

#: Distinct unregistered senders that get a label of their own.
UNREGISTERED_SENDER_LABELS = 100

#: What ACK latency is bucketed in (seconds): a durable ACK costs from a
#: fraction of a millisecond (a lone message, group commit idle) to seconds
#: (a writer saturated behind a long queue).
_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_FORECAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


#: Why the MLLP listener closes a connection by a per-peer limit.
CONNECTION_LIMITS = ("connections", "address", "frame_timeout", "buffer")

#: The fault elements of the CDC 2011 WSDL (``fault`` is UnknownFault).
SOAP_FAULTS = (
    "fault",
    "SecurityFault",
    "MessageTooLargeFault",
    "UnsupportedOperationFault",
)


class EngineMetrics:
    """Every metric of one engine, on its own registry.

    Args:
        registry: where the metrics are registered; a new one by default.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._messages = Counter(
            "cairn_messages",
            "Messages answered, by message type, MSA-1 outcome and sender (MSH-4)",
            ["message_type", "outcome", "sender"],
            registry=r,
        )
        self._refused = Counter(
            "cairn_messages_refused",
            "Messages refused without an answer (overloaded: resent later)",
            ["reason"],
            registry=r,
        )
        self._limited = Counter(
            "cairn_connections_limited",
            "MLLP connections closed by a per-peer limit, by the limit",
            ["reason"],
            registry=r,
        )
        self._ack_latency = Histogram(
            "cairn_ack_latency_seconds",
            "From a message handed over by the listener to its answer handed back",
            ["path"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._queue_depth = Gauge(
            "cairn_queue_depth",
            "Messages waiting for the writer or a reader",
            registry=r,
        )
        self._writer_busy = Counter(
            "cairn_writer_busy_seconds",
            "Seconds the writer thread spent processing and committing batches",
            registry=r,
        )
        self._batch_size = Histogram(
            "cairn_group_commit_size",
            "Messages per committed transaction (group commit)",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self._database_errors = Counter(
            "cairn_database_errors",
            "Database errors: unavailable, refused (a value), commit (a batch)",
            ["kind"],
            registry=r,
        )
        self._forecast = Histogram(
            "cairn_forecast_seconds",
            "One CDSi evaluation and forecast",
            buckets=_FORECAST_BUCKETS,
            registry=r,
        )
        self._cdsi_loaded = Gauge(
            "cairn_cdsi_loaded",
            "1 when CDSi supporting data is loaded (Z44 carries a forecast)",
            registry=r,
        )
        self._soap_faults = Counter(
            "cairn_soap_faults",
            "SOAP requests answered with a fault, by the WSDL's fault element",
            ["fault"],
            registry=r,
        )
        for fault in SOAP_FAULTS:
            self._soap_faults.labels(fault)  # present at 0 from the start
        for kind in ("unavailable", "refused", "commit"):
            self._database_errors.labels(kind)  # present at 0 from the start
        for path in ("ingest", "query"):
            self._ack_latency.labels(path)
        self._refused.labels("overloaded")
        for reason in CONNECTION_LIMITS:
            self._limited.labels(reason)
        self._unregistered: set[str] = set()
        self._lock = threading.Lock()

    # -- the hooks -----------------------------------------------------------

    def messages_answered(self, answered: list[tuple[str, str, bool, str]]) -> None:
        """Count a committed batch's messages.

        Args:
            answered: per message (message type label, MSH-4, whether the
                sender is registered, MSA-1 sent or "" for no answer).
        """
        for message_type, sender, known, ack_code in answered:
            self._messages.labels(
                message_type, ack_code or "none", self._sender_label(sender, known)
            ).inc()

    def refused(self, reason: str) -> None:
        """A message refused without an answer (``overloaded``)."""
        self._refused.labels(reason).inc()

    def connection_limited(self, reason: str) -> None:
        """An MLLP connection closed by a per-peer limit (see ``CONNECTION_LIMITS``)."""
        self._limited.labels(reason).inc()

    def soap_fault(self, fault: str) -> None:
        """A SOAP request answered with a fault (its WSDL element, e.g. ``SecurityFault``)."""
        self._soap_faults.labels(fault).inc()

    def message_failed(self, exc: BaseException) -> None:
        """A message failed inside: count it if the database was the cause."""
        if isinstance(exc, TransientStorageError):
            self._database_errors.labels("unavailable").inc()
        elif isinstance(exc, PermanentStorageError):
            self._database_errors.labels("refused").inc()

    def batch_done(self, size: int, seconds: float, *, committed: bool) -> None:
        """The writer finished one batch (``committed`` False: its commit failed)."""
        self._writer_busy.inc(seconds)
        if committed:
            self._batch_size.observe(size)
        else:
            self._database_errors.labels("commit").inc()

    def answered(self, path: str, seconds: float) -> None:
        """One answer handed back ``seconds`` after its message was handed over."""
        self._ack_latency.labels(path).observe(seconds)

    def watch_queue(self, depth: Callable[[], int]) -> None:
        """Read the queue depth from ``depth`` at each scrape."""
        self._queue_depth.set_function(depth)

    def cdsi(self, loaded: bool) -> None:
        """Whether CDSi supporting data is loaded."""
        self._cdsi_loaded.set(1 if loaded else 0)

    def timed_forecast(self, service: CdsiForecastService) -> TimedForecast:
        """``service`` with each forecast's time recorded."""
        return TimedForecast(service, self._forecast)

    # -- the page ------------------------------------------------------------

    def render(self) -> tuple[str, bytes]:
        """The Prometheus text page: (content type, body)."""
        return CONTENT_TYPE_LATEST, generate_latest(self.registry)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """One sample's current value (0 when absent): for tests and the CLI."""
        found = self.registry.get_sample_value(name, labels or {})
        return float(found) if found is not None else 0.0

    def _sender_label(self, sender: str, known: bool) -> str:
        if not sender:
            return "_none"  # an empty label would read as no label at all
        if known:
            return sender
        with self._lock:  # the writer and the readers count
            if sender in self._unregistered:
                return sender
            if len(self._unregistered) < UNREGISTERED_SENDER_LABELS:
                self._unregistered.add(sender)
                return sender
        return "_other"


class TimedForecast:
    """A forecast service whose every forecast is timed (``cairn_forecast_seconds``)."""

    def __init__(self, service: CdsiForecastService, histogram: Histogram) -> None:
        self._service = service
        self._histogram = histogram

    @property
    def release(self) -> str:
        """The supporting-data release in use."""
        return self._service.release

    def forecast(self, view: PatientView, as_of: date) -> ForecastOutcome:
        """Run the forecast, recording how long it took."""
        started = time.perf_counter()
        try:
            return self._service.forecast(view, as_of)
        finally:
            self._histogram.observe(time.perf_counter() - started)
