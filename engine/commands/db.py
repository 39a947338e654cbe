"""``cairn db upgrade``: create or migrate the schema (the only thing that changes it)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.app import database_url
from engine.commands._common import add_database_options, settings_from
from storage import StorageError, open_database


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


def run_upgrade(args: argparse.Namespace) -> int:
    """Migrate the configured database to the newest revision."""
    settings = settings_from(args)
    try:
        db = open_database(
            database_url(settings),
            sqlite_synchronous=settings.database.sqlite_synchronous,
        )
        revision = db.upgrade()
        print(f"cairn: database {db.url} is at revision {revision}")
        db.close()
    except StorageError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    return 0
