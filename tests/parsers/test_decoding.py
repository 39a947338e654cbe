"""Text received over SOAP is encoded so that decoding per MSH-18 gives it back."""

from __future__ import annotations

import pytest

from parsers.decoding import decode_message, encode_message


@pytest.mark.parametrize("charset", ["", "UNICODE UTF-8", "8859/1", "8859/15"])
def test_encode_message_round_trips_in_the_declared_charset(charset: str) -> None:
    """Accented names survive encode then decode, whatever set MSH-18 declares."""
    text = f"MSH|^~\\&|A|B|C|D|20240101||VXU^V04|1|P|2.5.1||||||{charset}\rPID|1||X||Müller^José\r"
    decoded = decode_message(encode_message(text))
    assert decoded.text == text
    assert decoded.problem == ""


def test_encode_message_that_does_not_fit_its_declaration_is_reported() -> None:
    """MSH-18 ASCII with a non-ASCII name: decoding says the bytes did not match."""
    text = (
        "MSH|^~\\&|A|B|C|D|20240101||VXU^V04|1|P|2.5.1||||||ASCII\rPID|1||X||Müller\r"
    )
    assert "not valid ASCII" in decode_message(encode_message(text)).problem
