"""Errors raised while reading Cairn's configuration."""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration value is missing, unknown or wrong.

    The message always names the file (or ``environment``), the dotted key and
    the reason, e.g. ``cairn.toml: server.listen: expected HOST:PORT, got "x"``.
    """

    def __init__(self, source: str, key: str, reason: str) -> None:
        self.source = source
        self.key = key
        self.reason = reason
        where = f"{source}: {key}: " if key else f"{source}: "
        super().__init__(f"{where}{reason}")
