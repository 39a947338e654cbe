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
advises (REFERENCE §1). Only FS *followed by* CR ends a frame: an FS that is
the last byte of one read is held, and ends the frame if the next read starts
with CR; an FS followed by anything else is kept as message data (so a sender
that omits the CR and starts the next frame gets a :class:`Truncated` event,
which is logged, rather than a guess). A frame that never ends is bounded by
the size limit; closing a stalled connection is the listener's idle timeout.
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

    Feed it the bytes of one connection as they arrive; each call returns the
    events those bytes complete. Every byte is searched once (``bytes.find``
    from where the previous search stopped), so a frame split into many reads,
    even byte by byte, costs linear time.

    Args:
        max_message_bytes: the largest message accepted (default 1 MiB).
    """

    def __init__(self, max_message_bytes: int = 1024 * 1024) -> None:
        self._max = max_message_bytes
        self._buffer = bytearray()
        self._in_frame = False
        # Bytes of the buffer already searched for FS CR and VT without a hit.
        self._scanned = 0
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

    def _start_frame(self) -> None:
        self._in_frame = True
        self._scanned = 0
        self._discarding = False
        self._discarded = 0
        self._oversize_head = b""

    def feed(self, data: bytes) -> list[FrameEvent]:
        """Take received bytes; return the events they complete, in order."""
        events: list[FrameEvent] = []
        buf = self._buffer
        buf += data
        while buf:
            if not self._in_frame:
                start = buf.find(VT)
                if start < 0:
                    buf.clear()  # junk outside a frame
                    break
                del buf[: start + 1]
                self._start_frame()
                continue
            # An FS left at the end of the previous read may pair with a CR now.
            end = buf.find(END, max(self._scanned - 1, 0))
            restart = buf.find(VT, self._scanned, len(buf) if end < 0 else end)
            if restart >= 0:
                # A new start block before the end block: the sender gave up on
                # this frame. Drop what came before it and read the new one.
                events.append(Truncated(self._discarded + restart))
                del buf[:restart]
                self._in_frame = False
                continue
            if end < 0:
                self._scanned = len(buf)
                if self._discarding or len(buf) > self._max + 1:
                    # Over the limit (``+ 1``: a message of exactly the limit
                    # may be followed by the FS of a split end block). Keep the
                    # head once, then hold nothing but a possible trailing FS.
                    if not self._discarding:
                        self._oversize_head = bytes(buf[:HEAD_BYTES])
                        self._discarding = True
                    keep = 1 if buf.endswith(FS) else 0
                    self._discarded += len(buf) - keep
                    del buf[: len(buf) - keep]
                    self._scanned = keep
                break
            if self._discarding:
                events.append(Oversize(self._oversize_head))
            elif end > self._max:
                events.append(Oversize(bytes(buf[:HEAD_BYTES])))
            else:
                events.append(Frame(bytes(buf[:end])))
            del buf[: end + len(END)]
            self._in_frame = False
            self._discarding = False
            self._oversize_head = b""
        return events
