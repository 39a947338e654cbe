"""What a Z32 carries back: the IG's expectations for PD1, CE texts and RXA-4."""

from __future__ import annotations

from handlers.codes import CodeTables
from handlers.ndc import load_code_release
from storage import Database
from tests.conftest import SHARED, shared_path
from tests.handlers.test_confidentiality import _by_id, _pipeline, _query, _send
from tests.support.messages import Dose, vxu

CHILD = {"mrn": "R-1", "family": "Contentfam", "given": "Cy", "dob": "20200505"}


def _z32(
    db: Database, message: str, codes: CodeTables | None = None
) -> dict[str, list[list[str]]]:
    pipeline = _pipeline(db, codes)
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


def test_z32_returns_the_reported_ndc_beside_the_cvx(db: Database) -> None:
    """An NDC-only dose comes back with its CVX first and the NDC as the alternate code."""
    folder = shared_path("CAIRN_CODES_DIR", SHARED / "codes", "CDC code tables")
    codes = CodeTables.load().with_release(load_code_release(folder))
    message = vxu(control_id="C1", doses=[Dose()], **CHILD).replace(
        "08^vaccine^CVX", "49281-0215-88^TENIVAC^NDC"
    )
    (rxa,) = _z32(db, message, codes)["RXA"]
    code = rxa[5].split("^")
    assert (code[0], code[2], code[3], code[5]) == ("113", "CVX", "49281021588", "NDC")


def test_z32_returns_pd1_18_with_the_publicity_code(db: Database) -> None:
    """PD1-18 (publicity code effective date) is stored and returned beside PD1-11."""
    seg = _z32(db, vxu(control_id="C1", doses=[Dose()], **CHILD))
    (pd1,) = seg["PD1"]
    assert pd1[11].startswith("02^")
    assert pd1[18] == "20230105"


def test_z32_names_the_configured_registry_as_assigning_authority(db: Database) -> None:
    """PID-3's SR id and each ORC-3 carry registry.name, not a hard-coded CAIRN."""
    from engine.pipeline import Inbound, MessagePipeline, Route, SenderPolicy
    from handlers.qbp import QbpHandler, QueryPolicy
    from handlers.vxu import VxuHandler

    codes = CodeTables.load()
    pipeline = MessagePipeline(
        database=db,
        routes={
            "VXU": Route(VxuHandler(codes), "VXU_V04"),
            "QBP": Route(
                QbpHandler(
                    codes, QueryPolicy(False, ("BAY",)), None, registry="SACIIS"
                ),
                "QBP_Q11",
                replay_resends=False,
            ),
        },
        senders=SenderPolicy({"CLINIC1": "BAY"}, "reject", "BAY"),
    )

    def send(message: str) -> bytes:
        (outcome,) = pipeline.process_batch([Inbound(message.encode(), "t", "mllp")])
        return outcome.payload

    send(vxu(control_id="C1", doses=[Dose()], **CHILD))
    seg = _by_id(send(_query("CLINIC1", "Q1", name="Contentfam^Cy", dob="20200505")))
    assert "^^^SACIIS^SR" in seg["PID"][0][3]
    assert [orc[3].split("^")[1] for orc in seg["ORC"]] == ["SACIIS"]
    assert "CAIRN" not in "|".join(seg["PID"][0] + seg["ORC"][0])
