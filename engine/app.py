"""The composition root: builds storage, handlers, pipeline and listeners from config.

This is the one place that reads settings and wires objects together; every
other package receives plain values and collaborators.
"""

from __future__ import annotations

import errno
import gc
import os
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from twisted.internet import defer
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from config import Settings
from engine.access import ListenerGate, RateLimiter, Session
from engine.health import ReadinessProbe, alive
from engine.logging import exception_summary
from engine.metrics import EngineMetrics
from engine.pipeline import (
    GroupCommitter,
    Inbound,
    MessagePipeline,
    Outcome,
    Route,
    SenderPolicy,
)
from engine.readers import ReaderProcesses
from engine.soap import SharedLogins, SoapGateway
from engine.tls import ServerTls, TlsError, TlsFiles, listen_tls, load_server_tls
from forecast import (
    Forecaster,
    SupportingDataError,
    installed_release,
    load_supporting_data,
)
from handlers.codes import CodeTables
from handlers.dedup import DoseDeduplicator
from handlers.forecasting import CdsiForecastService
from handlers.identity import IdentityService
from handlers.matching import PatientMatcher
from handlers.ndc import CodeReleaseError, installed_codes, load_code_release
from handlers.qbp import QbpHandler, QueryPolicy
from handlers.vxu import VxuHandler
from listeners.http import BytesResource, HttpRoot, StatusResource, build_site
from listeners.mllp import CloseAfter, MllpFactory
from listeners.soap import SoapResource
from parsers.limits import MessageLimits
from parsers.soap import ServiceDescription, WsdlError, read_service_description
from storage import Database, StorageError, open_database

logger = structlog.get_logger()


#: The name of the test-mode MLLP listener (``server.test_listen``).
TEST_LISTENER = "mllp-test"


class StartupError(Exception):
    """The engine cannot start; the message says why in one line."""


def database_url(settings: Settings) -> str:
    """The database URL: the configured one, else SQLite in the data directory."""
    if settings.database.url:
        return settings.database.url
    data_dir = Path(settings.server.data_dir)
    return f"sqlite:///{(data_dir / 'cairn.sqlite3').resolve()}"


def open_registry_database(settings: Settings, *, upgrade: bool) -> Database:
    """Open the database; on the embedded SQLite default, create and upgrade it.

    PostgreSQL is never migrated implicitly: ``cairn db upgrade`` is the only
    thing that changes a production schema, and serve refuses an old one.
    """
    url = database_url(settings)
    if url.startswith("sqlite"):
        Path(settings.server.data_dir).mkdir(parents=True, exist_ok=True)
    db = open_database(
        url,
        sqlite_synchronous=settings.database.sqlite_synchronous,
        pool_size=settings.database.pool_size,
        statement_timeout=settings.database.statement_timeout_seconds,
        connect_timeout=settings.database.connect_timeout_seconds,
    )
    try:
        if upgrade and url.startswith("sqlite"):
            db.upgrade(tuple(r.code for r in settings.regions))
        db.check_schema_current()
    except StorageError:
        db.close()
        raise
    return db


def load_forecaster(settings: Settings) -> tuple[CdsiForecastService | None, str]:
    """The CDSi forecast service, or None and the reason it is unavailable.

    The release comes from ``cdsi.supporting_data``, else ``CAIRN_CDSI_DIR``,
    else the one ``cairn cdsi import`` installed in the data directory.
    """
    configured = settings.cdsi.supporting_data
    from_env = os.environ.get("CAIRN_CDSI_DIR", "")
    if configured:
        path: Path | None = Path(configured)
    elif from_env and Path(from_env).exists():
        path = Path(from_env)
    else:
        path = installed_release(settings.server.data_dir)
    if path is None:
        return (
            None,
            "no CDSi supporting data is installed (run `cairn cdsi import PATH`)",
        )
    try:
        service = CdsiForecastService(Forecaster(load_supporting_data(path)))
    except SupportingDataError as exc:
        logger.error("cdsi_unavailable", reason=str(exc)[:200])
        return None, "the CDSi supporting data could not be loaded"
    logger.info("cdsi_loaded", release=service.release)
    return service, ""


