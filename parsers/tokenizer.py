"""A lean HL7 v2 tokenizer for the hot path.

python-hl7's full parse costs about 1.1 ms for a 2 KB VXU and hl7apy's about
27 ms; ingest must reach thousands of messages a second, so the hot path uses
this tokenizer instead. It splits segments and fields eagerly (one
``str.split`` each, which is what costs microseconds) and splits
repetitions, components and subcomponents only when a field is read.
python-hl7 is its test oracle (``tests/parsers/test_tokenizer.py``).

The encoding characters are always taken from MSH-1 and MSH-2; nothing here
assumes ``|^~\\&``.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass

from parsers.errors import ParseError

_BOM = "\ufeff"
_SEGMENT_SPLIT = re.compile(r"\r\n|\r|\n")
_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}\Z")
_PUNCTUATION = frozenset(string.punctuation)


@dataclass(frozen=True, slots=True)
class Encoding:
    """The delimiters of one message (MSH-1 and MSH-2)."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def msh2(self) -> str:
        """The encoding characters as they appear in MSH-2."""
        chars = self.component + self.repetition + self.escape + self.subcomponent
        return "".join(c for c in chars if c not in "\x01\x02\x03\x04")

    @property
    def complete(self) -> bool:
        """Whether MSH-2 declared all four encoding characters.

        A message that declared fewer is read with stand-ins for the missing
        ones, but is answered in the standard delimiters: a response whose
        MSH-2 is short is one most receivers cannot parse.
        """
        return len(self.msh2) == 4

    def for_response(self) -> Encoding:
        """The delimiters to answer in: the sender's own, unless unsafe.

        Incomplete delimiters, or any that is not printable ASCII
        punctuation, give the standard ones: a response must never carry a
        byte that frames or splits a message as a delimiter.
        """
        if self.complete and all(
            c in _PUNCTUATION
            for c in (
                self.field,
                self.component,
                self.repetition,
                self.escape,
                self.subcomponent,
            )
        ):
            return self
        return STANDARD_ENCODING

    @property
    def is_standard(self) -> bool:
        """Whether these are the delimiters the guide requires (IZ-12, IZ-13)."""
        return self.field == "|" and self.msh2 == "^~\\&"

    def unescape(self, value: str) -> str:
        """Decode HL7 escape sequences in a leaf value.

        Handles ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\``, hex ``\\Xhh..\\``, and
        drops formatting escapes (``\\H\\``, ``\\N\\``, ``\\.br\\``...).
        An escape character with no closing partner is kept as it is.
        """
        esc = self.escape
        if not esc or esc not in value:
            return value
        out: list[str] = []
        i = 0
        n = len(value)
        while i < n:
            ch = value[i]
            if ch != esc:
                out.append(ch)
                i += 1
                continue
            end = value.find(esc, i + 1)
            if end < 0:
                out.append(value[i:])
                break
            code = value[i + 1 : end]
            out.append(self._decode_escape(code, value[i : end + 1]))
            i = end + 1
        return "".join(out)

    def _decode_escape(self, code: str, whole: str) -> str:
        simple = {
            "F": self.field,
            "S": self.component,
            "T": self.subcomponent,
            "R": self.repetition,
            "E": self.escape,
        }
        if code in simple:
            return simple[code]
        if code in {"H", "N"} or code.startswith("."):
            return "\r" if code == ".br" else ""
        if code[:1] == "X" and len(code) > 1 and len(code) % 2 == 1:
            try:
                return bytes.fromhex(code[1:]).decode("latin-1")
            except ValueError:
                return whole
        return whole

    def special_characters(self) -> re.Pattern[str]:
        """What must be escaped in a value written with these delimiters."""
        return _special_characters(
            self.field, self.component, self.repetition, self.escape, self.subcomponent
        )

    def escape_text(self, value: str) -> str:
        """Escape a leaf value completely so it can be written into a message.

        The five delimiters become ``\\F\\ \\S\\ \\R\\ \\E\\ \\T\\``; every
        control character (C0 0x00-0x1F, CR and LF included, DEL 0x7F and
        C1 0x80-0x9F) becomes ``\\Xhh\\`` (HL7 2.5.1 section 2.7.5), so no
        value can end a segment, open or close an MLLP frame (VT, FS, CR), or
        split a field (STYLE.md rule 19).
        """
        pattern = self.special_characters()
        if pattern.search(value) is None:
            return value
        esc = self.escape
        table = {
            esc: f"{esc}E{esc}",
            self.field: f"{esc}F{esc}",
            self.component: f"{esc}S{esc}",
            self.subcomponent: f"{esc}T{esc}",
            self.repetition: f"{esc}R{esc}",
        }
        return pattern.sub(
            lambda m: table.get(m.group(), f"{esc}X{ord(m.group()):02X}{esc}"), value
        )


