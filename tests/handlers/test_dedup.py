"""Dose de-duplication rules (AIRA/MIROW): each rule on a hand-made pair."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from handlers.codes import CodeTables
from handlers.dedup import DoseDeduplicator
from storage import NewVaccination, VaccinationRecord
from tests.support.records import new_vaccination

NOW = datetime(2024, 1, 1, tzinfo=UTC)
DAY = date(2023, 6, 1)


_new = new_vaccination


def _stored(**change: object) -> VaccinationRecord:
    new = _new(**change)
    fields = {name: getattr(new, name) for name in NewVaccination.__dataclass_fields__}
    return VaccinationRecord(
        id=7, created_at=NOW, updated_at=NOW, deleted_at=None, **fields
    )


@pytest.fixture(scope="module")
def dedup() -> DoseDeduplicator:
    return DoseDeduplicator(CodeTables.load())


def test_the_same_report_on_the_same_day_is_the_same_event(
    dedup: DoseDeduplicator,
) -> None:
    verdict = dedup.compare(_new(filler_id="F2"), _stored())
    assert verdict.outcome == "same"


def test_different_lot_numbers_are_different_doses(dedup: DoseDeduplicator) -> None:
    verdict = dedup.compare(_new(lot_numbers="LOT2"), _stored())
    assert (verdict.outcome, verdict.reason) == ("different", "different lot numbers")


def test_administered_beats_historical_for_the_same_event(
    dedup: DoseDeduplicator,
) -> None:
    historical = _stored(
        sending_facility="SCHOOLRN",
        information_source="01",
        lot_numbers="",
        administered_on=DAY + timedelta(days=3),
    )
    verdict = dedup.compare(_new(), historical)
    assert verdict.outcome == "same"
    assert verdict.keep_new, "the administered record is the one kept"
    reverse = dedup.compare(
        _new(sending_facility="SCHOOLRN", information_source="01", lot_numbers=""),
        _stored(),
    )
    assert reverse.outcome == "same"
    assert not reverse.keep_new


def test_two_providers_administering_on_different_days_are_different(
    dedup: DoseDeduplicator,
) -> None:
    verdict = dedup.compare(
        _new(sending_facility="CLINIC2", lot_numbers="", administered_on=DAY),
        _stored(lot_numbers="", administered_on=DAY - timedelta(days=5)),
    )
    assert verdict.outcome == "different"
    assert "different providers" in verdict.reason


def test_outside_the_window_is_different(dedup: DoseDeduplicator) -> None:
    verdict = dedup.compare(
        _new(information_source="01", lot_numbers=""),
        _stored(administered_on=DAY - timedelta(days=24)),
    )
    assert verdict.outcome == "different"
    assert "outside the 23-day window" in verdict.reason


def test_a_per_group_window_overrides_the_default() -> None:
    dedup = DoseDeduplicator(CodeTables.load(), group_windows={"DTAP": 40})
    verdict = dedup.compare(
        _new(information_source="01", lot_numbers="", sending_facility="SCHOOLRN"),
        _stored(administered_on=DAY - timedelta(days=30)),
    )
    assert verdict.outcome == "same"


def test_combination_vaccines_share_a_group(dedup: DoseDeduplicator) -> None:
    verdict = dedup.compare(
        _new(cvx="110", lot_numbers="", information_source="01"), _stored()
    )
    assert verdict.outcome == "same"
    unrelated = dedup.compare(_new(cvx="03", lot_numbers=""), _stored())
    assert unrelated.outcome == "different"


def test_two_histories_from_different_senders_days_apart_are_unsure(
    dedup: DoseDeduplicator,
) -> None:
    verdict = dedup.compare(
        _new(sending_facility="SCHOOLRN", information_source="01", lot_numbers=""),
        _stored(
            sending_facility="CLINIC2",
            information_source="01",
            lot_numbers="",
            administered_on=DAY - timedelta(days=10),
        ),
    )
    assert verdict.outcome == "unsure"


@pytest.mark.parametrize("status", ["RE", "NA"])
def test_refusals_and_not_administered_are_never_doses(
    dedup: DoseDeduplicator, status: str
) -> None:
    verdict = dedup.compare(_new(completion_status=status), _stored())
    assert verdict.outcome == "different"
    assert "not a dose" in verdict.reason
