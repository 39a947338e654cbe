"""The CDC IIS SOAP web service (2011, ``urn:cdc:iisb:2011``): envelopes in and out.

Pure: bytes in, plain values out, and back. What the service does with a
request is the engine's business; carrying it over HTTP is the listener's.

The service is SOAP 1.2, document/literal, with two operations
(REFERENCE §13):

- ``connectivityTest(echoBack)`` → ``connectivityTestResponse/return``;
- ``submitSingleMessage(username, password, facilityID, hl7Message)`` →
  ``submitSingleMessageResponse/return`` (the HL7 ACK or RSP).

Faults carry, in the SOAP ``Detail``, one of the WSDL's fault elements
(``fault`` for UnknownFault, ``SecurityFault``, ``MessageTooLargeFault``,
``UnsupportedOperationFault``), each ``{Code, Reason, Detail}`` with the
fixed ``Reason`` of the single-file WSDL (the strict form; we accept the
loose one).

AIRA's CAIR connector posts SOAP 1.1: both envelope versions are read and
each is answered in kind. Children of the operation element are read in
the service namespace or in none (a client that ignores
``elementFormDefault``); ``xsi:nil`` is an absent value.

Parsing is hardened with ``defusedxml``: a document type declaration is
refused outright (SOAP 1.2 part 1 §5 forbids one in a SOAP message, and it
is where entity expansion and external entities live), and the caller
checks the size before anything is parsed.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from xml.etree.ElementTree import (
    Element,
    ParseError,
    SubElement,
    register_namespace,
    tostring,
)

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

IIS_NS = "urn:cdc:iisb:2011"
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
_XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
_XML_NS = "http://www.w3.org/XML/1998/namespace"

#: The WSDL 1.1 and SOAP 1.2 binding namespaces (service description).
_WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
_WSDL_SOAP12_NS = "http://schemas.xmlsoap.org/wsdl/soap12/"
_WSDL_SOAP11_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
_XSD_NS = "http://www.w3.org/2001/XMLSchema"

#: The operations a 2011 service must offer (REFERENCE §13).
OPERATIONS = ("connectivityTest", "submitSingleMessage")


class SoapVersion(enum.Enum):
    """The envelope version of a request, which its answer follows."""

    SOAP11 = SOAP11_NS
    SOAP12 = SOAP12_NS

    @property
    def content_type(self) -> str:
        """The HTTP Content-Type of a message in this version."""
        if self is SoapVersion.SOAP12:
            return "application/soap+xml; charset=utf-8"
        return "text/xml; charset=utf-8"


class FaultKind(enum.Enum):
    """The faults of the 2011 WSDL: (detail element, fixed Reason, Code)."""

    UNKNOWN = ("fault", "Unknown", 1)
    SECURITY = ("SecurityFault", "Security", 2)
    MESSAGE_TOO_LARGE = ("MessageTooLargeFault", "MessageTooLarge", 3)
    UNSUPPORTED_OPERATION = ("UnsupportedOperationFault", "UnsupportedOperation", 4)

    @property
    def element(self) -> str:
        """The detail element's local name."""
        return self.value[0]

    @property
    def reason(self) -> str:
        """The detail's ``Reason`` (fixed per fault in the single-file WSDL)."""
        return self.value[1]

    @property
    def code(self) -> int:
        """Our ``Code`` for the fault (CDC does not standardise codes)."""
        return self.value[2]


class SoapFault(Exception):
    """A request answered with a SOAP fault.

    Attributes:
        kind: which of the WSDL's faults.
        text: what went wrong, for the sender; never patient data or a
            credential.
        sender: True when the request was at fault (SOAP ``Sender`` /
            ``Client``), False when we were (``Receiver`` / ``Server``).
        version: the envelope version to answer in, when it is known.
    """

    def __init__(
        self,
        kind: FaultKind,
        text: str,
        *,
        sender: bool = True,
        version: SoapVersion = SoapVersion.SOAP12,
    ) -> None:
        super().__init__(text)
        self.kind = kind
        self.text = text
        self.sender = sender
        self.version = version


