"""MLLP ingest on an open, an ip and a TLS listener, measured in one run.

What authenticating every connection costs a sender: the same generated VXUs
sent by the same senders to `cairn serve` with ``server.auth`` open, ip
(address allow-list) and tls (client certificates, TLS 1.3), one server
after the other, each on a fresh SQLite database. Each sender opens one
connection (one TLS handshake, one organization look-up) and waits for every
ACK, as EHRs do. Prints VXU/s and ACK latency per mode, and each mode as a
ratio of the open listener measured in the same run.

Run: .venv/bin/python -m bench.auth [--senders 8] [--messages 2000]
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench._common import ROOT, header, percentile
from bench.ingest import Server, messages, split, start_server
from bench.synth import CLINICS
from parsers.client import ack_code
from parsers.mllp import encode_frame
from tests.support.certs import CertificateAuthority, Issued

_END = b"\x1c\r"


class _Connection:
    """One MLLP connection, plain or TLS, that waits for each reply."""

    def __init__(
        self, server: Server, context: ssl.SSLContext | None, timeout: float = 60.0
    ) -> None:
        raw = socket.create_connection((server.host, server.port), timeout=timeout)
        self._socket = (
            context.wrap_socket(raw, server_hostname="localhost") if context else raw
        )
        self._buffer = b""

    def send(self, message: bytes) -> bytes:
        self._socket.sendall(encode_frame(message))
        while _END not in self._buffer:
            chunk = self._socket.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self._buffer += chunk
        end = self._buffer.index(_END)
        frame, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
        return frame[frame.find(b"\x0b") + 1 :]

    def close(self) -> None:
        self._socket.close()


def _drive(
    server: Server, batches: list[list[bytes]], context: ssl.SSLContext | None
) -> tuple[float, list[float], dict[str, int]]:
    latencies: list[float] = []
    codes: dict[str, int] = {}
    lock = threading.Lock()

    def sender(batch: list[bytes]) -> None:
        local: list[float] = []
        local_codes: dict[str, int] = {}
        conn = _Connection(server, context)
        try:
            for message in batch:
                t0 = time.perf_counter()
                reply = conn.send(message)
                local.append((time.perf_counter() - t0) * 1000)
                code = ack_code(reply) or "none"
                local_codes[code] = local_codes.get(code, 0) + 1
        finally:
            conn.close()
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


def _register(data_dir: Path, env: dict[str, str], *credentials: str) -> None:
    """One provider organization that sends as every generated clinic."""
    facilities = [arg for clinic in CLINICS for arg in ("--facility", clinic)]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "org",
            "add",
            "BENCH",
            "--type",
            "provider",
            "--region",
            "BAY",
            *facilities,
            *credentials,
            "--max-messages-per-minute",
            "100000000",
            "--max-connections",
            "10000",
            "--data-dir",
            str(data_dir),
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


def _measure(
    mode: str, corpus: list[bytes], senders: int, tmp: Path
) -> tuple[float, list[float], dict[str, int]]:
    data_dir = tmp / mode / "var"
    data_dir.mkdir(parents=True)
    env = dict(os.environ)
    context: ssl.SSLContext | None = None
    if mode == "ip":
        env["CAIRN_SERVER__AUTH"] = "ip"
        _register(data_dir, env, "--allow-ip", "127.0.0.1/32")
    elif mode == "tls":
        ca = CertificateAuthority(tmp / mode)
        server_cert, client = ca.issue("localhost", server=True), ca.issue("bench")
        env |= {
            "CAIRN_SERVER__AUTH": "tls",
            "CAIRN_SERVER__TLS_CERTIFICATE": str(server_cert.cert_path),
            "CAIRN_SERVER__TLS_PRIVATE_KEY_FILE": str(server_cert.key_path),
            "CAIRN_SERVER__TLS_CLIENT_CA_FILE": str(ca.cert_path),
        }
        _register(data_dir, env, "--client-certificate", str(client.cert_path))
        context = _client_context(ca, client)
    server = start_server(
        data_dir,
        extra_env={k: v for k, v in env.items() if k.startswith("CAIRN_SERVER__")},
    )
    try:
        return _drive(server, split(corpus, senders), context)
    finally:
        server.stop()


def _client_context(ca: CertificateAuthority, client: Issued) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.cert_path))
    context.load_cert_chain(str(client.cert_path), str(client.key_path))
    return context


def run(args: argparse.Namespace) -> list[str]:
    """Measure each mode; return the result lines."""
    lines = [header()]
    corpus = messages(args.messages)
    base = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("open", "ip", "tls"):
            elapsed, lat, codes = _measure(mode, corpus, args.senders, Path(tmp))
            rate = len(lat) / elapsed
            base = base or rate
            lines.append(
                f"MLLP {mode:<4} listener, {args.senders} sender(s), SQLite: {len(lat)} VXU in "
                f"{elapsed:.2f} s = {rate:.0f} VXU/s ({rate / base:.2f} of open); "
                f"ACK p50 {percentile(lat, 50):.1f} ms, p99 {percentile(lat, 99):.1f} ms; "
                f"ACKs {dict(sorted(codes.items()))}"
            )
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--senders", type=int, default=8, help="concurrent connections")
    parser.add_argument("--messages", type=int, default=2000, help="VXUs per mode")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
