"""engine/tls.py: loading the files, and the handshake as the other party sees it.

The handshakes run in memory (Twisted's iosim pumps bytes between a real
OpenSSL client and server), with certificates made per test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test.iosim import FakeTransport, connect

from engine.tls import (
    TlsError,
    TlsFiles,
    certificate_fingerprint,
    load_server_tls,
    peer_certificate,
)
from tests.support.certs import CertificateAuthority


class Recorder(Protocol):
    """The server side: remembers what it read and the client certificate it saw."""

    def __init__(self) -> None:
        self.data = b""
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        self.certificate = peer_certificate(self.transport)

    def connectionLost(self, reason: object = None) -> None:
        self.lost = True


class Sender(Protocol):
    """The client side: sends one line once connected."""

    def connectionMade(self) -> None:
        self.transport.write(b"MSH|hello\r")


@pytest.fixture(name="ca")
def _ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path)


@pytest.fixture(name="server_files")
def _server_files(ca: CertificateAuthority) -> TlsFiles:
    server = ca.issue("localhost", server=True)
    return TlsFiles(str(server.cert_path), str(server.key_path), str(ca.cert_path))


def _handshake(tls, ca, client=None, plaintext: bool = False):
    """Connect a client (with ``client`` certificate) to ``tls``; the server's protocol."""
    recorder = Recorder()
    # The TLS transports gather small writes until the clock turns: the
    # pump's clock, never the global reactor.
    clock = MemoryReactorClock()
    server = TLSMemoryBIOFactory(
        tls, False, Factory.forProtocol(lambda: recorder), clock=clock
    )
    address = IPv4Address("TCP", "127.0.0.1", 40000)
    server_proto = server.buildProtocol(address)
    if plaintext:
        client_proto = Sender()
    else:
        options = optionsForClientTLS(
            "localhost",
            trustRoot=Certificate.loadPEM(ca.cert_path.read_bytes()),
            clientCertificate=PrivateCertificate.loadPEM(
                client.cert_path.read_bytes() + client.key_path.read_bytes()
            )
            if client
            else None,
        )
        client_proto = TLSMemoryBIOFactory(
            options, True, Factory.forProtocol(Sender), clock=clock
        ).buildProtocol(address)
    pump = connect(
        server_proto,
        FakeTransport(server_proto, isServer=True, peerAddress=address),
        client_proto,
        FakeTransport(client_proto, isServer=False),
        greet=False,
        clock=clock,
    )
    pump.flush()
    return recorder


def test_client_certificate_accepted_and_fingerprinted(ca, server_files):
    """A client certificate from the client CA completes the handshake; its fingerprint is read."""
    client = ca.issue("sutter-ehr")
    tls = load_server_tls(server_files, require_client_certificate=True)
    recorder = _handshake(tls, ca, client)
    assert recorder.data == b"MSH|hello\r"
    assert recorder.certificate is not None
    assert recorder.certificate.fingerprint == client.fingerprint
    assert recorder.certificate.subject == "sutter-ehr"
    assert certificate_fingerprint(client.cert_pem) == client.fingerprint


def test_expired_client_certificate_refused_and_reported(ca, server_files):
    """An expired client certificate fails the handshake; the refusal hook hears why."""
    refused: list[tuple[str, str, str]] = []
    tls = load_server_tls(
        server_files,
        require_client_certificate=True,
        on_refused=lambda *args: refused.append(args),
    )
    client = ca.expired("old-ehr")
    recorder = _handshake(tls, ca, client)
    assert recorder.data == b""
    assert refused
    peer, reason, fingerprint = refused[0]
    assert peer == "127.0.0.1:40000"
    assert reason == "client certificate has expired"
    assert fingerprint == client.fingerprint


def test_certificate_from_another_ca_refused(ca, server_files, tmp_path):
    """A certificate signed by a CA the registry does not trust is refused."""
    other = CertificateAuthority(tmp_path, name="Mallory CA")
    refused: list[tuple[str, str, str]] = []
    tls = load_server_tls(
        server_files,
        require_client_certificate=True,
        on_refused=lambda *args: refused.append(args),
    )
    recorder = _handshake(tls, ca, other.issue("mallory"))
    assert recorder.data == b""
    assert refused and "unknown issuer" in refused[0][1]


def test_no_client_certificate_refused(ca, server_files):
    """A TLS client without a certificate never gets to send."""
    tls = load_server_tls(server_files, require_client_certificate=True)
    assert _handshake(tls, ca, None).data == b""


def test_plaintext_client_on_tls_port_refused(ca, server_files):
    """Plain MLLP bytes on a TLS port are never read as a message."""
    tls = load_server_tls(server_files, require_client_certificate=True)
    recorder = _handshake(tls, ca, plaintext=True)
    assert recorder.data == b""


def test_missing_certificate_file_is_one_line(server_files, tmp_path):
    """A missing file stops startup with one line naming the setting and the file."""
    files = TlsFiles(
        str(tmp_path / "nope.pem"),
        server_files.private_key,
        server_files.client_ca,
        "listeners.mllp",
    )
    with pytest.raises(TlsError) as info:
        load_server_tls(files, require_client_certificate=True)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("listeners.mllp.tls_certificate: ")
    assert "file not found" in text


def test_unreadable_key_is_one_line(server_files, tmp_path):
    """A key file that holds no key is named."""
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    files = TlsFiles(server_files.certificate, str(bad), server_files.client_ca)
    with pytest.raises(
        TlsError,
        match=r"^server\.tls_private_key_file: .*not an unencrypted PEM private key",
    ):
        load_server_tls(files, require_client_certificate=True)


def test_key_of_another_certificate_is_refused(ca, server_files):
    """A key that does not match the certificate stops startup."""
    other = ca.issue("other", server=True)
    files = TlsFiles(
        server_files.certificate, str(other.key_path), server_files.client_ca
    )
    with pytest.raises(TlsError, match="does not match"):
        load_server_tls(files, require_client_certificate=True)


def test_client_ca_required_for_client_certificates(server_files):
    """Client-certificate verification without a client CA is a configuration error."""
    files = TlsFiles(server_files.certificate, server_files.private_key, "")
    with pytest.raises(TlsError, match="tls_client_ca_file"):
        load_server_tls(files, require_client_certificate=True)


def test_expired_server_certificate_stops_startup(ca, server_files):
    """A server certificate past its end date is refused at startup."""
    from datetime import UTC, datetime, timedelta

    later = datetime.now(UTC) + timedelta(days=365)
    with pytest.raises(TlsError, match="expired"):
        load_server_tls(
            server_files, require_client_certificate=True, now=lambda: later
        )
