"""Batch files: envelopes, plain files, line endings."""

from __future__ import annotations

from pathlib import Path

from parsers.batch import iter_messages, read_batch

MSG = "MSH|^~\\&|A|B|||20240101||VXU^V04|{}|P|2.5.1\rPID|1||1^^^A^MR\r"


def test_batch_reads_fhs_bhs_envelope() -> None:
    """FHS/BHS ... BTS/FTS wrap the messages; the trailer count is read."""
    data = (
        "FHS|^~\\&|X\rBHS|^~\\&|X\r" + MSG.format(1) + MSG.format(2) + "BTS|2\rFTS|1\r"
    ).encode()
    batch = read_batch(data)
    assert len(batch.messages) == 2
    assert batch.trailer_count == 2
    assert batch.header.startswith(b"FHS")


def test_batch_splits_plain_file_with_lf_endings() -> None:
    """A plain file of messages separated by LF gives one message per MSH, CR-terminated."""
    data = (MSG.format(1) + MSG.format(2)).replace("\r", "\n").encode()
    messages = list(iter_messages(data))
    assert len(messages) == 2
    assert messages[0].endswith(b"\r")
    assert b"\n" not in messages[0]


def test_batch_strips_bom_and_mllp_framing() -> None:
    """A byte-order mark and MLLP framing bytes are not part of the messages."""
    data = b"\xef\xbb\xbf\x0b" + MSG.format(1).encode() + b"\x1c\r"
    (message,) = list(iter_messages(data))
    assert message.startswith(b"MSH|")


def test_batch_reads_the_sample_batch_file(samples_dir: Path) -> None:
    """The IHS sample wrapped in a batch envelope gives its one message."""
    (message,) = list(
        iter_messages((samples_dir / "vxu-edge-batch-envelope-ihs.hl7").read_bytes())
    )
    assert message.startswith(b"MSH|")


def test_batch_normalizes_crlf_and_cr_endings() -> None:
    """CRLF and CR files give the same messages, segments ending in CR only."""
    text = MSG.format(1) + MSG.format(2)
    crlf = list(iter_messages(text.replace("\r", "\r\n").encode()))
    cr = list(iter_messages(text.encode()))
    assert crlf == cr
    assert crlf[1] == MSG.format(2).encode()


def test_batch_splits_an_mllp_framed_file() -> None:
    """A capture of MLLP frames gives one message per frame."""
    data = b"".join(b"\x0b" + MSG.format(i).encode() + b"\x1c\r" for i in range(3))
    assert list(iter_messages(data)) == [MSG.format(i).encode() for i in range(3)]


def test_batch_counts_segments_before_the_first_msh() -> None:
    """Lines before the first MSH that are not envelope segments are skipped and counted."""
    batch = read_batch(("junk line\r" + MSG.format(1)).encode())
    assert batch.messages == (MSG.format(1).encode(),)
    assert batch.skipped_segments == 1


def test_batch_sums_counts_of_several_batches() -> None:
    """A file of two batches declares the sum of its BTS-1 counts."""
    data = (
        "FHS|^~\\&|F\rBHS|^~\\&|B1\r"
        + MSG.format(1)
        + "BTS|1\rBHS|^~\\&|B2\r"
        + MSG.format(2)
        + MSG.format(3)
        + "BTS|2\rFTS|2\r"
    ).encode()
    batch = read_batch(data)
    assert len(batch.messages) == 3
    assert batch.trailer_count == 3
    assert len(batch.envelope_segments) == 6


def test_batch_header_field_numbers_like_msh() -> None:
    """FHS-1 is the separator and FHS-3 the sending application."""
    batch = read_batch(("FHS|^~\\&|APP|FAC\r" + MSG.format(1)).encode())
    assert batch.header_field(1) == b"|"
    assert batch.header_field(2) == b"^~\\&"
    assert batch.header_field(3) == b"APP"
    assert batch.header_field(9) == b""


def test_batch_plain_file_has_no_envelope() -> None:
    """A plain file has no header and no declared count."""
    batch = read_batch(MSG.format(1).encode())
    assert batch.header == b""
    assert batch.trailer_count is None
    assert read_batch(b"").messages == ()