def load_code_tables(settings: Settings) -> CodeTables:
    """The built-in code tables with CDC's code release (NDC crosswalk) laid over them.

    The release comes from ``CAIRN_CODES_DIR``, else the one ``cairn codes
    import`` installed in the data directory. Without one the server still
    runs; an RXA-5 coded only with NDC is then rejected with an ERR that says
    so.
    """
    tables = CodeTables.load()
    from_env = os.environ.get("CAIRN_CODES_DIR", "")
    if from_env and Path(from_env).exists():
        path: Path | None = Path(from_env)
    else:
        path = installed_codes(settings.server.data_dir)
    if path is None:
        logger.warning(
            "codes_unavailable",
            reason="no NDC table is installed: NDC-only doses are rejected (run `cairn codes import PATH`)",
        )
        return tables.with_release(None)
    try:
        release = load_code_release(path)
    except CodeReleaseError as exc:
        logger.error("codes_unavailable", reason=str(exc)[:200])
        return tables.with_release(
            None,
            reason="the NDC table could not be loaded (reinstall it with `cairn codes import PATH`)",
        )
    logger.info("codes_loaded", release=release.release, count=len(release.products))
    return tables.with_release(release)


def build_pipeline(
    settings: Settings,
    db: Database,
    *,
    metrics: EngineMetrics | None = None,
    forecast: tuple[CdsiForecastService | None, str] | None = None,
) -> MessagePipeline:
    """Build the pipeline and its handlers from settings.

    Args:
        settings: the configuration.
        db: the registry's database.
        metrics: where the pipeline counts (a private registry by default).
        forecast: the forecast service and why it is missing, as
            :func:`load_forecaster` returns them (loaded here by default).
    """
    metrics = metrics if metrics is not None else EngineMetrics()
    codes = load_code_tables(settings)
    service, why = forecast if forecast is not None else load_forecaster(settings)
    metrics.cdsi(service is not None)
    forecaster = metrics.timed_forecast(service) if service is not None else None
    policy = QueryPolicy(
        settings.registry.statewide, tuple(r.code for r in settings.regions)
    )
    routes = {
        "VXU": Route(
            VxuHandler(
                codes,
                PatientMatcher(
                    settings.matching.match_threshold,
                    settings.matching.possible_threshold,
                    candidate_limit=settings.matching.candidate_limit,
                ),
                DoseDeduplicator(
                    codes,
                    settings.dedup.window_days,
                    dict(settings.dedup.group_window_days),
                ),
                review_score=settings.dedup.review_score,
            ),
            "VXU_V04",
        ),
        "QBP": Route(
            QbpHandler(
                codes,
                policy,
                forecaster=forecaster,
                forecaster_error=lambda: why,
                max_candidates=settings.query.max_candidates,
                registry=settings.registry.name,
            ),
            "QBP_Q11",
            replay_resends=False,
        ),
    }
    senders = SenderPolicy(
        facilities={f.id: f.region for f in settings.facilities},
        unknown_sender=settings.registry.unknown_sender,
        unknown_sender_region=settings.registry.unknown_sender_region,
        processing_ids=frozenset(settings.registry.processing_ids),
        test_senders=frozenset(f.id for f in settings.facilities if f.test),
        test_listeners=frozenset(
            {TEST_LISTENER} if settings.server.test_listen else set()
        ),
    )
    return MessagePipeline(
        database=db,
        routes=routes,
        senders=senders,
        application=settings.registry.name,
        facility=settings.registry.facility_id,
        metrics=metrics,
        limits=MessageLimits(
            max_segments=settings.limits.max_segments,
            max_order_groups=settings.limits.max_order_groups,
            max_repetitions=settings.limits.max_repetitions,
            max_query_identifiers=settings.limits.max_query_identifiers,
        ),
    )


def tls_files(settings: Settings) -> TlsFiles:
    """The MLLP listener's TLS files, as configured."""
    return TlsFiles(
        settings.server.tls_certificate,
        settings.server.tls_private_key_file,
        settings.server.tls_client_ca_file,
        "server",
    )


