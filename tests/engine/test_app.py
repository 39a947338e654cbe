"""The composition root: each tuning setting reaches its user, and the SIGTERM drain keeps to its grace."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.web.server import Site

from config import Settings, load_settings, with_overrides
from engine.app import RunningServer, build_pipeline, start_server
from engine.pipeline import Inbound, MessagePipeline
from listeners.mllp import MllpFactory, MllpProtocol
from parsers.mllp import encode_frame
from storage import Database, UnitOfWork
from tests.support.messages import Dose, vxu
from tests.support.mllp import errs, msa_code, segments


@pytest.fixture(autouse=True)
def _no_reference_releases(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CDSi or NDC release: these tests need neither, and loading them is slow."""
    monkeypatch.delenv("CAIRN_CDSI_DIR", raising=False)
    monkeypatch.delenv("CAIRN_CODES_DIR", raising=False)


def _settings(tmp_path: Path, **sections: dict[str, Any]) -> Settings:
    """Default settings with a private data directory and some values replaced."""
    server = {"data_dir": str(tmp_path), **sections.pop("server", {})}
    return with_overrides(load_settings(None, environ={}), server=server, **sections)


def _run(pipeline: MessagePipeline, *messages: str) -> list[bytes]:
    return [
        outcome.payload
        for outcome in pipeline.process_batch(
            [Inbound(m.encode(), "test", "mllp") for m in messages]
        )
    ]


def _qbp(*, name: str, dob: str, rcp: str | None = "5", control_id: str = "Q1") -> str:
    """A Z34 query by name and birth date; ``rcp`` None leaves out the RCP segment."""
    lines = [
        f"MSH|^~\\&|EHR|CLINIC1|CAIRN|CAIRN|20240601120000-0800||QBP^Q11^QBP_Q11|{control_id}|P|2.5.1|||ER|AL|||||Z34^CDCPHINVS",
        f"QPD|Z34^Request Immunization History^CDCPHINVS|TAG1||{name}||{dob}|F",
    ]
    if rcp is not None:
        lines.append(f"RCP|I|{rcp}^RD&records&HL70126")
    return "\r".join(lines) + "\r"


def _load_twins(pipeline: MessagePipeline) -> None:
    """Two look-alike children born the same day: a query for either finds both."""
    replies = _run(
        pipeline,
        vxu(
            control_id="T1",
            mrn="MRN-B",
            family="Twinfam",
            given="Bea",
            dob="20210202",
            doses=[Dose()],
        ),
        vxu(
            control_id="T2",
            mrn="MRN-C",
            family="Twinfam",
            given="Ben",
            dob="20210202",
            doses=[Dose()],
        ),
    )
    assert [msa_code(r) for r in replies] == ["AA", "AA"]


def _qak2_and_pids(reply: bytes) -> tuple[str, int]:
    segs = segments(reply)
    qak = next(s for s in segs if s[0] == "QAK")
    return qak[2], sum(1 for s in segs if s[0] == "PID")


def test_build_pipeline_default_query_cap_lists_both_twins(
    db: Database, tmp_path: Path
) -> None:
    """With the default query.max_candidates (10), a Z34 that finds two look-alikes lists both."""
    pipeline = build_pipeline(_settings(tmp_path), db)
    _load_twins(pipeline)
    (reply,) = _run(pipeline, _qbp(name="Twinfam^Bem", dob="20210202"))
    assert _qak2_and_pids(reply) == ("OK", 2)


def test_build_pipeline_query_max_candidates_answers_tm_beyond_it(
    db: Database, tmp_path: Path
) -> None:
    """query.max_candidates = 1 reaches the QBP handler: the same two look-alikes are TM, though RCP-2 allows 5."""
    pipeline = build_pipeline(_settings(tmp_path, query={"max_candidates": 1}), db)
    _load_twins(pipeline)
    (reply,) = _run(pipeline, _qbp(name="Twinfam^Bem", dob="20210202"))
    assert _qak2_and_pids(reply) == ("TM", 0)


def test_build_pipeline_query_max_candidates_is_named_when_rcp_is_missing(
    db: Database, tmp_path: Path
) -> None:
    """Without RCP, the warning names the configured cap and the cap applies."""
    pipeline = build_pipeline(_settings(tmp_path, query={"max_candidates": 2}), db)
    _load_twins(pipeline)
    (reply,) = _run(pipeline, _qbp(name="Twinfam^Bem", dob="20210202", rcp=None))
    assert _qak2_and_pids(reply) == ("OK", 2)
    assert any("at most 2 candidates returned" in "|".join(e) for e in errs(reply))


