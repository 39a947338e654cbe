"""A blocking MLLP client for ``cairn send`` and tests.

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

import enum
import socket
from dataclasses import dataclass
from types import TracebackType

import hl7

from parsers.mllp import END, VT, encode_frame

_RECV_BYTES = 65536


class MllpSender:
    """One MLLP connection that sends messages and waits for each reply.

    Args:
        host: the server (name, IPv4 or IPv6 address).
        port: its port.
        timeout: seconds to wait to connect and for each reply.

    Raises:
        OSError: the connection could not be made (``TimeoutError`` included).
    """

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self._socket = socket.create_connection((host, port), timeout=timeout)
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


def _msa_field(response: bytes, number: int) -> str:
    """One field of the first MSA, or ``""`` when there is none.

    Uses python-hl7's parser: this is the cold path, and it reads the
    delimiters from the response's own MSH.
    """
    text = response.decode("utf-8", errors="replace").replace("\r\n", "\r")
    text = text.replace("\n", "\r").lstrip("\ufeff")
    try:
        segments = hl7.parse(text).segments("MSA")
        return str(segments[0][number]).strip()
    except (hl7.ParseException, KeyError, IndexError):
        return ""


def ack_code(response: bytes) -> str:
    """MSA-1 of a response (the first MSA if several), or ``""`` when there is none."""
    return _msa_field(response, 1)


def acknowledged_control_id(response: bytes) -> str:
    """MSA-2 of a response: the control id (MSH-10) of the message it answers."""
    return _msa_field(response, 2)


class Answer(enum.Enum):
    """What a receiver that follows MSH-15/MSH-16 (original mode) will send back."""

    #: Always an answer: MSH-16 AL, empty or unknown, or the reversed
    #: MSH-15 AL / MSH-16 ER pair of older NIST messages (REFERENCE §1).
    ALWAYS = "always"
    #: Only some outcomes are answered: MSH-16 ER (errors only) or SU
    #: (successes only); silence is a correct answer to the others.
    SOMETIMES = "sometimes"
    #: Never: MSH-16 NE, or the message is itself an ACK or RSP.
    NEVER = "never"


@dataclass(frozen=True)
class Expectation:
    """What a sender may expect back for one message, read from its MSH.

    Attributes:
        answer: whether an answer will come.
        control_id: MSH-10, which the answer's MSA-2 echoes.
        message_type: MSH-9.1 (``VXU``, ``QBP``, ...), ``""`` when unreadable.
        mode: MSH-16 as sent (upper case, ``""`` when empty).
    """

    answer: Answer
    control_id: str
    message_type: str
    mode: str


def expectation(message: bytes) -> Expectation:
    """Read MSH-9, MSH-10, MSH-15 and MSH-16 of a message as the receiver will.

    The rules are the engine's (``engine.pipeline._wants_answer``): ``NE``
    never answers, ``ER`` answers errors only (but always when MSH-15 is
    ``AL``), ``SU`` successes only, anything else always. A message without
    a readable MSH is always answered (with an AR).
    """
    header = message.split(b"\r", 1)[0].split(b"\n", 1)[0].decode("latin-1")
    if len(header) < 5 or not header.startswith("MSH"):
        return Expectation(Answer.ALWAYS, "", "", "")
    fields = header.split(header[3])

    def field(number: int) -> str:
        # fields[1] is MSH-2: MSH-n is fields[n - 1].
        return fields[number - 1].strip() if len(fields) >= number else ""

    kind = field(9).split(header[4])[0].upper()
    mode = field(16).upper()
    if kind in {"ACK", "RSP"} or mode == "NE":
        answer = Answer.NEVER
    elif mode == "SU" or (mode == "ER" and field(15).upper() != "AL"):
        answer = Answer.SOMETIMES
    else:
        answer = Answer.ALWAYS
    return Expectation(answer, field(10), kind, mode)