def build_identity(settings: Settings, db: Database) -> IdentityService:
    """The identity service (users, certificates, addresses) from settings."""
    return IdentityService(
        db.transaction,
        now=lambda: datetime.now(UTC),
        max_failures=settings.identity.max_failed_logins,
        lockout_seconds=settings.identity.lockout_seconds,
        reading=db.reading,
    )


class PipelineSink:
    """Bridges the listener (reactor thread), the readers and the group committer.

    Implements the listener's ``MessageSink``. A VXU goes straight to the
    group committer (the writer thread). A query (Z34/Z44) is read first on
    a reader thread, on a reader connection outside the writer's
    transaction, so that reads and ingest do not wait for each other; only
    its small writes (journal row, audit rows, response) go to the writer.

    Args:
        reactor: where answers are handed back (``callFromThread``).
        pipeline: the synchronous pipeline the writer thread runs.
        max_batch: the most messages in one transaction (group commit).
        max_queue: the most messages, from all connections together, waiting
            for the writer or a reader (``server.max_in_flight``); one more
            is refused.
        readers: the reader threads answering queries (``query.reader_threads``).
        limiter: the per-organization message rate (authenticated listeners).
        processes: worker processes that read and decide messages before the
            writer (``server.reader_processes``; 0: the writer does it).
        linger_seconds: ``database.group_commit_wait_ms`` (see GroupCommitter).
    """

    def __init__(
        self,
        reactor: IReactorThreads,
        pipeline: MessagePipeline,
        *,
        max_batch: int,
        max_queue: int = 4096,
        readers: int = 2,
        limiter: RateLimiter | None = None,
        processes: int = 0,
        linger_seconds: float = 0.0,
    ) -> None:
        self._reactor = reactor
        self._pipeline = pipeline
        self._limiter = limiter
        self._processes = processes
        self._pool: ReaderProcesses | None = None
        self._readers = ThreadPool(
            minthreads=0, maxthreads=readers, name="cairn-reader"
        )
        #: queries handed to a reader and not yet to the writer
        self._reading = 0
        self._committer = GroupCommitter(
            pipeline,
            self._deliver,
            max_batch=max_batch,
            max_queue=max_queue,
            deliver_many=self._deliver_many,
            linger_seconds=linger_seconds,
        )
        self._max_queue = max_queue
        self._metrics = pipeline.metrics
        self._metrics.watch_queue(self.in_flight)

    def in_flight(self) -> int:
        """Messages waiting for the writer or a reader."""
        return self._committer.pending() + self._reading

    def start(self) -> None:
        """Start the reader processes, then the writer thread and the reader pool.

        The processes are forked first, while this is the only thread.
        Everything built until now (code tables, the pipeline, compiled
        statements: some 130,000 objects) is moved out of the garbage
        collector's sight first: a full collection walked it all, a pause
        of about 100 ms for every thread, now and then under load (an ACK
        latency spike); and a forked worker no longer copies those pages
        when the collector touches them.
        """
        gc.freeze()
        if self._processes:
            self._pool = ReaderProcesses(self._pipeline.reader, self._processes)
        self._committer.start()
        self._readers.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the reads, drain the queue and stop the writer thread (blocking)."""
        # Readers first: what they read still goes to the writer.
        self._readers.stop()
        self._committer.stop(timeout)
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def submit(
        self, raw: bytes, peer: str, listener: str, session: object = None
    ) -> Deferred[bytes]:
        """Queue a message; the Deferred fires with the response after commit.

        ``session`` is the authenticated listener's :class:`Session`: its
        organization is the message's sender; a connection over its
        organization's connection limit, or a message over its rate, is
        answered AR naming the limit at once. The AR of a session over its
        connection limit or revoked is a :class:`CloseAfter`: the listener
        closes the connection once it is written.
        """
        d: Deferred[bytes] = Deferred()
        principal = None
        if isinstance(session, Session):
            principal = session.principal
            refusal = session.refusal
            limiter = self._limiter
            if (
                not refusal
                and principal is not None
                and limiter is not None
                and not limiter.take(principal)
            ):
                refusal = limiter.refusal_text(principal)
            if refusal:
                logger.warning(
                    "message_over_limit",
                    peer=peer,
                    listener=listener,
                    organization=principal.organization if principal else "",
                )
                answer = self._pipeline.refuse(raw, refusal)
                # Over the connection limit or revoked, every further message
                # would be refused too: close after this AR. Over the rate,
                # the sender only has to slow down: the connection stays.
                d.callback(CloseAfter(answer) if session.refusal else answer)
                return d
        in_flight = self._committer.pending() + self._reading
        if in_flight >= self._max_queue:
            logger.warning(
                "overloaded",
                in_flight=in_flight,
                peer=peer,
                listener=listener,
                **self._pipeline.log_fields(raw),
            )
            self._metrics.refused("overloaded")
            d.errback(RuntimeError("engine overloaded"))
            return d
        item = Inbound(raw, peer, listener, principal=principal)
        started = time.perf_counter()
        if self._pipeline.reads_only(raw):
            d.addCallback(self._answered, started, "query")
            self._read_then_write(item, d)
        else:
            d.addCallback(self._answered, started, "ingest")
            self._committer.submit(self._read_elsewhere(item), d)
        return d

    def _answered(self, payload: bytes, started: float, path: str) -> bytes:
        """Record the ACK latency of one answer; pass the answer on."""
        self._metrics.answered(path, time.perf_counter() - started)
        return payload

    def _read_elsewhere(self, item: Inbound) -> Inbound:
        """Hand the message's reading to a worker process; the writer waits for it.

        The message still enters the writer's queue now, in arrival order;
        the worker reads it while the writer stores the messages before it.
        """
        pool = self._pool
        if pool is None:
            return item
        pending = pool.submit(
            item.raw,
            self._pipeline.today(),
            authenticated=item.principal is not None,
        )
        return item if pending is None else replace(item, pending=pending)

    def _read_then_write(self, item: Inbound, d: Deferred[bytes]) -> None:
        """A query's read step on a reader thread, then its writes on the writer."""
        self._reading += 1
        read: Deferred[Inbound] = deferToThreadPool(
            self._reactor,
            self._readers,
            self._pipeline.read_step,
            item,
        )

        def to_writer(prepared: Inbound | Failure) -> None:
            self._reading -= 1
            if isinstance(prepared, Failure) and prepared.value is not None:
                logger.error(
                    "query_read_failed",
                    peer=item.peer,
                    listener=item.listener,
                    **self._pipeline.log_fields(item.raw),
                    **exception_summary(prepared.value),
                )
            # A read step that failed outright leaves the query to the writer.
            self._committer.submit(
                prepared if isinstance(prepared, Inbound) else item, d
            )

        read.addBoth(to_writer)

    def oversize(self, head: bytes, peer: str, listener: str) -> bytes:
        """The reject for a message over the size limit."""
        return self._pipeline.oversize(head, peer, listener)

    def _deliver(self, token: Any, outcome: Outcome | BaseException) -> None:
        self._reactor.callFromThread(self._fire, token, outcome)

    def _deliver_many(self, pairs: list[tuple[Any, Outcome | BaseException]]) -> None:
        # One reactor wake-up per committed batch.
        self._reactor.callFromThread(self._fire_many, pairs)

    @classmethod
    def _fire_many(cls, pairs: list[tuple[Any, Outcome | BaseException]]) -> None:
        for d, outcome in pairs:
            cls._fire(d, outcome)

    @staticmethod
    def _fire(d: Deferred[bytes], outcome: Outcome | BaseException) -> None:
        if isinstance(outcome, BaseException):
            d.errback(outcome)
        else:
            d.callback(outcome.payload)


