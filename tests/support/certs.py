"""A small certificate factory: a CA, server and client certificates, made per test.

Built with ``cryptography`` so that tests need no openssl binary and no
checked-in keys. EC P-256 keys keep it fast.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as PEM files on disk."""

    cert_path: Path
    key_path: Path
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the DER certificate, hex."""
        return hashlib.sha256(
            self.cert.public_bytes(serialization.Encoding.DER)
        ).hexdigest()

    @property
    def cert_pem(self) -> bytes:
        """The certificate as PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Issued:
    cert_path = directory / f"{stem}.pem"
    key_path = directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Issued(cert_path, key_path, cert, key)


class CertificateAuthority:
    """A throwaway CA that issues server and client certificates into a folder."""

    def __init__(self, directory: Path, name: str = "Cairn Test CA") -> None:
        self.directory = directory
        now = datetime.now(UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(
                x509.BasicConstraints(ca=True, path_length=None), critical=True
            )
            .sign(key, hashes.SHA256())
        )
        stem = name.replace(" ", "-").lower()
        self.issued = _write(directory, stem, cert, key)

    @property
    def cert_path(self) -> Path:
        """The CA certificate (PEM), for ``tls_client_ca_file``."""
        return self.issued.cert_path

    def issue(
        self,
        common_name: str,
        *,
        server: bool = False,
        valid_from: datetime | None = None,
        valid_until: datetime | None = None,
    ) -> Issued:
        """A certificate signed by this CA (a client one unless ``server``)."""
        now = datetime.now(UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.issued.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(valid_from or now - timedelta(days=1))
            .not_valid_after(valid_until or now + timedelta(days=10))
            .add_extension(
                x509.ExtendedKeyUsage(
                    [
                        ExtendedKeyUsageOID.SERVER_AUTH
                        if server
                        else ExtendedKeyUsageOID.CLIENT_AUTH
                    ]
                ),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
        cert = builder.sign(self.issued.key, hashes.SHA256())
        return _write(self.directory, common_name.replace(" ", "-").lower(), cert, key)

    def expired(self, common_name: str) -> Issued:
        """A client certificate that expired yesterday."""
        now = datetime.now(UTC)
        return self.issue(
            common_name,
            valid_from=now - timedelta(days=10),
            valid_until=now - timedelta(days=1),
        )
