"""structlog set-up: one event a line, JSON off a terminal, no PHI ever.

Log lines carry control ids, senders, regions, codes, counts and row ids;
never names, birth dates, addresses, phones or identifiers from a message.
That is enforced by an allow-list processor: an unknown key is dropped in
production and raises in tests (``strict=True``), so a new log call that
would leak a value fails the suite instead of reaching an operator's screen.

Exceptions are logged as their type and the place in our code where they
arose (``error_type``, ``error_at``, ``error_cause``), never as their message
or a traceback: a driver's error text can quote the statement's parameters,
and a traceback renderer can print local variables (a whole message). The
:class:`ExceptionSummary` processor reduces every ``exc_info`` that reaches
the chain (``log.exception`` anywhere) the same way.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from types import TracebackType
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
        # an organization's id (RXA-11's facility, an inventory's owner)
        "facility",
        "fallback_region",
        "processing_id",
        "messages",
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
        "error_at",
        "error_cause",
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
        # the startup summary (engine_started): configuration, not messages
        "mllp",
        "http",
        "auth",
        "cdsi_release",
        "regions",
        "senders",
        # who is speaking (issue 17): codes and counts, never credentials
        "organization",
        "role",
        "failures",
        "depth",
        "rate",
        "max_connections",
        # the SOAP service (listeners/soap.py, engine/soap.py)
        "operation",
        "fault",
        "soap",
    }
)


#: Our top-level packages: the frames an exception's location is taken from.
#: ``storage._sql`` is left out: it only re-raises driver errors, so the
#: useful place is the repository method that ran the statement.
_OUR_PACKAGES = frozenset(
    {"engine", "listeners", "handlers", "parsers", "storage", "forecast", "config"}
)
_PLUMBING = frozenset({"storage._sql"})


def _chain(exc: BaseException) -> list[BaseException]:
    """An exception and what caused it (``raise X from Y``, or raised while handling Y)."""
    chain = [exc]
    while True:
        nxt = exc.__cause__ or exc.__context__
        if nxt is None or any(nxt is seen for seen in chain):
            return chain
        chain.append(nxt)
        exc = nxt


def _where(tb: TracebackType | None) -> str:
    """``module:function:line`` of the innermost frame of our code in a traceback."""
    found = ""
    while tb is not None:
        frame = tb.tb_frame
        module = str(frame.f_globals.get("__name__", ""))
        if module.split(".")[0] in _OUR_PACKAGES and module not in _PLUMBING:
            found = f"{module}:{frame.f_code.co_name}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


def exception_summary(exc: BaseException) -> dict[str, str]:
    """What may be logged of an exception: its type and where it arose, nothing else.

    Args:
        exc: the exception being handled.

    Returns:
        ``error_type`` (the exception's class name), ``error_at`` (the
        innermost frame of our code, ``module:function:line``, of the
        earliest exception in the chain that passed through our code) and,
        for a chained exception, ``error_cause`` (the class name of the
        exception it was raised from). Never the exception's message,
        arguments or locals.
    """
    chain = _chain(exc)
    where = ""
    for cause in reversed(chain):
        where = _where(cause.__traceback__)
        if where:
            break
    summary = {"error_type": type(exc).__name__, "error_at": where}
    if len(chain) > 1:
        summary["error_cause"] = type(chain[1]).__name__
    return summary


class ExceptionSummary:
    """Replaces ``exc_info`` in an event by :func:`exception_summary` (a processor).

    ``log.exception`` (or ``exc_info=True``) would otherwise have the
    renderer print the message and the traceback, which can carry patient
    data.
    """

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Summarize one event's exception, if any."""
        info = event_dict.pop("exc_info", None)
        event_dict.pop("exception", None)
        exc: BaseException | None = None
        if isinstance(info, BaseException):
            exc = info
        elif isinstance(info, tuple) and len(info) == 3:
            exc = info[1]
        elif info:
            exc = sys.exc_info()[1]
        if exc is not None:
            for key, value in exception_summary(exc).items():
                event_dict.setdefault(key, value)
        return event_dict


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
            ExceptionSummary(),
            AllowListProcessor(strict=strict),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=False,
    )