class StatisticsKeeper:
    """Every ``interval`` seconds, off the reactor thread, analyze stale tables.

    PostgreSQL only does this itself when autovacuum is on; see
    :meth:`storage.Database.refresh_statistics`. One refresh at a time; a
    failure is logged and the next tick tries again.
    """

    def __init__(self, reactor: Any, db: Database, interval: float) -> None:
        self._reactor = reactor
        self._db = db
        self._loop = LoopingCall(self._tick)
        self._loop.clock = reactor
        self._interval = interval
        self._running: Deferred[Any] | None = None

    def start(self) -> None:
        """Start ticking (the first refresh after one interval)."""
        self._loop.start(self._interval, now=False)

    def stop(self) -> Deferred[Any] | None:
        """Stop ticking; returns the refresh still running, if any."""
        if self._loop.running:
            self._loop.stop()
        return self._running

    def _tick(self) -> None:
        if self._running is not None:
            return
        d = deferToThreadPool(
            self._reactor, self._reactor.getThreadPool(), self._db.refresh_statistics
        )
        self._running = d
        d.addCallbacks(self._done, self._failed)

    def _done(self, tables: list[str]) -> None:
        self._running = None
        if tables:
            logger.info("statistics_refreshed", tables=tables)

    def _failed(self, failure: Any) -> None:
        self._running = None
        logger.warning("statistics_refresh_failed", error_type=failure.type.__name__)


