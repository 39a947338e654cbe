"""``cairn cdsi check|import`` and ``cairn forecast``: the embedded CDSi engine from the shell."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from forecast import (
    AdministeredDose,
    Forecaster,
    PatientInput,
    SupportingDataError,
    installed_release,
    load_supporting_data,
)
from forecast.conformance import read_cases, run_case


def register(subparsers: Any) -> None:
    """Add the ``cdsi`` and ``forecast`` sub-commands."""
    parser = subparsers.add_parser(
        "cdsi", help="CDSi supporting data: install a release, run CDC's test cases"
    )
    sub = parser.add_subparsers(dest="cdsi_command", metavar="ACTION")
    sub.required = True
    check = sub.add_parser(
        "check", help="run CDC test cases (JSON Lines) and report pass/fail"
    )
    check.add_argument(
        "cases",
        metavar="FILE.jsonl",
        help="CDC test cases, one JSON object a line (e.g. testcases-dev.jsonl)",
    )
    check.add_argument(
        "--supporting-data",
        metavar="DIR",
        help="release folder or zip (default: CAIRN_CDSI_DIR or the installed one)",
    )
    check.add_argument(
        "--data-dir", default="var", help="data directory holding an installed release"
    )
    check.add_argument(
        "--json", action="store_true", help="print one JSON result per case"
    )
    check.set_defaults(func=run_check)
    install = sub.add_parser(
        "import",
        help="validate a release (folder or CDC zip) and install it into the data directory",
    )
    install.add_argument(
        "path",
        metavar="PATH",
        help="a CDSi supporting-data release: CDC's zip, or the folder of its XML"
        " files",
    )
    install.add_argument(
        "--data-dir",
        default="var",
        help="data directory to install into (default ./var)",
    )
    install.set_defaults(func=run_import)

    fc = subparsers.add_parser(
        "forecast", help="evaluate a history and forecast every vaccine group"
    )
    # Dates are checked in run_forecast, not by argparse, so that a bad value
    # is one line naming the flag and the value (exit 2), like a bad --dose.
    fc.add_argument("--dob", required=True, help="birth date YYYY-MM-DD")
    fc.add_argument(
        "--sex",
        required=True,
        choices=["F", "M", "U"],
        help="administrative sex: F, M or U (unknown)",
    )
    fc.add_argument(
        "--dose",
        action="append",
        default=[],
        metavar="DATE:CVX[:MVX]",
        help="a dose administered (repeat)",
    )
    fc.add_argument(
        "--as-of", default=None, help="assessment date YYYY-MM-DD (default today)"
    )
    fc.add_argument(
        "--observation",
        action="append",
        default=[],
        metavar="CODE[:DATE]",
        help="CDSi observation code, with its date when intervals count from it, e.g. 171:2024-03-01 (repeat)",
    )
    fc.add_argument(
        "--explain",
        action="store_true",
        help="show the rule and values behind each result",
    )
    fc.add_argument(
        "--supporting-data",
        metavar="DIR",
        help="release folder or zip (default: CAIRN_CDSI_DIR or the installed one)",
    )
    fc.add_argument(
        "--data-dir",
        default="var",
        help="data directory holding an installed release (default ./var)",
    )
    fc.set_defaults(func=run_forecast)


def _release_path(args: argparse.Namespace) -> Path | None:
    if getattr(args, "supporting_data", None):
        return Path(args.supporting_data)
    env = os.environ.get("CAIRN_CDSI_DIR")
    if env:
        return Path(env)
    return installed_release(args.data_dir)


def _engine(args: argparse.Namespace) -> Forecaster | None:
    path = _release_path(args)
    if path is None:
        print(
            "cairn: no CDSi supporting data: pass --supporting-data DIR, set CAIRN_CDSI_DIR, or install a release with `cairn cdsi import PATH`",
            file=sys.stderr,
        )
        return None
    try:
        return Forecaster(load_supporting_data(path))
    except SupportingDataError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return None


def run_check(args: argparse.Namespace) -> int:
    """Run every case; print the failures and end with ``N passed, M failed``."""
    engine = _engine(args)
    if engine is None:
        return 2
    started = time.perf_counter()
    passed = failed = reasons_ok = 0
    try:
        cases = list(read_cases(args.cases))
    except (OSError, ValueError) as exc:
        print(f"cairn: cannot read {args.cases}: {exc}", file=sys.stderr)
        return 2
    for case in cases:
        result = run_case(engine, case)
        passed += result.passed
        failed += not result.passed
        reasons_ok += result.reasons_match
        if args.json:
            print(
                json.dumps(
                    {
                        "id": result.case_id,
                        "vaccine_group": result.vaccine_group,
                        "passed": result.passed,
                        "reasons_match": result.reasons_match,
                        "differences": list(result.differences),
                        "reason_differences": list(result.reason_differences),
                        "actual": result.actual,
                    }
                )
            )
        elif not result.passed:
            print(f"{result.case_id} ({result.vaccine_group}):")
            for line in result.differences:
                print(f"    {line}")
    if not args.json:
        seconds = time.perf_counter() - started
        print(
            f"evaluation reasons matched in {reasons_ok} of {len(cases)} cases; supporting data {engine.data.version}; {seconds:.2f} s"
        )
        print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def run_import(args: argparse.Namespace) -> int:
    """Validate a release and install it as the data directory's current release."""
    source = Path(args.path)
    try:
        data = load_supporting_data(source)
    except SupportingDataError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 1
    target = Path(args.data_dir) / "cdsi" / "current"
    staging = target.with_name("incoming")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if source.is_dir():
        for item in source.rglob("*.xml"):
            shutil.copy2(item, staging / item.name)
    else:
        import zipfile

        with zipfile.ZipFile(source) as archive:
            for info in archive.infolist():
                name = info.filename.rsplit("/", 1)[-1]
                if name.endswith(".xml"):
                    (staging / name).write_bytes(archive.read(info))
    (staging / "VERSION").write_text(data.version + "\n")
    load_supporting_data(staging)  # the copy loads too, before it replaces anything
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    print(
        f"cairn: installed CDSi supporting data {data.version} ({len(data.antigens)} antigens) into {target}"
    )
    return 0


