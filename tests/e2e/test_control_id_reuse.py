"""A sender's control-id counter resets: through a real server, on both backends."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ServerProcess
from tests.support.messages import Dose, vxu
from tests.support.mllp import errs, msa_code

pytestmark = pytest.mark.e2e


def test_control_id_reuse_after_a_counter_reset_stores_the_new_message(
    server: ServerProcess,
) -> None:
    """Same MSH-4 and MSH-10, other child: stored with its own row and a W at MSH-10."""
    before = vxu(control_id="1", mrn="MRN1", doses=[Dose(filler="D1")])
    after = vxu(
        control_id="1", mrn="MRN2", family="Resetfam", doses=[Dose(filler="D2")]
    )
    first = server.send(before)
    second = server.send(after)
    resent = server.send(after.replace("20240201120000", "20240201120500"))

    assert (msa_code(first), msa_code(second)) == ("AA", "AA")
    assert [(e[2], e[3][:3], e[4]) for e in errs(second) if e[2] == "MSH^1^10"] == [
        ("MSH^1^10", "205", "W")
    ]
    assert resent == second
    rows = server.query(
        "SELECT id, ack_code FROM message_journal WHERE control_id = '1' ORDER BY id"
    )
    assert [r[1] for r in rows] == ["AA", "AA"]
    assert server.query("SELECT filler_id FROM vaccinations ORDER BY id") == [
        ("D1",),
        ("D2",),
    ]
