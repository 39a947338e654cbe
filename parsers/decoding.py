"""Turn received bytes into text, honouring MSH-18 (character set).

The MSH segment is ASCII in practice, so it is read first (as Latin-1) to
find the declared character set; the whole message is then decoded with it.
Bytes that are not valid in the declared set are decoded as Windows-1252, the
usual culprit, and reported so the sender hears about it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: MSH-18 values (HL7 table 0211) and the Python codec for each.
_CHARSETS = {
    "": "utf-8",
    "ASCII": "ascii",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "8859/1": "latin-1",
    "8859/15": "iso8859-15",
    "UNICODE": "utf-8",
}


@dataclass(frozen=True, slots=True)
class DecodedText:
    """The decoded text and what happened on the way."""

    text: str
    codec: str
    #: a readable reason when the bytes did not match the declared charset
    problem: str = ""
    declared: str = ""


def _declared_charset(raw: bytes) -> str:
    end = len(raw)
    for sep in (b"\r", b"\n"):
        pos = raw.find(sep)
        if 0 <= pos < end:
            end = pos
    header = raw[:end].decode("latin-1")
    if header.startswith(("\ufeff", "ï»¿")):
        header = header.lstrip("\ufeffï»¿")
    if not header.startswith("MSH") or len(header) < 4:
        return ""
    fields = header.split(header[3])
    # fields[0] is "MSH" and fields[1] is MSH-2, so MSH-18 is fields[17].
    if len(fields) > 17:
        return fields[17].split(header[4:5] or "^")[0].strip().upper()
    return ""


def decode_message(raw: bytes) -> DecodedText:
    """Decode a raw message per its MSH-18 declaration.

    Returns:
        The text, the codec used, and a problem text when the declared
        charset did not fit the bytes (the text is then Windows-1252).
    """
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    declared = _declared_charset(raw)
    codec = _CHARSETS.get(declared, "utf-8")
    try:
        return DecodedText(raw.decode(codec), codec, "", declared)
    except UnicodeDecodeError as exc:
        shown = declared or "UTF-8 (default)"
        problem = (
            f"byte 0x{raw[exc.start]:02X} at offset {exc.start} is not valid {shown}; "
            "message decoded as Windows-1252"
        )
        return DecodedText(
            raw.decode("cp1252", errors="replace"), "cp1252", problem, declared
        )


def encode_message(text: str) -> bytes:
    """Encode a message received as text (the SOAP service) for the pipeline.

    The bytes are in the character set MSH-18 declares, so that
    :func:`decode_message` reads back the same text; when the declared set
    cannot carry a character, UTF-8, which :func:`decode_message` then
    reports as not matching the declaration (as it would for MLLP bytes).
    """
    raw = text.encode("utf-8")
    codec = _CHARSETS.get(_declared_charset(raw), "utf-8")
    try:
        return text.encode(codec)
    except UnicodeEncodeError:
        return raw
