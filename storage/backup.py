"""Online backup and restore of the embedded SQLite database.

A backup is taken while the server runs, with SQLite's backup API in one
step: the copy is read in one read transaction, so it is the database as it
stood at one commit. In WAL mode the server's writer does not wait for it,
nor it for the writer. Every message whose ACK left before the backup began
was committed before that read transaction began, so it is in the copy.

PostgreSQL is backed up with its own tools (``pg_dump``, or base backups with
WAL archiving for point-in-time recovery); see the README's "Backups".
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from storage import dialects
from storage.errors import BackupUnsupported, StorageError

__all__ = ["BackupInfo", "backup_sqlite", "restore_sqlite"]


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """What a backup (or a restored database) holds."""

    path: Path
    size: int
    journal_rows: int
    last_journal_id: int
    revision: str


def sqlite_path(engine: Engine) -> Path:
    """The file of an SQLite engine; refuses PostgreSQL and in-memory databases."""
    if engine.dialect.name != dialects.SQLITE:
        raise BackupUnsupported(
            "cairn db backup copies the embedded SQLite database only; back up "
            "PostgreSQL with pg_dump, or with base backups and WAL archiving for "
            'point-in-time recovery (README, "Backups")'
        )
    name = engine.url.database
    if not name or name == ":memory:":
        raise BackupUnsupported("an in-memory database cannot be backed up")
    return Path(name)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _describe(con: sqlite3.Connection, path: Path) -> BackupInfo:
    """Check a copy's integrity and say what it holds."""
    (check,) = con.execute("PRAGMA integrity_check").fetchone()
    if check != "ok":
        raise StorageError(f"{path} fails SQLite's integrity check: {check}")
    try:
        (revision,) = con.execute("SELECT version_num FROM alembic_version").fetchone()
        rows, last = con.execute(
            "SELECT count(*), coalesce(max(id), 0) FROM message_journal"
        ).fetchone()
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{path} is not a Cairn database ({exc})") from None
    return BackupInfo(path, path.stat().st_size, int(rows), int(last), str(revision))


def backup_sqlite(engine: Engine, target: Path) -> BackupInfo:
    """Copy the live SQLite database to ``target``, consistently, while it is in use.

    The copy is written beside the target as ``<target>.partial``, checked
    (``PRAGMA integrity_check``), switched to a rollback journal so that it
    is one self-contained file, flushed to disk, and only then renamed to
    ``target``: a failed backup never leaves a file that looks complete.

    Raises:
        BackupUnsupported: PostgreSQL, or an in-memory database.
        StorageError: the target exists, or the copy failed.
    """
    source_path = sqlite_path(engine)
    if target.exists():
        raise StorageError(f"{target} exists; back up to a new path")
    if not target.parent.is_dir():
        raise StorageError(f"{target.parent} is not a directory: create it first")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        if not source_path.is_file():
            raise StorageError(f"{source_path} does not exist")
        # Read-write open, only read: a read-only connection to a WAL
        # database fails when the -shm file cannot be created.
        source = sqlite3.connect(source_path)
        try:
            source.execute("PRAGMA busy_timeout=10000")
            dest = sqlite3.connect(partial)
            try:
                # pages=-1: the whole database in one step, one read transaction.
                source.backup(dest, pages=-1)
                dest.execute("PRAGMA journal_mode=DELETE")
                info = _describe(dest, partial)
            finally:
                dest.close()
        finally:
            source.close()
        _fsync(partial)
        partial.rename(target)
        _fsync(target.parent)
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise StorageError(f"backup of {source_path} failed: {exc}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return BackupInfo(
        target, info.size, info.journal_rows, info.last_journal_id, info.revision
    )


def restore_sqlite(backup: Path, engine: Engine, *, replace: bool) -> BackupInfo:
    """Copy a backup over the SQLite database of ``engine`` (the server must be stopped).

    The backup is checked first; the copy goes through SQLite's backup API
    into the target, so SQLite itself deals with the target's write-ahead
    log: a plain file copy over a database whose ``-wal`` file survives
    would have SQLite replay that stale log onto the restored data.

    Raises:
        BackupUnsupported: PostgreSQL, or an in-memory database.
        StorageError: the backup is missing or damaged, or the target
            exists and ``replace`` is false.
    """
    target = sqlite_path(engine)
    if not backup.is_file():
        raise StorageError(f"{backup} is not a file")
    if target.exists() and not replace:
        raise StorageError(
            f"{target} exists; stop the server and pass --replace to overwrite it"
        )
    try:
        source = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
        try:
            _describe(source, backup)
            target.parent.mkdir(parents=True, exist_ok=True)
            dest = sqlite3.connect(target)
            try:
                dest.execute("PRAGMA busy_timeout=10000")
                source.backup(dest, pages=-1)
                info = _describe(dest, target)
            finally:
                dest.close()
        finally:
            source.close()
    except sqlite3.Error as exc:
        raise StorageError(f"restore of {backup} failed: {exc}") from None
    return info