#: The one text of every refused credential, facility or account (IZ
#: Gateway's wording): which of them was wrong is not the caller's to learn.
SECURITY_TEXT = "Invalid Username, Password or FacilityID"


@dataclass(frozen=True, slots=True)
class ConnectivityTest:
    """``connectivityTest``: answered with ``echoBack`` verbatim."""

    echo_back: str | None


@dataclass(frozen=True, slots=True)
class SubmitSingleMessage:
    """``submitSingleMessage``; the password and message never show in a repr."""

    username: str | None
    password: str | None = field(repr=False)
    facility_id: str | None
    hl7_message: str | None = field(repr=False)


Operation = ConnectivityTest | SubmitSingleMessage


@dataclass(frozen=True, slots=True)
class SoapRequest:
    """A request read from an envelope."""

    version: SoapVersion
    operation: Operation

    @property
    def name(self) -> str:
        """The operation's name in the WSDL."""
        if isinstance(self.operation, ConnectivityTest):
            return "connectivityTest"
        return "submitSingleMessage"


def _local(tag: str) -> tuple[str, str]:
    """(namespace, local name) of an ElementTree tag."""
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def read_request(body: bytes) -> SoapRequest:
    """Read a SOAP 1.1 or 1.2 request envelope of the 2011 service.

    The caller has checked the size already; this refuses every document
    type declaration (so entity expansion and external entities) before
    any of it is expanded.

    Args:
        body: the HTTP request body.

    Returns:
        The envelope version and the operation with its values.

    Raises:
        SoapFault: the body is not a SOAP envelope, holds a DTD, is not one
            of the 2011 operations (UnsupportedOperationFault), or lacks a
            required element.
    """
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True)
    except DefusedXmlException:
        raise SoapFault(
            FaultKind.UNKNOWN,
            "the request holds a document type declaration or an entity, which a "
            "SOAP message may not; refused without reading it",
        ) from None
    except (ParseError, ValueError):
        raise SoapFault(
            FaultKind.UNKNOWN, "the request is not well-formed XML"
        ) from None
    ns, local = _local(root.tag)
    if local != "Envelope" or ns not in (SOAP11_NS, SOAP12_NS):
        raise SoapFault(
            FaultKind.UNKNOWN,
            "the request is not a SOAP envelope (expected Envelope in the SOAP 1.2 "
            f"namespace {SOAP12_NS} or the SOAP 1.1 one)",
        )
    version = SoapVersion(ns)
    body_el = root.find(f"{{{ns}}}Body")
    children = list(body_el) if body_el is not None else []
    if body_el is None or len(children) != 1:
        raise SoapFault(
            FaultKind.UNKNOWN,
            "the SOAP Body must hold exactly one operation element",
            version=version,
        )
    operation = children[0]
    op_ns, op_name = _local(operation.tag)
    if op_ns != IIS_NS or op_name not in OPERATIONS:
        shown = f"{{{op_ns}}}{op_name}" if op_ns else op_name
        raise SoapFault(
            FaultKind.UNSUPPORTED_OPERATION,
            f"operation {shown[:200]} is not supported; this service offers "
            f"connectivityTest and submitSingleMessage in {IIS_NS}",
            version=version,
        )
    values = _values(operation, version)
    if op_name == "connectivityTest":
        return SoapRequest(version, ConnectivityTest(values.get("echoBack")))
    if "hl7Message" not in values or values["hl7Message"] is None:
        raise SoapFault(
            FaultKind.UNKNOWN,
            "submitSingleMessage: hl7Message is required",
            version=version,
        )
    return SoapRequest(
        version,
        SubmitSingleMessage(
            username=values.get("username"),
            password=values.get("password"),
            facility_id=values.get("facilityID"),
            hl7_message=values["hl7Message"],
        ),
    )


