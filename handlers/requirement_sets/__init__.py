"""Requirement sets shipped with Cairn: one TOML file per set (see README.md)."""

__all__: list[str] = []
