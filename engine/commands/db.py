"""``cairn db``: upgrade the schema (the only thing that changes it), back up, restore."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.app import database_url
from engine.commands._common import add_database_options, settings_from
from storage import BackupInfo, StorageError, open_database


def register(subparsers: Any) -> None:
    """Add the ``db`` sub-command."""
    parser = subparsers.add_parser("db", help="database schema management")
    sub = parser.add_subparsers(dest="db_command", metavar="ACTION")
    sub.required = True
    upgrade = sub.add_parser(
        "upgrade", help="create or migrate the schema to the newest revision"
    )
    add_database_options(upgrade)
    upgrade.set_defaults(func=run_upgrade)
    backup = sub.add_parser(
        "backup",
        help="copy the SQLite database, consistently, while the server runs "
        "(PostgreSQL: use pg_dump or WAL archiving, see the README)",
    )
    backup.add_argument("path", type=Path, help="the backup file to create")
    add_database_options(backup)
    backup.set_defaults(func=run_backup)
    restore = sub.add_parser(
        "restore",
        help="copy a backup made by `cairn db backup` over the SQLite database "
        "(stop the server first)",
    )
    restore.add_argument("path", type=Path, help="the backup file")
    restore.add_argument(
        "--replace",
        action="store_true",
        help="overwrite an existing database (required when one exists)",
    )
    add_database_options(restore)
    restore.set_defaults(func=run_restore)


def _summary(info: BackupInfo) -> str:
    return (
        f"{info.size:,} bytes, {info.journal_rows} journal row(s), last journal id "
        f"{info.last_journal_id}, schema revision {info.revision}"
    )


def run_backup(args: argparse.Namespace) -> int:
    """Take a consistent online copy of the SQLite database."""
    settings = settings_from(args)
    try:
        db = open_database(database_url(settings))
        try:
            info = db.backup(args.path)
        finally:
            db.close()
    except StorageError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    print(f"cairn: backup written to {info.path} ({_summary(info)})")
    return 0


def run_restore(args: argparse.Namespace) -> int:
    """Copy a backup over the SQLite database."""
    settings = settings_from(args)
    try:
        db = open_database(database_url(settings))
        try:
            info = db.restore(args.path, replace=args.replace)
        finally:
            db.close()
    except StorageError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    print(f"cairn: restored {args.path} into {info.path} ({_summary(info)})")
    return 0


def register_region(subparsers: Any) -> None:
    """Add the ``region`` sub-command."""
    parser = subparsers.add_parser(
        "region", help="regions: create the storage of a new region"
    )
    sub = parser.add_subparsers(dest="region_command", metavar="ACTION")
    sub.required = True
    add = sub.add_parser(
        "add",
        help="create the partitions of a region (PostgreSQL); list it in [[regions]] too",
    )
    add.add_argument("code", help="region code, e.g. BAY")
    add_database_options(add)
    add.set_defaults(func=run_region_add)


def run_region_add(args: argparse.Namespace) -> int:
    """Create a region's partitions."""
    settings = settings_from(args)
    try:
        db = open_database(database_url(settings))
        db.check_schema_current()
        created = db.add_region_partitions([args.code])
        db.close()
    except (StorageError, ValueError) as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    if args.code not in settings.region_codes():
        print(
            f"cairn: note: region {args.code} is not in the configuration's [[regions]] yet; add it before routing senders to it"
        )
    print(
        f"cairn: region {args.code}: "
        + (
            ", ".join(created)
            if created
            else "nothing to create (SQLite, or the partitions exist)"
        )
    )
    return 0


def run_upgrade(args: argparse.Namespace) -> int:
    """Migrate the configured database to the newest revision."""
    settings = settings_from(args)
    try:
        db = open_database(
            database_url(settings),
            sqlite_synchronous=settings.database.sqlite_synchronous,
        )
        revision = db.upgrade(tuple(r.code for r in settings.regions))
        print(f"cairn: database {db.url} is at revision {revision}")
        db.close()
    except StorageError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    return 0
