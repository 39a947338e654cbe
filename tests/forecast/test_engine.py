"""Each part of the CDSi processing model, pinned on small hand-made cases."""

from __future__ import annotations

from datetime import date

from forecast import AdministeredDose, Forecaster, ForecastResult, PatientInput

DOB = date(2024, 1, 15)


def _run(
    engine: Forecaster,
    doses: list[tuple[str, str]],
    as_of: str,
    dob: date = DOB,
    sex: str = "F",
    obs: tuple[str, ...] = (),
) -> ForecastResult:
    return engine.run(
        PatientInput(dob, sex, obs),
        [AdministeredDose(date.fromisoformat(d), cvx) for d, cvx in doses],
        date.fromisoformat(as_of),
    )


def _eval(result: ForecastResult, antigen: str, index: int) -> tuple[str, str]:
    for ev in result.dose_evaluations:
        if ev.antigen == antigen and ev.dose_index == index:
            return ev.status, ev.reason
    raise AssertionError(f"no evaluation of dose {index} for {antigen}")


def test_engine_dose_before_absolute_minimum_age_is_too_young(
    engine: Forecaster,
) -> None:
    """A DTaP dose before 6 weeks - 4 days is not valid: Age: Too Young."""
    result = _run(engine, [("2024-02-20", "20")], "2024-03-01")
    assert _eval(result, "Diphtheria", 0) == ("Not Valid", "Age: Too Young")


def test_engine_dose_in_age_grace_period_is_valid(engine: Forecaster) -> None:
    """A first dose within the 4-day grace before the minimum age counts."""
    result = _run(engine, [("2024-02-24", "20")], "2024-03-01")  # 6 weeks - 2 days
    assert _eval(result, "Diphtheria", 0) == ("Valid", "")


def test_engine_interval_too_soon(engine: Forecaster) -> None:
    """HepB dose 2 nineteen days after dose 1 is too soon."""
    result = _run(engine, [("2024-03-01", "08"), ("2024-03-20", "08")], "2024-04-01")
    assert _eval(result, "HepB", 1) == ("Not Valid", "Interval: too Soon")


def test_engine_inadvertent_vaccine(engine: Forecaster) -> None:
    """Bivalent OPV is an inadvertent vaccine for the US polio series."""
    result = _run(engine, [("2024-03-20", "178")], "2024-04-01")
    assert _eval(result, "Polio", 0) == ("Not Valid", "Inadvertent Vaccine")


def test_engine_live_virus_conflict(engine: Forecaster) -> None:
    """Varicella ten days after MMR (not the same day) is a live virus conflict."""
    result = _run(engine, [("2025-01-20", "03"), ("2025-01-30", "21")], "2025-03-01")
    assert _eval(result, "Varicella", 1) == ("Not Valid", "Live Virus Conflict")


def test_engine_dose_after_maximum_age_is_extraneous(engine: Forecaster) -> None:
    """A rotavirus dose after the maximum age is extraneous: Age: Too Old."""
    result = _run(engine, [("2024-10-01", "116")], "2024-10-02")
    assert _eval(result, "Rotavirus", 0) == ("Extraneous", "Age: Too Old")


def test_engine_dose_after_completion_is_extraneous(engine: Forecaster) -> None:
    """A third HepA dose after a complete 2-dose series is extraneous."""
    result = _run(
        engine,
        [("2025-01-20", "83"), ("2025-07-20", "83"), ("2026-01-20", "83")],
        "2026-02-01",
    )
    assert _eval(result, "HepA", 2) == ("Extraneous", "Series Already Complete")
    group = result.group("HepA")
    assert group is not None
    assert group.status == "Complete"


def test_engine_not_allowable_vaccine(engine: Forecaster) -> None:
    """Heplisav-B for a 10-year-old is neither preferable nor allowable."""
    result = _run(engine, [("2024-03-01", "189")], "2024-04-01", dob=date(2014, 1, 15))
    assert _eval(result, "HepB", 0) == (
        "Not Valid",
        "Not a preferable or allowable vaccine",
    )


def test_engine_tdap_in_infancy_is_inadvertent(engine: Forecaster) -> None:
    """Tdap given to a 2-month-old is an inadvertent vaccine for the DTaP series."""
    result = _run(engine, [("2024-03-20", "115")], "2024-04-01")
    assert _eval(result, "Diphtheria", 0) == ("Not Valid", "Inadvertent Vaccine")


def test_engine_conditional_skip_one_hib_dose_after_15_months(
    engine: Forecaster,
) -> None:
    """A first Hib dose at 15 months or later completes the series (conditional skip)."""
    result = _run(engine, [("2025-05-01", "48")], "2025-06-01")
    group = result.group("Hib")
    assert group is not None
    assert group.status == "Complete"


