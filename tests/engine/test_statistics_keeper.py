"""The engine refreshes stale planner statistics on a timer, off the reactor thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from structlog.testing import capture_logs
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from engine.app import StatisticsKeeper


class _InlinePool:
    """A thread pool that runs the work at once (the test needs no threads)."""

    def callInThreadWithCallback(
        self, on_result: Callable[[bool, Any], None], func: Callable[[], Any]
    ) -> None:
        try:
            result = func()
        except Exception as exc:
            on_result(False, Failure(exc))
            return
        on_result(True, result)


class _Reactor(Clock):
    def getThreadPool(self) -> _InlinePool:
        return _InlinePool()

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        f(*args, **kw)


class _Db:
    def __init__(self, outcomes: list[list[str] | Exception]) -> None:
        self.outcomes = outcomes
        self.calls = 0

    def refresh_statistics(self) -> list[str]:
        outcome = self.outcomes[min(self.calls, len(self.outcomes) - 1)]
        self.calls += 1
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def test_refreshes_every_interval_and_logs_what_it_analyzed() -> None:
    reactor = _Reactor()
    db = _Db([["patients_default"], []])
    keeper = StatisticsKeeper(reactor, db, 30)  # type: ignore[arg-type]
    with capture_logs() as logs:
        keeper.start()
        assert db.calls == 0, "the first refresh waits one interval"
        reactor.advance(30)
        reactor.advance(30)
    assert db.calls == 2
    refreshed = [e for e in logs if e["event"] == "statistics_refreshed"]
    assert refreshed == [
        {
            "event": "statistics_refreshed",
            "tables": ["patients_default"],
            "log_level": "info",
        }
    ]
    keeper.stop()
    reactor.advance(300)
    assert db.calls == 2, "stopped: no more refreshes"


def test_a_failed_refresh_is_logged_and_retried() -> None:
    reactor = _Reactor()
    db = _Db([ConnectionError("database went away"), ["vaccinations_default"]])
    keeper = StatisticsKeeper(reactor, db, 10)  # type: ignore[arg-type]
    with capture_logs() as logs:
        keeper.start()
        reactor.advance(10)
        reactor.advance(10)
    assert db.calls == 2
    events = [e["event"] for e in logs]
    assert events == ["statistics_refresh_failed", "statistics_refreshed"]
    assert logs[0]["error_type"] == "ConnectionError"
    assert "database went away" not in str(logs[0])
    keeper.stop()
