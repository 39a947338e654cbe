"""Reminder/recall on the known population (tests/support/population.py), SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from handlers.population import (
    PopulationError,
    Requester,
    Scope,
    parse_age_range,
)
from handlers.recall import RecallCriteria, RecallError, RecallService
from handlers.roles import Role
from storage import Database
from tests.support.population import AS_OF, assessor, store_population

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CLINIC1 = Requester("CLINIC1", "BAY")


@pytest.fixture(name="population")
def _population(db: Database) -> dict[str, int]:
    with db.transaction() as uow:
        return store_population(uow)


def _service(db: Database, workers: int = 0) -> RecallService:
    return RecallService(db, assessor(db, workers=workers, chunk=3), lambda: NOW)


def _names(result, ids: dict[str, int]) -> list[tuple[str, str, str]]:
    key = {v: k for k, v in ids.items()}
    return [(key[e.patient_id], e.status, e.since.isoformat()) for e in result.entries]


def test_recall_lists_the_region_due_and_overdue(db: Database, population) -> None:
    """The region's list as CLINIC1: overdue first by since date, then due; exact dates."""
    result = _service(db).run(Scope("BAY"), CLINIC1, AS_OF)
    assert _names(result, population) == [
        ("jay", "overdue", "2014-03-28"),
        ("kai", "overdue", "2014-05-28"),
        ("dan", "overdue", "2023-02-11"),
        ("ivy", "due", "2026-11-01"),
    ]
    dan = result.entries[2]
    assert dan.due_text() == (
        "DTaP/Tdap/Td #5 due since 2025-01-15; HepA #1 overdue since 2023-02-11; "
        "MMR #2 due since 2025-02-17; Polio #4 due since 2025-01-15; "
        "Varicella #2 due since 2025-02-17"
    )
    assert dan.contact is not None
    assert (dan.contact.guardian, dan.contact.phone, dan.contact.address) == (
        "Mara Early",
        "5105550104",
        "4 Pine St, Oakland, CA 94601",
    )
    assert result.left_out == {"deceased": 1, "inactive": 0, "no reminder/recall": 1}
    # Nine of the region's ten patients are visible to CLINIC1 (eve is locked).
    assert (result.run.considered, result.run.listed) == (9, 4)


def test_recall_run_is_recorded_with_its_listing(db: Database, population) -> None:
    """The run and each listed patient are stored: what was due and since when."""
    result = _service(db).run(
        Scope("BAY"), CLINIC1, AS_OF, RecallCriteria(vaccine_group="MMR")
    )
    with db.reading() as uow:
        run = uow.recall.get_run(result.run.id)
        listed = uow.recall.listings(result.run.id)
    assert run is not None
    assert (run.organization, run.region, run.as_of, run.listed) == (
        "CLINIC1",
        "BAY",
        AS_OF,
        3,
    )
    assert '"vaccine_group": "MMR"' in run.criteria
    assert [(i.patient_id, i.status, i.since, i.due) for i in listed] == [
        (
            population["kai"],
            "overdue",
            date(2015, 9, 28),
            "MMR #1 overdue since 2015-09-28",
        ),
        (
            population["jay"],
            "overdue",
            date(2018, 4, 2),
            "MMR #1 overdue since 2018-04-02",
        ),
        (population["dan"], "due", date(2025, 2, 17), "MMR #2 due since 2025-02-17"),
    ]


def test_recall_overdue_only_and_age_filters(db: Database, population) -> None:
    """--overdue-only drops what is only due; --age keeps the cohort asked."""
    service = _service(db)
    overdue = service.run(
        Scope("BAY"), CLINIC1, AS_OF, RecallCriteria(overdue_only=True)
    )
    assert [e.patient_id for e in overdue.entries] == [
        population["jay"],
        population["kai"],
        population["dan"],
    ]
    assert overdue.entries[2].due_text() == "HepA #1 overdue since 2023-02-11"
    infants = service.run(
        Scope("BAY", ages=parse_age_range("0..1", AS_OF)), CLINIC1, AS_OF
    )
    assert _names(infants, population) == [("ivy", "due", "2026-11-01")]
    assert infants.run.considered == 1