def _values(operation: Element, version: SoapVersion) -> dict[str, str | None]:
    """The operation's child values by local name; ``xsi:nil`` is None."""
    values: dict[str, str | None] = {}
    for child in operation:
        ns, local = _local(child.tag)
        if ns not in (IIS_NS, ""):
            continue
        if len(child):
            raise SoapFault(
                FaultKind.UNKNOWN,
                f"{local[:60]} must be text, not XML elements "
                "(send the HL7 message escaped or as CDATA)",
                version=version,
            )
        if local in values:
            raise SoapFault(
                FaultKind.UNKNOWN,
                f"{local[:60]} is given more than once",
                version=version,
            )
        nil = child.get(f"{{{_XSI_NS}}}nil", "").strip() in ("true", "1")
        values[local] = None if nil else (child.text or "")
    return values


def hl7_text(message: str) -> str:
    """The HL7 message with HL7's segment terminator (CR) between segments.

    XML parsing turns a literal CR (and CRLF) into LF unless it was sent as
    ``&#13;`` (XML 1.0 §2.11), so a message arrives with LF, CR or CRLF
    terminators; the journal keeps it with CR, as MLLP would deliver it.
    """
    return re.sub(r"\r\n|\n", "\r", message)


def _envelope(version: SoapVersion) -> tuple[Element, Element]:
    ns = version.value
    envelope = Element(f"{{{ns}}}Envelope")
    body = SubElement(envelope, f"{{{ns}}}Body")
    return envelope, body


# Readable prefixes in what we write (``env:Sender`` in a fault code relies
# on ``env`` being the SOAP 1.2 prefix, ``soap:Client`` on ``soap``).
register_namespace("env", SOAP12_NS)
register_namespace("soap", SOAP11_NS)
register_namespace("iis", IIS_NS)