@dataclass
class RunningServer:
    """A started engine: its port, listener factory and sink.

    ``clock`` (the reactor) times the shutdown; ``grace`` is how long, in
    seconds, the shutdown waits for messages in flight
    (``server.shutdown_grace_seconds``).
    """

    port: Any
    factory: MllpFactory
    sink: PipelineSink
    db: Database
    clock: Any  # IReactorTime; zope interfaces do not type-check
    grace: float
    statistics: StatisticsKeeper | None = None
    #: the test-mode listener (``server.test_listen``), when configured
    test_port: Any = None
    test_factory: MllpFactory | None = None
    #: The HTTP port (None when ``http.listen`` is empty) and the root its
    #: features are mounted on (listeners/http.py).
    http_port: Any = None
    http_root: HttpRoot | None = None
    #: The engine's metrics (``/metrics``) and the CDSi release it forecasts
    #: with (None: Z44 carries no forecast).
    metrics: EngineMetrics | None = None
    cdsi_release: str | None = None
    #: an authenticated listener's periodic look-up of its open sessions
    revalidation: LoopingCall | None = None

    @inlineCallbacks
    def shutdown(self) -> Any:
        """Stop accepting, finish what is in flight within the grace, then release everything.

        Messages still unanswered when the grace runs out get no answer: their
        connections are closed and the writer is not waited for. Each such
        message was either committed (its resend gets the stored answer) or
        not (its transaction is rolled back when the process exits); an ACK
        is never sent for a message that was not committed.
        """
        deadline = float(self.clock.seconds()) + self.grace

        def left() -> float:
            return max(0.0, deadline - float(self.clock.seconds()))

        factories = [self.factory]
        logger.info("shutdown_started", in_flight=self.factory.in_flight)
        yield self.port.stopListening()
        if self.test_port is not None and self.test_factory is not None:
            factories.append(self.test_factory)
            yield self.test_port.stopListening()
        if self.http_port is not None:
            yield self.http_port.stopListening()
        if self.revalidation is not None and self.revalidation.running:
            self.revalidation.stop()
        if self.statistics is not None:
            yield self.statistics.stop()
        try:
            # One after the other: cancelling the chain (the grace timer)
            # cancels whichever quiesce it is waiting on.
            quiet: Deferred[None] = self.factory.quiesce()
            for other in factories[1:]:
                quiet = quiet.addCallback(_then_quiesce, other)
            yield quiet.addTimeout(left(), self.clock)
        except defer.TimeoutError:
            logger.warning(
                "shutdown_grace_expired",
                in_flight=sum(factory.in_flight for factory in factories),
                seconds=self.grace,
            )
            for factory in factories:
                for proto in list(factory.connections):
                    proto.close()
        self.sink.stop(left())
        self.db.close()
        logger.info("shutdown_finished")


