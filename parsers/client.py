"""A blocking MLLP client for ``cairn send`` and tests, on python-hl7's MLLPClient.

python-hl7's client sends with ``socket.send`` and reads a single ``recv``;
a large message or a long acknowledgement can need several, so ``send`` here
writes everything and reads until the end block.
"""

from __future__ import annotations

import socket
from types import TracebackType

from hl7.client import MLLPClient

from parsers.mllp import END, VT, encode_frame


class MllpSender:
    """One MLLP connection that sends messages and waits for each reply.

    Args:
        host: the server.
        port: its port.
        timeout: seconds to wait for a reply.
    """

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self._client = MLLPClient(host, port)
        self._client.socket.settimeout(timeout)
        self._buffer = b""

    def __enter__(self) -> MllpSender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._client.close()

    def send_only(self, message: bytes) -> None:
        """Send a message that gets no answer (an ACK, or MSH-16 NE)."""
        sock: socket.socket = self._client.socket
        sock.sendall(encode_frame(message))

    def send(self, message: bytes) -> bytes:
        """Send one message and return the reply's payload (b"" if the server closed)."""
        sock: socket.socket = self._client.socket
        sock.sendall(encode_frame(message))
        while END not in self._buffer:
            chunk = sock.recv(65536)
            if not chunk:
                return b""
            self._buffer += chunk
        end = self._buffer.index(END)
        frame, self._buffer = self._buffer[:end], self._buffer[end + len(END) :]
        start = frame.find(VT)
        return frame[start + 1 :] if start >= 0 else frame


def ack_code(response: bytes) -> str:
    """MSA-1 of a response (``""`` when there is none)."""
    text = response.decode("utf-8", errors="replace")
    for segment in text.replace("\n", "\r").split("\r"):
        if segment.startswith("MSA") and len(segment) > 4:
            return segment.split(segment[3])[1].strip()
    return ""
