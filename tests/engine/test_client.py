"""The blocking MLLP client used by `cairn send` and the benchmarks, against a tiny threaded server."""

from __future__ import annotations

import socket
import threading

import pytest

from engine.client import MllpSender
from parsers.client import ack_code
from parsers.mllp import FrameDecoder, encode_frame


def _serve_once(server: socket.socket, replies: int) -> None:
    conn, _ = server.accept()
    decoder = FrameDecoder()
    answered = 0
    with conn:
        while answered < replies:
            data = conn.recv(65536)
            if not data:
                return
            for frame in decoder.feed(data):
                big = b"ERR|" + b"x" * 10000  # a reply longer than one recv
                conn.sendall(encode_frame(b"MSH|^~\\&|S\rMSA|AA|1\r" + big))
                answered += 1
                assert frame


def test_client_sends_and_reads_whole_replies() -> None:
    """Each message gets its whole reply, even when it spans several reads."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    thread = threading.Thread(target=_serve_once, args=(server, 2), daemon=True)
    thread.start()
    with MllpSender("127.0.0.1", server.getsockname()[1], timeout=5) as sender:
        first = sender.send(b"MSH|^~\\&|A\r")
        second = sender.send(b"MSH|^~\\&|B\r")
    server.close()
    assert ack_code(first) == "AA"
    assert len(second) > 10000


def test_client_returns_empty_when_server_closes_without_reply() -> None:
    """A server that closes before answering gives an empty reply, not an exception."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    thread = threading.Thread(target=_serve_once, args=(server, 0), daemon=True)
    thread.start()
    with MllpSender("127.0.0.1", server.getsockname()[1], timeout=5) as sender:
        assert sender.send(b"MSH|^~\\&|A\r") == b""
    server.close()


def test_client_times_out_when_no_reply_comes() -> None:
    """A server that never answers makes send raise TimeoutError after the timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    with MllpSender("127.0.0.1", server.getsockname()[1], timeout=0.2) as sender:
        try:
            sender.send(b"MSH|^~\\&|A\r")
        except TimeoutError:
            timed_out = True
        else:
            timed_out = False
    server.close()
    assert timed_out


def test_client_keeps_bytes_of_the_next_reply() -> None:
    """Two replies arriving in one read are returned one per send, with junk before VT dropped."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def answer_twice() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"\r\n" + encode_frame(b"ONE") + encode_frame(b"TWO"))
            conn.recv(65536)

    thread = threading.Thread(target=answer_twice, daemon=True)
    thread.start()
    with MllpSender("127.0.0.1", server.getsockname()[1], timeout=5) as sender:
        assert sender.send(b"MSH|a\r") == b"ONE"
        assert sender.send(b"MSH|b\r") == b"TWO"
    thread.join(5)
    server.close()


def test_client_receive_times_out_then_reads_the_reply_that_came_late() -> None:
    """A reply that comes after a short wait is still read whole by the next receive."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    release = threading.Event()

    def answer_late() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(encode_frame(b"MSH|^~\\&|S\rMSA|AA|X\r")[:5])
            release.wait(5)
            conn.sendall(encode_frame(b"MSH|^~\\&|S\rMSA|AA|X\r")[5:])
            conn.recv(65536)

    thread = threading.Thread(target=answer_late, daemon=True)
    thread.start()
    with MllpSender("127.0.0.1", server.getsockname()[1], timeout=5) as sender:
        sender.send_only(b"MSH|^~\\&|A\r")
        with pytest.raises(TimeoutError):
            sender.receive(0.1)
        release.set()
        assert ack_code(sender.receive()) == "AA"
    thread.join(5)
    server.close()