def _listen(
    reactor: Any,
    address: str,
    factory: Any,
    flag: str,
    tls: ServerTls | None = None,
) -> Any:
    """``listenTCP`` on HOST:PORT (``listenSSL`` with ``tls``), or StartupError in one line naming the address.

    ``flag`` names the option and key that choose the address, for the hint
    when another program holds the port.
    """
    host, _, port_text = address.rpartition(":")
    try:
        if tls is not None:
            # Twisted's TLS over TCP: no plaintext on this port, ever.
            return listen_tls(reactor, address, factory, tls)
        return reactor.listenTCP(int(port_text), factory, interface=host.strip("[]"))
    except CannotListenError as exc:
        error = exc.socketError
        reason = getattr(error, "strerror", None) or str(error)
        if getattr(error, "errno", None) == errno.EADDRINUSE:
            reason += " (another program listens there: stop it, or choose"
            reason += f" another address with {flag})"
        raise StartupError(f"cannot listen on {address}: {reason}") from None


def build_http_root(
    reactor: Any, db: Database, metrics: EngineMetrics, cdsi_release: str | None
) -> HttpRoot:
    """The HTTP root with the engine's own endpoints mounted (listeners/http.py).

    ``/metrics`` (Prometheus text), ``/healthz`` and ``/readyz``
    (engine/health.py). A feature served over HTTP mounts itself here too,
    e.g. ``root.mount("soap", SoapResource(...))``.
    """
    root = HttpRoot()
    root.mount("metrics", BytesResource(metrics.render))
    root.mount("healthz", StatusResource(alive))
    root.mount("readyz", StatusResource(ReadinessProbe(reactor, db, cdsi_release)))
    return root


def _listen_http(reactor: Any, settings: Settings, site: Any) -> Any:
    """Open the HTTP listener: HTTPS when ``http.tls_certificate`` is set.

    TLS comes from engine/tls.py (the same loader as MLLP's): a missing,
    unreadable or mismatched certificate or key is one StartupError line
    naming the key and the file. A plaintext client on the HTTPS port fails
    the handshake; it is never read as HTTP.
    """
    http = settings.http
    if not http.tls_certificate:
        return _listen(reactor, http.listen, site, "--http-listen or http.listen")
    try:
        tls = load_server_tls(
            TlsFiles(http.tls_certificate, http.tls_private_key_file, setting="http"),
            require_client_certificate=False,
        )
    except TlsError as exc:
        raise StartupError(str(exc)) from None
    return _listen(reactor, http.listen, site, "--http-listen or http.listen", tls)


def mount_soap(
    reactor: Any,
    settings: Settings,
    db: Database,
    sink: PipelineSink,
    root: HttpRoot,
    metrics: EngineMetrics | None = None,
) -> None:
    """Mount the CDC SOAP service at ``/<soap.path>`` of the HTTP listener.

    Credentials are checked by the identity service (argon2, on the
    reactor's thread pool); messages go to ``sink``, the MLLP listener's
    pipeline, with the authenticated organization's session: it is their
    sender, and its messages-a-minute limit applies (AR naming it).

    Raises:
        StartupError: ``soap.wsdl`` cannot be read or is not a WSDL this
            service can serve, or the path is taken.
    """
    soap = settings.soap
    wsdl = load_wsdl(soap.wsdl) if soap.wsdl else None
    identity = build_identity(settings, db)
    gateway = SoapGateway(
        authenticate=identity.authenticate,
        audit=identity.audit_refusal,
        submit=sink.submit,
        run_blocking=lambda f, *args: deferToThreadPool(
            reactor, reactor.getThreadPool(), f, *args
        ),
        max_message_bytes=settings.server.max_message_bytes,
        logins=SharedLogins(),
    )
    resource = SoapResource(
        gateway,
        wsdl=wsdl.at if wsdl is not None else None,
        max_request_bytes=soap_request_limit(settings),
        on_fault=metrics.soap_fault if metrics is not None else None,
    )
    try:
        root.mount(soap.path, resource)
    except ValueError as exc:
        raise StartupError(f"soap.path: {exc}") from None


def soap_request_limit(settings: Settings) -> int:
    """The largest SOAP request body: the envelope and XML escaping around a message of the MLLP limit."""
    return 2 * settings.server.max_message_bytes + 64 * 1024


