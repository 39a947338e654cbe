"""Errors raised while reading Cairn's configuration."""

from __future__ import annotations

from collections.abc import Sequence


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


class ConfigErrors(ConfigError):
    """Several configuration problems found at once (e.g. every unknown key).

    Each problem is a :class:`ConfigError` of its own, naming its file (or
    ``environment``) and dotted key; the message lists them all, separated
    by ``; ``, so one run of the command shows everything to fix.
    ``source``, ``key`` and ``reason`` are the first problem's.
    """

    def __init__(self, problems: Sequence[ConfigError]) -> None:
        if not problems:
            raise ValueError("ConfigErrors needs at least one problem")
        self.problems = tuple(problems)
        first = self.problems[0]
        super().__init__(first.source, first.key, first.reason)
        self.args = ("; ".join(str(problem) for problem in self.problems),)

    def __str__(self) -> str:
        return str(self.args[0])