def _parse_date(flag: str, text: str) -> date:
    """A ``YYYY-MM-DD`` date, or a ValueError naming the flag and the value."""
    value = text.strip()
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{flag} {text!r}: expected a calendar date YYYY-MM-DD"
        ) from None


def _parse_dose(text: str) -> AdministeredDose:
    """``DATE:CVX[:MVX]``, or a ValueError naming the part that is wrong."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"--dose {text!r}: expected DATE:CVX[:MVX]")
    when = _parse_date(f"--dose {text!r}: the date", parts[0]).isoformat()
    cvx = parts[1].strip()
    if not cvx.isdigit() or len(cvx) > 3:
        raise ValueError(f"--dose {text!r}: CVX {cvx!r} is not a CVX code (1-3 digits)")
    mvx = parts[2].strip().upper() if len(parts) == 3 else ""
    if len(parts) == 3 and not (mvx.isalnum() and len(mvx) <= 4):
        raise ValueError(f"--dose {text!r}: MVX {parts[2]!r} is not an MVX code")
    return AdministeredDose(date.fromisoformat(when), cvx, mvx or None)


def _parse_observation(text: str) -> tuple[str, date | None]:
    code, _, when = text.partition(":")
    if not code.strip():
        raise ValueError(f"--observation {text!r}: expected CODE[:DATE]")
    return code.strip(), _parse_date(
        f"--observation {text!r}: the date", when
    ) if when else None


def _check_history(
    engine: Forecaster,
    dob: date,
    as_of: date,
    doses: list[AdministeredDose],
    texts: list[str],
    observations: list[tuple[str, date | None]],
) -> None:
    """Refuse what the engine would otherwise ignore in silence (ValueError)."""
    if dob > as_of:
        raise ValueError(
            f"--dob {dob.isoformat()} is after the assessment date {as_of.isoformat()}"
        )
    for dose, text in zip(doses, texts, strict=True):
        if not engine.knows_cvx(dose.cvx):
            raise ValueError(
                f"--dose {text!r}: unknown CVX {dose.cvx!r} (not in CDSi supporting"
                f" data {engine.data.version})"
            )
        if dose.date < dob:
            raise ValueError(
                f"--dose {text!r}: given before the birth date {dob.isoformat()}"
            )
        if dose.date > as_of:
            raise ValueError(
                f"--dose {text!r}: given after the assessment date {as_of.isoformat()}"
                " (use --as-of)"
            )
    known = engine.data.observations
    for code, _when in observations:
        if known and code not in known:
            raise ValueError(
                f"--observation {code!r}: unknown CDSi observation code (not in"
                f" supporting data {engine.data.version})"
            )


def run_forecast(args: argparse.Namespace) -> int:
    """Print the evaluated history and the forecast per vaccine group."""
    try:
        dob = _parse_date("--dob", args.dob)
        as_of = (
            _parse_date("--as-of", args.as_of)
            if args.as_of
            else datetime.now(UTC).date()
        )
        doses = [_parse_dose(d) for d in args.dose]
        observations = [_parse_observation(o) for o in args.observation]
    except ValueError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 2
    engine = _engine(args)
    if engine is None:
        return 2
    try:
        _check_history(engine, dob, as_of, doses, args.dose, observations)
    except ValueError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 2
    patient = PatientInput(
        dob,
        args.sex,
        tuple(code for code, _when in observations),
        tuple((code, when) for code, when in observations if when is not None),
    )
    result = engine.run(patient, doses, as_of)
    print(
        f"CDSi supporting data {result.release_version}, assessed {as_of.isoformat()}"
    )
    print()
    print("Evaluated history")
    print(
        f"  {'#':>2}  {'date':<10}  {'CVX':<4} {'antigen':<16} {'status':<11} {'dose':>4}  reason"
    )
    for ev in result.dose_evaluations:
        dose = doses[ev.dose_index]
        line = f"  {ev.dose_index + 1:>2}  {dose.date.isoformat():<10}  {dose.cvx:<4} {ev.antigen:<16} {ev.status:<11} {ev.target_dose or '':>4}  {ev.reason}"
        print(line)
        if args.explain:
            print(f"{'':>8}series {ev.series}: {ev.rule}")
    print()
    print("Forecast")
    print(
        f"  {'vaccine group':<22} {'status':<16} {'dose':>4}  {'earliest':<10}  {'recommended':<11}  {'past due':<10}  {'latest':<10}  why no dates"
    )
    for group in result.vaccine_groups:

        def fmt(value: date | None) -> str:
            return value.isoformat() if value else "-"

        line = f"  {group.vaccine_group:<22} {group.status:<16} {group.dose_number or '':>4}  {fmt(group.earliest):<10}  {fmt(group.recommended):<11}  {fmt(group.past_due):<10}  {fmt(group.latest):<10}"
        if group.status != "Not Complete":
            # No dates: the line says why (series complete, aged out, a window
            # that closes before it opens, a season that has ended...).
            line = f"{line}  {group.reason}"
        print(line.rstrip())
        if args.explain:
            for antigen in group.antigens:
                if antigen.status == "Not Complete":
                    why = "earliest from " + ("; ".join(antigen.rules) or "-")
                else:
                    why = antigen.reason
                print(
                    f"{'':>6}{antigen.antigen} ({antigen.series}): {antigen.status}; {why}"
                )
    return 0