def _patients(db: Database) -> int:
    from sqlalchemy import text

    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM patients")).scalar_one())


@pytest.mark.parametrize(("limit", "patients"), [(None, 2), (1, 3)])
def test_build_pipeline_matching_candidate_limit_reaches_the_blocking_query(
    db: Database, tmp_path: Path, limit: int | None, patients: int
) -> None:
    """matching.candidate_limit caps the records compared: at 1 only the older sibling is read, so Otto sent by another system is not found."""
    matching = {} if limit is None else {"candidate_limit": limit}
    pipeline = build_pipeline(_settings(tmp_path, matching=matching), db)
    siblings = [
        vxu(
            control_id=f"S{i}",
            mrn=f"MRN-{i}",
            family="Twinfam",
            given=given,
            dob="20210202",
            doses=[Dose()],
        )
        for i, given in enumerate(["Maria", "Otto"])
    ]
    assert [msa_code(r) for r in _run(pipeline, *siblings)] == ["AA", "AA"]
    # Otto again, from a system whose identifier is new to the registry: only
    # the scored demographic search can find him.
    (reply,) = _run(
        pipeline,
        vxu(
            control_id="S3",
            sender="CLINIC9",
            mrn="OTHER-1",
            authority="OTHERHIS",
            family="Twinfam",
            given="Otto",
            dob="20210202",
            doses=[Dose(cvx="20", date="20240301")],
        ),
    )
    assert msa_code(reply) == "AA"
    assert _patients(db) == patients


@pytest.mark.parametrize("score", [None, 0.8])
def test_build_pipeline_dedup_review_score_is_the_unsure_dose_review_score(
    db: Database, tmp_path: Path, score: float | None
) -> None:
    """dedup.review_score reaches the VXU handler: two history doses 10 days apart from two senders go to review with it."""
    dedup = {} if score is None else {"review_score": score}
    pipeline = build_pipeline(_settings(tmp_path, dedup=dedup), db)
    historical = {"source": "01", "lot": ""}
    replies = _run(
        pipeline,
        vxu(control_id="D1", doses=[Dose(date="20240105", **historical)]),
        vxu(
            control_id="D2",
            sender="CLINIC2",
            doses=[Dose(date="20240115", **historical)],
        ),
    )
    assert [msa_code(r) for r in replies] == ["AA", "AA"]
    with db.transaction() as uow:
        items = uow.review.list(kind="dose")
    assert [item.score for item in items] == [0.5 if score is None else score]


class _Reactor(MemoryReactorClock):
    """A memory reactor whose callFromThread runs the call at once, on the caller's thread."""

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        f(*args, **kw)


