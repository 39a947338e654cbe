"""The CDC SOAP service end to end: ``cairn serve``, zeep reading the WSDL it serves.

zeep is what an EHR's SOAP toolkit is: it reads ``?wsdl`` (CDC's single-file
WSDL from ../shared/soap, the address rewritten to this server's), builds
SOAP 1.2 envelopes from it and turns faults into exceptions. One server
speaks plain HTTP on SQLite, one HTTPS (a throwaway CA) on PostgreSQL. The
attacks zeep cannot send (entity expansion, external entities, a broken
envelope) go as raw bytes to the same endpoint. The rules behind (which
credentials, facility and MSH-4) are tested in process in
tests/engine/test_soap_rules.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from argon2 import PasswordHasher
from zeep import Client
from zeep.exceptions import Fault
from zeep.transports import Transport

from handlers.identity import IdentityService
from storage import open_database
from tests.conftest import SHARED, shared_path
from tests.e2e.conftest import CONFIG, ServerProcess, _serve
from tests.e2e.test_queries import qbp
from tests.support.certs import CertificateAuthority
from tests.support.messages import CANARY_FAMILY, Dose, vxu
from tests.support.mllp import errs, msa_code, segments

pytestmark = pytest.mark.e2e

IIS = "urn:cdc:iisb:2011"
PASSWORD = "a long enough password 1"
LIMIT = 65536
_HTTP = re.compile(r"listening for (HTTPS?) on ([^:\s]+):(\d+)")


@dataclass
class SoapServer:
    """A running server with the SOAP service, and how to reach it."""

    server: ServerProcess
    url: str
    verify: str | bool

    def client(self) -> Client:
        session = requests.Session()
        # The environment's CA bundle or proxy would override session.verify.
        session.trust_env = False
        session.verify = self.verify
        return Client(f"{self.url}?wsdl", transport=Transport(session=session))

    def post(self, body: bytes) -> requests.Response:
        return requests.post(
            self.url,
            data=body,
            headers={"Content-Type": "application/soap+xml; charset=utf-8"},
            verify=self.verify,
            timeout=30,
        )


def _add_accounts(server: ServerProcess) -> None:
    """An organization for CLINIC1 with a user, and a disabled user (as `cairn user` would)."""
    url = server.database_url or f"sqlite:///{server.data_dir / 'cairn.sqlite3'}"
    db = open_database(url)
    try:
        identity = IdentityService(
            db.transaction,
            now=lambda: datetime.now(UTC),
            # Cheap to make; the server checks any parameters, and rehashes.
            hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
        )
        identity.add_organization(
            "test",
            code="CLINIC1ORG",
            name="Clinic one",
            org_type="provider",
            region="BAY",
            facility_ids=["CLINIC1"],
        )
        identity.add_user("test", "CLINIC1ORG", "clinic1", PASSWORD)
        identity.add_user("test", "CLINIC1ORG", "gone", PASSWORD)
        identity.set_user_disabled("test", "gone")
    finally:
        db.close()


def _http_address(server: ServerProcess) -> tuple[str, str, int]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in list(server.output):
            match = _HTTP.search(line)
            if match:
                return match.group(1).lower(), match.group(2), int(match.group(3))
        time.sleep(0.05)
    raise AssertionError("no HTTP listener line:\n" + "".join(server.output))


@pytest.fixture(
    name="soap",
    scope="module",
    params=[("sqlite", False), ("postgresql", True)],
    ids=["sqlite-http", "postgresql-https"],
)
def _soap(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SoapServer]:
    backend, tls = request.param
    tmp = tmp_path_factory.mktemp("soap")
    config = (
        CONFIG
        + f'\n[server]\nmax_message_bytes = {LIMIT}\n\n[http]\nlisten = "127.0.0.1:0"\n'
    )
    verify: str | bool = False
    if tls:
        ca = CertificateAuthority(tmp)
        cert = ca.issue("localhost", server=True)
        config += (
            f'tls_certificate = "{cert.cert_path}"\n'
            f'tls_private_key_file = "{cert.key_path}"\n'
        )
        verify = str(ca.cert_path)
    wsdl = shared_path("CAIRN_SOAP_DIR", SHARED / "soap", "CDC SOAP WSDL/XSD files")
    wsdl = wsdl / "cdc-2011-single-file" / "cdc-iis-2011.wsdl"
    config += f'\n[soap]\nenabled = true\nwsdl = "{wsdl}"\n'
    for server in _serve(
        backend, tmp, request.getfixturevalue("pg_databases"), config_text=config
    ):
        scheme, host, port = _http_address(server)
        assert scheme == ("https" if tls else "http")
        _add_accounts(server)
        yield SoapServer(server, f"{scheme}://{host}:{port}/soap", verify)


def _submit(soap: SoapServer, message: str, **kw: str) -> str:
    values = {"username": "clinic1", "password": PASSWORD, "facilityID": "CLINIC1"}
    values.update(kw)
    return str(soap.client().service.submitSingleMessage(hl7Message=message, **values))


def _fault_of(caught: pytest.ExceptionInfo[Fault]) -> str:
    detail = caught.value.detail
    assert detail is not None
    (element,) = list(detail)
    return str(element.tag)


def test_wsdl_names_this_endpoint(soap: SoapServer) -> None:
    """?wsdl is CDC's WSDL with the soap12:address rewritten to where we listen (over TLS only, on HTTPS)."""
    reply = requests.get(f"{soap.url}?wsdl", verify=soap.verify, timeout=30)
    assert reply.status_code == 200
    assert f'location="{soap.url}"'.encode() in reply.content
    assert b"localhost:8282" not in reply.content
    # The startup summary says where SOAP is served.
    assert any(f'"soap": "{soap.url}"' in line for line in soap.server.output)
    if soap.url.startswith("https"):
        # A plaintext client on the HTTPS port gets no HTTP answer: no fallback.
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"{soap.url.replace('https', 'http', 1)}?wsdl", timeout=30)


