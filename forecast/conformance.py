"""CDC's CDSi test cases (JSON Lines) run against the engine.

A case passes when every dose's evaluation status, the series status, the
forecast dose number and the earliest, recommended and past-due dates equal
the expected values (``null`` equals ``null``). Evaluation reasons are
compared separately and reported as a second figure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from forecast.engine import Forecaster
from forecast.model import AdministeredDose, ForecastResult, PatientInput

_STATUS_ORDER = {"Not Valid": 0, "Extraneous": 1, "Sub-standard": 2, "Valid": 3}


@dataclass(frozen=True, slots=True)
class CaseResult:
    """The outcome of one test case."""

    case_id: str
    vaccine_group: str
    passed: bool
    reasons_match: bool
    differences: tuple[str, ...] = ()
    reason_differences: tuple[str, ...] = ()
    actual: dict[str, Any] = field(default_factory=dict)


def read_cases(path: str | Path) -> Iterator[dict[str, Any]]:
    """Read test cases, one JSON object per line."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _normalize_reason(text: str | None) -> str:
    return " ".join((text or "").lower().replace(":", " ").split())


def run_case(engine: Forecaster, case: dict[str, Any]) -> CaseResult:
    """Run one case and compare it with CDC's expectations."""
    patient = PatientInput(
        birth_date=date.fromisoformat(case["dob"]),
        sex=case.get("gender") or "U",
        observations=tuple(str(o["code"]) for o in case.get("observations") or []),
        observation_dates=tuple(
            (str(o["code"]), date.fromisoformat(o["date"]))
            for o in case.get("observations") or []
            if o.get("date")
        ),
    )
    doses = tuple(
        AdministeredDose(date.fromisoformat(d["date"]), str(d["cvx"]), d.get("mvx"))
        for d in case["doses"]
    )
    result = engine.run(patient, doses, date.fromisoformat(case["assessment_date"]))
    return compare(case, result)


def dose_status(
    result: ForecastResult, antigens: tuple[str, ...], index: int
) -> tuple[str, str]:
    """The status and reason of one dose for a vaccine group (worst antigen wins)."""
    evaluations = result.evaluations_for_group(antigens).get(index, [])
    if not evaluations:
        # A dose of another group listed in the case (e.g. varicella given with
        # MMR): CDC's expectation is that dose's own evaluation.
        evaluations = [e for e in result.dose_evaluations if e.dose_index == index]
    if not evaluations:
        return "", ""
    worst = min(evaluations, key=lambda e: _STATUS_ORDER.get(e.status, 9))
    return worst.status, worst.reason


def compare(case: dict[str, Any], result: ForecastResult) -> CaseResult:
    """Compare an engine result with a case's expected values."""
    group_name = case["vaccine_group"]
    expected = case["expected"]
    group = result.group(group_name)
    antigens = tuple(a.antigen for a in group.antigens) if group else ()
    diffs: list[str] = []
    reason_diffs: list[str] = []
    for i, dose in enumerate(case["doses"]):
        status, reason = dose_status(result, antigens, i)
        if status != dose["expected_evaluation_status"]:
            diffs.append(
                f"dose {i + 1} status: expected {dose['expected_evaluation_status']}, got {status or 'none'} ({reason or 'no reason'})"
            )
        want_reason = dose.get("expected_evaluation_reason")
        if want_reason and _normalize_reason(want_reason) != _normalize_reason(reason):
            reason_diffs.append(
                f"dose {i + 1} reason: expected {want_reason!r}, got {reason!r}"
            )
    status = group.status if group else "none"
    if status != expected["series_status"]:
        diffs.append(
            f"series status: expected {expected['series_status']}, got {status}"
        )
    got = {
        "forecast_dose_number": group.dose_number if group else None,
        "earliest_date": group.earliest if group else None,
        "recommended_date": group.recommended if group else None,
        "past_due_date": group.past_due if group else None,
    }
    for key, value in got.items():
        want = expected.get(key)
        if key != "forecast_dose_number":
            want = _day(want)
        if want != value:
            diffs.append(f"{key}: expected {want}, got {value}")
    actual = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in got.items()}
    actual["series_status"] = status
    actual["series"] = group.series if group else ""
    return CaseResult(
        case["id"],
        group_name,
        not diffs,
        not reason_diffs,
        tuple(diffs),
        tuple(reason_diffs),
        actual,
    )


def run_cases(engine: Forecaster, cases: Iterable[dict[str, Any]]) -> list[CaseResult]:
    """Run every case."""
    return [run_case(engine, case) for case in cases]
