"""School and child care requirement checks on the known population, SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from handlers.population import Requester, Scope
from handlers.requirements import (
    RequirementError,
    RequirementResult,
    check,
    load_requirement_set,
    parse_requirement_set,
    requirement_sets,
)
from handlers.roles import Role
from storage import Database
from tests.support.population import AS_OF, assessor, store_population

CLINIC1 = Requester("CLINIC1", "BAY")


@pytest.fixture(name="population")
def _population(db: Database) -> dict[str, int]:
    with db.transaction() as uow:
        return store_population(uow)


def _check(
    db: Database, ids: list[int], set_id: str, requester: Requester = CLINIC1
) -> dict[int, RequirementResult]:
    req = load_requirement_set(set_id)
    assessed = assessor(db).assess(
        Scope("BAY", patient_ids=tuple(ids)), requester, AS_OF
    )
    return {a.patient_id: check(req, a, AS_OF) for a in assessed}


def _rules(result: RequirementResult) -> list[tuple[object, ...]]:
    return [
        (r.name, r.met, r.counted, r.needed, r.missing, r.earliest, r.note)
        for r in result.rules
    ]


def test_k12_all_doses_on_schedule_is_met(db: Database, population) -> None:
    """Ada: 4 polio, 5 DTaP, 3 Hep B, 2 MMR and 2 varicella: met as written."""
    (result,) = _check(db, [population["ada"]], "ca-k12-admission").values()
    assert result.met
    assert [(r.name, r.counted, r.note) for r in result.rules[:2]] == [
        ("Polio", 4, "4 doses"),
        ("DTaP", 5, "5 doses"),
    ]


def test_k12_fourth_birthday_exceptions(db: Database, population) -> None:
    """Ben: 3 polio and 4 DTaP, the last on 2025-06-03, after his 4th birthday: met."""
    (result,) = _check(db, [population["ben"]], "ca-k12-admission").values()
    assert result.met
    assert _rules(result)[:2] == [
        ("Polio", True, 3, 3, 0, None, "3 doses, one on or after the 4th birthday"),
        ("DTaP", True, 4, 4, 0, None, "4 doses, one on or after the 4th birthday"),
    ]


def test_k12_four_day_grace_before_the_fourth_birthday(
    db: Database, population
) -> None:
    """Cleo's last polio and DTaP were 3 days before her 4th birthday: met with the 4-day grace, not without."""
    (result,) = _check(db, [population["cleo"]], "ca-k12-admission").values()
    assert result.met
    assert [r.note for r in result.rules[:2]] == [
        "3 doses, one on or after the 4th birthday",
        "4 doses, one on or after the 4th birthday",
    ]
    strict = replace(load_requirement_set("ca-k12-admission"), grace_days=0)
    (assessment,) = assessor(db).assess(
        Scope("BAY", patient_ids=(population["cleo"],)), CLINIC1, AS_OF
    )
    without = check(strict, assessment, AS_OF)
    assert not without.met
    assert [(r.name, r.missing) for r in without.rules if not r.met] == [
        ("Polio", 1),
        ("DTaP", 1),
    ]


def test_k12_not_met_says_what_is_missing_and_when(db: Database, population) -> None:
    """Dan: every dose before 4, an MMR before his 1st birthday, one varicella: what is missing, earliest dates."""
    (result,) = _check(db, [population["dan"]], "ca-k12-admission").values()
    assert not result.met
    assert _rules(result) == [
        (
            "Polio",
            False,
            3,
            3,
            1,
            date(2025, 1, 15),
            "3 doses, one on or after the 4th birthday",
        ),
        (
            "DTaP",
            False,
            4,
            4,
            1,
            date(2025, 1, 15),
            "4 doses, one on or after the 4th birthday",
        ),
        ("Hep B", True, 3, 3, 0, None, "3 doses"),
        (
            "MMR (measles)",
            False,
            1,
            2,
            1,
            date(2025, 2, 17),
            "2 doses, all on or after the 1st birthday",
        ),
        (
            "MMR (mumps)",
            False,
            1,
            2,
            1,
            date(2025, 2, 17),
            "2 doses, all on or after the 1st birthday",
        ),
        (
            "MMR (rubella)",
            True,
            1,
            1,
            0,
            None,
            "1 dose, all on or after the 1st birthday",
        ),
        ("Varicella", False, 1, 2, 1, date(2025, 2, 17), "2 doses"),
    ]


def test_seventh_grade(db: Database, population) -> None:
    """Jay had Tdap at 11 and two varicella: met; Kai had DTaP only as an infant: Tdap and a varicella missing."""
    results = _check(db, [population["jay"], population["kai"]], "ca-7th-grade")
    assert results[population["jay"]].met
    kai = results[population["kai"]]
    assert not kai.met
    assert _rules(kai) == [
        (
            "Tdap",
            False,
            0,
            1,
            1,
            date(2021, 5, 1),
            "1 dose, all on or after the 7th birthday",
        ),
        ("Varicella", False, 1, 2, 1, date(2015, 8, 1), "2 doses"),
    ]


