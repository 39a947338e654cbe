"""Errors raised by the storage package.

Only storage sees SQLAlchemy and the drivers, so it says what kind of failure
a database error is: :class:`TransientStorageError` when trying again later
can succeed (the database is unreachable, a lock or serialization conflict),
:class:`PermanentStorageError` when the same statement would fail the same
way (a value the database refuses). The pipeline answers the first "please
resend" and the second "correct the message". Neither carries the failed
statement's parameters or the driver's message: both may hold patient data.
"""

from __future__ import annotations


class StorageError(Exception):
    """The database could not do what was asked."""


class TransientStorageError(StorageError):
    """A failure that a later attempt can overcome (the database is unavailable).

    Attributes:
        reason: a short, data-free description.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class PermanentStorageError(StorageError):
    """The database refused a value; the same message would fail again.

    Attributes:
        reason: a short, data-free description (no value from the message).
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class SchemaOutOfDate(StorageError):
    """The database schema is not at the revision this version of Cairn needs."""

    def __init__(self, current: str | None, head: str) -> None:
        self.current = current
        self.head = head
        where = f"at revision {current}" if current else "empty (no Cairn schema)"
        super().__init__(
            f"database schema is {where}, this version needs {head}: run `cairn db upgrade`"
        )


class DatabaseUnreachable(TransientStorageError):
    """The database server could not be reached (or the file opened) at all.

    Distinct from :class:`SchemaOutOfDate`: running ``cairn db upgrade``
    cannot help; the URL, the server or the network must be fixed. Transient:
    a later attempt may succeed once it is.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        StorageError.__init__(self, f"cannot connect to the database {url}: {reason}")
        self.reason = reason


class BackupUnsupported(StorageError):
    """``cairn db backup`` does not copy this kind of database (PostgreSQL, in memory)."""
