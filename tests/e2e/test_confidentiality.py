"""Through a real server: an identifier that is someone else's, and a stranger to a locked child.

The two attacks reproduced against ``cairn serve`` (issue 14): a Z34 whose
MRN belongs to another person, and a clinic that sends one VXU for a locked
child to become a "submitter". The rules themselves are tested in process in
tests/handlers/test_confidentiality.py.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ServerProcess
from tests.e2e.test_queries import qbp
from tests.support.messages import CANARY_MRN, CANARY_STREET, Dose, vxu
from tests.support.mllp import errs, msa_code, segments

pytestmark = pytest.mark.e2e


def _field(reply: bytes, segment: str, number: int) -> list[str]:
    return [s[number] for s in segments(reply) if s[0] == segment]


# Both tests share one server per backend: their patients differ, and each
# asserts on its own audit rows and patients, never on whole tables.


def test_query_with_someone_elses_identifier_is_not_found(
    shared_server: ServerProcess,
) -> None:
    """Bobbie's query with Dorothy's MRN gets NF, not Dorothy's history."""
    server = shared_server
    audited = server.query("SELECT coalesce(max(id), 0) FROM audit_log")[0][0]
    dorothy = (
        "PID|1||777^^^MYEHR^MR||Zzcanaryfam^Dorothy^^^^^L||19840412|F|||"
        f"{CANARY_STREET}^^Sacramento^CA^95814^USA^L"
    )
    assert msa_code(server.send(vxu(control_id="D1", pid=dorothy, doses=[Dose()])))
    reply = server.send(
        qbp(
            control_id="Q-BOB",
            ids="777^^^MYEHR^MR",
            name="Child^Bobbie",
            dob="20050607",
            sex="M",
        )
    )
    assert _field(reply, "QAK", 2) == ["NF"]
    assert _field(reply, "PID", 5) == []
    assert b"Dorothy" not in reply
    assert server.query(
        "SELECT outcome FROM audit_log WHERE outcome = 'id-conflict' AND id > ?",
        (audited,),
    ) == [("id-conflict",)]


def test_stranger_vxu_does_not_open_a_locked_record(
    shared_server: ServerProcess,
) -> None:
    """A clinic that sends one VXU for a locked child sees its own dose only, and cannot unlock it."""
    server = shared_server
    owner = vxu(
        control_id="L1",
        family="Lockfam",
        given="Lia",
        dob="20190303",
        protection="Y",
        doses=[Dose(cvx="08")],
    )
    assert msa_code(server.send(owner)) == "AA"
    # All a stranger needs: name, birth date, sex and one historical dose.
    stranger_pid = "PID|1||S-1^^^STRANGER^MR||Lockfam^Lia^^^^^L||20190303|F"
    unlock = vxu(
        control_id="S1",
        sender="CLINIC2",
        pid=stranger_pid,
        protection="N",
        doses=[Dose(cvx="20")],
    )
    reply = server.send(unlock)
    assert msa_code(reply) == "AA"
    assert any(e[2].startswith("PD1^1^12") for e in errs(reply))
    seen = server.send(
        qbp(control_id="Q-S", sender="CLINIC2", name="Lockfam^Lia", dob="20190303")
    )
    assert _field(seen, "QAK", 2) == ["OK"]
    assert [r.split("^")[0] for r in _field(seen, "RXA", 5)] == ["20"]
    assert CANARY_MRN.encode() not in seen
    assert CANARY_STREET.encode() not in seen
    assert server.query(
        "SELECT protection FROM patients WHERE family_name = 'Lockfam'"
    ) == [("Y",)]
