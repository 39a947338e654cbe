"""What a Z32 carries back: the IG's expectations for PD1, CE texts and RXA-4."""

from __future__ import annotations

from storage import Database
from tests.handlers.test_confidentiality import _by_id, _pipeline, _query, _send
from tests.support.messages import Dose, vxu

CHILD = {"mrn": "R-1", "family": "Contentfam", "given": "Cy", "dob": "20200505"}


def _z32(db: Database, message: str) -> dict[str, list[list[str]]]:
    pipeline = _pipeline(db)
    _send(pipeline, message)
    reply = _send(
        pipeline, _query("CLINIC1", "Q1", name="Contentfam^Cy", dob="20200505")
    )
    seg = _by_id(reply)
    assert seg["QAK"][0][2] == "OK"
    return seg


def test_z32_leaves_out_an_empty_pd1(db: Database) -> None:
    """A patient reported without PD1 data gets no empty PD1 segment back."""
    message = vxu(control_id="C1", doses=[Dose()], **CHILD)
    no_pd1 = "\r".join(s for s in message.split("\r") if not s.startswith("PD1"))
    seg = _z32(db, no_pd1)
    assert "PD1" not in seg
    assert "PID" in seg


def test_z32_returns_code_texts_and_rxa4(db: Database) -> None:
    """Race, ethnicity, MVX, route and relationship carry their text; RXA-4 repeats RXA-3."""
    seg = _z32(db, vxu(control_id="C1", doses=[Dose(mvx="MSD")], **CHILD))
    assert seg["PID"][0][10] == "2106-3^White^CDCREC"
    assert seg["PID"][0][22] == "2186-5^Not Hispanic or Latino^CDCREC"
    assert seg["PD1"][0][11].startswith("02^Reminder")
    assert seg["NK1"][0][3] == "MTH^Mother^HL70063"
    (rxa,) = seg["RXA"]
    assert rxa[4] == rxa[3] == "20240115"
    assert rxa[17].split("^")[0] == "MSD"
    assert rxa[17].split("^")[1].startswith("Merck")
