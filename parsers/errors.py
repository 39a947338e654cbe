"""Errors raised by the parsers package."""

from __future__ import annotations


class ParseError(Exception):
    """A message cannot be tokenized at all.

    Attributes:
        location: the HL7 location the problem was found at (e.g. ``MSH-2``),
            or ``""`` when it concerns the whole message.
        reason: a readable reason, free of patient data.
    """

    def __init__(self, location: str, reason: str) -> None:
        self.location = location
        self.reason = reason
        super().__init__(f"{location}: {reason}" if location else reason)