def test_connectivity_test_echoes(soap: SoapServer) -> None:
    """connectivityTest answers echoBack verbatim, no credentials needed."""
    assert soap.client().service.connectivityTest(echoBack="ping ✓") == "ping ✓"


def test_vxu_over_soap_is_acknowledged_and_stored(soap: SoapServer) -> None:
    """A VXU via zeep: the return is its ACK (AA) and the journal has it, from the SOAP listener."""
    ack = _submit(soap, vxu(control_id="E2E-SOAP-VXU", doses=[Dose()]))
    assert msa_code(ack.encode()) == "AA"
    assert next(s for s in segments(ack.encode()) if s[0] == "MSA")[2] == "E2E-SOAP-VXU"
    rows = soap.server.query(
        "SELECT sender, ack_code FROM message_journal WHERE control_id = ?",
        ("E2E-SOAP-VXU",),
    )
    assert rows == [("CLINIC1", "AA")]


def test_z44_over_soap_returns_the_rsp(soap: SoapServer) -> None:
    """A Z44 after a VXU: the return is the RSP^K11 with the dose."""
    _submit(soap, vxu(control_id="E2E-SOAP-Z44V", mrn="SOAPZ44", doses=[Dose()]))
    rsp = _submit(
        soap,
        qbp(
            query="Z44",
            control_id="E2E-SOAP-Z44",
            ids="SOAPZ44^^^EHR^MR",
            name=f"{CANARY_FAMILY}^Qqcanarygiv",
            dob="20230105",
            sex="F",
        ),
    ).encode()
    assert segments(rsp)[0][8] == "RSP^K11^RSP_K11"
    assert any(s[0] == "RXA" for s in segments(rsp))


@pytest.mark.parametrize(
    ("username", "password"),
    [("clinic1", "not the password"), ("nobody", PASSWORD), ("gone", PASSWORD)],
    ids=["wrong-password", "unknown-user", "disabled-user"],
)
def test_refused_credentials_are_a_security_fault(
    soap: SoapServer, username: str, password: str
) -> None:
    """A wrong password, an unknown user, a disabled one: SecurityFault, nothing journaled."""
    with pytest.raises(Fault) as caught:
        _submit(
            soap,
            vxu(control_id=f"E2E-SOAP-BAD-{username}"),
            username=username,
            password=password,
        )
    assert _fault_of(caught) == f"{{{IIS}}}SecurityFault"
    assert caught.value.message == "Invalid Username, Password or FacilityID"
    assert soap.server.query(
        "SELECT count(*) FROM message_journal WHERE control_id = ?",
        (f"E2E-SOAP-BAD-{username}",),
    ) == [(0,)]


def test_spoofed_msh4_gets_ar_naming_msh4(soap: SoapServer) -> None:
    """CLINIC1's user sending as CLINIC2: AR at MSH-4 in the return, not a fault."""
    ack = _submit(
        soap, vxu(control_id="E2E-SOAP-SPOOF", sender="CLINIC2", doses=[Dose()])
    )
    assert msa_code(ack.encode()) == "AR"
    assert errs(ack.encode())[0][2] == "MSH^1^4"


def test_too_large_message_is_a_message_too_large_fault(soap: SoapServer) -> None:
    """An hl7Message over server.max_message_bytes: MessageTooLargeFault naming the limit."""
    big = vxu(control_id="E2E-SOAP-BIG", extra_segments=["NTE|1||" + "x" * LIMIT])
    with pytest.raises(Fault) as caught:
        _submit(soap, big)
    assert _fault_of(caught) == f"{{{IIS}}}MessageTooLargeFault"
    assert f"{LIMIT:,}" in caught.value.message


