"""Reminder/recall and coverage over a generated region: 100,000 patients by default.

Generates a region (bench/synth.py people and childhood doses, a guardian
each, 2 % locked records, six clinics) straight into a SQLite file through
SQLAlchemy Core (not timed), then times, in the same run:

- ``cairn recall --region`` as registry staff (role staff), with ``--workers`` processes
  (the figure the issue asks for: under 2 minutes on 2 cores);
- the same recall on a sample of the region in one process, to report the
  workers' speed-up as a ratio measured beside it;
- the coverage report (ages 0..18, with the TK/K-12 set) with the workers.

Run: .venv/bin/python -m bench.recall [--patients 100000] [--workers 2] [--keep FILE]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from bench._common import ROOT, header
from bench.synth import CLINICS, Synth

AS_OF = date(2026, 11, 1)
REGION = "BAY"


def generate(path: Path, patients: int, seed: int = 19) -> None:
    """Write a region of ``patients`` generated patients into a new SQLite file."""
    from sqlalchemy import insert

    from storage import open_database
    from storage.keys import name_key
    from storage.schema import next_of_kin, patient_submitters, vaccinations
    from storage.schema import patients as patients_t

    db = open_database(f"sqlite:///{path}", sqlite_synchronous="NORMAL")
    db.upgrade((REGION,))
    synth = Synth(seed=seed, today=AS_OF)
    now = datetime.now(UTC)
    batch = 5000
    with db.engine.begin() as conn:
        for start in range(1, patients + 1, batch):
            rows_p, rows_s, rows_k, rows_v = [], [], [], []
            for pid in range(start, min(start + batch, patients + 1)):
                person = synth.person()
                clinic = CLINICS[pid % len(CLINICS)]
                rows_p.append(
                    {
                        "id": pid,
                        "region": REGION,
                        "birth_date": person.birth_date,
                        "sex": person.sex,
                        "family_name": person.family,
                        "given_name": person.given,
                        "family_key": name_key(person.family),
                        "given_key": name_key(person.given),
                        "street": person.street,
                        "city": person.city,
                        "state": "CA",
                        "postal_code": person.zip_code,
                        "phone": person.phone,
                        "protection": "Y" if pid % 50 == 0 else "N",
                        "publicity_code": "02",
                        "registry_status": "A",
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                rows_s.append(
                    {
                        "patient_id": pid,
                        "facility": clinic,
                        "region": REGION,
                        "first_seen": now,
                    }
                )
                rows_k.append(
                    {
                        "patient_id": pid,
                        "region": REGION,
                        "sequence": 1,
                        "family_name": person.mother_family,
                        "given_name": person.mother_given,
                        "relationship": "MTH",
                        "street": person.street,
                        "city": person.city,
                        "state": "CA",
                        "postal_code": person.zip_code,
                        "phone": person.phone,
                        "submitted_by": clinic,
                    }
                )
                for n, dose in enumerate(synth.doses_for(person)):
                    rows_v.append(
                        {
                            "region": REGION,
                            "patient_id": pid,
                            "sending_facility": clinic,
                            "filler_id": f"{pid}-{n}",
                            "filler_namespace": clinic,
                            "cvx": dose.cvx,
                            "mvx": dose.mvx,
                            "administered_on": dose.given_on,
                            "completion_status": "CP",
                            "action_code": "A",
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
            conn.execute(insert(patients_t), rows_p)
            conn.execute(insert(patient_submitters), rows_s)
            conn.execute(insert(next_of_kin), rows_k)
            conn.execute(insert(vaccinations), rows_v)
    db.close()


def _cpu() -> float:
    """CPU seconds used so far by this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run(args: argparse.Namespace) -> list[str]:
    """Generate, time, and return the result lines."""
    from forecast import Forecaster, load_supporting_data
    from handlers.coverage import CoverageService
    from handlers.forecasting import CdsiForecastService
    from handlers.population import (
        PopulationAssessor,
        Requester,
        Scope,
        parse_age_range,
    )
    from handlers.recall import RecallService
    from handlers.requirements import load_requirement_set
    from handlers.roles import Role
    from storage import open_database

    lines = [header()]
    print(lines[0], flush=True)
    cdsi = os.environ.get(
        "CAIRN_CDSI_DIR", str(ROOT.parent / "shared" / "cdsi" / "supporting-data")
    )
    forecasts = CdsiForecastService(Forecaster(load_supporting_data(cdsi)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "region.sqlite3"
        if not path.exists():
            t0 = time.perf_counter()
            generate(path, args.patients)
            print(
                f"generated {args.patients} patients in {time.perf_counter() - t0:.1f} s",
                flush=True,
            )
        db = open_database(f"sqlite:///{path}")
        registry = Requester("CAIRN", REGION, Role.STAFF)
        now = lambda: datetime.now(UTC)  # noqa: E731
        spread = PopulationAssessor(db, forecasts, workers=args.workers)
        load = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), _cpu()
        result = RecallService(db, spread, now).run(Scope(REGION), registry, AS_OF)
        recall_s, recall_cpu = time.perf_counter() - t0, _cpu() - c0
        lines.append(
            f"recall, region of {args.patients} patients, {args.workers} worker process(es): "
            f"{recall_s:.1f} s wall = {result.run.considered / recall_s:,.0f} patients/s; "
            f"{recall_cpu:.0f} CPU-seconds in all ({recall_cpu / result.run.considered * 1000:.1f} ms a patient, "
            f"{recall_cpu / (os.cpu_count() or 1):.0f} s if every core were ours); "
            f"load average {load:.1f} at the start; "
            f"{result.run.considered} considered (locked left out), {result.run.listed} listed"
        )
        print(lines[-1], flush=True)
        sample = Scope(REGION, patient_ids=tuple(range(1, args.sample + 1)))
        alone = PopulationAssessor(db, forecasts, workers=0)
        t0 = time.perf_counter()
        alone.assess(sample, registry, AS_OF)
        one_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        spread.assess(sample, registry, AS_OF)
        many_s = time.perf_counter() - t0
        lines.append(
            f"the same work on {args.sample} patients: one process {args.sample / one_s:,.0f} patients/s, "
            f"{args.workers} workers {args.sample / many_s:,.0f} patients/s (speed-up x{one_s / many_s:.2f}, start-up included)"
        )
        print(lines[-1], flush=True)
        t0, c0 = time.perf_counter(), _cpu()
        report = CoverageService(spread).report(
            Scope(REGION, ages=parse_age_range("0..18", AS_OF)),
            registry,
            AS_OF,
            requirement=load_requirement_set("ca-k12-admission"),
        )
        coverage_s, coverage_cpu = time.perf_counter() - t0, _cpu() - c0
        lines.append(
            f"coverage report, ages 0..18 with ca-k12-admission, {args.workers} worker process(es): "
            f"{coverage_s:.1f} s wall, {coverage_cpu:.0f} CPU-seconds, for a cohort of {report.cohort} patients; "
            f"load average {os.getloadavg()[0]:.1f} at the end"
        )
        print(lines[-1], flush=True)
        db.close()
    return lines


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--sample", type=int, default=4000)
    parser.add_argument(
        "--keep", metavar="FILE", help="generate into FILE once and reuse it"
    )
    run(parser.parse_args())


if __name__ == "__main__":
    main()
