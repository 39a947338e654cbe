"""Forecast speed: the whole healthy DEV suite end to end, and one 25-dose patient.

Run: .venv/bin/python -m bench.forecast [--cdsi DIR] [--cases FILE]
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

from bench._common import ROOT, header, percentile
from forecast import AdministeredDose, Forecaster, PatientInput, load_supporting_data
from forecast.conformance import read_cases, run_cases

SHARED = ROOT.parent / "shared" / "cdsi"

#: 25 doses across the vaccine groups, for a 13-year-old.
PATIENT_DOSES = [
    ("2013-01-02", "08"),
    ("2013-03-05", "110"),
    ("2013-03-05", "49"),
    ("2013-03-05", "133"),
    ("2013-03-05", "116"),
    ("2013-05-06", "110"),
    ("2013-05-06", "49"),
    ("2013-05-06", "133"),
    ("2013-05-06", "116"),
    ("2013-07-08", "110"),
    ("2013-07-08", "133"),
    ("2013-07-08", "116"),
    ("2014-01-10", "03"),
    ("2014-01-10", "21"),
    ("2014-01-10", "83"),
    ("2014-04-10", "48"),
    ("2014-04-10", "20"),
    ("2014-07-10", "83"),
    ("2017-01-10", "94"),
    ("2017-01-10", "130"),
    ("2024-01-10", "115"),
    ("2024-01-10", "165"),
    ("2024-01-10", "114"),
    ("2024-10-10", "150"),
    ("2025-09-10", "309"),
]


def main() -> None:
    """Print both figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cdsi", type=Path, default=SHARED / "supporting-data")
    parser.add_argument("--cases", type=Path, default=SHARED / "testcases-dev.jsonl")
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    print(header())
    started = time.perf_counter()
    engine = Forecaster(load_supporting_data(args.cdsi))
    loaded = time.perf_counter()
    results = run_cases(engine, read_cases(args.cases))
    finished = time.perf_counter()
    passed = sum(r.passed for r in results)
    print(
        f"healthy DEV suite: {len(results)} cases ({passed} passed) in {finished - started:.2f} s end to end (loading {loaded - started:.2f} s)"
    )
    patient = PatientInput(date(2012, 11, 1), "F")
    doses = [AdministeredDose(date.fromisoformat(d), cvx) for d, cvx in PATIENT_DOSES]
    as_of = date(2025, 11, 10)
    timings = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        engine.run(patient, doses, as_of)
        timings.append((time.perf_counter() - t0) * 1000)
    print(
        f"one patient, {len(doses)} doses, {args.runs} runs: p50 {percentile(timings, 50):.2f} ms, p99 {percentile(timings, 99):.2f} ms"
    )


if __name__ == "__main__":
    main()
