"""The review service: a person decides, once, and every decision is audited."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from handlers.review import ReviewError, ReviewService
from storage import Database
from tests.handlers.test_confidentiality import (
    BOBBIE,
    DOROTHY,
    _pipeline,
    _rows,
    _send,
)
from tests.support.messages import Dose, vxu

NOW = datetime(2024, 7, 1, 9, 0, tzinfo=UTC)


def _conflict(db: Database) -> int:
    """Two records held apart by an identifier conflict: one open review item."""
    pipeline = _pipeline(db)
    _send(pipeline, vxu(control_id="D1", pid=DOROTHY, doses=[Dose(cvx="08")]))
    _send(
        pipeline,
        vxu(control_id="B1", sender="CLINIC2", pid=BOBBIE, doses=[Dose(cvx="20")]),
    )
    ((item_id,),) = _rows(db, "SELECT id FROM review_items WHERE status = 'open'")
    return int(item_id)


def test_review_show_pairs_both_records(db: Database) -> None:
    """An item shows the two patients it pairs."""
    item_id = _conflict(db)
    with db.transaction() as uow:
        view = ReviewService(lambda: NOW).show(uow, item_id)
    assert sorted(p.family_name for p in view.patients) == ["Child", "Winchester"]


def test_review_merge_links_and_separate_undoes(db: Database) -> None:
    """A merge links the records and is audited; separate undoes it."""
    item_id = _conflict(db)
    service = ReviewService(lambda: NOW)
    with db.transaction() as uow:
        merged = service.decide(uow, item_id, "merge", "alice")
    assert merged.status == "merged"
    assert _rows(db, "SELECT count(*) FROM patient_links WHERE active") == [(1,)]
    with db.transaction() as uow:
        apart = service.decide(uow, item_id, "separate", "bob")
    assert apart.status == "separated"
    assert "merge undone" in apart.summary
    assert _rows(db, "SELECT count(*) FROM patient_links WHERE active") == [(0,)]
    audit = _rows(
        db,
        "SELECT requester, action, outcome FROM audit_log"
        " WHERE action LIKE 'review-%' ORDER BY id",
    )
    assert audit == [
        ("alice", "review-merge", "merged"),
        ("bob", "review-separate", "separated"),
    ]


def test_review_decided_item_cannot_be_decided_again(db: Database) -> None:
    """A second reviewer cannot re-merge a separated item; the refusal names the decision."""
    item_id = _conflict(db)
    service = ReviewService(lambda: NOW)
    with db.transaction() as uow:
        service.decide(uow, item_id, "separate", "alice")
    with (
        pytest.raises(ReviewError, match="already decided: separated by alice"),
        db.transaction() as uow,
    ):
        service.decide(uow, item_id, "merge", "mallory")
    assert _rows(db, "SELECT count(*) FROM patient_links") == [(0,)]


def test_review_unknown_item_is_an_error(db: Database) -> None:
    """An item id that does not exist is a clear error, nothing changes."""
    with (
        pytest.raises(ReviewError, match="no review item 999"),
        db.transaction() as uow,
    ):
        ReviewService(lambda: NOW).decide(uow, 999, "merge", "alice")
