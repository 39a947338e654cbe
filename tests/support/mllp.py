"""An MLLP test client built on python-hl7's ``MLLPClient``, our independent peer.

python-hl7's client reads one ``recv`` for the reply; a long ACK can span
several, so :meth:`MllpTestClient.send` keeps reading until the end block.
"""

from __future__ import annotations

from hl7.client import MLLPClient

VT, FS, CR = b"\x0b", b"\x1c", b"\r"


class MllpTestClient(MLLPClient):  # type: ignore[misc]
    """python-hl7's MLLP client, reading whole frames."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        super().__init__(host, port)
        self.socket.settimeout(timeout)
        self._buffer = b""

    def send(self, data: bytes) -> bytes:
        """Send framed bytes and return the payload of the next reply frame."""
        self.socket.sendall(data)
        return self.read_frame()

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (framing included or not)."""
        self.socket.sendall(data)

    def read_frame(self) -> bytes:
        """Read until a complete frame; b"" when the server closed first."""
        while FS + CR not in self._buffer:
            chunk = self.socket.recv(65536)
            if not chunk:
                return b""
            self._buffer += chunk
        end = self._buffer.index(FS + CR)
        frame, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
        start = frame.find(VT)
        return frame[start + 1 :] if start >= 0 else frame

    def closed_by_server(self, timeout: float = 5.0) -> bool:
        """Whether the server closes the connection (reads EOF) within ``timeout``."""
        self.socket.settimeout(timeout)
        try:
            while True:
                chunk = self.socket.recv(65536)
                if not chunk:
                    return True
                self._buffer += chunk
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True


def segments(payload: bytes) -> list[list[str]]:
    """Split a response into segments and fields (standard delimiters)."""
    return [seg.split("|") for seg in payload.decode("utf-8").split("\r") if seg]


def msa_code(payload: bytes) -> str:
    """MSA-1 of a response."""
    for seg in segments(payload):
        if seg[0] == "MSA":
            return seg[1]
    return ""


def errs(payload: bytes) -> list[list[str]]:
    """The ERR segments of a response."""
    return [seg for seg in segments(payload) if seg[0] == "ERR"]
