"""A blocking MLLP client for ``cairn send``, the benchmarks and tests.

It lives in ``engine`` because it does socket I/O: ``parsers`` stays pure and
keeps only the framing (``parsers.mllp``) and the reading of answers
(``parsers.client``).

It follows python-hl7's ``hl7.client.MLLPClient`` (a plain blocking socket,
the message wrapped in VT ... FS CR, bytes sent as they are) but does not use
it, because that class does not fit a sender that must never lose an answer:

- it connects IPv4 only and with no timeout (a dead host hangs the command);
- ``send`` uses one ``socket.send``, which may write only part of a frame;
- it reads a single ``recv(4096)`` and returns it still framed, so a longer
  acknowledgement (an RSP with a forecast easily is) comes back cut short and
  the rest is read as the answer to the next message.

So this client connects with ``socket.create_connection`` and a timeout,
writes with ``sendall`` and reads until the end block, keeping any bytes that
follow for the next answer. Payloads stay ``bytes`` end to end: nothing is
decoded on the way.
"""

from __future__ import annotations

import socket
import ssl
from types import TracebackType

from parsers.mllp import END, VT, encode_frame

_RECV_BYTES = 65536


class MllpSender:
    """One MLLP connection that sends messages and waits for each reply.

    Args:
        host: the server (name, IPv4 or IPv6 address).
        port: its port.
        timeout: seconds to wait to connect and for each reply.
        tls: a client TLS context (with the client certificate) for a TLS
            listener; None for plain MLLP.

    Raises:
        OSError: the connection could not be made (``TimeoutError`` included;
            ``ssl.SSLError``, an ``OSError``, when the TLS handshake fails).
    """

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float = 30.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        raw = socket.create_connection((host, port), timeout=timeout)
        if tls is not None:
            try:
                raw = tls.wrap_socket(raw, server_hostname=host)
            except OSError:
                raw.close()
                raise
        self._socket = raw
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
        self._socket.close()

    def send_only(self, message: bytes) -> None:
        """Send a message that gets no answer (an ACK, or MSH-16 NE).

        Raises:
            OSError: the connection failed.
        """
        self._socket.sendall(encode_frame(message))

    def send(self, message: bytes) -> bytes:
        """Send one message and return the reply's payload, unframed.

        Returns:
            The reply, or ``b""`` if the server closed (or reset) the
            connection first: the message was not acknowledged.

        Raises:
            TimeoutError: no complete reply within the timeout.
            OSError: the connection failed.
        """
        self._socket.sendall(encode_frame(message))
        return self.receive()

    def receive(self, timeout: float | None = None) -> bytes:
        """Read the next reply's payload, unframed.

        Bytes of a reply that was still arriving when a wait timed out are
        kept, so the next call continues that reply rather than losing it.

        Args:
            timeout: seconds to wait for this reply; None for the
                connection's timeout.

        Returns:
            The reply, or ``b""`` if the server closed (or reset) the
            connection first.

        Raises:
            TimeoutError: no complete reply within the timeout.
            OSError: the connection failed.
        """
        previous = self._socket.gettimeout()
        if timeout is not None:
            self._socket.settimeout(timeout)
        try:
            while END not in self._buffer:
                try:
                    chunk = self._socket.recv(_RECV_BYTES)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    self._buffer = b""
                    return b""
                self._buffer += chunk
        finally:
            if timeout is not None:
                self._socket.settimeout(previous)
        end = self._buffer.index(END)
        frame, self._buffer = self._buffer[:end], self._buffer[end + len(END) :]
        start = frame.find(VT)  # bytes before VT are junk (REFERENCE §1)
        return frame[start + 1 :] if start >= 0 else frame
