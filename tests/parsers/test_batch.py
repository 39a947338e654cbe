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