def test_oversize_request_is_refused_before_parsing(soap: SoapServer) -> None:
    """A body beyond the envelope limit is refused unread (500, MessageTooLargeFault); the server stays up."""
    reply = soap.post(b"<" * (4 * LIMIT))
    assert reply.status_code == 500
    assert b"MessageTooLargeFault" in reply.content
    assert soap.client().service.connectivityTest(echoBack="still up") == "still up"


BOMB = (
    '<?xml version="1.0"?><!DOCTYPE e [<!ENTITY a "aaaaaaaaaa">'
    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">'
    '<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">]>'
)
XXE = '<?xml version="1.0"?><!DOCTYPE e [<!ENTITY e SYSTEM "file:///etc/passwd">]>'


@pytest.mark.parametrize(
    "body",
    [
        (
            BOMB + '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
            f'xmlns:c="{IIS}"><s:Body><c:connectivityTest><c:echoBack>&e;</c:echoBack>'
            "</c:connectivityTest></s:Body></s:Envelope>"
        ).encode(),
        (
            XXE + '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
            f'xmlns:c="{IIS}"><s:Body><c:connectivityTest><c:echoBack>&e;</c:echoBack>'
            "</c:connectivityTest></s:Body></s:Envelope>"
        ).encode(),
        b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>',
        b"MSH|^~\\&|not|an|envelope",
    ],
    ids=["billion-laughs", "external-entity", "truncated-envelope", "bare-hl7"],
)
def test_xml_attacks_and_malformed_envelopes_are_refused(
    soap: SoapServer, body: bytes
) -> None:
    """Entity expansion, an external entity, a cut envelope, HL7 without one: a fault, nothing read."""
    reply = soap.post(body)
    assert reply.status_code == 500
    assert b"env:Sender" in reply.content
    assert b"root:" not in reply.content
    assert b"aaaaaaaaaa" not in reply.content
    assert soap.client().service.connectivityTest(echoBack="still up") == "still up"


def test_serve_refuses_a_missing_certificate_in_one_line(tmp_path: Path) -> None:
    """An HTTPS certificate that is not there stops startup with one line naming the key and file."""
    import subprocess
    import sys

    missing = tmp_path / "nope.pem"
    config = tmp_path / "cairn.toml"
    config.write_text(
        CONFIG
        + f'\n[http]\nlisten = "127.0.0.1:0"\ntls_certificate = "{missing}"\n'
        + f'tls_private_key_file = "{missing}"\n'
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "--config",
            str(config),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(tmp_path / "var"),
        ],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("cairn: http.tls_certificate: ")
    assert str(missing) in lines[0]


def _security_faults(soap: SoapServer) -> float:
    page = requests.get(
        soap.url.rsplit("/", 1)[0] + "/metrics", verify=soap.verify, timeout=30
    ).text
    match = re.search(
        r'^cairn_soap_faults_total\{fault="SecurityFault"\} (\S+)$', page, re.M
    )
    assert match is not None, page[:2000]
    return float(match.group(1))


def test_faults_are_counted_on_metrics(soap: SoapServer) -> None:
    """Each SecurityFault answered is one more in /metrics (an operator's alert on guessing)."""
    before = _security_faults(soap)
    with pytest.raises(Fault):
        _submit(soap, vxu(control_id="E2E-SOAP-METRIC"), password="wrong, again")
    assert _security_faults(soap) == before + 1


def test_soap11_client_like_airas_cair_connector_is_answered_in_soap11(
    soap: SoapServer,
) -> None:
    """SOAP 1.1 (text/xml, a quoted SOAPAction, CDATA, LF terminators), as AIRA's CAIR connector posts it."""
    message = vxu(control_id="E2E-SOAP-11", doses=[Dose()]).replace("\r", "\n")
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        f'xmlns:urn="{IIS}"><soapenv:Header/><soapenv:Body><urn:submitSingleMessage>'
        f"<urn:username>clinic1</urn:username><urn:password>{PASSWORD}</urn:password>"
        "<urn:facilityID>CLINIC1</urn:facilityID>"
        f"<urn:hl7Message><![CDATA[{message}]]></urn:hl7Message>"
        "</urn:submitSingleMessage></soapenv:Body></soapenv:Envelope>"
    ).encode()
    reply = requests.post(
        soap.url,
        data=body,
        headers={
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"{IIS}:submitSingleMessage"',
        },
        verify=soap.verify,
        timeout=30,
    )
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/xml")
    assert b"http://schemas.xmlsoap.org/soap/envelope/" in reply.content
    match = re.search(rb"MSA\|(\w\w)\|E2E-SOAP-11", reply.content)
    assert match is not None
    assert match.group(1) == b"AA"
