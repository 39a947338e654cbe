"""Attack: a locked record merged into an open one, seen through the bulk (population) path.

CLINIC2 reported eve and locked her record (PD1-12 Y); CLINIC1 reported dan,
open. A reviewer merges eve into dan (``cairn review merge``). The merged
view reads both records' doses, so it must be disclosed as the single-patient
path discloses it (commit "A locked record merged into an open one showed its
doses to everyone"): locked, with the submitters of both records. Before the
fix the bulk read took only dan's lock flag and submitters, and a third
clinic's recall list and coverage showed and counted eve's doses.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from handlers.coverage import CoverageService
from handlers.disclosure import access_of, read_view, view_of_history
from handlers.population import Requester, Scope
from handlers.recall import RecallService
from storage import Database
from tests.support.population import AS_OF, assessor, store_population

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

#: eve's doses (tests/support/population.py): only CLINIC2 may see them.
EVE_DOSES = {("08", "2022-05-05"), ("20", "2022-07-06")}


@pytest.fixture(name="merged")
def _merged(db: Database) -> dict[str, int]:
    with db.transaction() as uow:
        ids = store_population(uow)
    with db.transaction() as uow:
        uow.patients.link("BAY", ids["eve"], ids["dan"], None)
    return ids


def _doses(view) -> set[tuple[str, str]]:
    return {(d.cvx, d.administered_on.isoformat()) for d in view.doses}


@pytest.mark.parametrize("requester", ["CLINIC1", "CLINIC2", "CLINIC3"])
def test_the_bulk_read_discloses_a_merged_view_as_the_single_patient_path(
    db: Database, merged: dict[str, int], requester: str
) -> None:
    """For each clinic, the bulk view of dan+eve is exactly the single-patient one."""
    with db.reading() as uow:
        (history,) = uow.cohort.histories("BAY", [merged["dan"]])
        bulk = view_of_history(uow, requester, history)
        record = uow.patients.get("BAY", merged["dan"])
        assert record is not None
        access = access_of(uow, requester, record)
        single = (
            None if access == "hidden" else read_view(uow, requester, record, access)
        )
    expected = {"CLINIC1": "own-data", "CLINIC2": "own-data", "CLINIC3": "hidden"}
    assert access == expected[requester]
    if single is None:
        assert bulk is None
        return
    assert bulk is not None
    assert bulk.access == single.access
    assert _doses(bulk) == _doses(single)
    assert bulk.record == single.record
    assert bulk.next_of_kin == single.next_of_kin
    # Only eve's submitter sees eve's doses; dan's sees dan's alone.
    assert (_doses(bulk) == EVE_DOSES) is (requester == "CLINIC2")
    assert not (_doses(bulk) & EVE_DOSES) or requester == "CLINIC2"


def test_another_clinics_recall_list_leaves_the_merged_locked_record_out(
    db: Database,
) -> None:
    """CLINIC3 submitted neither record: once merged, dan+eve leaves its recall list."""
    with db.transaction() as uow:
        ids = store_population(uow)
    service = RecallService(db, assessor(db, chunk=3), lambda: NOW)
    clinic3 = Requester("CLINIC3", "BAY")
    before = service.run(Scope("BAY"), clinic3, AS_OF)
    assert ids["dan"] in {e.patient_id for e in before.entries}
    with db.transaction() as uow:
        uow.patients.link("BAY", ids["eve"], ids["dan"], None)
    after = service.run(Scope("BAY"), clinic3, AS_OF)
    assert ids["dan"] not in {e.patient_id for e in after.entries}
    assert {e.patient_id for e in after.entries} == (
        {e.patient_id for e in before.entries} - {ids["dan"]}
    )
    # eve's submitter still finds the merged view on its list, as its own data
    # (eve, born 2022, is due or overdue); dan's submitter sees dan's only.
    clinic2 = service.run(Scope("BAY"), Requester("CLINIC2", "BAY"), AS_OF)
    # Own data as the single-patient path decides it: CLINIC2 sent none of
    # the survivor's (dan's) demographics, so it sees none of them.
    (mine,) = [e for e in clinic2.entries if e.patient_id == ids["dan"]]
    assert (mine.family_name, mine.given_name) == ("", "")
    clinic1 = service.run(Scope("BAY"), Requester("CLINIC1", "BAY"), AS_OF)
    for entry in clinic1.entries:
        assert entry.family_name != "Locked"
        assert entry.contact is None or entry.contact.street != "5 Fir St"


def test_another_clinics_coverage_does_not_count_the_merged_locked_record(
    db: Database,
) -> None:
    """CLINIC3's region coverage loses dan once eve (locked) is merged into him."""
    with db.transaction() as uow:
        ids = store_population(uow)
    clinic3 = Requester("CLINIC3", "BAY")
    coverage = CoverageService(assessor(db))
    before = coverage.report(Scope("BAY"), clinic3, AS_OF)
    with db.transaction() as uow:
        uow.patients.link("BAY", ids["eve"], ids["dan"], None)
    after = coverage.report(Scope("BAY"), clinic3, AS_OF)
    assert after.cohort == before.cohort - 1
    # eve's submitter still counts the merged view (from its own doses), and
    # so does dan's: each sees it as its own data.
    for submitter in ("CLINIC1", "CLINIC2"):
        mine = coverage.report(Scope("BAY"), Requester(submitter, "BAY"), AS_OF)
        assert mine.cohort == after.cohort + 1, submitter


def test_a_facilitys_own_list_keeps_the_merged_view_it_submitted_to(
    db: Database, merged: dict[str, int]
) -> None:
    """CLINIC2 submitted only eve (now merged into dan): its facility list still has her.

    The merged view's submitters are those of all its records, in the
    facility scope too; and CLINIC3's facility list stays empty.
    """
    coverage = CoverageService(assessor(db))
    clinic2 = coverage.report(
        Scope("BAY", facility="CLINIC2"), Requester("CLINIC2", "BAY"), AS_OF
    )
    assert clinic2.cohort == 1
    clinic3 = coverage.report(
        Scope("BAY", facility="CLINIC3"), Requester("CLINIC3", "BAY"), AS_OF
    )
    assert clinic3.cohort == 0
    with db.transaction() as uow:
        # A chain: dan (with eve) merged into ada; still CLINIC2's, through eve.
        uow.patients.link("BAY", merged["dan"], merged["ada"], None)
    with db.reading() as uow:
        assert uow.cohort.patient_ids("BAY", facility="CLINIC2") == [merged["ada"]]