class _GatedDatabase:
    """A real database whose transactions wait until the test opens the gate."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.entered = threading.Event()
        self.gate = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    @contextmanager
    def transaction(self) -> Iterator[UnitOfWork]:
        self.entered.set()
        self.gate.wait(20)
        with self._db.transaction() as uow:
            yield uow


def _results(d: Deferred[Any]) -> list[Any]:
    out: list[Any] = []
    d.addBoth(out.append)
    return out


def test_start_server_wires_max_in_flight_and_max_pipelined(
    db: Database, tmp_path: Path
) -> None:
    """server.max_in_flight bounds the messages waiting for the writer; server.max_pipelined reaches the listener."""
    settings = _settings(
        tmp_path,
        server={"max_in_flight": 1, "max_pipelined": 3, "listen": "127.0.0.1:0"},
    )
    gated = _GatedDatabase(db)
    server = start_server(_Reactor(), settings, gated)  # type: ignore[arg-type]
    try:
        assert server.factory.max_pipelined == 3
        first = _results(server.sink.submit(vxu(control_id="F1").encode(), "p", "l"))
        assert gated.entered.wait(20)  # the writer holds the first message
        second = _results(server.sink.submit(vxu(control_id="F2").encode(), "p", "l"))
        third = _results(server.sink.submit(vxu(control_id="F3").encode(), "p", "l"))
        # One message waits for the writer: the next is refused at once.
        assert len(third) == 1 and isinstance(third[0], Failure)
        assert "overloaded" in str(third[0].value)
        assert second == []
        gated.gate.set()
        deadline = time.monotonic() + 20
        while not (first and second) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [msa_code(r) for r in (*first, *second)] == ["AA", "AA"]
    finally:
        gated.gate.set()
        server.sink.stop()


class _HeldSink:
    """A sink whose answers the test gives by hand; records how long stop() may wait."""

    def __init__(self) -> None:
        self.pending: list[Deferred[bytes]] = []
        self.stopped: list[float] = []

    def submit(self, raw: bytes, peer: str, listener: str) -> Deferred[bytes]:
        d: Deferred[bytes] = Deferred()
        self.pending.append(d)
        return d

    def oversize(self, head: bytes, peer: str, listener: str) -> bytes:
        return b""

    def stop(self, timeout: float = 30.0) -> None:
        self.stopped.append(timeout)


class _Port:
    def __init__(self) -> None:
        self.listening = True

    def stopListening(self) -> None:
        self.listening = False


class _Db:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def _serving(
    grace: float,
) -> tuple[RunningServer, _HeldSink, StringTransport, MemoryReactorClock]:
    """A running server (fake port and database) with one message in flight."""
    clock = MemoryReactorClock()
    sink = _HeldSink()
    factory = MllpFactory(sink, clock, name="t", idle_timeout=60)
    proto: MllpProtocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(encode_frame(b"MSH|^~\\&|A\r"))
    assert factory.in_flight == 1
    server = RunningServer(_Port(), factory, sink, _Db(), clock=clock, grace=grace)  # type: ignore[arg-type]
    return server, sink, transport, clock


def test_running_server_shutdown_waits_for_in_flight_at_most_the_grace() -> None:
    """An answer that never comes holds the shutdown for the grace, then the connection is closed unanswered and the process may exit."""
    server, sink, transport, clock = _serving(grace=5.0)
    done = _results(server.shutdown())
    clock.advance(4.9)
    assert done == []
    assert not transport.disconnecting
    clock.advance(0.2)
    assert done == [None]
    assert transport.disconnecting
    assert sink.stopped == [0.0]  # the writer is not waited for past the grace
    assert server.db.closed  # type: ignore[attr-defined]
    sink.pending[0].callback(b"MSH|^~\\&|LATE\rMSA|AA|1\r")
    assert (
        transport.value() == b""
    )  # a late answer is not written to a closed connection


def test_running_server_shutdown_within_the_grace_answers_then_exits() -> None:
    """An answer that comes within the grace is written, and the writer gets what is left of the grace."""
    server, sink, transport, clock = _serving(grace=5.0)
    done = _results(server.shutdown())
    clock.advance(1.0)
    assert done == []
    sink.pending[0].callback(b"MSH|^~\\&|S\rMSA|AA|1\r")
    assert done == [None]
    assert transport.value() == encode_frame(b"MSH|^~\\&|S\rMSA|AA|1\r")
    assert sink.stopped == [4.0]
    clock.advance(10)  # the grace timer was cancelled: nothing more happens
    assert done == [None]


def test_running_server_shutdown_with_zero_grace_does_not_wait() -> None:
    """A grace of 0 closes connections with answers pending at once."""
    server, sink, transport, clock = _serving(grace=0.0)
    done = _results(server.shutdown())
    clock.advance(0)
    assert done == [None]
    assert transport.disconnecting
    assert sink.stopped == [0.0]


def test_start_server_takes_the_grace_from_settings(
    db: Database, tmp_path: Path
) -> None:
    """server.shutdown_grace_seconds is the running server's grace."""
    settings = _settings(
        tmp_path, server={"shutdown_grace_seconds": 7.5, "listen": "127.0.0.1:0"}
    )
    server = start_server(_Reactor(), settings, db)
    try:
        assert server.grace == 7.5
    finally:
        server.sink.stop()


