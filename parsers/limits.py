"""Limits on the work one message may ask for (issue 18 item 6).

The byte limit (``server.max_message_bytes``) bounds a message's size, but
not what it asks the registry to do: within 1 MiB a VXU can carry thousands
of order groups and a QBP tens of thousands of QPD-3 identifiers, and one
such message held the writer for every other sender. :func:`check_limits`
counts, in time linear in the message and before any handler runs:

- segments in the message;
- order groups (ORC or RXA segments, whichever are more);
- repetitions of any one field;
- repetitions of QPD-3 (the identifiers a query asks about).

The defaults are far above what real messages carry. A message over a limit
is refused as a whole (AR); the finding names the limit, the count and the
setting, so that the sender knows how to split its message.
"""

from __future__ import annotations

from dataclasses import dataclass

from parsers.codes import AppError, Hl7Error, Severity
from parsers.response import Issue, Location
from parsers.tokenizer import Message

__all__ = ["MessageLimits", "check_limits"]


@dataclass(frozen=True, slots=True)
class MessageLimits:
    """The most of each thing one message may carry (``[limits]`` settings).

    Attributes:
        max_segments: segments in the message.
        max_order_groups: order groups (ORC/RXA) in a VXU.
        max_repetitions: repetitions of any one field.
        max_query_identifiers: repetitions of QPD-3 (patient identifiers).
    """

    max_segments: int = 2000
    max_order_groups: int = 250
    max_repetitions: int = 100
    max_query_identifiers: int = 25


def _over(
    what: str,
    count: int,
    limit: int,
    setting: str,
    location: Location | None,
    advice: str,
) -> Issue:
    return Issue(
        Severity.ERROR,
        Hl7Error.APPLICATION_INTERNAL_ERROR,
        location,
        AppError.ILLOGICAL_VALUE,
        f"{what}: {count:,}, over the limit of {limit:,} (limits.{setting}); "
        f"rejected, nothing stored. {advice}",
    )


def check_limits(message: Message, limits: MessageLimits) -> Issue | None:
    """The first limit a message goes over, as the ERR that refuses it; None if none.

    Cheap for an ordinary message: a count of segments and of the
    repetition separator; the segments are walked only when those counts
    could be over a limit.

    Args:
        message: the tokenized message.
        limits: the limits.

    Returns:
        The finding, or None when the message is within every limit.
    """
    segments = message.segments
    if len(segments) > limits.max_segments:
        return _over(
            "segments in the message",
            len(segments),
            limits.max_segments,
            "max_segments",
            None,
            "Send the data in several messages",
        )
    if len(segments) > limits.max_order_groups:
        orc = rxa = 0
        for seg in segments:
            if seg.id == "ORC":
                orc += 1
            elif seg.id == "RXA":
                rxa += 1
        groups = max(orc, rxa)
        if groups > limits.max_order_groups:
            return _over(
                "order groups (ORC/RXA) in the message",
                groups,
                limits.max_order_groups,
                "max_order_groups",
                Location("ORC" if orc >= rxa else "RXA"),
                "Send the doses in several messages",
            )
    separators = message.text.count(message.encoding.repetition)
    # n separators make at most n + 1 repetitions of one field.
    if separators < min(limits.max_repetitions, limits.max_query_identifiers):
        return None
    return _repetitions(message, limits)


def _repetitions(message: Message, limits: MessageLimits) -> Issue | None:
    """The first field with too many repetitions (QPD-3 has its own limit)."""
    rep = message.encoding.repetition
    for seg in message.segments:
        fields = seg.fields
        # MSH-1 and MSH-2 are the delimiters themselves, not repeated values.
        first = 3 if seg.index == 0 else 1
        for n in range(first, len(fields)):
            raw = fields[n]
            if rep not in raw:
                continue
            count = raw.count(rep) + 1
            if seg.id == "QPD" and n == 3:
                if count > limits.max_query_identifiers:
                    return _over(
                        "QPD-3 patient identifiers in the query",
                        count,
                        limits.max_query_identifiers,
                        "max_query_identifiers",
                        Location("QPD", seg.occurrence, 3),
                        "Query with the identifiers that name this patient",
                    )
            elif count > limits.max_repetitions:
                return _over(
                    f"repetitions of {seg.id}-{n}",
                    count,
                    limits.max_repetitions,
                    "max_repetitions",
                    Location(seg.id, seg.occurrence, n),
                    "Send fewer repetitions of the field",
                )
    return None
