"""Outgoing segments as values, encoded with the right delimiters and escapes.

Handlers build responses (RSP bodies) from :class:`OutSegment` values whose
leaves are plain, unescaped strings; :func:`encode_segment` writes them with a
message's delimiters, escaping every leaf, so a name like ``O^Brien & Sons``
can never break a response apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from parsers.tokenizer import Encoding

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
    """A segment to emit: its id and fields from field 1 on.

    ``raw`` segments are emitted exactly as given (used to echo the query's
    QPD unchanged, in the sender's own delimiters).
    """

    id: str
    fields: tuple[FieldValue, ...] = ()
    raw: str | None = None


def _component(enc: Encoding, value: Component) -> str:
    if isinstance(value, str):
        return enc.escape_text(value)
    return _trim_join(enc.subcomponent, [enc.escape_text(v) for v in value])


def _repetition(enc: Encoding, value: Repetition) -> str:
    if isinstance(value, str):
        return enc.escape_text(value)
    return _trim_join(enc.component, [_component(enc, c) for c in value])


def _trim_join(sep: str, parts: Sequence[str]) -> str:
    items = list(parts)
    while items and not items[-1]:
        items.pop()
    return sep.join(items)


def encode_segment(enc: Encoding, segment: OutSegment) -> str:
    """Encode one segment with ``enc``'s delimiters, escaping every leaf."""
    if segment.raw is not None:
        return segment.raw
    fields: list[str] = []
    for value in segment.fields:
        if isinstance(value, Reps):
            fields.append(enc.repetition.join(_repetition(enc, r) for r in value.items))
        else:
            fields.append(_repetition(enc, value))
    return _trim_join(enc.field, [segment.id, *fields]) if fields else segment.id
