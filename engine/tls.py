"""TLS for the listeners: certificate, key and client CA from settings, client-certificate checks.

Shared by every listener that speaks TLS (MLLP here, HTTP/SOAP beside it).
The files are read once at startup; anything missing, unreadable or not
matching stops startup with one line (:class:`TlsError`) naming the setting
and the file. Client certificates are verified by OpenSSL against the
configured client CA during the handshake: a peer without one, with an
expired one (or one not yet valid) or one from another CA fails the
handshake, and ``on_refused`` is told why (for the audit trail). A plaintext
client on a TLS port fails the handshake too: it is never read as MLLP.

API (stable; the HTTP listener depends on it)::

    files = TlsFiles(certificate="server.pem", private_key="server.key",
                     client_ca="clients-ca.pem")
    tls = load_server_tls(files, require_client_certificate=True,
                          on_refused=lambda peer, reason, fingerprint: ...)
    port = reactor.listenSSL(port, factory, tls, interface=host)
    # or: listen_tls(reactor, "0.0.0.0:2575", factory, tls)

    # after the handshake (IHandshakeListener.handshakeCompleted), from the
    # protocol's transport:
    cert = peer_certificate(transport)   # PeerCertificate | None
    identity.principal_for_certificate(cert.fingerprint)  # the organization

    certificate_fingerprint(pem_or_der_bytes) -> "ab12…" (SHA-256, hex)

:class:`PeerCertificate` has ``fingerprint`` (SHA-256 of the DER, lower-case
hex: what ``cairn org add --client-certificate`` stores), ``subject`` (the
common name, for logs) and ``not_after``. A certificate maps to an
organization by fingerprint (handlers/identity.py), so re-issuing a
certificate means mapping the new one; the CA alone never decides who a
peer is.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from zope.interface import classImplements  # type: ignore[import-untyped]

__all__ = [
    "PeerCertificate",
    "ServerTls",
    "TlsError",
    "TlsFiles",
    "certificate_fingerprint",
    "listen_tls",
    "load_server_tls",
    "peer_certificate",
    "peer_certificate_of",
]

logger = structlog.get_logger()

#: Told of every refused client certificate: (peer, reason, fingerprint or "").
RefusalHook = Callable[[str, str, str], None]

#: OpenSSL's X509_V_ERR_* codes a client meets most, in words.
_VERIFY_REASONS = {
    9: "client certificate is not yet valid",
    10: "client certificate has expired",
    18: "client certificate is self-signed",
    19: "client certificate chain has an unknown self-signed root",
    20: "client certificate is from an unknown issuer",
    21: "client certificate cannot be verified (unknown issuer)",
    23: "client certificate has been revoked",
}


class TlsError(Exception):
    """TLS cannot be set up; the message is the one line startup prints."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The TLS files of a listener (paths, as configured).

    Attributes:
        certificate: the server's certificate chain (PEM), leaf first.
        private_key: its private key (PEM, unencrypted).
        client_ca: the CA certificates (PEM) that client certificates must
            chain to; empty for no client certificates.
        setting: the settings prefix, for error lines (``listeners.mllp``).
    """

    certificate: str
    private_key: str
    client_ca: str = ""
    setting: str = "server"


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """A verified client certificate."""

    fingerprint: str
    subject: str
    not_after: datetime


def certificate_fingerprint(data: bytes) -> str:
    """SHA-256 (hex) of a certificate given as PEM or DER bytes.

    Raises:
        TlsError: the bytes hold no certificate.
    """
    try:
        cert = (
            x509.load_pem_x509_certificate(data)
            if data.lstrip().startswith(b"-----")
            else x509.load_der_x509_certificate(data)
        )
    except ValueError:
        # cryptography's text is a Rust parser's debug dump for DER; say what
        # a person can act on: which PEM block the file holds, if any.
        label = re.search(rb"-----BEGIN ([A-Z0-9 ]+)-----", data)
        if label and label.group(1) != b"CERTIFICATE":
            kind = label.group(1).decode()
            raise TlsError(f"not a certificate: the file holds a PEM {kind}") from None
        raise TlsError("not a certificate (PEM or DER)") from None
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _read(path: str, setting: str) -> bytes:
    if not path:
        raise TlsError(f"{setting}: no file given")
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise TlsError(f"{setting}: {path}: file not found") from None
    except OSError as exc:
        raise TlsError(f"{setting}: {path}: cannot read ({exc.strerror})") from None


def _load_certificates(path: str, setting: str) -> list[x509.Certificate]:
    data = _read(path, setting)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise TlsError(f"{setting}: {path}: no PEM certificate in the file")
    return certs


class ServerTls:
    """A server's TLS context, for ``listenSSL`` or a TLS endpoint.

    Build it with :func:`load_server_tls`.
    """

    def __init__(
        self,
        context: SSL.Context,
        *,
        requires_client_certificate: bool,
        on_refused: RefusalHook | None,
    ) -> None:
        self._context = context
        self.requires_client_certificate = requires_client_certificate
        self._on_refused = on_refused
        if requires_client_certificate:
            context.set_verify(
                SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._verify
            )

    def serverConnectionForTLS(self, protocol: Any) -> SSL.Connection:
        """A new server-side TLS connection for one accepted socket."""
        connection = SSL.Connection(self._context, None)
        connection.set_app_data(protocol)
        return connection

    def _verify(
        self,
        connection: SSL.Connection,
        cert: crypto.X509,
        errno: int,
        depth: int,
        ok: int,
    ) -> bool:
        """OpenSSL's verdict on each certificate of the chain, recorded when it is no."""
        if ok:
            return True
        reason = _VERIFY_REASONS.get(
            errno, f"client certificate refused (X509 error {errno})"
        )
        fingerprint = ""
        if depth == 0:
            fingerprint = hashlib.sha256(
                crypto.dump_certificate(crypto.FILETYPE_ASN1, cert)
            ).hexdigest()
        peer = _peer_of(connection)
        logger.warning("tls_client_refused", peer=peer, reason=reason, depth=depth)
        if self._on_refused is not None:
            try:
                self._on_refused(peer, reason, fingerprint)
            except Exception:  # the audit must not break the handshake's refusal
                logger.exception("tls_refusal_hook_failed", peer=peer)
        return False


