"""MLLP framing: the pure decoder, however the bytes arrive."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.mllp import Frame, FrameDecoder, Oversize, Truncated, encode_frame


def test_decoder_reads_a_frame_split_byte_by_byte() -> None:
    """A frame fed one byte at a time comes out whole, once."""
    decoder = FrameDecoder()
    events = []
    for byte in encode_frame(b"MSH|^~\\&|A"):
        events.extend(decoder.feed(bytes([byte])))
    assert events == [Frame(b"MSH|^~\\&|A")]


def test_decoder_reads_two_frames_in_one_chunk() -> None:
    """Two frames in one read give two messages, in order."""
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(b"one") + encode_frame(b"two")) == [
        Frame(b"one"),
        Frame(b"two"),
    ]


def test_decoder_discards_junk_before_start_block() -> None:
    """Bytes before VT are junk and are dropped."""
    assert FrameDecoder().feed(b"garbage\r\n" + encode_frame(b"msg")) == [Frame(b"msg")]


def test_decoder_handles_end_block_split_across_reads() -> None:
    """FS at the end of one read and CR at the start of the next end the frame."""
    decoder = FrameDecoder()
    assert decoder.feed(b"\x0bmsg\x1c") == []
    assert decoder.feed(b"\r") == [Frame(b"msg")]


def test_decoder_reports_truncated_frame_then_reads_the_next() -> None:
    """A new VT before the end block abandons the partial frame; the next one is read."""
    decoder = FrameDecoder()
    events = decoder.feed(b"\x0bMSH|half" + encode_frame(b"whole"))
    assert events == [Truncated(8), Frame(b"whole")]


def test_decoder_reports_oversize_without_buffering_it() -> None:
    """A message over the limit gives Oversize with its head, and memory stays bounded."""
    decoder = FrameDecoder(max_message_bytes=1024)
    assert decoder.feed(b"\x0bMSH|big" + b"x" * 5000) == []
    assert decoder.buffered <= 1
    for _ in range(100):
        decoder.feed(b"y" * 10000)
        assert decoder.buffered <= 1
    events = decoder.feed(b"\x1c\r" + encode_frame(b"next"))
    assert isinstance(events[0], Oversize)
    assert events[0].head.startswith(b"MSH|big")
    assert events[1] == Frame(b"next")


def test_decoder_accepts_message_exactly_at_the_limit() -> None:
    """A message of exactly the limit is accepted."""
    assert FrameDecoder(max_message_bytes=10).feed(encode_frame(b"0123456789")) == [
        Frame(b"0123456789")
    ]


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(
        st.binary(min_size=1, max_size=200).map(
            lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b"") or b"x"
        ),
        max_size=6,
    ),
    cuts=st.lists(st.integers(min_value=1, max_value=50), max_size=40),
)
def test_decoder_property_any_chunking_gives_the_same_frames(
    messages: list[bytes], cuts: list[int]
) -> None:
    """However the stream is cut into reads, the same frames come out in order."""
    stream = b"".join(encode_frame(m) for m in messages)
    decoder = FrameDecoder()
    events = []
    pos = 0
    for cut in cuts:
        events.extend(decoder.feed(stream[pos : pos + cut]))
        pos += cut
    events.extend(decoder.feed(stream[pos:]))
    assert events == [Frame(m) for m in messages]