#: Control characters: C0 (CR and LF included), DEL and C1.
CONTROL_CHARACTERS = "\x00-\x1f\x7f-\x9f"


_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")


def has_control_character(value: str) -> bool:
    """Whether a value holds a control character (C0, DEL or C1)."""
    return _CONTROL.search(value) is not None


@functools.lru_cache(maxsize=64)
def _special_characters(*delimiters: str) -> re.Pattern[str]:
    """What must be escaped in a value written with these delimiters."""
    chars = "".join(re.escape(d) for d in delimiters)
    return re.compile(f"[{chars}{CONTROL_CHARACTERS}]")


STANDARD_ENCODING = Encoding()


@dataclass(frozen=True, slots=True)
class GluePoint:
    """Where a segment that lost its terminator had the next one glued on.

    ``segment``/``occurrence`` name the segment that lacks its terminator,
    ``field`` the field whose value ends with the glued segment's id.
    """

    segment: str
    occurrence: int
    field: int


#: The last field of each segment in HL7 2.5.1 (MSH to 25: the IG uses the
#: v2.7 MSH-22/23). A segment with more fields than this that has a known
#: segment id at the end of one of its fields is two segments glued together.
MAX_FIELDS = {
    "MSH": 25,
    "SFT": 6,
    "PID": 39,
    "PD1": 21,
    "NK1": 39,
    "PV1": 52,
    "PV2": 49,
    "GT1": 57,
    "IN1": 53,
    "IN2": 72,
    "IN3": 28,
    "ORC": 31,
    "TQ1": 14,
    "TQ2": 10,
    "RXA": 26,
    "RXR": 6,
    "OBX": 25,
    "NTE": 4,
    "RCP": 7,
    "MSA": 6,
    "ERR": 12,
    "QAK": 6,
}


def _unglue(parts: list[str], seg_id: str, first_field: int) -> int:
    """The field of ``parts`` that a glued segment's id ends, or 0 if none.

    Only a segment with more fields than its definition is examined, so a
    value that merely ends in letters like ``OBX`` is left alone.
    """
    last = MAX_FIELDS.get(seg_id)
    if last is None or len(parts) - 1 <= last:
        return 0
    for n in range(first_field, last + 1):
        value = parts[n]
        if len(value) >= 3 and value[-3:] in MAX_FIELDS:
            return n
    return 0


