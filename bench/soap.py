"""VXU/s and answer latency over SOAP with TLS, beside MLLP with and without TLS, in one run.

Three fresh `cairn serve` processes (SQLite, the same settings), one after
the other, each sent the same generated VXUs by N concurrent senders that
wait for every answer, as EHR interfaces do:

- MLLP, plaintext (``server.auth = "open"``);
- MLLP over TLS, with a client certificate mapped to the organization
  (``server.auth = "tls"``);
- the CDC SOAP service, ``submitSingleMessage`` (SOAP 1.2) over HTTPS on
  keep-alive connections, a user's credentials in every request, as the
  protocol has it. The identity service checks each request; it remembers
  a good login (argon2 is paid once, with the default parameters
  ``cairn user add`` stores) but reads the account in a transaction every
  time. The leg starts with one login, timed on its own, then measures the
  steady state.

Then ``connectivityTest`` over HTTPS on the SOAP server: the transport and
envelope alone, without credentials or the pipeline. Per-organization rate
limits are lifted (``identity.messages_per_minute``) so that the engine,
not the limit, is measured.

Run: .venv/bin/python -m bench.soap [--messages 800] [--senders 8]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from xml.sax.saxutils import escape

import requests
from defusedxml.ElementTree import fromstring

from bench._common import ROOT, header, percentile
from bench.ingest import messages, split
from bench.synth import CLINICS
from engine.client import MllpSender
from handlers.identity import IdentityService
from parsers.client import ack_code
from storage import open_database
from tests.support.certs import CertificateAuthority

IIS = "urn:cdc:iisb:2011"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSDL = ROOT.parent / "shared" / "soap" / "cdc-2011-single-file" / "cdc-iis-2011.wsdl"
PASSWORD = "bench password, long enough"  # noqa: S105 - a throwaway account of the bench's own server
_MLLP = re.compile(r"listening for MLLP.* on ([^:\s]+):(\d+)")
_HTTP = re.compile(r"listening for HTTPS? on ([^:\s]+):(\d+)")

CONFIG = """
[logging]
level = "warning"

[identity]
messages_per_minute = 10000000
max_connections = 1000
"""


@dataclass
class Server:
    """A running engine and its ports."""

    proc: subprocess.Popen[str]
    data_dir: Path
    mllp: tuple[str, int]
    http: tuple[str, int] | None

    def stop(self) -> None:
        """SIGTERM and wait."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _start(tmp: Path, config: str, *, http: bool) -> Server:
    path = tmp / "cairn.toml"
    path.write_text(CONFIG + config)
    data_dir = tmp / "var"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "--config",
            str(path),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(data_dir),
        ],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    mllp: tuple[str, int] | None = None
    web: tuple[str, int] | None = None
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (mllp is None or (http and web is None)):
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if (m := _MLLP.search(line)) is not None:
            mllp = (m.group(1), int(m.group(2)))
        if (m := _HTTP.search(line)) is not None:
            web = (m.group(1), int(m.group(2)))
    if mllp is None or (http and web is None):
        proc.kill()
        raise RuntimeError("cairn serve did not start:\n" + "".join(seen[-20:]))
    out = proc.stdout
    threading.Thread(target=lambda: [None for _ in out], daemon=True).start()
    return Server(proc, data_dir, mllp, web)


def _organization(server: Server, *, fingerprint: str = "", user: bool = False) -> None:
    """The organization that owns every sending facility of the corpus (as `cairn org add`)."""
    db = open_database(f"sqlite:///{server.data_dir / 'cairn.sqlite3'}")
    try:
        identity = IdentityService(db.transaction, now=lambda: datetime.now(UTC))
        identity.add_organization(
            "bench",
            code="BENCHORG",
            name="Bench clinics",
            org_type="provider",
            region="BAY",
            facility_ids=list(CLINICS),
        )
        if fingerprint:
            identity.add_certificate("bench", "BENCHORG", fingerprint)
        if user:
            identity.add_user("bench", "BENCHORG", "bench", PASSWORD)
    finally:
        db.close()


Send = Callable[[bytes], str]


