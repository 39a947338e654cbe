"""Bounded resources per peer through a real server and real sockets (issue 18 item 7).

The rules are driven with a fake clock in tests/listeners/test_mllp.py;
here one server with a short frame deadline and a small per-address cap
shows that they are what ``cairn serve`` does on the wire.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import CONFIG, ServerProcess, start_server
from tests.support.messages import Dose, vxu
from tests.support.mllp import MllpTestClient, msa_code

pytestmark = pytest.mark.e2e

LIMITS = """
[server]
idle_timeout_seconds = 300.0
frame_timeout_seconds = 1.0
max_connections_per_address = 3
"""


@pytest.fixture(name="server", scope="module")
def _server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_server(
        tmp_path_factory.mktemp("limits"), config_text=CONFIG + LIMITS
    )
    try:
        yield server
    finally:
        assert server.stop() == 0


def test_peer_trickled_frame_is_closed_at_the_frame_deadline(
    server: ServerProcess,
) -> None:
    """A frame sent a byte every 0.2 s never completes: the server closes the connection."""
    with MllpTestClient(server.host, server.port) as client:
        client.send_raw(b"\x0bMSH|^~\\&|")
        closed = False
        # Bounded: the trickle stops after 60 s whatever happens.
        for _ in range(300):
            try:
                client.send_raw(b"x")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if client.closed_by_server(timeout=0.2):
                closed = True
                break
        assert closed
    # The server's output is read by another thread: give it time to arrive.
    deadline = time.monotonic() + 30
    while not any('"frame_timeout"' in line for line in list(server.output)):
        assert time.monotonic() < deadline, "no frame_timeout line in the log"
        time.sleep(0.1)
    assert msa_code(server.send(vxu(doses=[Dose()]))) == "AA"


def test_peer_connections_over_the_per_address_cap_are_closed(
    server: ServerProcess,
) -> None:
    """A fourth connection from one address is closed; the three others still work."""
    clients = [MllpTestClient(server.host, server.port) for _ in range(3)]
    try:
        for client in clients:
            # Each is accepted before the next connects.
            assert msa_code(client.send_message(vxu(doses=[Dose()]).encode())) == "AA"
        extra = socket.create_connection((server.host, server.port), timeout=30)
        extra.settimeout(30)
        try:
            assert extra.recv(10) == b""
        finally:
            extra.close()
        assert msa_code(clients[0].send_message(vxu(doses=[Dose()]).encode())) == "AA"
    finally:
        for client in clients:
            client.close()
    # Closed connections give their share back.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if msa_code(server.send(vxu(doses=[Dose()]))) == "AA":
            break
        time.sleep(0.1)
    else:
        pytest.fail("the address's connections were not given back")
