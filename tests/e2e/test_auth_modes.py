"""One real server per way a listener knows who is speaking: open, tls, ip.

The rules (roles, MSH-4 against the organization, limits) are tested in
process (tests/engine/test_role_rules.py, test_sender_rules.py,
test_access.py); here is what a user meets on the wire: the startup lines,
a TLS client with and without a good certificate, a plaintext client on a
TLS port, an address on and off the allow-list.
"""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

import pytest

from engine.cli import main
from tests.e2e.conftest import CONFIG, ServerProcess, start_server
from tests.support.certs import CertificateAuthority, Issued
from tests.support.messages import CANARIES, Dose, vxu
from tests.support.mllp import errs, msa_code

pytestmark = pytest.mark.e2e

VT, FS, CR = b"\x0b", b"\x1c", b"\r"


def _stop(server: ServerProcess) -> str:
    code = server.stop()
    log = "".join(server.output)
    assert not [c for c in CANARIES if c in log], "patient data in server logs"
    assert code == 0, log[-3000:]
    return log


def _exchange(sock: socket.socket, message: str) -> bytes:
    """Send one framed message and read one framed reply (b"" when the server closes)."""
    sock.sendall(VT + message.encode() + FS + CR)
    buffer = b""
    while FS + CR not in buffer:
        try:
            chunk = sock.recv(65536)
        except (ConnectionError, ssl.SSLError, OSError):
            return b""
        if not chunk:
            return b""
        buffer += chunk
    return buffer[buffer.index(VT) + 1 : buffer.index(FS + CR)]


def _tls_send(
    server: ServerProcess, ca: CertificateAuthority, client: Issued | None, message: str
) -> bytes:
    context = ssl.create_default_context(cafile=str(ca.cert_path))
    if client is not None:
        context.load_cert_chain(str(client.cert_path), str(client.key_path))
    raw = socket.create_connection((server.host, server.port), timeout=30)
    try:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return _exchange(tls, message)
    except (ssl.SSLError, ConnectionError, OSError):
        return b""
    finally:
        raw.close()


def _audit(
    server: ServerProcess, outcome: str, *expected: str, wait: float = 15.0
) -> list[str]:
    """Details of the audit rows with an outcome, once each expected text is in one.

    Refusals are audited off the reactor thread, after the connection is
    closed: this waits for them (at most ``wait`` seconds).
    """
    deadline = time.monotonic() + wait
    while True:
        rows = server.query(
            "SELECT detail FROM audit_log WHERE outcome = ?", (outcome,)
        )
        details = [str(d) for (d,) in rows]
        found = all(any(e in d for d in details) for e in expected)
        if (details and found) or time.monotonic() > deadline:
            return details
        time.sleep(0.1)


def test_open_listener_says_so_and_trusts_msh4(tmp_path: Path) -> None:
    """The development default answers anyone, and says loudly that it does."""
    server = start_server(tmp_path)
    try:
        reply = server.send(vxu(sender="CLINIC1", doses=[Dose()]))
        assert msa_code(reply) == "AA"
    finally:
        log = _stop(server)
    assert "OPEN LISTENER (development)" in log
    assert "listener_open" in log