def test_engine_aged_out(engine: Forecaster) -> None:
    """A child past the rotavirus maximum age with no doses is aged out."""
    result = _run(engine, [], "2025-06-01")
    group = result.group("Rotavirus")
    assert group is not None
    assert group.status == "Aged Out"
    assert group.earliest is None


def test_engine_forecast_dates_for_next_dose(engine: Forecaster) -> None:
    """After DTaP #1 at 2 months: earliest +4 weeks, recommended at 4 months, past due before 5m+4w."""
    result = _run(engine, [("2024-03-15", "20")], "2024-03-20")
    group = result.group("DTaP/Tdap/Td")
    assert group is not None
    assert (group.status, group.dose_number) == ("Not Complete", 2)
    assert group.earliest == date(2024, 4, 12)
    assert group.recommended == date(2024, 5, 15)
    assert group.past_due == date(2024, 7, 12)


def test_engine_gender_selects_series(engine: Forecaster) -> None:
    """HPV uses the male series for a male patient."""
    result = _run(engine, [("2035-02-01", "165")], "2035-03-01", sex="M")
    evaluations = [e for e in result.dose_evaluations if e.antigen == "HPV"]
    assert evaluations[0].series.startswith("HPV male")


def test_engine_immunity_from_observation(engine: Forecaster) -> None:
    """Laboratory evidence of measles immunity (observation 020) makes measles Immune."""
    result = _run(engine, [], "2025-06-01", obs=("020",))
    group = result.group("MMR")
    assert group is not None
    measles = next(a for a in group.antigens if a.antigen == "Measles")
    assert measles.status == "Immune"


def test_engine_contraindication_from_observation(engine: Forecaster) -> None:
    """A severe allergic reaction after a previous polio dose (081) contraindicates polio."""
    result = _run(engine, [], "2024-06-01", obs=("081",))
    group = result.group("Polio")
    assert group is not None
    assert group.status == "Contraindicated"


def test_engine_mmr_group_waits_for_every_antigen(engine: Forecaster) -> None:
    """MMR is given whole: after a measles-only dose the group is not complete."""
    result = _run(engine, [("2025-01-20", "05")], "2025-02-01")
    group = result.group("MMR")
    assert group is not None
    assert group.status == "Not Complete"
    assert group.dose_number == 1


def test_engine_records_release_and_is_repeatable(engine: Forecaster) -> None:
    """Every result names its release, and the same input gives the same result."""
    first = _run(engine, [("2024-03-15", "20")], "2024-03-20")
    second = _run(engine, [("2024-03-15", "20")], "2024-03-20")
    assert first.release_version == "4.64"
    assert first == second


def test_engine_interval_from_relevant_observation(engine: Forecaster) -> None:
    """Hib after a stem cell transplant: 6 to 12 months from the transplant date.

    The risk series' first dose counts its interval from observation 171 (date
    of the transplant), not from birth or a previous dose.
    """
    patient = PatientInput(
        date(2010, 8, 14),
        "M",
        ("004", "171"),
        observation_dates=(("171", date(2014, 2, 14)),),
    )
    result = engine.run(patient, [], date(2014, 9, 19))
    group = result.group("Hib")
    assert group is not None
    assert (group.dose_number, group.earliest, group.past_due) == (
        1,
        date(2014, 8, 14),
        date(2015, 2, 13),
    )


def test_engine_complete_risk_series_makes_equivalent_group_redundant(
    engine: Forecaster,
) -> None:
    """A child with a CSF leak who completed the risk PCV-PPSV series is complete.

    The PPSV23 dose also starts the adult "50+" series, but that series group
    names the risk group as equivalent (table 8-14), so its unfinished series
    is not a best patient series.
    """
    result = _run(
        engine,
        [("2017-03-01", "133"), ("2017-05-01", "33")],
        "2017-06-01",
        dob=date(2009, 2, 1),
        obs=("010",),
    )
    group = result.group("Pneumococcal")
    assert group is not None
    assert (group.status, group.dose_number) == ("Complete", None)
    assert _eval(result, "Pneumococcal", 0) == ("Valid", "")


