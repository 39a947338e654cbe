"""Output escaping through a real server: one clinic's data cannot break another's frame.

Clinic A stores a patient whose name, address and lot hold delimiters (sent
escaped, as the guide says); control characters that validation now refuses
at the door are planted in the database as data stored before that rule.
Clinic B, another facility of the same region, queries Z34 and Z44: its reply
must frame and parse, MSH/MSA/QAK intact, every value escaped and read back
as stored (issue 14 item 5).
"""

from __future__ import annotations

import sqlite3

import hl7
import pytest

from tests.e2e.conftest import ServerProcess
from tests.e2e.test_queries import qbp
from tests.support.messages import CANARY_FAMILY, CANARY_GIVEN, CANARY_MRN, Dose, vxu
from tests.support.mllp import msa_code

pytestmark = pytest.mark.e2e

#: What clinic A sends (escaped) and what the registry therefore stores.
MIDDLE_SENT, MIDDLE = "A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\F", "A|B^C&D~E\\F"
STREET_SENT, STREET = "1 Pipe\\F\\Lane\\E\\", "1 Pipe|Lane\\"
LOT_SENT, LOT = "L\\S\\1\\T\\2", "L^1&2"
#: Control characters (VT, FS, CR, LF, NEL and other C1, DEL) a record may hold.
CONTROLS = "\x0b\x1c\r\n\x85\x7f\x9f"


def _write(server: ServerProcess, sql: str, params: tuple[object, ...]) -> None:
    """Change the server's database directly, as data stored before today's rules."""
    if not server.database_url:
        con = sqlite3.connect(server.data_dir / "cairn.sqlite3")
        try:
            con.execute(sql, params)
            con.commit()
        finally:
            con.close()
        return
    import psycopg

    with psycopg.connect(
        server.database_url.replace("postgresql+psycopg", "postgresql")
    ) as conn:
        conn.execute(sql.replace("?", "%s"), params)


def _store_patient(server: ServerProcess) -> None:
    pid = (
        f"PID|1||{CANARY_MRN}^^^EHR^MR||{CANARY_FAMILY}^{CANARY_GIVEN}^{MIDDLE_SENT}^^^^L"
        f"||20230105|F|||{STREET_SENT}^^Sacramento^CA^95814^USA^L"
    )
    reply = server.send(vxu(pid=pid, doses=[Dose(lot=LOT_SENT)]))
    assert msa_code(reply) == "AA", reply
    assert server.query("SELECT middle_name, street FROM patients") == [
        (MIDDLE, STREET)
    ]
    assert server.query("SELECT lot_numbers FROM vaccinations") == [(LOT,)]
    _write(server, "UPDATE patients SET middle_name = ?", (MIDDLE + CONTROLS,))
    _write(server, "UPDATE patients SET street = ?", (STREET + CONTROLS + "MSH|",))
    _write(server, "UPDATE vaccinations SET lot_numbers = ?", (LOT + CONTROLS,))


# Z34 and Z44 are both checked in process (tests/engine/test_escaping_rules.py);
# through the server and the MLLP framing, the Z44 (the larger reply) suffices.
@pytest.mark.parametrize("query", ["Z44"])
def test_escaping_another_clinics_reply_frames_and_reads_back_stored_values(
    server: ServerProcess, query: str
) -> None:
    """Clinic B's Z34/Z44 reply about clinic A's patient has no frame byte, keeps MSH/MSA/QAK, and reads back every stored value."""
    _store_patient(server)
    reply = server.send(
        qbp(
            query=query,
            sender="CLINIC2",
            control_id=f"B{query}",
            ids=f"{CANARY_MRN}^^^EHR^MR",
            name=f"{CANARY_FAMILY}^{CANARY_GIVEN}",
            dob="20230105",
            sex="F",
        )
    )
    assert b"\x0b" not in reply
    assert b"\x1c" not in reply
    text = reply.decode("utf-8")
    lines = text.split("\r")
    assert lines[-1] == ""
    ids = [line[:4] for line in lines[:-1]]
    assert ids[:2] == ["MSH|", "MSA|"]
    assert ids.count("QAK|") == 1
    assert all(line[:3].isalnum() and line[3] == "|" for line in lines[:-1])
    parsed = hl7.parse(text)
    assert parsed["MSA.F1"] == "AA"
    assert parsed["MSA.F2"] == f"B{query}"
    assert parsed["QAK.F2"] == "OK"
    assert parsed["MSH.F9.R1.C1"] == "RSP"
    assert parsed["PID.F5.R1.C3"] == MIDDLE + CONTROLS
    assert parsed["PID.F11.R1.C1"] == STREET + CONTROLS + "MSH|"
    assert parsed["RXA.F15.R1.C1"] == LOT + CONTROLS
    assert "\\X0B\\\\X1C\\\\X0D\\\\X0A\\\\X85\\\\X7F\\\\X9F\\" in text
    assert len(parsed.segments("MSH")) == 1