# Twisted's TLS factory asks for this interface (zope, untyped).
classImplements(ServerTls, IOpenSSLServerConnectionCreator)


def _peer_of(connection: SSL.Connection) -> str:
    protocol = connection.get_app_data()
    transport = getattr(protocol, "transport", None)
    address = transport.getPeer() if transport is not None else None
    host = getattr(address, "host", "")
    port = getattr(address, "port", "")
    return f"{host}:{port}" if host else ""


def load_server_tls(
    files: TlsFiles,
    *,
    require_client_certificate: bool,
    on_refused: RefusalHook | None = None,
    now: Callable[[], datetime] | None = None,
) -> ServerTls:
    """Read the TLS files and build a server context (TLS 1.2 or newer).

    Args:
        files: the certificate chain, key and client CA.
        require_client_certificate: refuse peers without a client
            certificate that chains to ``files.client_ca``.
        on_refused: told of each client certificate refused in a handshake.
        now: the clock, to warn about an expired server certificate.

    Raises:
        TlsError: one line naming the setting and the file.
    """
    setting = files.setting
    chain = _load_certificates(files.certificate, f"{setting}.tls_certificate")
    key_data = _read(files.private_key, f"{setting}.tls_private_key_file")
    try:
        serialization.load_pem_private_key(key_data, password=None)
    except (ValueError, TypeError) as exc:
        raise TlsError(
            f"{setting}.tls_private_key_file: {files.private_key}: not an unencrypted "
            f"PEM private key ({str(exc).splitlines()[0][:80]})"
        ) from None
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(SSL.OP_NO_COMPRESSION)
    try:
        context.use_certificate_chain_file(files.certificate)
        context.use_privatekey_file(files.private_key)
        context.check_privatekey()
    except SSL.Error:
        raise TlsError(
            f"{setting}.tls_private_key_file: {files.private_key}: does not match "
            f"the certificate in {files.certificate}"
        ) from None
    clock = now or (lambda: datetime.now(UTC))
    if chain[0].not_valid_after_utc < clock():
        raise TlsError(
            f"{setting}.tls_certificate: {files.certificate}: the certificate expired "
            f"on {chain[0].not_valid_after_utc:%Y-%m-%d}"
        )
    if require_client_certificate:
        if not files.client_ca:
            raise TlsError(
                f"{setting}.tls_client_ca_file: required to verify client certificates"
            )
        _load_certificates(files.client_ca, f"{setting}.tls_client_ca_file")
        try:
            context.load_verify_locations(files.client_ca)
        except SSL.Error:
            raise TlsError(
                f"{setting}.tls_client_ca_file: {files.client_ca}: cannot be loaded"
            ) from None
        context.set_session_id(b"cairn")
    return ServerTls(
        context,
        requires_client_certificate=require_client_certificate,
        on_refused=on_refused,
    )


def listen_tls(reactor: Any, listen: str, factory: Any, tls: ServerTls) -> Any:
    """Listen with TLS on ``HOST:PORT`` (Twisted's TLS over TCP); returns the port."""
    host, _, port = listen.rpartition(":")
    return reactor.listenSSL(int(port), factory, tls, interface=host.strip("[]"))


def peer_certificate(transport: Any) -> PeerCertificate | None:
    """The client certificate of a TLS transport after its handshake, or None."""
    get = getattr(transport, "getPeerCertificate", None)
    return peer_certificate_of(get() if get is not None else None)


def peer_certificate_of(cert: Any) -> PeerCertificate | None:
    """Describe a peer certificate as ``getPeerCertificate`` gives it (pyOpenSSL X509)."""
    if cert is None or not hasattr(cert, "to_cryptography"):
        return None
    crypto_cert = cert.to_cryptography()
    fingerprint = hashlib.sha256(
        crypto_cert.public_bytes(serialization.Encoding.DER)
    ).hexdigest()
    names = crypto_cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    subject = str(names[0].value) if names else crypto_cert.subject.rfc4514_string()
    return PeerCertificate(fingerprint, subject[:120], crypto_cert.not_valid_after_utc)