def test_recall_leaves_out_a_locked_patient_of_another_clinic(
    db: Database, population
) -> None:
    """Eve's record is locked and CLINIC2 sent it: CLINIC1 never sees her; CLINIC2 does."""
    service = _service(db)
    clinic1 = service.run(Scope("BAY"), CLINIC1, AS_OF)
    assert population["eve"] not in {e.patient_id for e in clinic1.entries}
    clinic2 = service.run(
        Scope("BAY", facility="CLINIC2"), Requester("CLINIC2", "BAY"), AS_OF
    )
    assert [e.patient_id for e in clinic2.entries] == [population["eve"]]
    assert clinic2.entries[0].contact is not None
    assert clinic2.entries[0].contact.phone == "5105550105"


def test_recall_facility_scope_is_the_facility_patients(
    db: Database, population
) -> None:
    """--facility CLINIC1 lists the patients CLINIC1 sent, not CLINIC2's."""
    result = _service(db).run(Scope("BAY", facility="CLINIC1"), CLINIC1, AS_OF)
    assert population["eve"] not in {e.patient_id for e in result.entries}
    assert result.run.facility == "CLINIC1"
    assert result.run.considered == 9


def test_recall_refuses_another_region_or_facility(db: Database, population) -> None:
    """CLINIC1 (BAY) may not list SAC's patients, nor CLINIC2's; finn (SAC) is never in BAY's list."""
    service = _service(db)
    with pytest.raises(
        PopulationError, match="--region: CLINIC1 belongs to region BAY, not SAC"
    ):
        service.run(Scope("SAC"), CLINIC1, AS_OF)
    with pytest.raises(PopulationError, match="--facility"):
        service.run(Scope("BAY", facility="CLINIC2"), CLINIC1, AS_OF)
    region = service.run(Scope("BAY"), CLINIC1, AS_OF)
    assert population["finn"] not in {e.patient_id for e in region.entries}


def test_recall_for_a_school_has_no_contact_details(db: Database, population) -> None:
    """A school's list names the children and what is due, never an address or phone."""
    result = _service(db).run(
        Scope("BAY"), Requester("SCHOOL1", "BAY", Role.REQUIREMENTS), AS_OF
    )
    assert len(result.entries) == 4
    assert all(e.contact is None for e in result.entries)


def test_recall_no_calls_withholds_the_phone(db: Database, population) -> None:
    """Publicity code 03 (reminder/recall, no calls): listed, with the address but no phone."""
    with db.transaction() as uow:
        uow.connection.exec_driver_sql(
            f"UPDATE patients SET publicity_code = '03' WHERE id = {population['dan']}"
        )
    result = _service(db).run(Scope("BAY"), CLINIC1, AS_OF)
    dan = next(e for e in result.entries if e.patient_id == population["dan"])
    assert dan.no_calls
    assert dan.contact is not None
    assert (dan.contact.phone, dan.contact.street) == ("", "4 Pine St")


def test_recall_mark_shows_on_the_next_run(db: Database, population) -> None:
    """A contact recorded against a run shows, with its date and method, on a later run."""
    service = _service(db)
    first = service.run(Scope("BAY"), CLINIC1, AS_OF)
    assert all(e.last_contact is None for e in first.entries)
    assert (
        service.mark(
            first.run.id, CLINIC1, "phone", date(2026, 11, 3), [population["dan"]]
        )
        == 1
    )
    assert service.mark(first.run.id, CLINIC1, "letter", date(2026, 11, 4)) == 4
    service.mark(first.run.id, CLINIC1, "text", date(2026, 11, 2), [population["ivy"]])
    second = service.run(Scope("BAY"), CLINIC1, AS_OF)
    contacts = {
        e.patient_id: (e.last_contact.method, e.last_contact.contacted_on)
        for e in second.entries
        if e.last_contact is not None
    }
    assert contacts == {
        population["jay"]: ("letter", date(2026, 11, 4)),
        population["kai"]: ("letter", date(2026, 11, 4)),
        population["dan"]: ("letter", date(2026, 11, 4)),
        population["ivy"]: ("letter", date(2026, 11, 4)),
    }
    # Another organization's runs do not show CLINIC1's contacts.
    other = service.run(Scope("BAY"), Requester("CLINIC3", "BAY"), AS_OF)
    assert all(e.last_contact is None for e in other.entries)


