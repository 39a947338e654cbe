"""VXU ingest through a real server and a real MLLP client."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.e2e.conftest import ServerProcess
from tests.support.messages import Dose, vxu
from tests.support.mllp import MllpTestClient, errs, msa_code, segments

pytestmark = pytest.mark.e2e


def _count(server: ServerProcess, table: str) -> int:
    return int(str(server.query(f"SELECT count(*) FROM {table}")[0][0]))


def _last_id(server: ServerProcess, table: str) -> int:
    return int(str(server.query(f"SELECT coalesce(max(id), 0) FROM {table}")[0][0]))


# These tests share one server per backend (starting it is most of their
# time): each uses its own control ids and record numbers, and asserts on the
# rows it added, never on whole tables.


def test_ingest_clean_vxu_is_acknowledged_after_storage(
    shared_server: ServerProcess,
) -> None:
    """A clean VXU gets AA echoing MSH-10, and its patient and doses are stored."""
    server = shared_server
    after = _last_id(server, "vaccinations")
    reply = server.send(
        vxu(
            control_id="CLEAN-1",
            mrn="E2E-CLEAN",
            doses=[Dose(cvx="08"), Dose(cvx="20", date="20240301")],
        )
    )
    msh = segments(reply)[0]
    assert msh[8] == "ACK^V04^ACK"
    assert msh[-1].startswith("Z23")
    assert segments(reply)[1][:3] == ["MSA", "AA", "CLEAN-1"]
    assert server.query(
        "SELECT cvx FROM vaccinations WHERE id > ? ORDER BY cvx", (after,)
    ) == [("08",), ("20",)]
    assert server.query(
        "SELECT ack_code FROM message_journal WHERE control_id = 'CLEAN-1'"
    ) == [("AA",)]


def test_ingest_garbage_bytes_get_a_reject_and_server_stays_up(
    shared_server: ServerProcess,
) -> None:
    """A frame of garbage gets an AR naming MSH, and the next message is served."""
    with shared_server.client() as client:
        reply = client.send_message(b"\x00\xffthis is not hl7 at all")
        assert msa_code(reply) == "AR"
        assert "MSH" in errs(reply)[0][2]
        ok = client.send_message(
            vxu(control_id="AFTER-GARBAGE", mrn="E2E-GARBAGE", doses=[Dose()]).encode()
        )
        assert msa_code(ok) == "AA"


def test_ingest_truncated_frame_then_valid_frame(shared_server: ServerProcess) -> None:
    """A frame cut off by a new start block is dropped; the valid frame after it is answered."""
    server = shared_server
    after = _last_id(server, "message_journal")
    valid = vxu(control_id="AFTER-TRUNC", mrn="E2E-TRUNC", doses=[Dose()]).encode()
    with server.client() as client:
        client.send_raw(b"\x0bMSH|^~\\&|HALF")
        reply = client.send(b"\x0b" + valid + b"\x1c\r")
    segs = segments(reply)
    assert segs[1][:3] == ["MSA", "AA", "AFTER-TRUNC"]
    assert server.query(
        "SELECT control_id FROM message_journal WHERE id > ?", (after,)
    ) == [("AFTER-TRUNC",)]


def test_ingest_5mb_message_is_rejected_and_connection_closed(
    shared_server: ServerProcess,
) -> None:
    """A 5 MB message gets an AR reject and the connection is closed; the server stays up."""
    server = shared_server
    journal = _count(server, "message_journal")
    huge = vxu(
        control_id="HUGE-1",
        mrn="E2E-HUGE",
        doses=[Dose()],
        extra_segments=["NTE|1||" + "x" * (5 * 1024 * 1024)],
    )
    with server.client() as client:
        try:
            reply = client.send_message(huge.encode())
        except (BrokenPipeError, ConnectionResetError):
            reply = client.read_frame()
        assert msa_code(reply) == "AR"
        assert client.closed_by_server()
    assert _count(server, "message_journal") == journal
    assert (
        msa_code(
            server.send(vxu(control_id="AFTER-HUGE", mrn="E2E-HUGE", doses=[Dose()]))
        )
        == "AA"
    )


def test_ingest_idle_connection_is_closed(tmp_path: Path) -> None:
    """An idle connection is closed after the configured timeout."""
    from tests.e2e.conftest import CONFIG, start_server

    server = start_server(
        tmp_path, config_text=CONFIG + "\n[server]\nidle_timeout_seconds = 1.0\n"
    )
    try:
        with MllpTestClient(server.host, server.port) as client:
            assert client.closed_by_server(timeout=10)
    finally:
        assert server.stop() == 0


def test_ingest_many_connections_at_once(shared_server: ServerProcess) -> None:
    """Twenty connections each sending messages are all answered."""
    server = shared_server
    patients = _count(server, "patients")
    clients = [server.client() for _ in range(20)]
    try:
        for i, client in enumerate(clients):
            assert (
                msa_code(
                    client.send_message(
                        vxu(
                            control_id=f"MANY-{i}", mrn=f"E2E-MANY{i}", doses=[Dose()]
                        ).encode()
                    )
                )
                == "AA"
            )
    finally:
        for client in clients:
            client.close()
    assert _count(server, "patients") == patients + 20


def test_ingest_sigterm_shuts_down_cleanly(tmp_path: Path) -> None:
    """SIGTERM stops the listener and the process exits 0."""
    from tests.e2e.conftest import start_server

    server = start_server(tmp_path)
    assert msa_code(server.send(vxu(control_id="BEFORE-TERM", doses=[Dose()]))) == "AA"
    assert server.stop() == 0
    with pytest.raises(OSError):
        socket.create_connection((server.host, server.port), timeout=2)