def _serialize(envelope: Element) -> bytes:
    body: bytes = tostring(envelope, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


def encode_response(request: SoapRequest, value: str) -> bytes:
    """The response envelope of an operation: ``<opResponse><return>``.

    Args:
        request: the request being answered (its version and operation).
        value: the ``return`` text (the echo, or the HL7 ACK/RSP). A CR is
            written as ``&#13;`` so that the receiver's parser keeps it.

    Returns:
        The UTF-8 envelope.
    """
    envelope, body = _envelope(request.version)
    response = SubElement(body, f"{{{IIS_NS}}}{request.name}Response")
    SubElement(response, f"{{{IIS_NS}}}return").text = value
    return _serialize(envelope).replace(b"\r", b"&#13;")


def encode_fault(fault: SoapFault) -> bytes:
    """The fault envelope, in the request's SOAP version.

    SOAP 1.2: ``Code/Value`` (``env:Sender`` or ``env:Receiver``),
    ``Reason/Text``, ``Detail`` with the WSDL's fault element. SOAP 1.1:
    ``faultcode`` (``Client``/``Server``), ``faultstring``, ``detail``.
    """
    version = fault.version
    ns = version.value
    envelope, body = _envelope(version)
    fault_el = SubElement(body, f"{{{ns}}}Fault")
    prefix = "env" if version is SoapVersion.SOAP12 else "soap"
    if version is SoapVersion.SOAP12:
        code = SubElement(fault_el, f"{{{ns}}}Code")
        SubElement(
            code, f"{{{ns}}}Value"
        ).text = f"{prefix}:{'Sender' if fault.sender else 'Receiver'}"
        reason = SubElement(fault_el, f"{{{ns}}}Reason")
        text = SubElement(reason, f"{{{ns}}}Text")
        text.set(f"{{{_XML_NS}}}lang", "en")
        text.text = fault.text
        detail = SubElement(fault_el, f"{{{ns}}}Detail")
    else:
        SubElement(
            fault_el, "faultcode"
        ).text = f"{prefix}:{'Client' if fault.sender else 'Server'}"
        SubElement(fault_el, "faultstring").text = fault.text
        detail = SubElement(fault_el, "detail")
    kind = fault.kind
    element = SubElement(detail, f"{{{IIS_NS}}}{kind.element}")
    SubElement(element, f"{{{IIS_NS}}}Code").text = str(kind.code)
    SubElement(element, f"{{{IIS_NS}}}Reason").text = kind.reason
    SubElement(element, f"{{{IIS_NS}}}Detail").text = fault.text
    return _serialize(envelope)


class WsdlError(Exception):
    """A service description that this service cannot serve; says why in one line."""


@dataclass(frozen=True, slots=True)
class ServiceDescription:
    """A checked WSDL of the 2011 service, ready to serve at any address."""

    text: str
    #: the span of the ``soap12:address`` ``location`` value in ``text``
    location: tuple[int, int]

    def at(self, address: str) -> bytes:
        """The WSDL with its endpoint address set to ``address`` (UTF-8).

        Only the ``location`` attribute's value changes; every other byte is
        the operator's file as given.
        """
        start, end = self.location
        escaped = (
            address.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
        )
        return (self.text[:start] + escaped + self.text[end:]).encode("utf-8")


_LOCATION = re.compile(
    r"<(?:[A-Za-z_][\w.-]*:)?address\b[^>]*?\blocation\s*=\s*(\"[^\"]*\"|'[^']*')"
)


def read_service_description(data: bytes) -> ServiceDescription:
    """Check that a WSDL describes the 2011 service and can be served as given.

    It must be self-contained (its schema inline, as in the single-file
    form: an imported schema would be fetched from us, and we serve only
    the WSDL), declare ``urn:cdc:iisb:2011`` and its two operations, and
    have one SOAP 1.2 port whose address can be rewritten.

    Raises:
        WsdlError: naming what is missing.
    """
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True)
        text = data.decode("utf-8")
    except (DefusedXmlException, ParseError, ValueError) as exc:
        raise WsdlError(f"not a readable WSDL ({type(exc).__name__})") from None
    if root.tag != f"{{{_WSDL_NS}}}definitions":
        raise WsdlError("not a WSDL 1.1 document (no wsdl:definitions)")
    if root.get("targetNamespace") != IIS_NS:
        raise WsdlError(
            f"targetNamespace is {root.get('targetNamespace')!r}, expected {IIS_NS!r}"
        )
    for imported in root.iter(f"{{{_XSD_NS}}}import"):
        if imported.get("schemaLocation"):
            raise WsdlError(
                "its schema is imported from "
                f"{imported.get('schemaLocation')!r}; use a self-contained WSDL "
                "(schema inline, like CDC's single-file cdc-iis-2011.wsdl)"
            )
    names = {
        op.get("name")
        for port_type in root.iter(f"{{{_WSDL_NS}}}portType")
        for op in port_type.iter(f"{{{_WSDL_NS}}}operation")
    }
    missing = [op for op in OPERATIONS if op not in names]
    if missing:
        raise WsdlError(f"operation(s) {', '.join(missing)} missing from portType")
    addresses = list(root.iter(f"{{{_WSDL_SOAP12_NS}}}address")) + list(
        root.iter(f"{{{_WSDL_SOAP11_NS}}}address")
    )
    soap12 = list(root.iter(f"{{{_WSDL_SOAP12_NS}}}address"))
    if len(soap12) != 1 or len(addresses) != 1:
        raise WsdlError(
            f"expected one soap12:address port, found {len(soap12)} SOAP 1.2 and "
            f"{len(addresses) - len(soap12)} SOAP 1.1"
        )
    matches = list(_LOCATION.finditer(text))
    if len(matches) != 1:
        raise WsdlError(
            "cannot tell which address location to rewrite "
            f"({len(matches)} address elements with a location in the text)"
        )
    start, end = matches[0].span(1)
    return ServiceDescription(text, (start + 1, end - 1))
