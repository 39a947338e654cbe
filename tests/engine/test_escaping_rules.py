"""Output escaping in process: one clinic's data cannot break another's reply.

The assertions of tests/e2e/test_escaping.py, on the pipeline ``cairn serve``
builds from the same configuration, on SQLite and PostgreSQL, for Z34 and
Z44. Clinic A stores a patient whose name, address and lot hold delimiters;
control characters that validation now refuses at the door are planted in the
database as data stored before that rule. Clinic B's reply must keep
MSH/MSA/QAK intact, every value escaped and read back as stored. The e2e
module keeps the Z44 case through the server and the MLLP framing.
"""

from __future__ import annotations

from pathlib import Path

import hl7
import pytest

from storage import Database
from tests.e2e.test_escaping import (
    CONTROLS,
    LOT,
    LOT_SENT,
    MIDDLE,
    MIDDLE_SENT,
    STREET,
    STREET_SENT,
)
from tests.e2e.test_queries import qbp
from tests.support.messages import CANARY_FAMILY, CANARY_GIVEN, CANARY_MRN, Dose, vxu
from tests.support.mllp import msa_code
from tests.support.registry import InProcessRegistry, build_registry


@pytest.fixture(name="registry")
def _registry(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> InProcessRegistry:
    """The e2e servers' pipeline in process, on SQLite then PostgreSQL."""
    return build_registry(db, tmp_path, monkeypatch)


def _store_patient(registry: InProcessRegistry) -> None:
    pid = (
        f"PID|1||{CANARY_MRN}^^^EHR^MR||{CANARY_FAMILY}^{CANARY_GIVEN}^{MIDDLE_SENT}^^^^L"
        f"||20230105|F|||{STREET_SENT}^^Sacramento^CA^95814^USA^L"
    )
    reply = registry.send(vxu(pid=pid, doses=[Dose(lot=LOT_SENT)]))
    assert msa_code(reply) == "AA", reply
    assert registry.query("SELECT middle_name, street FROM patients") == [
        (MIDDLE, STREET)
    ]
    assert registry.query("SELECT lot_numbers FROM vaccinations") == [(LOT,)]
    registry.write("UPDATE patients SET middle_name = ?", (MIDDLE + CONTROLS,))
    registry.write("UPDATE patients SET street = ?", (STREET + CONTROLS + "MSH|",))
    registry.write("UPDATE vaccinations SET lot_numbers = ?", (LOT + CONTROLS,))


@pytest.mark.parametrize("query", ["Z34", "Z44"])
def test_escaping_another_clinics_reply_keeps_its_structure_and_stored_values(
    registry: InProcessRegistry, query: str
) -> None:
    """Clinic B's Z34/Z44 reply about clinic A's patient has no frame byte, keeps MSH/MSA/QAK, and reads back every stored value."""
    _store_patient(registry)
    reply = registry.send(
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