def test_recall_mark_refuses_what_it_cannot_record(db: Database, population) -> None:
    """Another organization's run, a patient the run did not list, an unknown method."""
    service = _service(db)
    run = service.run(Scope("BAY"), CLINIC1, AS_OF).run
    with pytest.raises(RecallError, match=f"no recall run {run.id} of CLINIC3"):
        service.mark(run.id, Requester("CLINIC3", "BAY"), "phone", AS_OF)
    with pytest.raises(RecallError, match="did not list patient"):
        service.mark(run.id, CLINIC1, "phone", AS_OF, [population["ada"]])
    with pytest.raises(RecallError, match="--method: 'pigeon'"):
        service.mark(run.id, CLINIC1, "pigeon", AS_OF)
    with pytest.raises(RecallError, match="no recall run 999999"):
        service.mark(999999, CLINIC1, "phone", AS_OF)
    with db.reading() as uow:
        assert uow.recall.last_contacts("BAY", "CLINIC1") == {}


def test_recall_in_worker_processes_gives_the_same_list(
    db: Database, population
) -> None:
    """Two worker processes, each reading and forecasting chunks, list what one process lists."""
    alone = _service(db).run(Scope("BAY"), CLINIC1, AS_OF)
    spread = _service(db, workers=2).run(Scope("BAY"), CLINIC1, AS_OF)
    assert spread.entries == alone.entries
    assert spread.left_out == alone.left_out


@pytest.mark.parametrize(
    ("text", "after", "on_or_before"),
    [
        ("4..6", date(2019, 11, 1), date(2022, 11, 1)),
        ("19m..35m", date(2023, 11, 1), date(2025, 4, 1)),
        ("..1", date(2024, 11, 1), None),
        ("65..", None, date(1961, 11, 1)),
    ],
)
def test_parse_age_range(text: str, after, on_or_before) -> None:
    """An age range becomes birth-date bounds as of the date, both ends inclusive."""
    ages = parse_age_range(text, AS_OF)
    assert (ages.born_after, ages.born_on_or_before) == (after, on_or_before)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("4-6", "is not a range"),
        ("a..6", "is not an age"),
        ("6..4", "lower age is above the upper"),
        ("4..6x", "is not an age"),
        ("", "is not a range"),
    ],
)
def test_parse_age_range_refuses_junk(text: str, reason: str) -> None:
    """Junk ages get an error naming --age and why."""
    with pytest.raises(PopulationError, match=f"--age: .*{reason}"):
        parse_age_range(text, AS_OF)


def test_forecasting_only_some_antigens_changes_nothing_kept(
    db: Database, population
) -> None:
    """Forecasting only the groups asked about gives those groups exactly what a full run gives."""
    population_assessor = assessor(db)
    wanted = population_assessor.antigens_for(["MMR"], ["Diphtheria"])
    assert wanted == {
        "Measles",
        "Mumps",
        "Rubella",
        "Diphtheria",
        "Tetanus",
        "Pertussis",
    }
    full = population_assessor.assess(Scope("BAY"), CLINIC1, AS_OF)
    part = population_assessor.assess(Scope("BAY"), CLINIC1, AS_OF, antigens=wanted)
    assert [a.patient_id for a in part] == [a.patient_id for a in full]
    for whole, some in zip(full, part, strict=True):
        assert some.groups == tuple(
            g for g in whole.groups if g.vaccine_group in {"MMR", "DTaP/Tdap/Td"}
        )
        assert some.antigens == tuple(a for a in whole.antigens if a.antigen in wanted)


def test_recall_logs_counts_never_patients(db: Database, population) -> None:
    """One line per run: who asked, the region and the counts; no name, date or phone."""
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        _service(db).run(Scope("BAY"), CLINIC1, AS_OF)
    (line,) = [e for e in logs if e["event"] == "recall_run"]
    assert line == {
        "event": "recall_run",
        "log_level": "info",
        "sender": "CLINIC1",
        "region": "BAY",
        "candidates": 9,
        "count": 4,
    }
    text = repr(logs)
    for leak in ("Early", "Mara", "5105550104", "Pine", "2021-01-15"):
        assert leak not in text