class _GatedReads:
    """A real database whose reader connections wait until the test opens the gate."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.gate = threading.Event()
        self.readers = 0
        self.first = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    @contextmanager
    def reading(self) -> Iterator[UnitOfWork]:
        self.readers += 1
        self.first.set()
        self.gate.wait(20)
        with self._db.reading() as uow:
            yield uow


def test_start_server_sizes_the_reader_pool_from_query_reader_threads(
    db: Database, tmp_path: Path
) -> None:
    """query.reader_threads bounds the queries read at once: with one, the second waits."""
    settings = _settings(
        tmp_path, server={"listen": "127.0.0.1:0"}, query={"reader_threads": 1}
    )
    gated = _GatedReads(db)
    server = start_server(_Reactor(), settings, gated)  # type: ignore[arg-type]
    try:
        first = _results(
            server.sink.submit(_qbp(name="A^B", dob="20230105").encode(), "p", "l")
        )
        second = _results(
            server.sink.submit(
                _qbp(name="A^B", dob="20230105", control_id="Q2").encode(), "p", "l"
            )
        )
        assert gated.first.wait(20)
        time.sleep(0.2)  # a second reader thread, if there were one, would enter
        assert gated.readers == 1
        gated.gate.set()
        deadline = time.monotonic() + 20
        while not (first and second) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [msa_code(r) for r in (*first, *second)] == ["AA", "AA"]
        assert gated.readers == 2
    finally:
        gated.gate.set()
        server.sink.stop()


def test_start_server_opens_the_http_listener_only_when_configured(
    db: Database, tmp_path: Path
) -> None:
    """http.listen empty: MLLP only; set: a second port serving the HTTP root, closed on shutdown."""
    off = start_server(
        _Reactor(), _settings(tmp_path, server={"listen": "127.0.0.1:0"}), db
    )
    try:
        assert off.http_port is None
    finally:
        off.sink.stop()
    reactor = _Reactor()
    settings = _settings(
        tmp_path, server={"listen": "127.0.0.1:0"}, http={"listen": "127.0.0.1:0"}
    )
    server = start_server(reactor, settings, db)
    try:
        assert [entry[0] for entry in reactor.tcpServers] == [0, 0]
        site = reactor.tcpServers[1][1]
        assert isinstance(site, Site)
        assert site.resource is server.http_root
        assert server.http_root is not None
        assert "healthz" in server.http_root.mounted
    finally:
        server.sink.stop()


def test_start_server_mounts_soap_and_serves_https_when_configured(
    db: Database, tmp_path: Path
) -> None:
    """soap.enabled mounts /soap; http.tls_certificate opens the HTTP port with TLS."""
    from listeners.soap import SoapResource
    from tests.support.certs import CertificateAuthority

    cert = CertificateAuthority(tmp_path).issue("localhost", server=True)
    reactor = _Reactor()
    settings = _settings(
        tmp_path,
        server={"listen": "127.0.0.1:0"},
        http={
            "listen": "127.0.0.1:0",
            "tls_certificate": str(cert.cert_path),
            "tls_private_key_file": str(cert.key_path),
        },
        soap={"enabled": True, "path": "IISService"},
    )
    server = start_server(reactor, settings, db)
    try:
        assert [entry[0] for entry in reactor.tcpServers] == [0]
        ((port, site, _ctx, _backlog, _interface),) = reactor.sslServers
        assert port == 0
        assert isinstance(site, Site)
        assert server.http_root is not None
        assert "IISService" in server.http_root.mounted
        assert isinstance(site.resource.children[b"IISService"], SoapResource)
    finally:
        server.sink.stop()


@pytest.mark.parametrize(
    ("http", "soap", "says"),
    [
        (
            {"tls_certificate": "{tmp}/missing.pem", "tls_private_key_file": "{tmp}/k"},
            {},
            "http.tls_certificate: {tmp}/missing.pem",
        ),
        (
            {},
            {"enabled": True, "wsdl": "{tmp}/missing.wsdl"},
            "soap.wsdl: {tmp}/missing.wsdl: cannot be read",
        ),
        (
            {},
            {"enabled": True, "wsdl": "{tmp}/bad.wsdl"},
            "soap.wsdl: {tmp}/bad.wsdl: not a WSDL 1.1 document",
        ),
        (
            {},
            {"enabled": True, "path": "healthz"},
            "soap.path: /healthz is already mounted",
        ),
    ],
)
def test_start_server_http_and_soap_problems_are_one_line(
    db: Database,
    tmp_path: Path,
    http: dict[str, str],
    soap: dict[str, Any],
    says: str,
) -> None:
    """A missing certificate, an unreadable or foreign WSDL, a taken path: StartupError naming key and file."""
    from engine.app import StartupError

    (tmp_path / "bad.wsdl").write_text("<definitions/>")
    fill = {
        k: v.replace("{tmp}", str(tmp_path)) if isinstance(v, str) else v
        for k, v in {**http}.items()
    }
    soap = {
        k: v.replace("{tmp}", str(tmp_path)) if isinstance(v, str) else v
        for k, v in soap.items()
    }
    reactor = _Reactor()
    settings = _settings(
        tmp_path,
        server={"listen": "127.0.0.1:0"},
        http={"listen": "127.0.0.1:0", **fill},
        soap=soap,
    )
    with pytest.raises(StartupError) as caught:
        start_server(reactor, settings, db)
    assert str(caught.value).startswith(says.replace("{tmp}", str(tmp_path)))
    assert "\n" not in str(caught.value)


def test_soap_senders_are_rate_limited_like_authenticated_mllp(
    db: Database, tmp_path: Path
) -> None:
    """With SOAP on, an open MLLP listener still gets a limiter for SOAP's organizations."""
    from engine.access import Session
    from handlers.identity import Principal
    from handlers.roles import OrgType, Role

    settings = _settings(
        tmp_path,
        server={"listen": "127.0.0.1:0"},
        http={"listen": "127.0.0.1:0"},
        soap={"enabled": True},
        identity={"messages_per_minute": 1},
    )
    server = start_server(_Reactor(), settings, db)
    org = Principal(
        1, "ORG", OrgType.PROVIDER, Role.PROVIDER, "BAY", frozenset({"CLINIC1"})
    )
    try:
        answers: list[bytes] = []
        for control in ("RL-1", "RL-2"):
            server.sink.submit(
                vxu(control_id=control, doses=[Dose()]).encode(),
                "p:1",
                "soap",
                Session(org),
            ).addCallback(answers.append)
        deadline = time.monotonic() + 20
        while len(answers) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        # The second is refused at once (before the first is committed).
        assert sorted(msa_code(a) for a in answers) == ["AA", "AR"]
        refused = next(a for a in answers if msa_code(a) == "AR")
        assert "rate limit" in errs(refused)[0][8]
    finally:
        server.sink.stop()


