"""Errors raised by the storage package."""

from __future__ import annotations


class StorageError(Exception):
    """The database could not do what was asked."""


class DuplicateMessage(StorageError):
    """A message with the same (sending facility, MSH-10) was journaled concurrently."""

    def __init__(self, sender: str, control_id: str) -> None:
        self.sender = sender
        self.control_id = control_id
        super().__init__(f"message {control_id!r} from {sender!r} is already journaled")


class SchemaOutOfDate(StorageError):
    """The database schema is not at the revision this version of Cairn needs."""

    def __init__(self, current: str | None, head: str) -> None:
        self.current = current
        self.head = head
        where = f"at revision {current}" if current else "empty (no Cairn schema)"
        super().__init__(
            f"database schema is {where}, this version needs {head}: run `cairn db upgrade`"
        )


class DatabaseUnreachable(StorageError):
    """The database server could not be reached (or the file opened) at all.

    Distinct from :class:`SchemaOutOfDate`: running ``cairn db upgrade``
    cannot help; the URL, the server or the network must be fixed.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"cannot connect to the database {url}: {reason}")
