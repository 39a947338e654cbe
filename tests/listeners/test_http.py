"""The HTTP listener: a root that features mount onto, JSON status and byte resources.

Driven socketless: the Site's protocol on a ``StringTransport``, fed raw
HTTP/1.1 requests as a client would send them.
"""

from __future__ import annotations

import json

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Request

from listeners.http import (
    BytesResource,
    HttpRoot,
    ProbeResult,
    StatusResource,
    build_site,
)


def _request(root: HttpRoot, path: str, method: str = "GET") -> StringTransport:
    """Send one request to a Site over ``root``; the transport holds the reply."""
    site = build_site(root, reactor=MemoryReactorClock())
    proto = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    assert proto is not None
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(
        f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
    )
    return transport


def _status_and_body(transport: StringTransport) -> tuple[int, dict[str, object]]:
    head, _, body = transport.value().partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    headers = head.lower()
    assert b"content-type: application/json" in headers
    return status, json.loads(body)


class _Echo(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return b"echo " + request.path


def test_root_lists_what_is_mounted_and_serves_it() -> None:
    """A mounted leaf answers its path and below; / lists the mounted paths."""
    root = HttpRoot()
    root.mount("echo", _Echo())
    reply = _request(root, "/echo/deeper").value()
    assert reply.startswith(b"HTTP/1.1 200")
    assert reply.endswith(b"echo /echo/deeper")
    assert _status_and_body(_request(root, "/")) == (200, {"paths": ["/echo"]})


def test_unknown_path_is_404_json_naming_the_path() -> None:
    """A path nothing is mounted on answers 404 with a JSON body, not Twisted's HTML."""
    root = HttpRoot()
    root.mount("echo", _Echo())
    assert _status_and_body(_request(root, "/soap")) == (
        404,
        {"error": "not found", "path": "/soap"},
    )


def test_mounting_a_name_twice_or_a_path_with_a_slash_is_refused() -> None:
    """Two features claiming one path is a wiring bug, caught at startup."""
    root = HttpRoot()
    root.mount("metrics", _Echo())
    with pytest.raises(ValueError, match="already mounted"):
        root.mount("metrics", _Echo())
    with pytest.raises(ValueError, match="one path segment"):
        root.mount("a/b", _Echo())
    with pytest.raises(ValueError, match="one path segment"):
        root.mount("", _Echo())
    assert root.mounted == ("metrics",)


def test_status_resource_is_200_when_the_probe_passes_and_503_when_not() -> None:
    """The probe's verdict is the status code; its body is the JSON answer."""
    verdict: list[ProbeResult] = [(True, {"database": "ok"})]
    root = HttpRoot()
    root.mount("readyz", StatusResource(lambda: succeed(verdict[0])))
    assert _status_and_body(_request(root, "/readyz")) == (
        200,
        {"ok": True, "database": "ok"},
    )
    verdict[0] = (False, {"database": "unreachable"})
    assert _status_and_body(_request(root, "/readyz")) == (
        503,
        {"ok": False, "database": "unreachable"},
    )


def test_status_resource_waits_for_a_slow_probe() -> None:
    """A probe that runs in a thread answers when it fires, not before."""
    pending: Deferred[ProbeResult] = Deferred()
    root = HttpRoot()
    root.mount("readyz", StatusResource(lambda: pending))
    transport = _request(root, "/readyz")
    assert transport.value() == b""
    pending.callback((True, {}))
    assert _status_and_body(transport) == (200, {"ok": True})


def test_status_resource_answers_503_when_the_probe_fails_or_raises() -> None:
    """A broken probe is not ready: 503 naming the error type, never its message."""

    def raises() -> Deferred[ProbeResult]:
        raise RuntimeError("password=secret")

    root = HttpRoot()
    root.mount("failing", StatusResource(lambda: fail(OSError("Jane Doe"))))
    root.mount("raising", StatusResource(raises))
    status, body = _status_and_body(_request(root, "/failing"))
    assert (status, body) == (503, {"ok": False, "error": "OSError"})
    raw = _request(root, "/raising").value()
    assert raw.startswith(b"HTTP/1.1 503")
    assert b"secret" not in raw


def test_status_resource_survives_a_client_that_left_before_the_answer() -> None:
    """The probe firing after the connection closed writes nothing and raises nothing."""
    pending: Deferred[ProbeResult] = Deferred()
    root = HttpRoot()
    root.mount("readyz", StatusResource(lambda: pending))
    site = build_site(root, reactor=MemoryReactorClock())
    proto = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    assert proto is not None
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
    proto.connectionLost(Failure(ConnectionDone()))
    pending.callback((True, {}))
    assert transport.value() == b""


def test_bytes_resource_serves_the_rendered_body_with_its_type() -> None:
    """/metrics-style resources answer exactly what the injected renderer gives."""
    root = HttpRoot()
    root.mount(
        "metrics", BytesResource(lambda: ("text/plain; version=0.0.4", b"up 1\n"))
    )
    reply = _request(root, "/metrics").value()
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"content-type: text/plain; version=0.0.4" in head.lower()
    assert body == b"up 1\n"


def test_an_idle_connection_is_closed_after_the_timeout_on_the_given_clock() -> None:
    """A client that connects and says nothing is dropped after the timeout, timed by the injected reactor."""
    clock = MemoryReactorClock()
    site = build_site(HttpRoot(), reactor=clock, timeout=30)
    proto = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    assert proto is not None
    transport = StringTransport()
    proto.makeConnection(transport)
    clock.advance(29)
    assert not transport.disconnecting
    clock.advance(2)
    assert transport.disconnecting


def _post_raw(root: HttpRoot, head: bytes, body: bytes, cap: int) -> StringTransport:
    site = build_site(root, reactor=MemoryReactorClock(), max_request_bytes=cap)
    proto = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    assert proto is not None
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(head + body)
    return transport


class _Sink(Resource):
    """Records the bodies it was handed."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []

    def render_POST(self, request: Request) -> bytes:
        assert request.content is not None
        self.bodies.append(request.content.read())
        return b"ok"


def test_body_over_the_cap_by_content_length_is_413_and_closed_unread() -> None:
    """A declared Content-Length over the cap: 413 at once, the connection closed, nothing rendered."""
    sink = _Sink()
    root = HttpRoot()
    root.mount("in", sink)
    transport = _post_raw(
        root,
        b"POST /in HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n",
        b"x" * 100,
        cap=1000,
    )
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert b"1,000 bytes" in transport.value()
    assert transport.disconnecting
    assert sink.bodies == []


def test_chunked_body_over_the_cap_is_refused_when_it_gets_there() -> None:
    """A chunked body with no length is counted as it arrives and refused past the cap."""
    sink = _Sink()
    root = HttpRoot()
    root.mount("in", sink)
    chunk = b"400\r\n" + b"y" * 0x400 + b"\r\n"
    transport = _post_raw(
        root,
        b"POST /in HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
        chunk * 3 + b"0\r\n\r\n",
        cap=2048,
    )
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert transport.disconnecting
    assert sink.bodies == []


def test_body_within_the_cap_reaches_the_resource() -> None:
    """Under the cap, nothing changes."""
    sink = _Sink()
    root = HttpRoot()
    root.mount("in", sink)
    transport = _post_raw(
        root,
        b"POST /in HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\nConnection: close\r\n\r\n",
        b"0123456789",
        cap=1000,
    )
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    assert sink.bodies == [b"0123456789"]
