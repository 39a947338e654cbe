"""The engine's HTTP listener: one twisted.web ``Site`` that features mount onto.

Operators' endpoints (``/metrics``, ``/healthz``, ``/readyz``), the CDC SOAP
service and, later, the web console share one HTTP port. This module knows
no feature: it builds the root resource and the site, and offers two small
resources the features are written with. Like the MLLP listener it imports
no storage, config or handlers; what a resource needs is injected as a
callable.

Mounting a feature (the API other features use)
------------------------------------------------

``engine/app.py`` builds one :class:`HttpRoot` in ``start_server`` and mounts
every feature on it *before* the port is opened; the running server keeps it
as ``RunningServer.http_root``::

    root = HttpRoot()
    root.mount("healthz", StatusResource(probe))   # GET /healthz
    root.mount("soap", soap_resource)              # /soap and /soap/...
    site = build_site(root, reactor=reactor)

- ``mount(name, resource)`` is ``Resource.putChild`` with a str name and
  one rule: a name is mounted once (a second feature claiming the same path
  is a wiring bug and raises ``ValueError``). ``name`` is one path segment,
  without slashes; the mounted resource answers ``/name`` and, when it is
  not a leaf (``isLeaf = False``), resolves ``/name/...`` itself with its own
  ``getChild``/``putChild``.
- A resource renders on the reactor thread. Anything that blocks (a database
  call) runs in a thread and returns ``NOT_DONE_YET``; :class:`StatusResource`
  shows the pattern with an injected probe returning a Deferred.
- Unknown paths answer 404 with a JSON body; ``/`` lists the mounted names.
- Access logging is off: a URL can carry a query's parameters, and the
  features log their own facts (structlog, no PHI).

TLS: this module does not know whether it is served over TLS.
``engine/app.py`` opens the port with ``listenTCP``, or, when
``http.tls_certificate`` is set, with engine/tls.py's ``listen_tls``
(``listenSSL``); resources ask ``request.isSecure()``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

import structlog
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

logger = structlog.get_logger()

#: What a probe answers: whether the check passed, and the JSON body.
ProbeResult = tuple[bool, dict[str, Any]]


def json_body(request: Request, status: int, body: dict[str, Any]) -> bytes:
    """Set the status and JSON content type on ``request``; return the encoded body."""
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body, sort_keys=True).encode("utf-8") + b"\n"


class _NotFound(Resource):
    """404 with a JSON body naming the path that is not mounted."""

    isLeaf = True

    def render(self, request: Request) -> bytes:
        path = request.path.decode("ascii", "replace")[:200]
        return json_body(request, 404, {"error": "not found", "path": path})


class HttpRoot(Resource):
    """The root resource every HTTP feature is mounted on (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._mounted: list[str] = []

    def mount(self, name: str, resource: Resource) -> None:
        """Serve ``resource`` at ``/name`` (and ``/name/...`` if it is not a leaf).

        Raises:
            ValueError: ``name`` is empty, has a slash, or is already mounted.
        """
        if not name or "/" in name:
            raise ValueError(f"mount name must be one path segment, got {name!r}")
        if name in self._mounted:
            raise ValueError(f"/{name} is already mounted")
        self._mounted.append(name)
        self.putChild(name.encode("ascii"), cast(IResource, resource))

    @property
    def mounted(self) -> tuple[str, ...]:
        """The mounted names, in mounting order."""
        return tuple(self._mounted)

    def getChild(self, path: bytes, request: Request) -> Resource:
        """Anything not mounted (``putChild`` children are found before this)."""
        if path == b"":
            return self
        return _NotFound()

    def render_GET(self, request: Request) -> bytes:
        """``/``: the mounted paths, so an operator can see what this port serves."""
        return json_body(
            request, 200, {"paths": ["/" + name for name in self._mounted]}
        )


class StatusResource(Resource):
    """A JSON health endpoint: 200 when the probe passes, 503 when it does not.

    Args:
        probe: called once per GET; returns a Deferred of ``(ok, body)``.
            It may run blocking checks in a thread. A probe that fails
            outright answers 503 with ``{"error": <type>}``.
    """

    isLeaf = True

    def __init__(self, probe: Callable[[], Deferred[ProbeResult]]) -> None:
        super().__init__()
        self._probe = probe

    def render_GET(self, request: Request) -> Any:
        """Answer when the probe fires; NOT_DONE_YET until then."""
        finished: list[bool] = []

        def gone(_: object) -> None:
            finished.append(True)

        request.notifyFinish().addBoth(gone)

        def answer(result: ProbeResult | Failure) -> None:
            if finished:  # the client went away
                return
            if isinstance(result, Failure):
                logger.warning(
                    "http_probe_failed",
                    path=request.path.decode("ascii", "replace")[:200],
                    error_type=result.type.__name__ if result.type else "",
                )
                body = json_body(
                    request,
                    503,
                    {"ok": False, "error": result.type.__name__ if result.type else ""},
                )
            else:
                ok, data = result
                body = json_body(request, 200 if ok else 503, {"ok": ok, **data})
            request.setHeader(b"content-length", str(len(body)).encode("ascii"))
            request.write(body)
            request.finish()

        try:
            d = self._probe()
        except Exception as exc:  # the probe itself is broken: still answer
            d = fail(exc)
        d.addBoth(answer)
        return NOT_DONE_YET


class BytesResource(Resource):
    """A GET that answers what an injected callable renders (e.g. ``/metrics``).

    Args:
        render: returns ``(content_type, body)``; it runs on the reactor
            thread and must not block.
    """

    isLeaf = True

    def __init__(self, render: Callable[[], tuple[str, bytes]]) -> None:
        super().__init__()
        self._render = render

    def render_GET(self, request: Request) -> bytes:
        """The rendered body with its content type."""
        content_type, body = self._render()
        request.setHeader(b"content-type", content_type.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        return body


class _CappedRequest(Request):
    """A request whose body may not exceed the site's ``max_request_bytes``.

    twisted.web reads a whole body (into a temporary file beyond 100 KB)
    before any resource sees it. A body declared or found over the cap is
    answered 413 at once and the connection closed: nothing more of it is
    read or kept. Resources keep their own, smaller limits (the SOAP
    service answers a MessageTooLargeFault below this cap).
    """

    #: set on the per-site subclass by :func:`build_site`
    max_body: int | None = None
    _seen = 0
    _refused = False

    def gotLength(self, length: int | None) -> None:
        """Refuse a declared Content-Length over the cap before reading the body."""
        cap = self.max_body
        if cap is not None and length is not None and length > cap:
            self._refuse(length)
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        """Keep body bytes up to the cap; beyond it, refuse (chunked bodies)."""
        if self._refused:
            return
        self._seen += len(data)
        if self.max_body is not None and self._seen > self.max_body:
            self._refuse(self._seen)
            return
        super().handleContentChunk(data)

    def process(self) -> None:
        """Render, unless the body was refused (bytes already read in that go nowhere)."""
        if self._refused:
            return
        super().process()

    def _refuse(self, size: int) -> None:
        self._refused = True
        peer = self.getClientAddress()
        logger.warning(
            "http_body_too_large",
            peer=f"{getattr(peer, 'host', '')}:{getattr(peer, 'port', '')}",
            size=size,
            limit=self.max_body,
        )
        body = f"request body over {self.max_body:,} bytes; refused\n".encode()
        transport: Any = self.channel.transport if self.channel is not None else None
        if transport is None:  # pragma: no cover - a request always has a channel here
            return
        transport.write(
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        transport.loseConnection()


class _QuietSite(Site):
    """A Site without access logs (URLs may carry a query's parameters)."""

    def log(self, request: Any) -> None:
        """No access log line."""


def build_site(
    root: HttpRoot,
    *,
    reactor: IReactorTime,
    timeout: float = 60.0,
    max_request_bytes: int | None = None,
) -> Site:
    """The Site serving ``root``; idle connections close after ``timeout`` seconds.

    ``reactor`` times the idle timeouts (the engine's; a test's clock).
    ``max_request_bytes`` caps request bodies (413 and the connection
    closed beyond it, before the body is kept); None: no cap.
    """
    site = _QuietSite(root, timeout=timeout, reactor=reactor)
    site.displayTracebacks = False  # a traceback can quote a message
    capped: type[Request] = type(
        "CappedRequest", (_CappedRequest,), {"max_body": max_request_bytes}
    )
    site.requestFactory = capped
    return site