def test_child_care_by_age(db: Database, population) -> None:
    """Ivy (4 months) has her 2-month doses: the 4-through-5-month band wants a second of three."""
    results = _check(
        db, [population["ivy"], population["ben"], population["jay"]], "ca-child-care"
    )
    ivy = results[population["ivy"]]
    assert (ivy.band, ivy.met) == ("4 through 5 months", False)
    assert [(r.name, r.met, r.counted, r.missing, r.earliest) for r in ivy.rules] == [
        ("Polio", False, 1, 1, date(2026, 9, 29)),
        ("DTaP", False, 1, 1, date(2026, 9, 29)),
        ("Hep B", True, 2, 0, None),
        ("Hib", False, 1, 1, date(2026, 9, 29)),
    ]
    ben = results[population["ben"]]
    # Ben is 5 years 5 months: Hib is required only below 4 years 6 months.
    assert ben.band == "18 months through 5 years"
    assert ben.met
    assert [r.name for r in ben.rules] == ["Polio", "DTaP", "Hep B", "Varicella", "MMR"]
    jay = results[population["jay"]]
    assert (jay.band, jay.met, jay.rules) == ("", True, ())


def test_school_checks_only_what_it_may_see(db: Database, population) -> None:
    """A school's list with a locked child it did not send and another region's child: neither answered."""
    school = Requester("SCHOOL1", "BAY", Role.REQUIREMENTS)
    ids = [population["ada"], population["eve"], population["finn"], population["dan"]]
    results = _check(db, ids, "ca-k12-admission", school)
    assert list(results) == [population["ada"], population["dan"]]
    assessed = assessor(db).assess(Scope("BAY", patient_ids=tuple(ids)), school, AS_OF)
    assert all(a.contact is None for a in assessed)


def test_shipped_sets_carry_source_date_and_readings() -> None:
    """Each shipped set names its source and date and writes down its readings."""
    sets = requirement_sets()
    assert sorted(sets) == ["ca-7th-grade", "ca-child-care", "ca-k12-admission"]
    for req in sets.values():
        assert "CDPH" in req.source
        assert req.source_date
        assert req.grace_days == 4
        assert req.readings


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("id = 'x'", "title"),
        ("id='x'\ntitle='t'\nsource='s'\nsource_date='d'\ngrace_days=4\n", "band"),
        (
            "id='x'\ntitle='t'\nsource='s'\nsource_date='d'\ngrace_days=4\n[[band]]\nlabel='b'\n[[band.rule]]\nname='P'\nantigen='Polio'\ndoses=-1\n",
            r"band\[0\].rule\[0\].doses: expected a whole number",
        ),
        (
            "id='x'\ntitle='t'\nsource='s'\nsource_date='d'\ngrace_days=4\n[[band]]\nlabel='b'\nfrom='four'\n",
            r"band\[0\].from: 'four' is not an age",
        ),
        (
            "id='x'\ntitle='t'\nsource='s'\nsource_date='d'\ngrace_days=4\ncolour='red'\n[[band]]\nlabel='b'\n",
            "unknown key",
        ),
        ("not toml [", "not TOML"),
    ],
)
def test_bad_requirement_set_is_refused_with_the_key(text: str, reason: str) -> None:
    """A malformed set file names the file, the key and the reason."""
    with pytest.raises(RequirementError, match=reason):
        parse_requirement_set(text, "mine.toml")


def test_unknown_set_lists_the_shipped_ones() -> None:
    """An unknown set name says which sets exist."""
    with pytest.raises(RequirementError, match="ca-k12-admission"):
        load_requirement_set("texas")


def test_varicella_history_meets_the_varicella_rule(db: Database, population) -> None:
    """Dan's provider records a history of varicella (OBX 59784-9, SNOMED 38907003): immune, met."""
    from storage import NewObservation

    with db.transaction() as uow:
        uow.observations.insert_many(
            [
                NewObservation(
                    "BAY",
                    population["dan"],
                    None,
                    None,
                    1,
                    "",
                    "CE",
                    "59784-9",
                    "Disease with presumed immunity",
                    "38907003",
                    "History of varicella",
                    "SCT",
                    date(2023, 3, 1),
                )
            ]
        )
    (result,) = _check(db, [population["dan"]], "ca-k12-admission").values()
    varicella = next(r for r in result.rules if r.name == "Varicella")
    assert (varicella.met, varicella.note, varicella.earliest) == (True, "immune", None)
    # The rest of Dan's record is as before: still not met.
    assert not result.met
