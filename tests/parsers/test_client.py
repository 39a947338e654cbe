"""The MLLP client used by `cairn send`, against a tiny threaded server."""

from __future__ import annotations

import socket
import threading

import pytest

from parsers.client import (
    Answer,
    MllpSender,
    ack_code,
    acknowledged_control_id,
    expectation,
)
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


def test_ack_code_is_empty_without_msa() -> None:
    """A reply that is not HL7, or has no MSA, has no ack code."""
    assert ack_code(b"garbage") == ""
    assert ack_code(b"") == ""
    assert ack_code(b"MSH|^~\\&|S\rERR|x\r") == ""


def test_ack_code_reads_the_first_of_repeated_msa_and_lf_endings() -> None:
    """An ACK with LF endings and a repeated MSA gives the first MSA-1."""
    assert ack_code(b"MSH|^~\\&|S\nMSA|AR|1\nMSA|AA|1\n") == "AR"


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


def _msh(msh9: str, msh15: str = "", msh16: str = "", control_id: str = "C1") -> bytes:
    fields = ["MSH", "^~\\&", "APP", "FAC", "CAIRN", "CAIRN", "20240101", ""]
    fields += [msh9, control_id, "P", "2.5.1", "", "", msh15, msh16]
    return ("|".join(fields) + "\rPID|1\r").encode()


@pytest.mark.parametrize(
    ("msh9", "msh15", "msh16", "answer"),
    [
        ("VXU^V04^VXU_V04", "ER", "AL", Answer.ALWAYS),
        ("VXU^V04^VXU_V04", "", "", Answer.ALWAYS),
        ("VXU^V04^VXU_V04", "", "XX", Answer.ALWAYS),
        ("VXU^V04^VXU_V04", "", "er", Answer.SOMETIMES),
        ("VXU^V04^VXU_V04", "NE", "ER", Answer.SOMETIMES),
        ("VXU^V04^VXU_V04", "AL", "ER", Answer.ALWAYS),
        ("QBP^Q11^QBP_Q11", "", "SU", Answer.SOMETIMES),
        ("VXU^V04^VXU_V04", "AL", "NE", Answer.NEVER),
        ("ACK^V04^ACK", "", "AL", Answer.NEVER),
        ("RSP^K11^RSP_K11", "", "", Answer.NEVER),
    ],
)
def test_expectation_follows_msh15_and_msh16_as_the_engine_does(
    msh9: str, msh15: str, msh16: str, answer: Answer
) -> None:
    """NE never, ER (unless MSH-15 is AL) and SU sometimes, anything else always."""
    assert expectation(_msh(msh9, msh15, msh16)).answer is answer


def test_expectation_reads_type_and_control_id_with_the_message_delimiters() -> None:
    """MSH-9.1 and MSH-10 come out with whatever delimiters MSH-1/MSH-2 declare."""
    found = expectation(b"MSH#$*%@#A#F#R#RF#2024##VXU$V04#ID-7#P#2.5.1####ER\r")
    assert (found.message_type, found.control_id, found.mode) == ("VXU", "ID-7", "ER")


def test_expectation_of_unreadable_bytes_is_an_answer() -> None:
    """Bytes without an MSH are answered by an AR, so the sender waits for it."""
    assert expectation(b"garbage\r").answer is Answer.ALWAYS
    assert expectation(b"").answer is Answer.ALWAYS


def test_acknowledged_control_id_reads_msa2() -> None:
    """MSA-2 names the message an answer belongs to."""
    assert acknowledged_control_id(b"MSH|^~\\&|S\rMSA|AE|ID-9\r") == "ID-9"
    assert acknowledged_control_id(b"MSH|^~\\&|S\r") == ""


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