def _drive(
    batches: list[list[bytes]], connect: Callable[[], tuple[Send, Callable[[], None]]]
) -> tuple[float, list[float], dict[str, int]]:
    """Each batch on its own connection, waiting for each answer; (seconds, latencies ms, MSA-1 counts)."""
    latencies: list[float] = []
    codes: dict[str, int] = {}
    lock = threading.Lock()

    def sender(batch: list[bytes]) -> None:
        send, close = connect()
        local: list[float] = []
        local_codes: dict[str, int] = {}
        try:
            for message in batch:
                started = time.perf_counter()
                code = send(message)
                local.append((time.perf_counter() - started) * 1000)
                local_codes[code] = local_codes.get(code, 0) + 1
        finally:
            close()
        with lock:
            latencies.extend(local)
            for k, v in local_codes.items():
                codes[k] = codes.get(k, 0) + v

    threads = [threading.Thread(target=sender, args=(b,)) for b in batches]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, latencies, codes


def _mllp(
    server: Server, tls: ssl.SSLContext | None
) -> tuple[Send, Callable[[], None]]:
    client = MllpSender(*server.mllp, timeout=120)
    if tls is not None:
        # The same client over TLS: its socket wrapped after connecting.
        client._socket = tls.wrap_socket(client._socket, server_hostname="localhost")

    def send(message: bytes) -> str:
        return ack_code(client.send(message)) or "none"

    return send, client.close


def _envelope(body: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP12}" '
        f'xmlns:c="{IIS}"><s:Body>{body}</s:Body></s:Envelope>'
    ).encode()


def _soap(url: str, ca: str) -> tuple[Send, Callable[[], None]]:
    session = requests.Session()
    session.trust_env = False
    session.verify = ca
    headers = {
        "Content-Type": f'application/soap+xml; charset=utf-8; action="{IIS}:submitSingleMessage"'
    }

    def send(message: bytes) -> str:
        hl7 = escape(message.decode("utf-8")).replace("\r", "&#13;")
        body = _envelope(
            "<c:submitSingleMessage><c:username>bench</c:username>"
            f"<c:password>{escape(PASSWORD)}</c:password><c:facilityID/>"
            f"<c:hl7Message>{hl7}</c:hl7Message></c:submitSingleMessage>"
        )
        reply = session.post(url, data=body, headers=headers, timeout=120)
        if reply.status_code != 200:
            return f"fault {reply.status_code}"
        value = fromstring(reply.content).find(
            f"{{{SOAP12}}}Body/{{{IIS}}}submitSingleMessageResponse/{{{IIS}}}return"
        )
        text = value.text if value is not None and value.text else ""
        return ack_code(text.encode("utf-8")) or "none"

    return send, session.close


def _echo(url: str, ca: str) -> tuple[Send, Callable[[], None]]:
    session = requests.Session()
    session.trust_env = False
    session.verify = ca
    body = _envelope(
        "<c:connectivityTest><c:echoBack>bench</c:echoBack></c:connectivityTest>"
    )

    def send(_message: bytes) -> str:
        reply = session.post(
            url,
            data=body,
            headers={"Content-Type": "application/soap+xml; charset=utf-8"},
            timeout=120,
        )
        return (
            "echo" if reply.status_code == 200 and b"bench" in reply.content else "bad"
        )

    return send, session.close


def _line(
    what: str,
    elapsed: float,
    lat: list[float],
    codes: dict[str, int],
    unit: str = "VXU",
) -> str:
    return (
        f"{what}: {len(lat)} {unit} in {elapsed:.2f} s = {len(lat) / elapsed:.0f} {unit}/s; "
        f"answer p50 {percentile(lat, 50):.1f} ms, p99 {percentile(lat, 99):.1f} ms; "
        f"answers {dict(sorted(codes.items()))}"
    )


