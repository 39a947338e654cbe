"""A large VXU is read beside the writer, and other senders' messages keep flowing (issue 18).

Through a real ``cairn serve`` with a reader process: a message too large
for a worker's pipe goes to the large-message worker, the writer stores
other connections' messages meanwhile, and the large message's own
connection is applied in the order it was sent. Nothing is lost, and each
connection's answers come back in order.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import CONFIG, ServerProcess, start_server
from tests.support.messages import Dose, vxu
from tests.support.mllp import msa_code, segments

pytestmark = pytest.mark.e2e

VT, FS, CR = b"\x0b", b"\x1c", b"\r"

READERS = """
[server]
reader_processes = 1
"""


@pytest.fixture(name="server", scope="module")
def _server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_server(
        tmp_path_factory.mktemp("large"), config_text=CONFIG + READERS
    )
    try:
        yield server
    finally:
        assert server.stop() == 0


def _frame(message: str) -> bytes:
    return VT + message.encode() + FS + CR


def _control_id(payload: bytes) -> str:
    (msa,) = [s for s in segments(payload) if s[0] == "MSA"]
    return msa[2]


def test_a_large_vxu_and_what_its_connection_sent_after_it_are_stored_in_order(
    server: ServerProcess,
) -> None:
    """Pipelined behind a 200-dose VXU, a small one is answered and stored after it."""
    doses = [
        Dose(cvx="08", date=f"2024{1 + n // 28:02d}{1 + n % 28:02d}", filler=f"BIG{n}")
        for n in range(200)
    ]
    large = vxu(control_id="LARGE1", mrn="L-1", family="Largeheim", doses=doses)
    assert len(large.encode()) > 32 * 1024  # over what a worker's pipe takes
    after = vxu(
        control_id="AFTER1", mrn="L-1", family="Largeheim", doses=[Dose(cvx="03")]
    )
    other = vxu(control_id="OTHER1", mrn="O-1", family="Otherson", doses=[Dose()])
    with server.client(timeout=120) as one, server.client(timeout=120) as two:
        one.send_raw(_frame(large) + _frame(after))
        other_answer = two.send(_frame(other))
        first, second = one.read_frame(), one.read_frame()
    assert msa_code(other_answer) == "AA"
    # one connection's answers, in the order it sent its messages
    assert [_control_id(first), _control_id(second)] == ["LARGE1", "AFTER1"]
    assert [msa_code(first), msa_code(second)] == ["AA", "AA"]
    rows = server.query(
        "SELECT control_id, id FROM message_journal WHERE control_id IN (?, ?, ?)",
        ("LARGE1", "AFTER1", "OTHER1"),
    )
    ids = {str(control): int(str(row_id)) for control, row_id in rows}
    assert set(ids) == {"LARGE1", "AFTER1", "OTHER1"}
    assert ids["LARGE1"] < ids["AFTER1"], "a connection's messages are applied in order"
    (count,) = server.query(
        "SELECT count(*) FROM vaccinations v JOIN message_journal j ON j.id = v.journal_id "
        "WHERE j.control_id = ?",
        ("LARGE1",),
    )
    assert int(str(count[0])) == 200
