"""The MLLP client used by `cairn send`, against a tiny threaded server."""

from __future__ import annotations

import socket
import threading

from parsers.client import MllpSender, ack_code
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


def test_ack_code_reads_msa1_with_any_delimiter() -> None:
    """MSA-1 is read with the message's own field separator."""
    assert ack_code(b"MSH#$*%@#A\rMSA#AE#X\r") == "AE"
    assert ack_code(b"garbage") == ""
