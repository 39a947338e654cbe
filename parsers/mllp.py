"""MLLP framing (VT ... FS CR), as a pure, incremental decoder.

A frame is ``0x0B`` + message + ``0x1C 0x0D``. The decoder takes bytes as they
arrive, in pieces of any size, and yields events:

- :class:`Frame`: a complete message;
- :class:`Oversize`: a message longer than the limit; its first bytes are
  kept so the engine can still read its MSH and answer with a reject, the
  rest is discarded up to the end of the frame without being buffered;
- :class:`Truncated`: a frame cut off by a new start block (the sender gave
  up on it and started over); the part received is dropped.

Bytes outside a frame (before a VT) are junk and are discarded, as the guide
advises. An FS not followed by CR ends the frame only if the next byte is a
CR; an FS inside a message is kept as data.
"""

from __future__ import annotations

from dataclasses import dataclass

VT = b"\x0b"
FS = b"\x1c"
CR = b"\r"
END = FS + CR

#: How much of an oversize message is kept to answer it.
HEAD_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Frame:
    """A complete message."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Oversize:
    """A message over the size limit; ``head`` is its first bytes."""

    head: bytes


@dataclass(frozen=True, slots=True)
class Truncated:
    """A frame abandoned by a new start block before its end block."""

    length: int


FrameEvent = Frame | Oversize | Truncated


def encode_frame(payload: bytes) -> bytes:
    """Wrap a message in an MLLP frame."""
    return VT + payload + END


class FrameDecoder:
    """Incremental MLLP frame decoder.

    Args:
        max_message_bytes: the largest message accepted (default 1 MiB).
    """

    def __init__(self, max_message_bytes: int = 1024 * 1024) -> None:
        self._max = max_message_bytes
        self._buffer = bytearray()
        self._in_frame = False
        self._discarding = False
        self._discarded = 0
        self._oversize_head = b""

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the rest of a frame."""
        return len(self._buffer)

    @property
    def in_frame(self) -> bool:
        """Whether a frame has started and not yet ended."""
        return self._in_frame

    def feed(self, data: bytes) -> list[FrameEvent]:
        """Take received bytes; return the events they complete."""
        events: list[FrameEvent] = []
        buf = self._buffer
        buf += data
        while buf:
            if not self._in_frame:
                start = buf.find(VT)
                if start < 0:
                    # Junk outside a frame: drop it, but keep a trailing byte
                    # in case it is nothing (no VT can be split).
                    buf.clear()
                    break
                del buf[: start + 1]
                self._in_frame = True
                self._discarding = False
                self._discarded = 0
                continue
            end = buf.find(END)
            restart = buf.find(VT)
            if restart >= 0 and (end < 0 or restart < end):
                # A new start block before the end block: the frame was
                # abandoned. Drop what came before it and start over.
                events.append(Truncated(self._discarded + restart))
                del buf[:restart]
                self._in_frame = False
                continue
            if end < 0:
                if self._discarding or len(buf) > self._max + 1:
                    if not self._discarding:
                        self._oversize_head = bytes(buf[:HEAD_BYTES])
                        self._discarding = True
                    # Keep the last byte: it may be the FS of a split FS CR.
                    keep = buf[-1:] if buf[-1:] == FS else b""
                    self._discarded += len(buf) - len(keep)
                    buf[:] = keep
                break
            if self._discarding or end > self._max:
                head = (
                    self._oversize_head if self._discarding else bytes(buf[:HEAD_BYTES])
                )
                events.append(Oversize(head))
            else:
                events.append(Frame(bytes(buf[:end])))
            del buf[: end + 2]
            self._in_frame = False
            self._discarding = False
            self._discarded = 0
            self._oversize_head = b""
        return events
