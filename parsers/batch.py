"""Split files of HL7 messages: batch envelopes, plain files, MLLP-framed files.

A batch file wraps messages in ``FHS``/``BHS`` ... ``BTS``/``FTS`` (REFERENCE
§1); a single batch may omit FHS/FTS, and a plain file of messages omits both.
Segments may end in CR, LF or CRLF (files are often edited on other systems);
they are normalized to CR, the only terminator HL7 allows. A UTF-8 byte-order
mark and MLLP framing bytes (a capture of a connection) are removed. Each
message starts at an ``MSH`` segment; anything before the first MSH that is
not part of the envelope is not a message and is counted, not returned.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_SPLIT = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"
_HEADERS = (b"FHS", b"BHS")
_ENVELOPE = (b"FHS", b"BHS", b"BTS", b"FTS")


@dataclass(frozen=True, slots=True)
class Batch:
    """The messages of a file and what its envelope said.

    Attributes:
        messages: each message, segments ending in CR.
        header: the first FHS (or BHS when there is no FHS), ``b""`` if none.
        trailer_count: the message count the BTS segments declare (BTS-1,
            summed over batches), ``None`` if there is no BTS with a count.
        envelope_segments: every FHS/BHS/BTS/FTS segment, in order.
        skipped_segments: segments before the first MSH that belong to no
            message and are not envelope segments.
    """

    messages: tuple[bytes, ...]
    header: bytes = b""
    trailer_count: int | None = None
    envelope_segments: tuple[bytes, ...] = ()
    skipped_segments: int = 0

    def header_field(self, n: int) -> bytes:
        """FHS-n (or BHS-n) of the header, numbered like MSH: field 1 is the separator.

        Returns:
            The field, ``b""`` when absent.
        """
        if len(self.header) < 4 or n < 1:
            return b""
        separator = self.header[3:4]
        if n == 1:
            return separator
        fields = self.header.split(separator)
        return fields[n - 1] if n - 1 < len(fields) else b""


def _segments(data: bytes) -> list[bytes]:
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    # MLLP-framed files: the framing bytes end segments, they are not data.
    data = data.replace(b"\x0b", b"\r").replace(b"\x1c", b"\r")
    return [seg for seg in _SPLIT.split(data) if seg.strip()]


def _count(segment: bytes) -> int | None:
    """BTS-1, the batch message count."""
    fields = segment.split(segment[3:4]) if len(segment) > 3 else []
    value = fields[1].strip() if len(fields) > 1 else b""
    return int(value) if value.isdigit() else None


def read_batch(data: bytes) -> Batch:
    """Read a file's messages and its batch envelope, if any.

    Args:
        data: the file's bytes.

    Returns:
        The messages (segments ending in CR) and the envelope's fields.
    """
    messages: list[bytes] = []
    current: list[bytes] = []
    header = b""
    trailer: int | None = None
    envelope: list[bytes] = []
    skipped = 0

    def finish() -> None:
        if current:
            messages.append(b"\r".join(current) + b"\r")
            current.clear()

    for seg in _segments(data):
        seg_id = seg[:3]
        if seg_id in _ENVELOPE:
            finish()
            envelope.append(seg)
            if seg_id in _HEADERS and not header:
                header = seg
            elif seg_id == b"BTS":
                count = _count(seg)
                if count is not None:
                    trailer = count + (trailer or 0)
            continue
        if seg_id == b"MSH":
            finish()
        elif not current:
            skipped += 1
            continue
        current.append(seg)
    finish()
    return Batch(tuple(messages), header, trailer, tuple(envelope), skipped)


def iter_messages(data: bytes) -> Iterator[bytes]:
    """The messages of a file, in order (segments ending in CR)."""
    yield from read_batch(data).messages
