"""structlog set-up: one event a line, JSON off a terminal, no PHI ever.

Log lines carry control ids, senders, regions, codes, counts and row ids;
never names, birth dates, addresses, phones or identifiers from a message.
That is enforced by an allow-list processor: an unknown key is dropped in
production and raises in tests (``strict=True``), so a new log call that
would leak a value fails the suite instead of reaching an operator's screen.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

#: Keys a log event may carry. Values under them are metadata, not PHI.
ALLOWED_KEYS = frozenset(
    {
        "event",
        "level",
        "timestamp",
        "logger",
        "exc_info",
        "exception",
        # message metadata
        "control_id",
        "sender",
        "region",
        "message_type",
        "peer",
        "listener",
        "ack_code",
        "outcome",
        "errors",
        "warnings",
        "duration_ms",
        "bytes",
        "size",
        "limit",
        "journal_row",
        "patient_row",
        "dose_row",
        "reasons",
        "location",
        "reason",
        "error_type",
        "count",
        "batch",
        "batch_size",
        "in_flight",
        "connections",
        "address",
        "port",
        "database",
        "backend",
        "data_dir",
        "release",
        "version",
        "path",
        "policy",
        "doses_stored",
        "doses_deleted",
        "doses_rejected",
        "query_name",
        "query_status",
        "candidates",
        "profile",
        "codec",
        "signal",
        "seconds",
        "revision",
        "score",
    }
)


class DisallowedLogKey(Exception):
    """A log call used a key that is not on the allow-list (tests only)."""


class AllowListProcessor:
    """Drops (or, when strict, refuses) keys that are not on the allow-list."""

    def __init__(
        self, allowed: frozenset[str] = ALLOWED_KEYS, *, strict: bool = False
    ) -> None:
        self._allowed = allowed
        self._strict = strict

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Filter one event."""
        unknown = [k for k in event_dict if k not in self._allowed]
        if unknown and self._strict:
            raise DisallowedLogKey(f"log keys not on the allow-list: {sorted(unknown)}")
        for key in unknown:
            del event_dict[key]
        return event_dict


def configure_logging(
    fmt: str = "auto", level: str = "info", *, strict: bool = False
) -> None:
    """Configure structlog once, at start-up.

    Args:
        fmt: ``json``, ``console`` or ``auto`` (console on a terminal).
        level: minimum level name.
        strict: raise on keys that are not on the allow-list (tests).
    """
    use_console = fmt == "console" or (fmt == "auto" and sys.stdout.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer()
        if use_console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            AllowListProcessor(strict=strict),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=False,
    )
