"""The CDC IIS SOAP web service over HTTP: a twisted.web resource, framing only.

``POST`` carries a SOAP 1.2 (or 1.1) envelope (:mod:`parsers.soap` reads and
writes them); ``GET ?wsdl`` serves the service description with its
endpoint address set to the address the client called. What a
``submitSingleMessage`` means (who is asking, what the HL7 says) is the
injected :class:`SoapService`'s business; ``connectivityTest`` is answered
here, verbatim, as the protocol asks.

- Size: a body over ``max_request_bytes`` is answered with
  MessageTooLargeFault before any of it is parsed (its declared
  Content-Length is checked first, then what arrived).
- Faults are HTTP 500, answers HTTP 200 (IZ Gateway's convention), both in
  the envelope version of the request.
- A service failure that is not a :class:`~parsers.soap.SoapFault` is an
  UnknownFault that says nothing of its cause; the log says its type.
- A client that hangs up before its answer is ready gets nothing written;
  the message was still processed (its resend gets the stored answer).

Logs carry peer, listener, operation and outcome; never a credential or
message content.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import structlog
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from parsers.soap import (
    ConnectivityTest,
    FaultKind,
    SoapFault,
    SoapRequest,
    SoapVersion,
    SubmitSingleMessage,
    encode_fault,
    encode_response,
    read_request,
)

logger = structlog.get_logger()


class SoapService(Protocol):
    """What a ``submitSingleMessage`` goes to (the engine's gateway)."""

    def submit_single_message(
        self, request: SubmitSingleMessage, peer: str, listener: str
    ) -> Deferred[str]:
        """Fire with the HL7 answer's text, or fail with a :class:`SoapFault`."""


#: Builds the WSDL for an endpoint address; None when none is configured.
WsdlSource = Callable[[str], bytes]


def _peer(request: Request) -> str:
    address = request.getClientAddress()
    host = getattr(address, "host", "")
    port = getattr(address, "port", "")
    return f"{host}:{port}" if host else str(address)


def _typed(request: Request, version: SoapVersion, body: bytes) -> bytes:
    """Content type and length (not chunked: some SOAP stacks refuse chunked replies)."""
    request.setHeader(b"content-type", version.content_type.encode("ascii"))
    request.setHeader(b"content-length", str(len(body)).encode("ascii"))
    return body


class SoapResource(Resource):
    """The SOAP endpoint: one leaf resource, mounted where the operator says.

    Args:
        service: where ``submitSingleMessage`` goes.
        wsdl: the service description for a given endpoint address, or None
            when the operator configured none (``?wsdl`` is then 404).
        max_request_bytes: the largest request body accepted.
        name: the listener's name, for logs.
        on_fault: told the WSDL element of every fault answered (metrics).
    """

    isLeaf = True

    def __init__(
        self,
        service: SoapService,
        *,
        wsdl: WsdlSource | None,
        max_request_bytes: int,
        name: str = "soap",
        on_fault: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        self._on_fault = on_fault
        self._service = service
        self._wsdl = wsdl
        self._max = max_request_bytes
        self._name = name

    # -- GET: the service description ----------------------------------------

    def render_GET(self, request: Request) -> bytes:
        """``?wsdl`` (any case, any value) serves the WSDL; anything else says where it is."""
        # ``?wsdl`` has no "=", which twisted.web's ``args`` leaves out: read the URI.
        query = (request.uri or b"").partition(b"?")[2]
        asks_wsdl = any(
            item.partition(b"=")[0].lower() == b"wsdl" for item in query.split(b"&")
        )
        if not asks_wsdl:
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return (
                b"CDC IIS SOAP web service (urn:cdc:iisb:2011): POST SOAP 1.2 "
                b"envelopes here; the WSDL is at this address with ?wsdl\n"
            )
        if self._wsdl is None:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"no WSDL is configured for this service (soap.wsdl)\n"
        request.setHeader(b"content-type", b"text/xml; charset=utf-8")
        document: bytes = self._wsdl(self._endpoint(request))
        return document

    def _endpoint(self, request: Request) -> str:
        """This resource's URL as the client called it (scheme, host, port, path)."""
        scheme = "https" if request.isSecure() else "http"
        host_header = request.getHeader(b"host")
        if host_header:
            authority = host_header.decode("latin-1").strip()
        else:
            local = request.getHost()
            host = str(getattr(local, "host", ""))
            if ":" in host:
                host = f"[{host}]"
            authority = f"{host}:{getattr(local, 'port', '')}"
        path = (request.path or b"/").decode("latin-1")
        return f"{scheme}://{authority}{path}"

    # -- POST: the operations -----------------------------------------------

    def render_POST(self, request: Request) -> bytes | int:
        """Read the envelope (size first), answer or hand it to the service."""
        peer = _peer(request)
        try:
            soap = read_request(self._body(request))
        except SoapFault as fault:
            self._log_fault(fault, peer, "")
            return self._fault_bytes(request, fault)
        operation = soap.operation
        if isinstance(operation, ConnectivityTest):
            logger.info(
                "soap_answered",
                peer=peer,
                listener=self._name,
                operation=soap.name,
            )
            return self._answer_bytes(request, soap, operation.echo_back or "")
        return self._submit(request, soap, operation, peer)

    def _body(self, request: Request) -> bytes:
        """The request body, refused before parsing when it is over the limit."""
        declared = request.getHeader(b"content-length")
        content = request.content
        if content is None:  # pragma: no cover - twisted always sets it for POST
            return b""
        content.seek(0, 2)
        size = content.tell()
        if not (declared or b"").isdigit():
            declared = None
        if size > self._max or (declared is not None and int(declared) > self._max):
            # Not parsed, so the version is the Content-Type's (SOAP 1.1 is text/xml).
            kind = (request.getHeader(b"content-type") or b"").lower()
            raise SoapFault(
                FaultKind.MESSAGE_TOO_LARGE,
                f"the request is {max(size, int(declared or 0)):,} bytes; the limit "
                f"is {self._max:,} bytes",
                version=SoapVersion.SOAP11
                if kind.startswith(b"text/xml")
                else SoapVersion.SOAP12,
            )
        content.seek(0)
        body: bytes = content.read()
        return body

    def _submit(
        self,
        request: Request,
        soap: SoapRequest,
        operation: SubmitSingleMessage,
        peer: str,
    ) -> int:
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        d = maybeDeferred(
            self._service.submit_single_message, operation, peer, self._name
        )

        def answered(text: str) -> None:
            if gone:
                logger.warning(
                    "soap_client_gone",
                    peer=peer,
                    listener=self._name,
                    operation=soap.name,
                )
                return
            logger.info(
                "soap_answered", peer=peer, listener=self._name, operation=soap.name
            )
            request.write(self._answer_bytes(request, soap, text))
            request.finish()

        def failed(failure: Failure) -> None:
            if isinstance(failure.value, SoapFault):
                fault = failure.value
                fault.version = soap.version
            else:
                logger.error(
                    "soap_service_failed",
                    peer=peer,
                    listener=self._name,
                    operation=soap.name,
                    error_type=failure.type.__name__ if failure.type else "",
                )
                fault = SoapFault(
                    FaultKind.UNKNOWN,
                    "internal error; the message may not have been processed, please "
                    "resend it",
                    sender=False,
                    version=soap.version,
                )
            self._log_fault(fault, peer, soap.name)
            if gone:
                return
            request.write(self._fault_bytes(request, fault))
            request.finish()

        d.addCallbacks(answered, failed)
        return NOT_DONE_YET

    # -- writing -------------------------------------------------------------

    @staticmethod
    def _answer_bytes(request: Request, soap: SoapRequest, value: str) -> bytes:
        request.setResponseCode(200)
        return _typed(request, soap.version, encode_response(soap, value))

    @staticmethod
    def _fault_bytes(request: Request, fault: SoapFault) -> bytes:
        request.setResponseCode(500)
        return _typed(request, fault.version, encode_fault(fault))

    def _log_fault(self, fault: SoapFault, peer: str, operation: str) -> None:
        if self._on_fault is not None:
            self._on_fault(fault.kind.element)
        logger.warning(
            "soap_fault",
            peer=peer,
            listener=self._name,
            operation=operation,
            fault=fault.kind.element,
            reason=fault.text[:200] if fault.kind is not FaultKind.SECURITY else "",
        )


__all__ = ["SoapResource", "SoapService", "SoapVersion", "WsdlSource"]