def test_start_server_tls_listens_only_with_tls_on_both_listeners(
    db: Database, tmp_path: Path
) -> None:
    """auth = "tls": the main and the test listener are TLS ports with the same gate; nothing listens in plaintext."""
    from tests.support.certs import CertificateAuthority

    ca = CertificateAuthority(tmp_path)
    cert = ca.issue("localhost", server=True)
    settings = _settings(
        tmp_path,
        server={
            "listen": "127.0.0.1:0",
            "test_listen": "127.0.0.1:0",
            "auth": "tls",
            "tls_certificate": str(cert.cert_path),
            "tls_private_key_file": str(cert.key_path),
            "tls_client_ca_file": str(ca.cert_path),
        },
    )
    reactor = _Reactor()
    server = start_server(reactor, settings, db)
    try:
        assert reactor.tcpServers == []
        assert len(reactor.sslServers) == 2
        assert server.test_factory is not None
        assert server.factory.gate is not None
        assert server.test_factory.gate is server.factory.gate
        assert server.factory.tls and server.test_factory.tls
        assert server.revalidation is not None and server.revalidation.running
    finally:
        server.revalidation.stop()  # type: ignore[union-attr]
        server.sink.stop()


def test_start_server_open_has_no_gate(db: Database, tmp_path: Path) -> None:
    """The open development listener reads every connection at once, as before."""
    settings = _settings(tmp_path, server={"listen": "127.0.0.1:0"})
    reactor = _Reactor()
    server = start_server(reactor, settings, db)
    try:
        assert server.factory.gate is None and not server.factory.tls
        assert server.revalidation is None
        assert len(reactor.tcpServers) == 1
    finally:
        server.sink.stop()


def test_starting_the_server_puts_what_startup_built_beyond_the_collector(
    db: Database, tmp_path: Path
) -> None:
    """A full garbage collection would walk the startup heap (~100 ms, every thread paused)."""
    import gc

    settings = _settings(tmp_path, server={"listen": "127.0.0.1:0"})
    built_at_startup = [object()]  # stands for the code tables and the pipeline
    gc.unfreeze()
    assert any(o is built_at_startup for o in gc.get_objects())
    server = start_server(_Reactor(), settings, db)  # type: ignore[arg-type]
    try:
        assert not any(o is built_at_startup for o in gc.get_objects())
    finally:
        server.sink.stop()
        gc.unfreeze()
