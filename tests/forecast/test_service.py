"""The registry's forecasting service hands stored observations, with their
dates, to the engine (intervals from a transplant count from its date)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from forecast import Forecaster, PatientInput
from handlers.disclosure import PatientView
from handlers.forecasting import CdsiForecastService
from storage import ObservationRecord, PatientRecord

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def _patient() -> PatientRecord:
    fields: dict[str, Any] = dict.fromkeys(PatientRecord.__dataclass_fields__, "")
    fields.update(
        id=1,
        region="BAY",
        birth_date=date(2015, 5, 1),
        sex="F",
        birth_order=None,
        protection_date=None,
        registry_status_date=None,
        death_date=None,
        created_by_journal_id=None,
        created_at=NOW,
        updated_at=NOW,
    )
    for name, value in list(fields.items()):
        if name.endswith("_id") and value == "":
            fields[name] = None
    return PatientRecord(**fields)


def _obs(code: str, when: date | None) -> ObservationRecord:
    return ObservationRecord(
        1,
        "BAY",
        1,
        None,
        1,
        1,
        "1",
        "CE",
        "59785-6",
        "indication",
        code,
        "",
        "SCT",
        when,
    )


def test_observation_dates_reach_the_engine(engine: Forecaster) -> None:
    # A transplant (CDSi observation 004): intervals count from its date.
    code = next(v for v, o in engine.data.observation_codes.items() if o == "004")
    seen: list[PatientInput] = []
    original = engine.run

    def spy(patient: PatientInput, *rest: Any, **kw: Any) -> Any:
        seen.append(patient)
        return original(patient, *rest, **kw)

    engine.run = spy  # type: ignore[method-assign]
    try:
        service = CdsiForecastService(engine)
        view = PatientView(
            _patient(),
            (),
            (),
            (
                _obs(code, date(2023, 6, 1)),
                _obs(code, date(2023, 3, 1)),
                _obs(code, None),
            ),
        )
        service.forecast(view, date(2024, 1, 1))
    finally:
        del engine.run
    (patient,) = seen
    assert patient.observations == ("004",)
    assert patient.observation_date("004") == date(2023, 3, 1), "the earliest date"
