"""A sender's control-id counter resets: in process, on both backends.

Moved from tests/e2e (one cairn serve per backend): the journal rule needs no
wire; the e2e ingest tests keep the path through the server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import Database
from tests.support.messages import Dose, vxu
from tests.support.mllp import errs, msa_code
from tests.support.registry import InProcessRegistry, build_registry


@pytest.fixture(name="registry")
def _registry(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> InProcessRegistry:
    """The e2e servers' pipeline in process, on SQLite then PostgreSQL."""
    return build_registry(db, tmp_path, monkeypatch)


def test_control_id_reuse_after_a_counter_reset_stores_the_new_message(
    registry: InProcessRegistry,
) -> None:
    """Same MSH-4 and MSH-10, other child: stored with its own row and a W at MSH-10."""
    before = vxu(control_id="1", mrn="MRN1", doses=[Dose(filler="D1")])
    after = vxu(
        control_id="1", mrn="MRN2", family="Resetfam", doses=[Dose(filler="D2")]
    )
    first = registry.send(before)
    second = registry.send(after)
    resent = registry.send(after.replace("20240201120000", "20240201120500"))

    assert (msa_code(first), msa_code(second)) == ("AA", "AA")
    assert [(e[2], e[3][:3], e[4]) for e in errs(second) if e[2] == "MSH^1^10"] == [
        ("MSH^1^10", "205", "W")
    ]
    assert resent == second
    rows = registry.query(
        "SELECT id, ack_code FROM message_journal WHERE control_id = '1' ORDER BY id"
    )
    assert [r[1] for r in rows] == ["AA", "AA"]
    assert registry.query("SELECT filler_id FROM vaccinations ORDER BY id") == [
        ("D1",),
        ("D2",),
    ]