def test_tls_listener_authenticates_by_client_certificate(tmp_path: Path) -> None:
    """A mapped certificate sends as its facility; a spoofed MSH-4, a plaintext client, an expired or foreign certificate get nothing."""
    ca = CertificateAuthority(tmp_path)
    server_cert = ca.issue("localhost", server=True)
    good, expired = ca.issue("sutter-ehr"), ca.expired("old-ehr")
    unmapped = ca.issue("unmapped-ehr")
    foreign = CertificateAuthority(tmp_path, name="Mallory CA").issue("mallory")
    data = ["--data-dir", str(tmp_path / "var")]
    add = ["org", "add", "SUTTER", "--type", "provider", "--region", "BAY"]
    assert (
        main(
            [
                *add,
                "--facility",
                "CLINIC1",
                "--client-certificate",
                str(good.cert_path),
                *data,
            ]
        )
        == 0
    )
    config = CONFIG + (
        f'\n[server]\nauth = "tls"\ntls_certificate = "{server_cert.cert_path}"\n'
        f'tls_private_key_file = "{server_cert.key_path}"\ntls_client_ca_file = "{ca.cert_path}"\n'
    )
    server = start_server(tmp_path, config_text=config)
    try:
        assert (
            msa_code(_tls_send(server, ca, good, vxu(sender="CLINIC1", doses=[Dose()])))
            == "AA"
        )
        spoofed = _tls_send(server, ca, good, vxu(sender="CLINIC2", doses=[Dose()]))
        assert msa_code(spoofed) == "AR" and "MSH-4" in errs(spoofed)[0][8]
        with socket.create_connection((server.host, server.port), timeout=30) as plain:
            assert _exchange(plain, vxu(sender="CLINIC1", doses=[Dose()])) == b""
        assert (
            _tls_send(server, ca, expired, vxu(sender="CLINIC1", doses=[Dose()])) == b""
        )
        assert (
            _tls_send(server, ca, foreign, vxu(sender="CLINIC1", doses=[Dose()])) == b""
        )
        assert _tls_send(server, ca, None, vxu(sender="CLINIC1", doses=[Dose()])) == b""
        assert (
            _tls_send(server, ca, unmapped, vxu(sender="CLINIC1", doses=[Dose()]))
            == b""
        )
        expected = (
            "client certificate has expired",
            "unknown issuer",
            "unknown_certificate",
        )
        refused = _audit(server, "refused", *expected)
        assert any("client certificate has expired" in d for d in refused), refused
        assert any("unknown issuer" in d for d in refused), refused
        assert any("unknown_certificate" in d for d in refused), refused
        assert _audit(server, "refused-msh4")
        assert server.query("SELECT count(*) FROM vaccinations") == [(1,)]
        # The operator's own client speaks TLS with a mapped certificate too.
        message = tmp_path / "one.hl7"
        message.write_text(vxu(control_id="SEND1", sender="CLINIC1", doses=[Dose()]))
        tls_args = [
            "--tls-ca",
            str(ca.cert_path),
            "--tls-cert",
            str(good.cert_path),
            "--tls-key",
            str(good.key_path),
        ]
        address = f"localhost:{server.port}"
        assert main(["send", address, str(message), *tls_args]) == 0
        assert server.query(
            "SELECT ack_code FROM message_journal WHERE control_id = 'SEND1'"
        ) == [("AA",)]
    finally:
        log = _stop(server)
    assert "with TLS (client certificates)" in log


def test_ip_listener_authenticates_by_address(tmp_path: Path) -> None:
    """An address on no allow-list is closed unread and audited; once allow-listed it sends as its organization."""
    data = ["--data-dir", str(tmp_path / "var")]
    add = [
        "org",
        "add",
        "SUTTER",
        "--type",
        "provider",
        "--region",
        "BAY",
        "--facility",
        "CLINIC1",
    ]
    assert main([*add, *data]) == 0
    config = CONFIG + '\n[server]\nauth = "ip"\n[identity]\nrevalidate_seconds = 1\n'
    server = start_server(tmp_path, config_text=config)
    try:
        with server.client() as stranger:
            assert (
                _exchange(stranger.socket, vxu(sender="CLINIC1", doses=[Dose()])) == b""
            )
        assert _audit(server, "refused")
        assert (
            main(["org", "grant", "SUTTER", "--allow-ip", "127.0.0.1/32", *data]) == 0
        )
        assert msa_code(server.send(vxu(sender="CLINIC1", doses=[Dose()]))) == "AA"
        spoofed = server.send(vxu(sender="CLINIC2", doses=[Dose()]))
        assert msa_code(spoofed) == "AR" and "MSH-4" in errs(spoofed)[0][8]
        # Disabled while connected: the open connection is cut off too.
        with server.client() as client:
            assert msa_code(client.send_message(vxu(sender="CLINIC1").encode())) == "AA"
            assert main(["org", "disable", "SUTTER", *data]) == 0
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                reply = client.send_message(vxu(sender="CLINIC1").encode())
                if msa_code(reply) == "AR":
                    break
                time.sleep(0.2)
            assert msa_code(reply) == "AR" and "not authorized" in errs(reply)[0][8]
            # ...and, once told why, let go rather than held to the idle timeout.
            assert client.closed_by_server()
    finally:
        log = _stop(server)
    assert "authenticated listener (auth = 'ip')" in log