def load_wsdl(path: str) -> ServiceDescription:
    """The operator's WSDL (``soap.wsdl``), checked; StartupError in one line if not."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise StartupError(
            f"soap.wsdl: {path}: cannot be read ({exc.strerror or exc})"
        ) from None
    try:
        return read_service_description(data)
    except WsdlError as exc:
        raise StartupError(f"soap.wsdl: {path}: {exc}") from None


def start_server(reactor: Any, settings: Settings, db: Database) -> RunningServer:
    """Wire the pipeline to an MLLP listener (and the HTTP listener) and start listening.

    Raises:
        StartupError: an address cannot be listened on (in use, not ours,
            not permitted); what was started is stopped again first.
    """
    metrics = EngineMetrics()
    forecast = load_forecaster(settings)
    if forecast[0] is None:
        # Loud on purpose: a registry without CDSi data answers every Z44
        # without a forecast, and /readyz reports it not ready.
        logger.warning(
            "cdsi_unavailable",
            reason=f"{forecast[1]}: Z44 queries are answered without a forecast",
        )
    pipeline = build_pipeline(settings, db, metrics=metrics, forecast=forecast)
    release = forecast[0].release if forecast[0] is not None else None
    auth = settings.server.auth
    gate: ListenerGate | None = None
    tls = None
    if auth == "open":
        logger.warning(
            "listener_open",
            listener="mllp",
            auth=auth,
            reason="OPEN LISTENER (development): anyone who can connect is whatever "
            'MSH-4 says; set server.auth = "tls" or "ip" in production',
        )
    else:
        gate = ListenerGate(
            auth,
            build_identity(settings, db),
            lambda fn, *args: deferToThreadPool(
                reactor, reactor.getThreadPool(), fn, *args
            ),
            default_max_connections=settings.identity.max_connections,
        )
        if auth == "tls":
            try:
                tls = load_server_tls(
                    tls_files(settings),
                    require_client_certificate=True,
                    on_refused=gate.handshake_refused,
                )
            except TlsError as exc:
                raise StartupError(str(exc)) from None
        logger.info("listener_authenticated", listener="mllp", auth=auth)
    sink = PipelineSink(
        reactor,
        pipeline,
        max_batch=settings.database.group_commit_max,
        max_queue=settings.server.max_in_flight,
        readers=settings.query.reader_threads,
        # Authenticated senders (an MLLP gate, the SOAP service) are limited.
        limiter=RateLimiter(reactor.seconds, settings.identity.messages_per_minute)
        if gate is not None or settings.soap.enabled
        else None,
        processes=settings.server.reader_processes,
        linger_seconds=settings.database.group_commit_wait_ms / 1000,
    )
    sink.start()
    factory = MllpFactory(
        sink,
        reactor,
        name="mllp",
        max_message_bytes=settings.server.max_message_bytes,
        idle_timeout=settings.server.idle_timeout_seconds,
        max_pipelined=settings.server.max_pipelined,
        gate=gate,
        tls=tls is not None,
        max_connections=settings.server.max_connections,
        max_connections_per_address=settings.server.max_connections_per_address,
        frame_timeout=settings.server.frame_timeout_seconds,
        max_buffered_bytes=settings.server.max_buffered_bytes,
        on_limited=metrics.connection_limited,
    )
    try:
        port = _listen(
            reactor, settings.server.listen, factory, "--listen or server.listen", tls
        )
        test_port = test_factory = None
        if settings.server.test_listen:
            test_factory = MllpFactory(
                sink,
                reactor,
                name=TEST_LISTENER,
                max_message_bytes=settings.server.max_message_bytes,
                idle_timeout=settings.server.idle_timeout_seconds,
                max_pipelined=settings.server.max_pipelined,
                # The test listener reads the registry too: it is
                # authenticated exactly as the main one.
                gate=gate,
                tls=tls is not None,
                max_connections=settings.server.max_connections,
                max_connections_per_address=settings.server.max_connections_per_address,
                frame_timeout=settings.server.frame_timeout_seconds,
                max_buffered_bytes=settings.server.max_buffered_bytes,
                on_limited=metrics.connection_limited,
            )
            try:
                test_port = _listen(
                    reactor,
                    settings.server.test_listen,
                    test_factory,
                    "server.test_listen",
                    tls,
                )
            except StartupError:
                port.stopListening()
                raise
    except StartupError:
        sink.stop()
        raise
    http_root = build_http_root(reactor, db, metrics, release)
    http_port = None
    try:
        if settings.soap.enabled:
            mount_soap(reactor, settings, db, sink, http_root, metrics)
        if settings.http.listen:
            site = build_site(
                http_root,
                reactor=reactor,
                # Twice the SOAP service's own limit: bodies between the two
                # get its MessageTooLargeFault, larger ones are not even kept.
                max_request_bytes=2 * soap_request_limit(settings),
            )
            http_port = _listen_http(reactor, settings, site)
    except StartupError:
        port.stopListening()
        if test_port is not None:
            test_port.stopListening()
        sink.stop()
        raise
    revalidation = None
    if gate is not None:
        revalidation = LoopingCall(gate.revalidate)
        revalidation.clock = reactor
        revalidation.start(settings.identity.revalidate_seconds, now=False)
    statistics = None
    interval = settings.database.statistics_interval_seconds
    if db.backend == "postgresql" and interval > 0:
        statistics = StatisticsKeeper(reactor, db, interval)
        statistics.start()
    return RunningServer(
        port,
        factory,
        sink,
        db,
        clock=reactor,
        grace=settings.server.shutdown_grace_seconds,
        statistics=statistics,
        test_port=test_port,
        test_factory=test_factory,
        http_port=http_port,
        http_root=http_root,
        metrics=metrics,
        cdsi_release=release,
        revalidation=revalidation,
    )


def _then_quiesce(_result: None, factory: MllpFactory) -> Deferred[None]:
    return factory.quiesce()


def install_graceful_shutdown(reactor: Any, server: RunningServer) -> None:
    """On SIGTERM or SIGINT, shut down gracefully before the reactor stops.

    Twisted turns the signals into ``reactor.stop()``; a "before shutdown"
    trigger that returns a Deferred holds the reactor until it fires, so the
    listener stops accepting, in-flight messages are committed and answered
    (for at most ``server.shutdown_grace_seconds``), and only then does the
    process exit.
    """
    reactor.addSystemEventTrigger("before", "shutdown", server.shutdown)


def listening_address(server: RunningServer, *, test: bool = False) -> tuple[str, int]:
    """The host and port actually bound (port 0 picks a free one); ``test``: the test listener's."""
    port = server.test_port if test else server.port
    address = port.getHost()
    return str(getattr(address, "host", "")), int(getattr(address, "port", 0))


