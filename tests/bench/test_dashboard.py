"""The Grafana dashboard stays true to the metrics, and bench.dashboard computes its panels as PromQL would."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.dashboard import (
    DASHBOARD,
    PANELS,
    Panels,
    Scrape,
    dashboard_panels,
    quantile,
    render,
)
from engine.metrics import EngineMetrics

INF = float("inf")


def _families() -> set[str]:
    """The sample names the engine's /metrics page can carry."""
    metrics = EngineMetrics()
    metrics.messages_answered([("VXU", "CLINIC1", True, "AA")])
    names = set()
    for family in metrics.registry.collect():
        names |= {sample.name for sample in family.samples}
    return names


def test_every_metric_the_dashboard_queries_exists() -> None:
    """A renamed metric breaks this test, not an operator's dashboard."""
    names = _families()
    exprs = [
        target["expr"]
        for panel in json.loads(DASHBOARD.read_text())["panels"]
        for target in panel["targets"]
    ]
    used = {m for e in exprs for m in re.findall(r"\b(cairn_[a-z_]+)", e)}
    assert used, "the dashboard queries nothing"
    assert sorted(used - names) == []


def test_bench_draws_every_panel_of_the_dashboard() -> None:
    """The PNG's panels are the dashboard's panels, no more and no fewer."""
    titles = [p["title"] for p in dashboard_panels()]
    assert len(titles) == len(set(titles))
    assert sorted(titles) == sorted(PANELS)


def test_quantile_interpolates_inside_the_bucket_like_histogram_quantile() -> None:
    """Linear within the bucket, from 0 below the first; the +Inf bucket gives the highest bound."""
    buckets = [(0.1, 5.0), (0.2, 10.0), (INF, 10.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.1)
    assert quantile(0.75, buckets) == pytest.approx(0.15)
    assert quantile(0.25, buckets) == pytest.approx(0.05)
    assert quantile(0.9, [(0.1, 1.0), (INF, 10.0)]) == pytest.approx(0.1)
    assert quantile(0.5, [(0.1, 0.0), (INF, 0.0)]) is None


def _scrape(at: float, aa: float, ae: float, busy: float) -> Scrape:
    def key(outcome: str, sender: str) -> tuple[tuple[str, str], ...]:
        return tuple(
            sorted(
                {"message_type": "VXU", "outcome": outcome, "sender": sender}.items()
            )
        )

    return Scrape(
        at,
        {
            ("cairn_messages_total", key("AA", "CLINIC1")): aa,
            ("cairn_messages_total", key("AE", "CLINIC2")): ae,
            ("cairn_writer_busy_seconds_total", ()): busy,
        },
    )


def test_rates_over_a_window_are_per_second_differences() -> None:
    """rate() over the window: (later - earlier) / seconds, grouped by a label."""
    panels = Panels(
        [_scrape(0, 0, 0, 0), _scrape(2, 100, 4, 1.0), _scrape(4, 300, 4, 2.5)],
        window=2.0,
    )
    by_outcome = {
        label: ys
        for label, _xs, ys in panels.rate_by("cairn_messages_total", "outcome")
    }
    assert by_outcome == {"AA": [50.0, 100.0], "AE": [2.0, 0.0]}
    assert panels.rate("cairn_writer_busy_seconds_total") == ([2, 4], [0.5, 0.75])
    assert panels.increase("cairn_messages_total", outcome="AA") == 300
    assert PANELS["Share answered AA (range)"](panels) == "98.7 %"
    (sender, _xs, ys) = PANELS["Errors (AE, AR) per second by sender"](panels)[0]
    assert (sender, ys) == ("CLINIC2", [2.0, 0.0])


def test_render_writes_a_png(tmp_path: Path) -> None:
    """Every panel draws from a small run's scrapes (matplotlib is in the bench extra)."""
    pytest.importorskip("matplotlib")
    out = tmp_path / "dash.png"
    render(
        [_scrape(0, 0, 0, 0), _scrape(1, 10, 1, 0.5), _scrape(2, 30, 1, 0.9)],
        out,
        window=1.0,
        note="test",
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
