"""``/healthz`` and ``/readyz``: is the engine alive, and may it be sent traffic.

``/healthz`` answers 200 whenever the reactor answers at all: a supervisor
restarts the process when it does not. ``/readyz`` answers 200 only when the
registry can do its work, and 503 otherwise, with a JSON body saying which
check failed; a load balancer sends messages only to ready nodes:

- ``database``: ``ok``, or ``unreachable`` (cannot connect, or no answer
  within the timeout);
- ``schema``: ``current``, or what it is at and what it must be at (run
  ``cairn db upgrade``);
- ``cdsi``: the supporting-data release, or ``not loaded`` (Z44 would be
  answered without a forecast; run ``cairn cdsi import``).

The bodies carry no patient data and no database password.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool

from listeners.http import ProbeResult
from storage import Database, DatabaseUnreachable, SchemaOutOfDate, StorageError


def alive() -> Deferred[ProbeResult]:
    """``/healthz``: the reactor answered, so the process is alive."""
    return defer.succeed((True, {"status": "alive"}))


def readiness(db: Database, cdsi_release: str | None) -> ProbeResult:
    """Check the database, its schema and the CDSi data (blocking: run it in a thread).

    Args:
        db: the registry's database.
        cdsi_release: the loaded supporting-data release, None when none is.

    Returns:
        (ready, body) with one entry per check.
    """
    body: dict[str, Any] = {"cdsi": cdsi_release or "not loaded"}
    try:
        db.check_schema_current()
    except DatabaseUnreachable:
        body.update(database="unreachable", schema="unknown")
    except SchemaOutOfDate as exc:
        body.update(
            database="ok",
            schema=f"at {exc.current or 'none'}, expected {exc.head}"
            " (run `cairn db upgrade`)",
        )
    except StorageError as exc:
        body.update(database="error", schema="unknown", error=type(exc).__name__)
    else:
        body.update(database="ok", schema="current")
    ready = (
        body["database"] == "ok"
        and body["schema"] == "current"
        and cdsi_release is not None
    )
    return ready, body


class ReadinessProbe:
    """``/readyz``'s probe: :func:`readiness` in a thread, bounded by a timeout.

    Args:
        reactor: provides the thread pool and the clock.
        db: the registry's database.
        cdsi_release: the loaded supporting-data release, None when none is.
        timeout: seconds after which a database that has not answered is
            reported unreachable.
    """

    def __init__(
        self,
        reactor: Any,
        db: Database,
        cdsi_release: str | None,
        *,
        timeout: float = 5.0,
    ) -> None:
        self._reactor = reactor
        self._db = db
        self._release = cdsi_release
        self._timeout = timeout

    def __call__(self) -> Deferred[ProbeResult]:
        """Run the checks; fires with (ready, body)."""
        d: Deferred[ProbeResult] = deferToThreadPool(
            self._reactor,
            self._reactor.getThreadPool(),
            readiness,
            self._db,
            self._release,
        )
        d.addTimeout(self._timeout, self._reactor, onTimeoutCancel=self._timed_out)
        return d

    def _timed_out(self, _result: Any, _timeout: float) -> ProbeResult:
        return False, {
            "database": "unreachable",
            "schema": "unknown",
            "cdsi": self._release or "not loaded",
            "timeout_seconds": self._timeout,
        }
