"""Field limits: lengths and control characters, checked leaf by leaf.

The registry's rules (which field, how long, truncate or reject) are rows of
a table that handlers/ owns; this module only applies such a table to a
tokenized message. It returns the message with every finding already applied
(a truncated value cut, a rejected one emptied, as IG Table 3-1 treats a value
that violates its type) and the findings, so validation can report each one
at its field and read the rest of the message as usual.

Values are judged after unescaping: ``\\X00\\`` is a NUL like a raw NUL is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from parsers.tokenizer import CONTROL_CHARACTERS, Message, Segment

_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")
#: In free text a line break or tab is text, not a control character.
_TEXT_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class FieldLimit:
    """One row of a field-limit table.

    Attributes:
        segment: segment id, e.g. ``PID``.
        field: field number (``5`` for PID-5).
        component: 1-based component.
        subcomponent: 1-based subcomponent.
        max_length: the most characters the value may have, unescaped.
        truncate: cut a longer value to ``max_length`` (a warning); otherwise
            the value is rejected (emptied, an error).
        name: what the value is, for the ERR text (no patient data).
        only_if: ``(field, values)``: the row applies only when that field of
            the same segment holds one of the values (e.g. OBX-2 coded).
    """

    segment: str
    field: int
    component: int
    subcomponent: int
    max_length: int
    truncate: bool
    name: str
    only_if: tuple[int, frozenset[str]] | None = None


@dataclass(frozen=True, slots=True)
class FieldFinding:
    """A value that broke a limit, and what was done with it.

    ``kind`` is ``truncated`` (cut to the limit), ``too_long`` (emptied) or
    ``control`` (held a control character; emptied). ``repetition`` is
    0-based; ``limit`` is None for a control character.
    """

    kind: Literal["truncated", "too_long", "control"]
    segment: str
    occurrence: int
    field: int
    repetition: int
    component: int
    subcomponent: int
    limit: FieldLimit | None = None


class FieldRules:
    """A prepared table of :class:`FieldLimit` rows and a control-character rule.

    Args:
        limits: the rows.
        segments: the segments whose every value is checked for control
            characters (C0, DEL, C1; NUL included).
        text_fields: ``(segment, field)`` pairs of free text, where CR, LF
            and TAB are allowed.
    """

    def __init__(
        self,
        limits: Iterable[FieldLimit],
        segments: Iterable[str],
        text_fields: Iterable[tuple[str, int]] = (),
    ) -> None:
        self.limits = tuple(limits)
        self._by_segment: dict[str, list[FieldLimit]] = {}
        for row in self.limits:
            self._by_segment.setdefault(row.segment, []).append(row)
        self._segments = frozenset(segments) | frozenset(self._by_segment)
        self._text_fields = frozenset(text_fields)

    def apply(self, message: Message) -> tuple[Message, tuple[FieldFinding, ...]]:
        """Check every segment; return the message as corrected and the findings.

        The message is returned unchanged (the same object) when nothing was
        found, which is the usual case and costs one scan per segment.
        """
        findings: list[FieldFinding] = []
        segments = list(message.segments)
        for i, seg in enumerate(segments):
            if i == 0 or seg.id not in self._segments:
                continue
            fixed = self._segment(seg, findings)
            if fixed is not None:
                segments[i] = fixed
        if not findings:
            return message, ()
        return Message(message.text, message.encoding, segments), tuple(findings)

    def _segment(self, seg: Segment, findings: list[FieldFinding]) -> Segment | None:
        enc = seg.encoding
        fields = seg.fields
        changed: dict[int, _Field] = {}
        body = enc.field.join(fields[1:])
        if _CONTROL.search(body) or (enc.escape and enc.escape in body):
            for n in range(1, len(fields)):
                self._controls(seg, n, changed, findings)
        for row in self._by_segment.get(seg.id, ()):
            n = row.field
            if n >= len(fields) or len(fields[n]) <= row.max_length:
                continue  # unescaping never lengthens: the fast path
            if row.only_if is not None:
                other, values = row.only_if
                if seg.value(other).strip().upper() not in values:
                    continue
            parsed = changed.get(n) or _Field.read(seg, n)
            for rep, comp, sub, value in parsed.leaves():
                if (comp, sub) != (row.component, row.subcomponent):
                    continue
                if len(value) <= row.max_length:
                    continue
                kind: Literal["truncated", "too_long"] = (
                    "truncated" if row.truncate else "too_long"
                )
                parsed.set(
                    rep, comp, sub, value[: row.max_length] if row.truncate else ""
                )
                changed[n] = parsed
                findings.append(
                    FieldFinding(kind, seg.id, seg.occurrence, n, rep, comp, sub, row)
                )
        if not changed:
            return None
        new_fields = list(fields)
        for n, parsed in changed.items():
            new_fields[n] = parsed.encode()
        return Segment(
            seg.id, new_fields, enc, seg.index, seg.occurrence, seg.glued_into
        )

    def _controls(
        self,
        seg: Segment,
        n: int,
        changed: dict[int, _Field],
        findings: list[FieldFinding],
    ) -> None:
        if seg.id == "MSH" and n < 3:
            return
        pattern = _TEXT_CONTROL if (seg.id, n) in self._text_fields else _CONTROL
        parsed = _Field.read(seg, n)
        for rep, comp, sub, value in parsed.leaves():
            if pattern.search(value):
                parsed.set(rep, comp, sub, "")
                changed[n] = parsed
                findings.append(
                    FieldFinding("control", seg.id, seg.occurrence, n, rep, comp, sub)
                )


class _Field:
    """One field split into unescaped leaves, to change some and write it back."""

    __slots__ = ("_dirty", "_leaves", "_seg")

    def __init__(self, seg: Segment, leaves: list[list[list[str]]]) -> None:
        self._seg = seg
        self._leaves = leaves
        self._dirty: set[tuple[int, int, int]] = set()

    @classmethod
    def read(cls, seg: Segment, n: int) -> _Field:
        enc = seg.encoding
        raw = seg.raw(n)
        return cls(
            seg,
            [
                [c.split(enc.subcomponent) for c in r.split(enc.component)]
                for r in raw.split(enc.repetition)
            ],
        )

    def leaves(self) -> list[tuple[int, int, int, str]]:
        """Every leaf as (repetition from 0, component from 1, subcomponent from 1, value)."""
        enc = self._seg.encoding
        out = []
        for r, comps in enumerate(self._leaves):
            for c, subs in enumerate(comps, start=1):
                for s, raw in enumerate(subs, start=1):
                    value = (
                        raw
                        if (r, c, s) in self._dirty or enc.escape not in raw
                        else enc.unescape(raw)
                    )
                    out.append((r, c, s, value))
        return out

    def set(self, rep: int, comp: int, sub: int, value: str) -> None:
        """Replace one leaf with an (unescaped) value."""
        self._leaves[rep][comp - 1][sub - 1] = value
        self._dirty.add((rep, comp, sub))

    def encode(self) -> str:
        """The field as raw text again, changed leaves escaped."""
        enc = self._seg.encoding
        return enc.repetition.join(
            enc.component.join(
                enc.subcomponent.join(
                    enc.escape_text(raw) if (r, c, s) in self._dirty else raw
                    for s, raw in enumerate(subs, start=1)
                )
                for c, subs in enumerate(comps, start=1)
            )
            for r, comps in enumerate(self._leaves)
        )
