"""Forecast windows: never one that closes before it opens (issue 15, item 8).

Table 7-10 of the CDSi logic specification ends a series whose candidate
earliest date is on or after its maximum age date (Aged Out) or whose season
has ended (Not Recommended); chapter 9 combines the antigens of a group
(MULTIANTVG-1, FORECASTVG-2..4).
"""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forecast import (
    AdministeredDose,
    Forecaster,
    ForecastResult,
    PatientInput,
    VaccineGroupForecast,
)

#: The README's example: a girl born 2024-01-15 with one Pediarix dose.
README_DOB = date(2024, 1, 15)


def _run(
    engine: Forecaster, dob: date, doses: list[tuple[str, str]], as_of: str
) -> ForecastResult:
    return engine.run(
        PatientInput(dob, "F"),
        [AdministeredDose(date.fromisoformat(d), cvx) for d, cvx in doses],
        date.fromisoformat(as_of),
    )


def _group(result: ForecastResult, name: str) -> VaccineGroupForecast:
    group = result.group(name)
    assert group is not None, name
    return group


def test_forecast_season_opening_after_maximum_age_is_aged_out(
    engine: Forecaster,
) -> None:
    """RSV whose only season in the data opens after 8 months of age is Aged Out, without dates."""
    result = _run(engine, README_DOB, [("2024-03-20", "110")], "2024-06-01")
    rsv = _group(result, "RSV")
    assert rsv.status == "Aged Out"
    assert (rsv.earliest, rsv.recommended, rsv.past_due, rsv.latest) == (
        None,
        None,
        None,
        None,
    )
    assert "unable to finish the series prior to the maximum age" in rsv.reason


def test_forecast_season_open_before_maximum_age_is_forecast(
    engine: Forecaster,
) -> None:
    """An infant still under 8 months when the 2025-26 season opens gets the season's dates."""
    result = _run(engine, date(2025, 6, 1), [], "2025-08-15")
    rsv = _group(result, "RSV")
    assert rsv.status == "Not Complete"
    assert rsv.earliest == date(2025, 10, 1)
    assert rsv.latest is not None
    assert rsv.earliest <= rsv.latest


def test_forecast_after_season_end_is_not_recommended(engine: Forecaster) -> None:
    """Influenza assessed after the 2025-26 season's end date is Not Recommended, with the reason."""
    result = _run(engine, date(2020, 3, 1), [], "2026-08-01")
    flu = _group(result, "Influenza")
    assert flu.status == "Not Recommended"
    assert flu.earliest is None
    assert "past seasonal recommendation end date" in flu.reason


def test_forecast_group_without_priority_waits_for_every_antigen(
    engine: Forecaster,
) -> None:
    """After a DT dose (no pertussis), DTaP/Tdap/Td takes the latest antigen's earliest date.

    Pertussis is still at dose 1 (no interval, so no priority forecast); the
    group cannot be given before diphtheria and tetanus allow (MULTIANTVG-1).
    """
    result = _run(engine, date(2012, 4, 16), [("2014-03-17", "28")], "2015-02-25")
    group = _group(result, "DTaP/Tdap/Td")
    starts = [a.earliest for a in group.antigens if a.earliest]
    assert group.earliest == max(starts) == date(2014, 4, 14)
    assert group.recommended is not None
    assert group.recommended >= group.earliest


def test_forecast_group_priority_never_before_last_group_dose(
    engine: Forecaster,
) -> None:
    """With a priority forecast, the group's earliest date is never before its last dose."""
    result = _run(engine, date(2015, 1, 7), [("2016-01-07", "138")], "2017-02-23")
    group = _group(result, "DTaP/Tdap/Td")
    assert group.earliest is not None
    assert group.earliest >= date(2016, 1, 7)


# -- every generated history -------------------------------------------------------


@st.composite
def _histories(
    draw: st.DrawFn, cvx_codes: list[str]
) -> tuple[date, list[AdministeredDose], date]:
    dob = draw(st.dates(date(1940, 1, 1), date(2025, 10, 1)))
    when = dob
    doses = []
    for _ in range(draw(st.integers(0, 7))):
        when += timedelta(days=draw(st.integers(0, 800)))
        doses.append(AdministeredDose(when, draw(st.sampled_from(cvx_codes))))
    as_of = when + timedelta(days=draw(st.integers(0, 3000)))
    return dob, doses, as_of


def test_forecast_windows_are_never_impossible(engine: Forecaster) -> None:
    """Over generated histories every shown window is ordered, and a row without dates says why.

    earliest <= recommended <= past due, latest >= earliest whenever both are
    shown; a group that is not Not Complete shows no dates and a reason.
    """
    cvx_codes = sorted(engine.data.cvx_names)

    @settings(
        max_examples=400,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(_histories(cvx_codes), st.sampled_from("FM"))
    def check(history: tuple[date, list[AdministeredDose], date], sex: str) -> None:
        dob, doses, as_of = history
        result = engine.run(PatientInput(dob, sex), doses, as_of)
        for group in result.vaccine_groups:
            dates = (group.earliest, group.recommended, group.past_due, group.latest)
            if group.status != "Not Complete":
                assert dates == (None, None, None, None), group
                assert group.reason, group
                continue
            assert group.earliest is not None, group
            assert group.recommended is not None, group
            assert group.earliest <= group.recommended, group
            if group.past_due is not None:
                assert group.recommended <= group.past_due, group
            if group.latest is not None:
                assert group.earliest <= group.latest, group

    check()


def test_forecast_recurring_skipped_target_dose_does_not_loop(
    engine: Forecaster,
) -> None:
    """A dose meeting a recurring target dose whose skip holds is extraneous, not a loop.

    Found by the property test above: this history made the engine turn
    forever on COVID-19's recurring last target dose (a Z44 that never
    answered). The alarm turns a regression into a failure, not a hang.
    """
    import signal

    def too_long(*_: object) -> None:
        raise TimeoutError("the forecast did not finish in 20 s")

    history = [
        ("2025-06-29", "208"),
        ("2025-11-29", "208"),
        ("2026-04-25", "15"),
        ("2026-11-14", "212"),
        ("2027-07-21", "505"),
        ("2028-04-23", "26"),
        ("2029-04-10", "39"),
    ]
    doses = [AdministeredDose(date.fromisoformat(d), cvx) for d, cvx in history]
    previous = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(20)
    try:
        result = engine.run(
            PatientInput(date(2024, 7, 6), "F"), doses, date(2031, 11, 26)
        )
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert _group(result, "COVID-19").status == "Complete"