def run(args: argparse.Namespace) -> list[str]:
    """The four measurements, in one run; returns the result lines."""
    lines = [header()]
    corpus = messages(args.messages, seed=4242)
    n = args.senders
    rates: dict[str, float] = {}

    def record(
        key: str,
        what: str,
        result: tuple[float, list[float], dict[str, int]],
        unit: str = "VXU",
    ) -> None:
        elapsed, lat, codes = result
        rates[key] = len(lat) / elapsed
        lines.append(_line(what, elapsed, lat, codes, unit))
        print(lines[-1], flush=True)

    with tempfile.TemporaryDirectory() as tmp_text:
        tmp = Path(tmp_text)
        ca = CertificateAuthority(tmp)
        server_cert = ca.issue("localhost", server=True)
        client_cert = ca.issue("bench-clinic")

        # 1. MLLP, plaintext, open.
        with tempfile.TemporaryDirectory() as one:
            server = _start(Path(one), "", http=False)
            try:
                record(
                    "mllp",
                    f"MLLP plaintext, {n} senders",
                    _drive(split(corpus, n), lambda: _mllp(server, None)),
                )
            finally:
                server.stop()

        # 2. MLLP over TLS, client certificate -> organization.
        with tempfile.TemporaryDirectory() as two:
            server = _start(
                Path(two),
                f'\n[server]\nauth = "tls"\ntls_certificate = "{server_cert.cert_path}"\n'
                f'tls_private_key_file = "{server_cert.key_path}"\n'
                f'tls_client_ca_file = "{ca.cert_path}"\n',
                http=False,
            )
            try:
                _organization(server, fingerprint=client_cert.fingerprint)
                context = ssl.create_default_context(cafile=str(ca.cert_path))
                context.load_cert_chain(client_cert.cert_path, client_cert.key_path)
                record(
                    "mllp-tls",
                    f"MLLP over TLS (client certificate), {n} senders",
                    _drive(split(corpus, n), lambda: _mllp(server, context)),
                )
            finally:
                server.stop()

        # 3. SOAP 1.2 over HTTPS, credentials in every request.
        with tempfile.TemporaryDirectory() as three:
            server = _start(
                Path(three),
                f'\n[http]\nlisten = "127.0.0.1:0"\n'
                f'tls_certificate = "{server_cert.cert_path}"\n'
                f'tls_private_key_file = "{server_cert.key_path}"\n'
                f'\n[soap]\nenabled = true\nwsdl = "{WSDL}"\n',
                http=True,
            )
            try:
                _organization(server, user=True)
                assert server.http is not None
                url = f"https://localhost:{server.http[1]}/soap"
                # One login first, timed on its own (argon2): then the steady
                # state an EHR interface is in.
                send, close = _soap(url, str(ca.cert_path))
                started = time.perf_counter()
                send(messages(1, seed=99)[0])
                first = (time.perf_counter() - started) * 1000
                close()
                record(
                    "soap",
                    "SOAP submitSingleMessage over HTTPS (credentials checked by the "
                    "identity service on every request, which remembers the login; "
                    f"the first one took {first:.0f} ms), {n} senders",
                    _drive(split(corpus, n), partial(_soap, url, str(ca.cert_path))),
                )
                record(
                    "echo",
                    "SOAP connectivityTest over HTTPS (no credentials, no pipeline), "
                    f"{n} senders",
                    _drive(split(corpus, n), partial(_echo, url, str(ca.cert_path))),
                    unit="calls",
                )
            finally:
                server.stop()
    lines.append(
        "note: measured on a 2-core machine shared with other engineers' builds and "
        "test runs, busy during this run; the load generator (8 Python client "
        "threads, requests+TLS for SOAP) runs on the same cores. Compare the "
        "ratios of one run, not figures across runs."
    )
    lines.append(
        f"ratios (same run): MLLP TLS / MLLP plaintext = {rates['mllp-tls'] / rates['mllp']:.2f}; "
        f"SOAP HTTPS / MLLP plaintext = {rates['soap'] / rates['mllp']:.2f}; "
        f"SOAP HTTPS / MLLP TLS = {rates['soap'] / rates['mllp-tls']:.2f}"
    )
    print(lines[-1], flush=True)
    return lines


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=800)
    parser.add_argument("--senders", type=int, default=8)
    run(parser.parse_args())


if __name__ == "__main__":
    # A bench never hangs on a dead server.
    socket.setdefaulttimeout(300)
    main()
