"""The SOAP resource: framing over HTTP, driven socketless through a real Site.

The Site's protocol runs on a ``StringTransport`` and is fed raw HTTP/1.1
requests as an EHR would send them; the service behind the resource is a
stand-in that records what it was handed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.etree.ElementTree import fromstring

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from zope.interface import implementer

from listeners.http import HttpRoot, build_site
from listeners.soap import SoapResource
from parsers.soap import (
    IIS_NS,
    SECURITY_TEXT,
    SOAP11_NS,
    SOAP12_NS,
    FaultKind,
    SoapFault,
    SubmitSingleMessage,
)

ACK = "MSH|^~\\&|CAIRN|CAIRN\rMSA|AA|CTRL1\r"


@dataclass
class _Service:
    """Answers every submit with ``result`` and records the requests."""

    result: Deferred[str] | None = None
    seen: list[tuple[SubmitSingleMessage, str, str]] = field(default_factory=list)

    def submit_single_message(
        self, request: SubmitSingleMessage, peer: str, listener: str
    ) -> Deferred[str]:
        self.seen.append((request, peer, listener))
        return self.result if self.result is not None else succeed(ACK)


def _resource(
    service: _Service,
    *,
    limit: int = 4096,
    wsdl: bool = True,
    faults: list[str] | None = None,
) -> HttpRoot:
    root = HttpRoot()
    root.mount(
        "soap",
        SoapResource(
            service,
            wsdl=(lambda address: f"<wsdl at='{address}'/>".encode()) if wsdl else None,
            max_request_bytes=limit,
            on_fault=faults.append if faults is not None else None,
        ),
    )
    return root


@implementer(ISSLTransport)
class _TlsTransport(StringTransport):
    """What a TLS transport declares (twisted.web's ``isSecure`` reads it)."""

    def setTcpNoDelay(self, enabled: bool) -> None:
        """ISSLTransport is an ITCPTransport; nothing to do in memory."""


def _connect(root: HttpRoot, *, secure: bool = False) -> tuple[object, StringTransport]:
    site = build_site(root, reactor=MemoryReactorClock())
    proto = site.buildProtocol(IPv4Address("TCP", "203.0.113.9", 40000))
    assert proto is not None
    transport = (_TlsTransport if secure else StringTransport)(
        hostAddress=IPv4Address("TCP", "10.0.0.5", 8443),
        peerAddress=IPv4Address("TCP", "203.0.113.9", 40000),
    )
    proto.makeConnection(transport)
    return proto, transport


def _post(
    root: HttpRoot,
    body: bytes,
    *,
    content_type: str = "application/soap+xml; charset=utf-8",
    length: int | None = None,
) -> tuple[object, StringTransport]:
    proto, transport = _connect(root)
    head = (
        f"POST /soap HTTP/1.1\r\nHost: registry.example\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\nConnection: close\r\n\r\n"
    ).encode()
    proto.dataReceived(head + body)  # type: ignore[attr-defined]
    return proto, transport


def _reply(transport: StringTransport) -> tuple[int, bytes, bytes]:
    head, _, body = transport.value().partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head.lower(), body


def _envelope(body: str, ns: str = SOAP12_NS) -> bytes:
    return (
        f'<s:Envelope xmlns:s="{ns}" xmlns:c="{IIS_NS}"><s:Body>{body}</s:Body></s:Envelope>'
    ).encode()


SUBMIT = _envelope(
    "<c:submitSingleMessage><c:username>u</c:username><c:password>p</c:password>"
    "<c:facilityID>CLINIC1</c:facilityID><c:hl7Message>MSH|^~\\&amp;|X</c:hl7Message>"
    "</c:submitSingleMessage>"
)


def _fault(body: bytes, ns: str = SOAP12_NS) -> tuple[str, str]:
    """(detail element local name, detail text) of a fault envelope."""
    root = fromstring(body)
    fault = root.find(f"{{{ns}}}Body/{{{ns}}}Fault")
    assert fault is not None
    detail = fault.find(f"{{{ns}}}Detail" if ns == SOAP12_NS else "detail")
    assert detail is not None
    (element,) = list(detail)
    text = element.find(f"{{{IIS_NS}}}Detail")
    assert text is not None
    return element.tag.split("}")[1], text.text or ""


def _return(body: bytes, operation: str, ns: str = SOAP12_NS) -> str:
    value = fromstring(body).find(
        f"{{{ns}}}Body/{{{IIS_NS}}}{operation}Response/{{{IIS_NS}}}return"
    )
    assert value is not None
    return value.text or ""


def test_submit_goes_to_the_service_and_the_ack_comes_back() -> None:
    """The four values, the peer and the listener name reach the service; 200 with its answer."""
    service = _Service()
    _, transport = _post(_resource(service), SUBMIT)
    status, head, body = _reply(transport)
    assert status == 200
    assert b"content-type: application/soap+xml; charset=utf-8" in head
    assert _return(body, "submitSingleMessage") == ACK
    ((request, peer, listener),) = service.seen
    assert (request.username, request.password, request.facility_id) == (
        "u",
        "p",
        "CLINIC1",
    )
    assert request.hl7_message == "MSH|^~\\&|X"
    assert (peer, listener) == ("203.0.113.9:40000", "soap")


def test_soap11_request_is_answered_in_soap11() -> None:
    """A SOAP 1.1 envelope (text/xml) gets a SOAP 1.1 answer."""
    _, transport = _post(
        _resource(_Service()),
        SUBMIT.replace(SOAP12_NS.encode(), SOAP11_NS.encode()),
        content_type="text/xml; charset=utf-8",
    )
    status, head, body = _reply(transport)
    assert status == 200
    assert b"content-type: text/xml; charset=utf-8" in head
    assert _return(body, "submitSingleMessage", SOAP11_NS) == ACK


def test_connectivity_test_echoes_without_the_service() -> None:
    """connectivityTest echoes echoBack verbatim and never reaches the service."""
    service = _Service()
    _, transport = _post(
        _resource(service),
        _envelope(
            "<c:connectivityTest><c:echoBack> hi &amp; ✓ </c:echoBack></c:connectivityTest>"
        ),
    )
    status, _, body = _reply(transport)
    assert status == 200
    assert _return(body, "connectivityTest") == " hi & ✓ "
    assert service.seen == []


def test_service_fault_is_http_500_with_its_detail() -> None:
    """A SecurityFault from the service is a 500 carrying the WSDL's SecurityFault element, and is counted."""
    service = _Service(result=fail(SoapFault(FaultKind.SECURITY, SECURITY_TEXT)))
    faults: list[str] = []
    _, transport = _post(_resource(service, faults=faults), SUBMIT)
    status, _, body = _reply(transport)
    assert status == 500
    assert _fault(body) == ("SecurityFault", SECURITY_TEXT)
    assert faults == ["SecurityFault"]


def test_service_crash_is_an_unknown_fault_that_says_nothing_of_it() -> None:
    """Any other failure is a Receiver UnknownFault asking for a resend; its text stays inside."""
    service = _Service(result=fail(RuntimeError("Zzcanaryfam leaked")))
    _, transport = _post(_resource(service), SUBMIT)
    status, _, body = _reply(transport)
    assert status == 500
    assert b"env:Receiver" in body
    element, text = _fault(body)
    assert element == "fault"
    assert "resend" in text
    assert b"Zzcanaryfam" not in body


def test_oversize_body_is_refused_before_parsing() -> None:
    """A body over the limit is MessageTooLargeFault, even when it is not XML at all."""
    service = _Service()
    _, transport = _post(_resource(service, limit=2048), b"<" * 3000)
    status, _, body = _reply(transport)
    assert status == 500
    element, text = _fault(body)
    assert element == "MessageTooLargeFault"
    assert "3,000 bytes" in text
    assert "2,048" in text
    assert service.seen == []


def test_oversize_soap11_body_is_answered_in_soap11() -> None:
    """Unparsed, the version comes from the Content-Type: text/xml is SOAP 1.1."""
    _, transport = _post(
        _resource(_Service(), limit=1024), b"x" * 2000, content_type="text/xml"
    )
    status, _, body = _reply(transport)
    assert status == 500
    assert _fault(body, SOAP11_NS)[0] == "MessageTooLargeFault"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"hello",
        b"<s:Envelope xmlns:s='urn:not-soap'/>",
        b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
    ],
)
def test_malformed_or_hostile_bodies_are_sender_faults(body: bytes) -> None:
    """Junk, a foreign envelope and an external entity: a Sender fault; the service never sees them."""
    service = _Service()
    _, transport = _post(_resource(service), body)
    status, _, reply = _reply(transport)
    assert status == 500
    assert b"env:Sender" in reply
    assert _fault(reply)[0] == "fault"
    assert b"root:" not in reply
    assert service.seen == []


