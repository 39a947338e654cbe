"""Outgoing segments as values, encoded with the right delimiters and escapes.

Every response (ACK and RSP, every segment, MSH included) is built from
:class:`OutSegment` values whose leaves are plain, unescaped strings, and
written only by :func:`encode_segment`, which escapes every leaf: the five
delimiters, the escape character and every control character (``\\Xhh\\``).
Escaping is a property of the encoder, not of its callers: there is no way to
put raw text into a response, so a stored ``O^Brien`` or a VT byte can never
split a field, end a segment or frame another clinic's message (STYLE.md
rule 19). Text received from a sender that is echoed back (the QPD of a
query) is read into values first (:func:`read_segment`) and re-encoded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from parsers.tokenizer import Encoding, is_segment_id

#: A component: a plain value, or its subcomponents.
Component = str | tuple[str, ...]
#: One repetition of a field: a plain value, or its components.
Repetition = str | tuple[Component, ...]


@dataclass(frozen=True, slots=True)
class Reps:
    """Several repetitions of one field."""

    items: tuple[Repetition, ...]


FieldValue = Repetition | Reps


@dataclass(frozen=True, slots=True)
class OutSegment:
    """A segment to emit: its id and its fields, every leaf unescaped text.

    ``fields`` start at field 1, except for ``MSH``, whose fields start at
    MSH-3: MSH-1 and MSH-2 are the encoding's own delimiters, written by the
    encoder.

    Raises:
        ValueError: when ``id`` is not a segment id (three of A-Z, 0-9).
    """

    id: str
    fields: tuple[FieldValue, ...] = ()

    def __post_init__(self) -> None:
        if not is_segment_id(self.id):
            raise ValueError(f"not a segment id: {self.id!r}")


@functools.lru_cache(maxsize=64)
def _leaf_writer(enc: Encoding) -> Callable[[str], str]:
    """The escaping of one leaf for ``enc``, looked up once per segment, not per leaf.

    Most leaves hold nothing to escape: one search of the encoding's special
    characters, and the value itself. (An RSP of a long history has
    thousands of leaves; looking the pattern up for each cost a third of
    encoding it.)
    """
    search = enc.special_characters().search
    escape_text = enc.escape_text

    def leaf(value: str) -> str:
        return value if search(value) is None else escape_text(value)

    return leaf


def _component(leaf: Callable[[str], str], sub: str, value: Component) -> str:
    if isinstance(value, str):
        return leaf(value)
    return _trim_join(sub, [leaf(v) for v in value])


def _repetition(
    leaf: Callable[[str], str], comp: str, sub: str, value: Repetition
) -> str:
    if isinstance(value, str):
        return leaf(value)
    return _trim_join(comp, [_component(leaf, sub, c) for c in value])


def _trim_join(sep: str, parts: list[str]) -> str:
    while parts and not parts[-1]:
        parts.pop()
    return sep.join(parts)


def _field(enc: Encoding, leaf: Callable[[str], str], value: FieldValue) -> str:
    comp, sub = enc.component, enc.subcomponent
    if isinstance(value, Reps):
        return enc.repetition.join(_repetition(leaf, comp, sub, r) for r in value.items)
    return _repetition(leaf, comp, sub, value)


def encode_field(enc: Encoding, value: FieldValue) -> str:
    """Encode one field value with ``enc``'s delimiters, escaping every leaf."""
    return _field(enc, _leaf_writer(enc), value)


def encode_segment(enc: Encoding, segment: OutSegment) -> str:
    """Encode one segment with ``enc``'s delimiters, escaping every leaf."""
    leaf = _leaf_writer(enc)
    fields = [
        leaf(value) if isinstance(value, str) else _field(enc, leaf, value)
        for value in segment.fields
    ]
    if segment.id == "MSH":
        return _trim_join(enc.field, ["MSH", enc.msh2, *fields])
    return _trim_join(enc.field, [segment.id, *fields]) if fields else segment.id


def read_field(enc: Encoding, raw: str) -> FieldValue:
    """Read raw field text written in ``enc`` into an unescaped value.

    The inverse of :func:`encode_field`, for echoing what a sender wrote:
    the value is re-encoded (and so re-escaped) rather than copied.
    """
    reps = tuple(_read_repetition(enc, r) for r in raw.split(enc.repetition))
    return reps[0] if len(reps) == 1 else Reps(reps)


def _read_repetition(enc: Encoding, raw: str) -> Repetition:
    comps = raw.split(enc.component)
    if len(comps) == 1 and enc.subcomponent not in raw:
        return enc.unescape(raw)
    return tuple(_read_component(enc, c) for c in comps)


def _read_component(enc: Encoding, raw: str) -> Component:
    subs = raw.split(enc.subcomponent)
    if len(subs) == 1:
        return enc.unescape(raw)
    return tuple(enc.unescape(s) for s in subs)


def read_segment(enc: Encoding, raw: str) -> OutSegment:
    """Read one raw segment (not MSH) written in ``enc`` into an :class:`OutSegment`.

    Raises:
        ValueError: when the text does not start with a segment id.
    """
    seg_id, *fields = raw.split(enc.field)
    return OutSegment(seg_id.strip(), tuple(read_field(enc, f) for f in fields))
