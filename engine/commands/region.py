"""``cairn region add CODE``: create the storage of a new region."""

from __future__ import annotations

from typing import Any

from engine.commands.db import register_region


def register(subparsers: Any) -> None:
    """Add the ``region`` sub-command."""
    register_region(subparsers)
