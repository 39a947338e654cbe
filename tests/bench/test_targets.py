"""bench.targets judges each figure against its target as the issue states it."""

from __future__ import annotations

import math

import pytest

from bench.targets import Check, Plan, command, target_line, verdict


def test_a_target_is_met_only_when_every_bound_holds() -> None:
    """SQLite's target is a ratio and a rate: one without the other is not met."""
    ratio_and_rate = [
        Check("x floor", 0.7, ">=", 0.6),
        Check("VXU/s", 1200, ">=", 1000),
    ]
    assert verdict(ratio_and_rate) == "met"
    slow = [Check("x floor", 0.7, ">=", 0.6), Check("VXU/s", 800, ">=", 1000)]
    assert verdict(slow) == "not met (VXU/s 800)", "names the bound missed"


def test_strict_bounds_are_strict_and_unmeasured_figures_never_pass() -> None:
    """p99 < 20 ms is missed at exactly 20; a figure that is NaN is missed whatever the bound."""
    assert not Check("p99 ms", 20.0, "<", 20).holds()
    assert Check("x alone", 2.0, "<=", 2).holds()
    assert not Check("p99 ms", math.nan, "<", 20).holds()
    assert not Check("growth MB", math.nan, ">=", 0).holds()
    with pytest.raises(ValueError):
        verdict([])


def test_the_line_states_the_target_and_its_verdict() -> None:
    """A reader sees the figure, the target and the verdict on one line."""
    line = target_line("memory", "growth 12 MB", [Check("growth MB", 12, "<", 50)])
    assert line == "memory: growth 12 MB; target growth MB < 50: met"


def test_the_full_run_measures_what_the_issue_names() -> None:
    """Scale 1 is the issue's own run: 10 minutes of memory; a dry run shortens every step."""
    full, dry = Plan.at(1.0), Plan.at(0.05)
    assert full.memory_seconds == 600
    assert full.grown_messages == 1100
    assert all(
        getattr(dry, name) <= getattr(full, name) for name in full.__dataclass_fields__
    )
    assert Plan.at(1.0, memory_seconds=45).memory_seconds == 45


def test_the_command_written_with_the_figures_reproduces_them() -> None:
    """--write is not part of the measurement, so not of the command shown."""
    assert (
        command(["--scale", "0.05", "--write"])
        == ".venv/bin/python -m bench.targets --scale 0.05"
    )
