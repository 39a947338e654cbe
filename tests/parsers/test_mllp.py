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


def test_decoder_keeps_fs_not_followed_by_cr_as_data() -> None:
    """An FS followed by anything but CR is message data, even across reads."""
    decoder = FrameDecoder()
    assert decoder.feed(b"\x0bab\x1c") == []
    assert decoder.feed(b"cd\x1c\r") == [Frame(b"ab\x1ccd")]


def test_decoder_reports_fs_without_cr_before_next_frame_as_truncated() -> None:
    """A frame ended by FS alone is not guessed at: the next VT reports it truncated."""
    assert FrameDecoder().feed(b"\x0bab\x1c" + encode_frame(b"next")) == [
        Truncated(3),
        Frame(b"next"),
    ]


def test_decoder_reports_truncated_frame_fed_byte_by_byte() -> None:
    """A truncated frame then a valid one, fed a byte at a time, give the same events."""
    decoder = FrameDecoder()
    events = []
    for byte in b"junk\x0bMSH|half" + encode_frame(b"whole"):
        events.extend(decoder.feed(bytes([byte])))
    assert events == [Truncated(8), Frame(b"whole")]


def test_decoder_bounds_memory_for_oversize_fed_byte_by_byte() -> None:
    """An oversize frame arriving a byte at a time never holds more than the limit."""
    decoder = FrameDecoder(max_message_bytes=100)
    events = []
    for byte in encode_frame(b"MSH|" + b"z" * 1000):
        events.extend(decoder.feed(bytes([byte])))
        assert decoder.buffered <= 102
    assert events == [Oversize(b"MSH|" + b"z" * 98)]


def test_decoder_reports_oversize_frame_cut_off_by_a_new_frame() -> None:
    """An oversize frame abandoned by a new VT is reported truncated with its full length."""
    decoder = FrameDecoder(max_message_bytes=10)
    events = decoder.feed(b"\x0b" + b"a" * 50)
    events += decoder.feed(b"b" * 50 + encode_frame(b"ok"))
    assert events == [Truncated(100), Frame(b"ok")]


def test_decoder_does_not_keep_junk_between_frames() -> None:
    """Bytes between frames are dropped and nothing is held afterwards."""
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(b"a") + b"\r\n\x1c\rnoise") == [Frame(b"a")]
    assert decoder.buffered == 0
    assert not decoder.in_frame


def test_encode_frame_wraps_payload_in_vt_fs_cr() -> None:
    """A frame is VT, the payload, FS, CR."""
    assert encode_frame(b"MSH|x\r") == b"\x0bMSH|x\r\x1c\r"


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(
        st.binary(min_size=1, max_size=200).map(
            lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b"") or b"x"
        ),
        max_size=6,
    ),
    cuts=st.lists(st.integers(min_value=1, max_value=50), max_size=40),
    junk=st.binary(max_size=8).map(lambda b: b.replace(b"\x0b", b"")),
)
def test_decoder_property_any_chunking_gives_the_same_frames(
    messages: list[bytes], cuts: list[int], junk: bytes
) -> None:
    """However the stream is cut into reads, with junk between frames, the same frames come out."""
    stream = b"".join(junk + encode_frame(m) for m in messages)
    decoder = FrameDecoder()
    events = []
    pos = 0
    for cut in cuts:
        events.extend(decoder.feed(stream[pos : pos + cut]))
        pos += cut
    events.extend(decoder.feed(stream[pos:]))
    assert events == [Frame(m) for m in messages]
