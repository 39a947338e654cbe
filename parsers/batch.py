"""Split files of HL7 messages: batch envelopes, plain files, MLLP-framed files.

A batch file wraps messages in ``FHS``/``BHS`` ... ``BTS``/``FTS`` (REFERENCE
§1); a single batch may omit FHS/FTS, and a plain file of messages omits both.
Segments may end in CR, LF or CRLF; they are normalized to CR. Each message
starts at an ``MSH`` segment.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

_SPLIT = re.compile(rb"\r\n|\r|\n")
_ENVELOPE = (b"FHS", b"BHS", b"BTS", b"FTS")


@dataclass(frozen=True, slots=True)
class Batch:
    """The messages of a file and what its envelope said."""

    messages: tuple[bytes, ...]
    header: bytes = b""
    trailer_count: int | None = None
    envelope_segments: tuple[bytes, ...] = field(default=())


def _segments(data: bytes) -> list[bytes]:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    # MLLP-framed files: drop the framing bytes.
    data = data.replace(b"\x0b", b"\r").replace(b"\x1c", b"\r")
    return [seg for seg in _SPLIT.split(data) if seg.strip()]


def read_batch(data: bytes) -> Batch:
    """Read a file's messages and its batch envelope, if any."""
    messages: list[bytes] = []
    current: list[bytes] = []
    header = b""
    trailer: int | None = None
    envelope: list[bytes] = []
    for seg in _segments(data):
        seg_id = seg[:3]
        if seg_id in _ENVELOPE:
            if current:
                messages.append(b"\r".join(current) + b"\r")
                current = []
            envelope.append(seg)
            if seg_id in (b"FHS", b"BHS") and not header:
                header = seg
            elif seg_id == b"BTS" and len(seg) > 4:
                count = seg.split(seg[3:4])[1] if len(seg.split(seg[3:4])) > 1 else b""
                trailer = int(count) if count.strip().isdigit() else None
            continue
        if seg_id == b"MSH" and current:
            messages.append(b"\r".join(current) + b"\r")
            current = []
        current.append(seg)
    if current:
        messages.append(b"\r".join(current) + b"\r")
    return Batch(tuple(messages), header, trailer, tuple(envelope))


def iter_messages(data: bytes) -> Iterator[bytes]:
    """The messages of a file, in order."""
    yield from read_batch(data).messages
