"""The CDC SOAP envelope codec: requests in (1.2 and 1.1), answers and faults out, the WSDL."""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import fromstring

import pytest

from parsers.soap import (
    IIS_NS,
    SOAP11_NS,
    SOAP12_NS,
    ConnectivityTest,
    FaultKind,
    SoapFault,
    SoapVersion,
    SubmitSingleMessage,
    WsdlError,
    encode_fault,
    encode_response,
    hl7_text,
    read_request,
    read_service_description,
)
from tests.conftest import SHARED, shared_path


@pytest.fixture(name="soap_dir")
def _soap_dir() -> Path:
    """CDC's WSDL and XSD files (../shared/soap; CAIRN_SOAP_DIR overrides)."""
    return shared_path("CAIRN_SOAP_DIR", SHARED / "soap", "CDC SOAP WSDL/XSD files")


def _envelope(body: str, ns: str = SOAP12_NS, prefix: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>{prefix}'
        f'<s:Envelope xmlns:s="{ns}" xmlns:c="{IIS_NS}"><s:Header/>'
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


SUBMIT = (
    "<c:submitSingleMessage><c:username>clinic</c:username><c:password>pw&amp;1</c:password>"
    "<c:facilityID>CLINIC1</c:facilityID><c:hl7Message>MSH|^~\\&amp;|A&#13;PID|1</c:hl7Message>"
    "</c:submitSingleMessage>"
)


def _fault_detail(envelope: bytes, ns: str) -> tuple[str, dict[str, str]]:
    root = fromstring(envelope)
    fault = root.find(f"{{{ns}}}Body/{{{ns}}}Fault")
    assert fault is not None
    detail = fault.find(f"{{{ns}}}Detail") if ns == SOAP12_NS else fault.find("detail")
    assert detail is not None
    (element,) = list(detail)
    values = {child.tag.split("}")[1]: child.text or "" for child in element}
    return element.tag, values


def test_read_request_soap12_submit_keeps_every_value() -> None:
    """A SOAP 1.2 submitSingleMessage gives its four values, the password unescaped."""
    request = read_request(_envelope(SUBMIT))
    assert request.version is SoapVersion.SOAP12
    assert request.name == "submitSingleMessage"
    assert request.operation == SubmitSingleMessage(
        "clinic", "pw&1", "CLINIC1", "MSH|^~\\&|A\rPID|1"
    )


def test_submit_repr_hides_password_and_message() -> None:
    """A logged or printed request never shows the password or the HL7 content."""
    text = repr(read_request(_envelope(SUBMIT)))
    assert "pw&1" not in text
    assert "PID" not in text


def test_read_request_soap11_and_unqualified_children_are_accepted() -> None:
    """AIRA's CAIR connector posts SOAP 1.1; children without the namespace are read too."""
    body = (
        "<c:submitSingleMessage><username>u</username><password>p</password>"
        "<hl7Message><![CDATA[MSH|^~\\&|A]]></hl7Message></c:submitSingleMessage>"
    )
    request = read_request(_envelope(body, SOAP11_NS))
    assert request.version is SoapVersion.SOAP11
    assert request.operation == SubmitSingleMessage("u", "p", None, "MSH|^~\\&|A")


def test_read_request_nil_and_absent_values_are_none() -> None:
    """xsi:nil and a missing optional element are both no value."""
    body = (
        '<c:submitSingleMessage xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        '<c:username xsi:nil="true"/><c:hl7Message>MSH</c:hl7Message></c:submitSingleMessage>'
    )
    operation = read_request(_envelope(body)).operation
    assert isinstance(operation, SubmitSingleMessage)
    assert (operation.username, operation.password, operation.facility_id) == (
        None,
        None,
        None,
    )


def test_read_request_connectivity_test() -> None:
    """connectivityTest carries echoBack."""
    request = read_request(
        _envelope(
            "<c:connectivityTest><c:echoBack>ping ✓</c:echoBack></c:connectivityTest>"
        )
    )
    assert request.operation == ConnectivityTest("ping ✓")


@pytest.mark.parametrize(
    ("body", "kind", "says"),
    [
        (b"not xml at all", FaultKind.UNKNOWN, "not well-formed"),
        (b"<a><b></a>", FaultKind.UNKNOWN, "not well-formed"),
        (b"", FaultKind.UNKNOWN, "not well-formed"),
        (b"<Envelope/>", FaultKind.UNKNOWN, "not a SOAP envelope"),
        (_envelope(""), FaultKind.UNKNOWN, "exactly one operation"),
        (_envelope(SUBMIT + SUBMIT), FaultKind.UNKNOWN, "exactly one operation"),
        (
            _envelope('<x:submitBatch xmlns:x="urn:cdc:iisb:2011"/>'),
            FaultKind.UNSUPPORTED_OPERATION,
            "submitBatch",
        ),
        (
            _envelope('<x:SubmitSingleMessage xmlns:x="urn:cdc:iisb:2014"/>'),
            FaultKind.UNSUPPORTED_OPERATION,
            "urn:cdc:iisb:2014",
        ),
        (
            _envelope(
                "<c:submitSingleMessage><c:username>u</c:username></c:submitSingleMessage>"
            ),
            FaultKind.UNKNOWN,
            "hl7Message is required",
        ),
        (
            _envelope(
                "<c:submitSingleMessage><c:hl7Message><MSH/></c:hl7Message></c:submitSingleMessage>"
            ),
            FaultKind.UNKNOWN,
            "hl7Message must be text",
        ),
        (
            _envelope(
                "<c:submitSingleMessage><c:hl7Message>a</c:hl7Message>"
                "<c:hl7Message>b</c:hl7Message></c:submitSingleMessage>"
            ),
            FaultKind.UNKNOWN,
            "more than once",
        ),
    ],
)
def test_read_request_malformed_envelopes_are_faults(
    body: bytes, kind: FaultKind, says: str
) -> None:
    """Junk, a bare element, an empty or doubled Body, other operations: a fault that says which."""
    with pytest.raises(SoapFault) as caught:
        read_request(body)
    assert caught.value.kind is kind
    assert says in caught.value.text


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE s:Envelope ['
    '<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
)
EXTERNAL = '<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'


@pytest.mark.parametrize(
    ("prolog", "entity"),
    [(BILLION_LAUGHS, "&lol3;"), (EXTERNAL, "&xxe;"), ("<!DOCTYPE s:Envelope>", "x")],
)
def test_read_request_refuses_dtds_entities_and_external_entities(
    prolog: str, entity: str
) -> None:
    """Entity expansion, an external entity, even a bare DTD: refused before expansion."""
    body = (
        prolog
        + f'<s:Envelope xmlns:s="{SOAP12_NS}" xmlns:c="{IIS_NS}"><s:Body>'
        + f"<c:connectivityTest><c:echoBack>{entity}</c:echoBack></c:connectivityTest>"
        + "</s:Body></s:Envelope>"
    ).encode()
    with pytest.raises(SoapFault) as caught:
        read_request(body)
    assert caught.value.kind is FaultKind.UNKNOWN
    assert "document type declaration" in caught.value.text
    assert "root:" not in caught.value.text


def test_hl7_text_restores_cr_terminators() -> None:
    """LF and CRLF (what XML parsing leaves of CR) become HL7's CR."""
    assert hl7_text("MSH|a\nPID|b\r\nPD1|c\rRXA|d\n") == "MSH|a\rPID|b\rPD1|c\rRXA|d\r"


@pytest.mark.parametrize("version", list(SoapVersion))
def test_encode_response_round_trips_cr_and_markup(version: SoapVersion) -> None:
    """The ACK comes back byte for byte: CRs as &#13;, delimiters and markup escaped."""
    ns = version.value
    request = read_request(_envelope(SUBMIT, ns))
    ack = "MSH|^~\\&|CAIRN|<b>&</b>\rMSA|AA|1\r"
    envelope = encode_response(request, ack)
    assert b"\r" not in envelope
    root = fromstring(envelope)
    value = root.find(
        f"{{{ns}}}Body/{{{IIS_NS}}}submitSingleMessageResponse/{{{IIS_NS}}}return"
    )
    assert value is not None
    assert value.text == ack


@pytest.mark.parametrize(
    ("version", "code"),
    [(SoapVersion.SOAP12, "env:Sender"), (SoapVersion.SOAP11, "soap:Client")],
)
def test_encode_fault_carries_the_wsdl_detail_element(
    version: SoapVersion, code: str
) -> None:
    """A SecurityFault: the SOAP fault code of the version, the WSDL's element with its fixed Reason."""
    ns = version.value
    envelope = encode_fault(SoapFault(FaultKind.SECURITY, "no", version=version))
    assert code.encode() in envelope
    tag, values = _fault_detail(envelope, ns)
    assert tag == f"{{{IIS_NS}}}SecurityFault"
    assert values == {"Code": "2", "Reason": "Security", "Detail": "no"}


def test_encode_fault_receiver_side() -> None:
    """Our own failure is env:Receiver, an UnknownFault in the element the WSDL calls fault."""
    envelope = encode_fault(SoapFault(FaultKind.UNKNOWN, "later", sender=False))
    assert b"env:Receiver" in envelope
    assert _fault_detail(envelope, SOAP12_NS)[0] == f"{{{IIS_NS}}}fault"


def test_service_description_of_cdc_single_file_wsdl_rewrites_only_the_address(
    soap_dir: Path,
) -> None:
    """CDC's single-file WSDL is served as given, its soap12:address set to ours."""
    data = (soap_dir / "cdc-2011-single-file" / "cdc-iis-2011.wsdl").read_bytes()
    served = read_service_description(data).at("https://registry.example:8443/soap")
    assert b'location="https://registry.example:8443/soap"' in served
    assert b"localhost:8282" not in served
    assert (
        served.replace(
            b"https://registry.example:8443/soap", b"http://localhost:8282/wsdl-demo"
        )
        == data
    )


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("izgw/wsdl/cdc-iis-2011.wsdl", "self-contained"),
        ("izgw/wsdl/cdc-iis.wsdl", "urn:cdc:iisb:2014"),
        ("izgw/schema/cdc-iis-2011.xsd", "not a WSDL"),
    ],
)
def test_service_description_refuses_what_it_cannot_serve(
    soap_dir: Path, path: str, says: str
) -> None:
    """An imported schema, the 2014 service, a bare XSD: refused, saying why."""
    with pytest.raises(WsdlError) as caught:
        read_service_description((soap_dir / path).read_bytes())
    assert says in str(caught.value)


def test_service_description_refuses_junk(tmp_path: Path) -> None:
    """A file that is not XML is refused in one line."""
    with pytest.raises(WsdlError, match="not a readable WSDL"):
        read_service_description(b"\x00\x01 junk")