def auth_mode(settings: Settings) -> str:
    """Who may send, in one phrase (the sender check on MSH-4)."""
    registry = settings.registry
    if registry.unknown_sender == "accept":
        return (
            "open: any MSH-4 accepted, unregistered senders into region"
            f" {registry.unknown_sender_region}"
        )
    return "registered senders only (MSH-4)"


def startup_summary(settings: Settings, server: RunningServer) -> dict[str, Any]:
    """What ``cairn serve`` says once at startup (the ``engine_started`` event).

    The listeners (and whether SOAP is served on HTTP), who may send, the
    database (its URL without password),
    the CDSi release, the regions and the registered sending facilities.
    Configuration only: nothing from a message.
    """
    host, port = listening_address(server)
    http = http_address(server)
    scheme = "https" if settings.http.tls_certificate else "http"
    soap = settings.soap.enabled and http is not None
    return {
        "mllp": f"{host}:{port}",
        "http": f"{http[0]}:{http[1]}" if http is not None else "off",
        "soap": f"{scheme}://{http[0]}:{http[1]}/{settings.soap.path}"
        if soap and http is not None
        else "off",
        "auth": auth_mode(settings),
        "database": server.db.url,
        "cdsi_release": server.cdsi_release or "none (Z44 carries no forecast)",
        "regions": [region.code for region in settings.regions],
        "senders": [f"{f.id}:{f.region}" for f in settings.facilities],
    }


def http_address(server: RunningServer) -> tuple[str, int] | None:
    """The HTTP listener's bound host and port, or None when it is off."""
    if server.http_port is None:
        return None
    address = server.http_port.getHost()
    return str(getattr(address, "host", "")), int(getattr(address, "port", 0))
