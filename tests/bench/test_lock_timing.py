"""The timing classifier of bench.lock_timing scores what it should."""

from __future__ import annotations

from bench.lock_timing import best_threshold_accuracy, cross_validated_accuracy


def test_classifier_separates_distinct_timings() -> None:
    """Locked answers that are always slower are told apart every time."""
    locked = [10.0 + i / 100 for i in range(100)]
    absent = [5.0 + i / 100 for i in range(100)]
    assert cross_validated_accuracy(locked, absent) == 1.0
    assert best_threshold_accuracy(absent, locked) == 1.0, "either direction"


def test_classifier_is_at_chance_on_identical_timings() -> None:
    """Interleaved identical distributions leave the classifier near a coin toss."""
    values = [float(i % 17) for i in range(400)]
    accuracy = cross_validated_accuracy(values[0::2], values[1::2])
    assert 0.4 <= accuracy <= 0.6