class Segment:
    """One segment: its id and raw (still escaped) fields.

    Field numbers follow HL7: ``segment.raw(3)`` is PID-3. For MSH the field
    separator itself is MSH-1, so ``msh.raw(9)`` is MSH-9 as the guide
    counts it.
    """

    __slots__ = (
        "_reps",
        "encoding",
        "fields",
        "glued_into",
        "id",
        "index",
        "occurrence",
    )

    def __init__(
        self,
        seg_id: str,
        fields: list[str],
        encoding: Encoding,
        index: int,
        occurrence: int,
        glued_into: GluePoint | None = None,
    ) -> None:
        self.id = seg_id
        self.fields = fields
        self.encoding = encoding
        #: position of the segment in the message, from 0
        self.index = index
        #: 1-based count of this segment id so far (ERR-2 "occurrence")
        self.occurrence = occurrence
        #: set when this segment was found glued into the one before it
        self.glued_into = glued_into
        #: repetitions of the fields read so far, split once each (below)
        self._reps: dict[int, list[str]] | None = None

    def __repr__(self) -> str:
        return f"Segment({self.id!r}, occurrence={self.occurrence})"

    @property
    def field_count(self) -> int:
        """The number of the last field present."""
        return len(self.fields) - 1

    # The accessors below run ~100 times per VXU: each inlines its field
    # look-up and takes a fast path when a part holds no escape or
    # subcomponent, which is nearly always (measured in the commit).
    #
    # A field with repetitions is split once and the split kept: readers go
    # through its repetitions one by one, and splitting the whole field for
    # each one made reading a field of n repetitions cost n squared (20,000
    # QPD-3 repetitions took seconds; issue 18 item 6).

    def _split(self, n: int, raw: str) -> list[str]:
        """The repetitions of field ``n`` (whose text is ``raw``), split once."""
        cache = self._reps
        if cache is None:
            cache = self._reps = {}
        reps = cache.get(n)
        if reps is None:
            reps = cache[n] = raw.split(self.encoding.repetition)
        return reps

    def raw(self, n: int) -> str:
        """Field ``n`` exactly as sent (escapes and delimiters kept)."""
        fields = self.fields
        return fields[n] if 0 < n < len(fields) else ""

    def repetitions(self, n: int) -> list[str]:
        """The raw repetitions of field ``n`` (one empty string if empty)."""
        fields = self.fields
        raw = fields[n] if 0 < n < len(fields) else ""
        if n < 3 and self.id == "MSH" and n > 0:
            return [raw]
        if self.encoding.repetition not in raw:
            return [raw]
        return list(self._split(n, raw))

    def components(self, n: int, rep: int = 0) -> list[str]:
        """The unescaped components of repetition ``rep`` of field ``n``.

        Subcomponents stay joined by the subcomponent separator, unescaped
        per subcomponent.
        """
        fields = self.fields
        raw = fields[n] if 0 < n < len(fields) else ""
        if n < 3 and self.id == "MSH" and n > 0:
            return [raw]
        enc = self.encoding
        if enc.repetition in raw:
            reps = self._split(n, raw)
            if rep >= len(reps):
                return [""]
            raw = reps[rep]
        elif rep > 0:
            return [""]
        parts = raw.split(enc.component)
        esc = enc.escape
        sub = enc.subcomponent
        if (not esc or esc not in raw) and sub not in raw:
            return parts
        return [
            sub.join(enc.unescape(s) for s in p.split(sub))
            if sub in p
            else enc.unescape(p)
            for p in parts
        ]

    def value(self, n: int, rep: int = 0, comp: int = 1, sub: int = 1) -> str:
        """One unescaped leaf value: field ``n``, repetition, component, subcomponent.

        Component and subcomponent are 1-based, as in ``PID-5.1``; ``rep`` is
        0-based. A missing part is ``""``.
        """
        fields = self.fields
        if not 0 < n < len(fields):
            return ""
        raw = fields[n]
        if n < 3 and self.id == "MSH":
            return raw if comp == 1 and sub == 1 else ""
        if not raw:
            return ""
        enc = self.encoding
        if enc.repetition in raw:
            reps = self._split(n, raw)
            if rep >= len(reps):
                return ""
            raw = reps[rep]
        elif rep > 0:
            return ""
        if enc.component in raw:
            parts = raw.split(enc.component)
            if comp > len(parts):
                return ""
            raw = parts[comp - 1]
        elif comp > 1:
            return ""
        if enc.subcomponent in raw:
            subs = raw.split(enc.subcomponent)
            if sub > len(subs):
                return ""
            raw = subs[sub - 1]
        elif sub > 1:
            return ""
        esc = enc.escape
        return enc.unescape(raw) if esc and esc in raw else raw

    def subcomponents(self, n: int, rep: int = 0, comp: int = 1) -> list[str]:
        """The unescaped subcomponents of one component."""
        enc = self.encoding
        fields = self.fields
        raw = fields[n] if 0 < n < len(fields) else ""
        if n < 3 and self.id == "MSH" and n > 0:
            reps = [raw]
        elif enc.repetition in raw:
            reps = self._split(n, raw)
        else:
            reps = [raw]
        if rep >= len(reps):
            return [""]
        parts = reps[rep].split(enc.component)
        if comp > len(parts):
            return [""]
        return [enc.unescape(s) for s in parts[comp - 1].split(enc.subcomponent)]


class Message:
    """A tokenized HL7 v2 message: its encoding characters and segments."""

    __slots__ = ("encoding", "segments", "text")

    def __init__(self, text: str, encoding: Encoding, segments: list[Segment]) -> None:
        self.text = text
        self.encoding = encoding
        self.segments = segments

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments)

    def __len__(self) -> int:
        return len(self.segments)

    @property
    def msh(self) -> Segment:
        """The MSH segment (always the first)."""
        return self.segments[0]

    def first(self, seg_id: str) -> Segment | None:
        """The first segment with this id, or None."""
        for seg in self.segments:
            if seg.id == seg_id:
                return seg
        return None

    def all(self, seg_id: str) -> list[Segment]:
        """Every segment with this id, in order."""
        return [seg for seg in self.segments if seg.id == seg_id]