def test_engine_dose_valid_in_any_best_series_is_valid(engine: Forecaster) -> None:
    """Hib for a 2-year-old with asplenia: the second dose counts in the risk series.

    The standard catch-up series is complete after one dose (the second is
    extraneous there), the risk series needs both; both are best patient
    series, and a dose valid in either is valid for the antigen.
    """
    result = _run(
        engine,
        [("2026-03-10", "48"), ("2026-05-12", "48")],
        "2026-05-12",
        dob=date(2024, 2, 1),
        obs=("160",),
    )
    assert _eval(result, "Hib", 1) == ("Valid", "")
    group = result.group("Hib")
    assert group is not None
    assert group.status == "Complete"


def test_engine_risk_series_leads_among_best_series(engine: Forecaster) -> None:
    """An infant travelling abroad who had the pediatric-travel HepA dose is complete.

    The risk 1-dose series (its own series group) and the standard series
    (not yet startable before 12 months) are both best patient series; the
    risk series, chosen for the patient's indication, gives the forecast.
    """
    result = _run(
        engine,
        [("2025-10-20", "83")],
        "2025-11-01",
        dob=date(2025, 2, 10),
        obs=("048",),
    )
    assert _eval(result, "HepA", 0) == ("Valid", "")
    group = result.group("HepA")
    assert group is not None
    assert (group.status, group.earliest) == ("Complete", None)


def test_engine_only_top_priority_risk_series_are_scored(engine: Forecaster) -> None:
    """A 70-year-old on dialysis follows the dialysis series (priority A).

    The 60+ risk 3-dose series (priority B) of the same series group would
    finish sooner, but only the highest-priority risk series of a group are
    scorable (8.1 pre-filter): dose 3 is due 4 weeks after dose 2.
    """
    result = _run(
        engine,
        [("2025-03-03", "43"), ("2025-03-31", "43")],
        "2025-04-01",
        dob=date(1955, 6, 1),
        obs=("032",),
    )
    group = result.group("HepB")
    assert group is not None
    assert (group.dose_number, group.earliest) == (3, date(2025, 4, 28))


def test_engine_completed_series_skip(engine: Forecaster) -> None:
    """An adult traveller who completed childhood polio needs one booster only.

    The polio risk adult series skips its first two doses when a series of
    series group 1 (the standard series) is complete ("completed series"
    condition): the adult IPV dose satisfies dose 3 and the series is complete.
    """
    doses = [
        ("2000-03-01", "10"),
        ("2000-05-01", "10"),
        ("2000-07-01", "10"),
        ("2004-02-01", "10"),
        ("2025-03-01", "10"),
    ]
    result = _run(engine, doses, "2025-06-01", dob=date(2000, 1, 1), obs=("143",))
    group = result.group("Polio")
    assert group is not None
    assert (group.status, group.dose_number) == ("Complete", None)


def test_engine_in_process_scoring_closest_to_completion(engine: Forecaster) -> None:
    """Recombivax HB adult formulation at 12 years starts the adolescent 2-dose series.

    Both the 3-dose and the adolescent 2-dose series hold the one valid dose;
    table 8-9 gives +2 to the series closest to completion and only +1 to the
    one that can finish earliest, so dose 2 is due 4 months later.
    """
    result = engine.run(
        PatientInput(date(2012, 6, 5), "M"),
        [AdministeredDose(date(2025, 1, 15), "43", "MSD")],
        date(2025, 1, 15),
    )
    group = result.group("HepB")
    assert group is not None
    assert (group.dose_number, group.earliest) == (2, date(2025, 5, 15))


def test_engine_complete_series_tie_goes_to_preference(engine: Forecaster) -> None:
    """Two complete HepB risk series with as many valid doses: preference decides.

    Table 8-7 gives no point for a product series; tied on valid doses, the
    risk 3-dose series (preference 1) is prioritized over Twinrix (5).
    """
    result = engine.run(
        PatientInput(date(1962, 4, 2), "F", ("055",)),
        [
            AdministeredDose(date(2024, 3, 1), "104", "SKB"),
            AdministeredDose(date(2024, 4, 1), "104", "SKB"),
            AdministeredDose(date(2024, 11, 1), "43", "SKB"),
        ],
        date(2024, 12, 1),
    )
    group = result.group("HepB")
    assert group is not None
    assert (group.status, group.series) == ("Complete", "HepB risk 3-dose series")


def test_engine_interval_grace_period_holds_after_an_invalid_dose(
    engine: Forecaster,
) -> None:
    """A dose 2 days inside the interval grace after a too-soon dose is valid (v4.6 table 6-18)."""
    result = _run(
        engine,
        [("2024-03-01", "08"), ("2024-03-16", "08"), ("2024-04-11", "08")],
        "2024-05-01",
    )
    assert _eval(result, "HepB", 1) == ("Not Valid", "Interval: too Soon")
    assert _eval(result, "HepB", 2) == ("Valid", "")
