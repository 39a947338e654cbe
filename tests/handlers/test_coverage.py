"""Coverage figures on the known population, SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from handlers.coverage import CoverageService
from handlers.population import Requester, Scope, parse_age_range
from handlers.requirements import load_requirement_set
from storage import Database
from tests.support.population import AS_OF, assessor, store_population

CLINIC1 = Requester("CLINIC1", "BAY")


@pytest.fixture(name="population")
def _population(db: Database) -> dict[str, int]:
    with db.transaction() as uow:
        return store_population(uow)


def test_coverage_of_the_four_to_six_cohort(db: Database, population) -> None:
    """Ages 4-6 as CLINIC1: ada, ben, cleo, dan and hana (gus deceased, eve hidden).

    Dan is behind on HepA only (overdue); hana has one Hep B dose and is
    overdue on everything; Hib and pneumococcal have aged out for all but ada
    (complete). Three of the five meet TK/K-12 admission: dan is not overdue
    on DTaP or polio, yet does not meet the requirement.
    """
    report = CoverageService(assessor(db)).report(
        Scope("BAY", ages=parse_age_range("4..6", AS_OF)),
        CLINIC1,
        AS_OF,
        requirement=load_requirement_set("ca-k12-admission"),
    )
    assert (report.cohort, report.left_out) == (5, {"deceased": 1, "inactive": 0})
    assert [
        (r.vaccine_group, r.applicable, r.up_to_date, r.percent) for r in report.rows
    ] == [
        ("DTaP/Tdap/Td", 5, 4, 80.0),
        ("Polio", 5, 4, 80.0),
        ("MMR", 5, 4, 80.0),
        ("HepB", 5, 4, 80.0),
        ("Hib", 1, 1, 100.0),
        ("Pneumococcal", 1, 1, 100.0),
        ("Varicella", 5, 4, 80.0),
        ("HepA", 5, 3, 60.0),
        ("Rotavirus", 0, 0, None),
        ("Meningococcal", 5, 5, 100.0),
        ("HPV", 5, 5, 100.0),
    ]
    assert report.requirement is not None
    assert (report.requirement.checked, report.requirement.met) == (5, 3)
    assert report.requirement.percent == 60.0


def test_coverage_of_every_age(db: Database, population) -> None:
    """All of BAY as CLINIC1: eight counted; the infant and the teens change the figures."""
    report = CoverageService(assessor(db)).report(
        Scope("BAY"),
        CLINIC1,
        AS_OF,
        groups=("DTaP/Tdap/Td", "Varicella", "Rotavirus"),
        requirement=load_requirement_set("ca-7th-grade"),
    )
    assert report.cohort == 8
    assert report.ages == "all ages"
    assert [
        (r.vaccine_group, r.applicable, r.up_to_date, r.percent) for r in report.rows
    ] == [
        ("DTaP/Tdap/Td", 8, 5, 62.5),
        ("Varicella", 8, 6, 75.0),
        ("Rotavirus", 1, 1, 100.0),
    ]
    assert report.requirement is not None
    assert (report.requirement.met, report.requirement.percent) == (1, 12.5)


def test_coverage_counts_a_locked_child_only_for_its_submitter(
    db: Database, population
) -> None:
    """CLINIC2's facility coverage is eve alone; CLINIC1's region figures never include her."""
    clinic2 = CoverageService(assessor(db)).report(
        Scope("BAY", facility="CLINIC2"), Requester("CLINIC2", "BAY"), AS_OF
    )
    assert clinic2.cohort == 1
    dtap = clinic2.rows[0]
    assert (dtap.vaccine_group, dtap.applicable, dtap.up_to_date) == (
        "DTaP/Tdap/Td",
        1,
        0,
    )
