"""CDC's CDSi test cases: the pass rate must not drop below its floor."""

from __future__ import annotations

from pathlib import Path

from forecast import Forecaster
from forecast.conformance import read_cases, run_cases

#: Issue target: at least 99.5% of the healthy DEV cases. Floor = what passes now.
HEALTHY_FLOOR = 656
#: Issue target: at least 90% of the underlying-conditions DEV cases (192 of 213),
#: met; the rest is explained in forecast/KNOWN.md. Floor = what passes now.
UC_FLOOR = 192


def test_conformance_healthy_suite_meets_its_floor(
    engine: Forecaster, cases_dir: Path
) -> None:
    """The healthy childhood and adult DEV cases pass at >= 99.5% (floor 656 of 657)."""
    results = run_cases(engine, read_cases(cases_dir / "testcases-dev.jsonl"))
    passed = sum(r.passed for r in results)
    assert len(results) == 657
    assert passed >= HEALTHY_FLOOR, [
        (r.case_id, r.differences) for r in results if not r.passed
    ]
    assert passed / len(results) >= 0.995


def test_conformance_underlying_conditions_suite_meets_its_floor(
    engine: Forecaster, cases_dir: Path
) -> None:
    """The underlying-conditions DEV cases pass at >= 90% (192 of 213)."""
    results = run_cases(engine, read_cases(cases_dir / "testcases-uc-dev.jsonl"))
    assert len(results) == 213
    assert sum(r.passed for r in results) >= UC_FLOOR, [
        (r.case_id, r.differences) for r in results if not r.passed
    ]