def test_wsdl_is_served_at_the_address_the_client_called() -> None:
    """?wsdl (any case) gives the WSDL with this endpoint's URL, scheme from the transport."""
    for secure, scheme in ((False, "http"), (True, "https")):
        for query in ("wsdl", "WSDL", "wsdl=true"):
            proto, transport = _connect(_resource(_Service()), secure=secure)
            proto.dataReceived(  # type: ignore[attr-defined]
                f"GET /soap?{query} HTTP/1.1\r\nHost: registry.example:8443\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            status, head, body = _reply(transport)
            assert status == 200
            assert b"content-type: text/xml" in head
            assert (
                body == f"<wsdl at='{scheme}://registry.example:8443/soap'/>".encode()
            )


def test_wsdl_without_host_header_uses_the_local_address() -> None:
    """An HTTP/1.0 client sends no Host: the address it connected to is used."""
    proto, transport = _connect(_resource(_Service()))
    proto.dataReceived(b"GET /soap?wsdl HTTP/1.0\r\n\r\n")  # type: ignore[attr-defined]
    assert _reply(transport)[2] == b"<wsdl at='http://10.0.0.5:8443/soap'/>"


def test_wsdl_not_configured_is_404_and_plain_get_says_where_it_is() -> None:
    """Without a WSDL, ?wsdl is 404 naming the key; a bare GET points at ?wsdl."""
    proto, transport = _connect(_resource(_Service(), wsdl=False))
    proto.dataReceived(
        b"GET /soap?wsdl HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    )  # type: ignore[attr-defined]
    status, _, body = _reply(transport)
    assert (status, b"soap.wsdl" in body) == (404, True)
    proto, transport = _connect(_resource(_Service()))
    proto.dataReceived(b"GET /soap HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")  # type: ignore[attr-defined]
    status, _, body = _reply(transport)
    assert status == 200
    assert b"?wsdl" in body


def test_client_gone_before_the_answer_gets_nothing_written() -> None:
    """An EHR that hangs up while its message is processed: nothing is written, nothing breaks."""
    pending: Deferred[str] = Deferred()
    proto, transport = _post(_resource(_Service(result=pending)), SUBMIT)
    assert transport.value() == b""
    proto.connectionLost(Failure(ConnectionDone()))  # type: ignore[attr-defined]
    pending.callback(ACK)
    assert transport.value() == b""