def read_encoding(text: str) -> Encoding:
    """Read the delimiters from the start of a message (``MSH`` + MSH-1 + MSH-2).

    Raises:
        ParseError: when the text does not start with a usable MSH header.
    """
    if not text.startswith("MSH"):
        raise ParseError("MSH", "message does not start with an MSH segment")
    if len(text) < 8:
        raise ParseError(
            "MSH-2", "MSH segment too short to hold the encoding characters"
        )
    field_sep = text[3]
    # MSH-2 runs up to the next field separator; it is normally 4 characters.
    end = text.find(field_sep, 4)
    msh2 = text[4:end] if end >= 0 else text[4:8]
    if field_sep in "\r\n" or field_sep.isalnum() or field_sep == " ":
        raise ParseError("MSH-1", f"unusable field separator {field_sep!r}")
    if len(msh2) < 2:
        raise ParseError(
            "MSH-2", f"expected at least 2 encoding characters, got {len(msh2)}"
        )
    chars = list(msh2[:4])
    if len({*chars, field_sep}) != len(chars) + 1:
        raise ParseError("MSH-2", "encoding characters must all differ")
    if any(c.isalnum() or c in "\r\n " for c in chars):
        raise ParseError("MSH-2", "encoding characters must be punctuation")
    if _CONTROL.search(field_sep + "".join(chars)):
        raise ParseError(
            "MSH-2", "delimiters must not be control characters (MSH-1, MSH-2)"
        )
    # Fewer than four encoding characters: the missing ones are not used by
    # the message; stand in control characters that cannot occur in it.
    fillers = iter("\x01\x02\x03\x04")
    while len(chars) < 4:
        chars.append(next(fillers))
    return Encoding(field_sep, chars[0], chars[1], chars[2], chars[3])


def split_segments(text: str) -> list[str]:
    """Split message text into segment strings, tolerating LF and CRLF."""
    if text.startswith(_BOM):
        text = text[1:]
    parts = _SEGMENT_SPLIT.split(text) if "\n" in text else text.split("\r")
    return [p for p in parts if p.strip()]


def tokenize(text: str) -> Message:
    """Tokenize message text into segments and fields.

    Args:
        text: the decoded message (``str``); see :func:`decode` for bytes.

    Returns:
        The tokenized message. Unknown or corrupt segment ids are kept as
        segments (validation decides what they mean).

    Raises:
        ParseError: when there is no MSH header or its delimiters are unusable.
    """
    if text.startswith(_BOM):
        text = text[1:]
    text = text.lstrip("\r\n")
    encoding = read_encoding(text)
    fs = encoding.field
    segments: list[Segment] = []
    counts: dict[str, int] = {}
    for seg_text in split_segments(text):
        parts = seg_text.split(fs)
        seg_id = parts[0].strip()
        if seg_id == "MSH" and not segments:
            # MSH-1 is the separator itself: insert it so fields[n] is MSH-n.
            parts.insert(1, fs)
        glued: GluePoint | None = None
        while True:
            occurrence = counts.get(seg_id, 0) + 1
            counts[seg_id] = occurrence
            # A segment whose terminator was lost carries the next one in
            # its fields: split them, and mark the second (issue 15 item 7).
            at = _unglue(parts, seg_id, 3 if seg_id == "MSH" else 1)
            tail = parts[at + 1 :] if at else []
            if at:
                next_id = parts[at][-3:]
                parts = [*parts[:at], parts[at][:-3]]
            segments.append(
                Segment(seg_id, parts, encoding, len(segments), occurrence, glued)
            )
            if not at:
                break
            glued = GluePoint(seg_id, occurrence, at)
            seg_id, parts = next_id, [next_id, *tail]
    return Message(text, encoding, segments)


def is_segment_id(seg_id: str) -> bool:
    """Whether a string has the shape of an HL7 segment id (3 chars, A-Z0-9)."""
    return bool(_SEGMENT_ID.match(seg_id))
