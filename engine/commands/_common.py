"""Helpers shared by sub-commands: settings with command-line overrides."""

from __future__ import annotations

import argparse
from typing import Any

from config import Settings, load_settings, with_overrides


def add_database_options(
    parser: argparse.ArgumentParser, *, nested: bool = False
) -> None:
    """The --database and --data-dir flags.

    ``nested`` is for a sub-command of a command that has them too: its
    defaults must not overwrite what was given before the sub-command name.
    """
    default = argparse.SUPPRESS if nested else None
    parser.add_argument(
        "--database",
        metavar="URL",
        default=default,
        help="database URL (default: SQLite in the data directory)",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default=default,
        help="data directory (default ./var)",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from --config, then the environment, then this command's flags."""
    settings = load_settings(args.config)
    server: dict[str, Any] = {}
    if getattr(args, "listen", None):
        server["listen"] = args.listen
    if getattr(args, "data_dir", None):
        server["data_dir"] = args.data_dir
    database: dict[str, Any] = {}
    if getattr(args, "database", None):
        database["url"] = args.database
    http: dict[str, Any] = {}
    if getattr(args, "http_listen", None) is not None:
        http["listen"] = args.http_listen
    return with_overrides(settings, server=server, database=database, http=http)
