"""QBP^Q11 Z34/Z44 through a real server: outcomes, regions, the lock and the audit trail."""

from __future__ import annotations

from pathlib import Path

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_segment

from tests.e2e.conftest import ServerProcess
from tests.support.messages import Dose, vxu
from tests.support.mllp import msa_code, segments

pytestmark = pytest.mark.e2e


def qbp(
    *,
    query: str = "Z34",
    control_id: str = "Q1",
    sender: str = "CLINIC1",
    tag: str = "TAG1",
    ids: str = "",
    name: str = "",
    dob: str = "",
    sex: str = "",
    limit: str = "5",
    qpd: str | None = None,
) -> str:
    """A QBP^Q11 query."""
    names = {
        "Z34": "Request Immunization History",
        "Z44": "Request Evaluated History and Forecast",
    }
    lines = [
        f"MSH|^~\\&|EHR|{sender}|CAIRN|CAIRN|20240601120000-0800||QBP^Q11^QBP_Q11|{control_id}|P|2.5.1|||ER|AL|||||{query}^CDCPHINVS",
    ]
    if qpd is not None:
        if qpd:
            lines.append(qpd)
    else:
        lines.append(
            f"QPD|{query}^{names.get(query, 'Unknown')}^CDCPHINVS|{tag}|{ids}|{name}||{dob}|{sex}"
        )
    lines.append(f"RCP|I|{limit}^RD&records&HL70126")
    return "\r".join(lines) + "\r"


#: Query keys of the loaded patients: an identifier counts only with the
#: demographics that confirm it (issue 14, item 1).
ANN = {"ids": "MRN-A^^^EHR^MR", "name": "Zzcanaryfam^Ann", "dob": "20200101"}
LIA = {"ids": "MRN-L^^^EHR^MR", "name": "Lockfam^Lia", "dob": "20190303"}
AL = {"ids": "MRN-LA^^^EHR^MR", "name": "Angeleno^Al", "dob": "20180404"}


def _by_id(reply: bytes) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    for seg in segments(reply):
        out.setdefault(seg[0], []).append(seg)
    return out


@pytest.fixture(name="cdsi_dir")
def _cdsi_dir() -> Path:
    from tests.conftest import SHARED, shared_path

    return shared_path(
        "CAIRN_CDSI_DIR", SHARED / "cdsi" / "supporting-data", "CDSi supporting data"
    )


def _load(server: ServerProcess) -> None:
    """Patients: one with an MRN, two look-alikes with one birth date, one locked, one in LA."""
    assert (
        msa_code(
            server.send(
                vxu(
                    control_id="L1",
                    mrn="MRN-A",
                    family="Zzcanaryfam",
                    given="Ann",
                    dob="20200101",
                    doses=[Dose(), Dose(cvx="20", date="20240301")],
                )
            )
        )
        == "AA"
    )
    assert (
        msa_code(
            server.send(
                vxu(
                    control_id="L2",
                    mrn="MRN-B",
                    family="Twinfam",
                    given="Bea",
                    dob="20210202",
                    doses=[Dose()],
                )
            )
        )
        == "AA"
    )
    assert (
        msa_code(
            server.send(
                vxu(
                    control_id="L3",
                    mrn="MRN-C",
                    family="Twinfam",
                    given="Ben",
                    dob="20210202",
                    sex="F",
                    doses=[Dose()],
                )
            )
        )
        == "AA"
    )
    assert (
        msa_code(
            server.send(
                vxu(
                    control_id="L4",
                    mrn="MRN-L",
                    family="Lockfam",
                    given="Lia",
                    dob="20190303",
                    protection="Y",
                    doses=[Dose()],
                )
            )
        )
        == "AA"
    )
    assert (
        msa_code(
            server.send(
                vxu(
                    control_id="L5",
                    sender="LACLINIC",
                    mrn="MRN-LA",
                    family="Angeleno",
                    given="Al",
                    dob="20180404",
                    doses=[Dose()],
                )
            )
        )
        == "AA"
    )


@pytest.fixture(name="loaded", scope="module")
def _loaded(shared_server: ServerProcess) -> ServerProcess:
    """One server per backend with the query patients loaded; the tests here only read."""
    _load(shared_server)
    return shared_server


def test_query_z34_one_match_returns_z32_history(loaded: ServerProcess) -> None:
    """An identifier match gives Z32 with PID, PD1, NK1 and ORC/RXA/RXR/OBX for each dose."""
    reply = loaded.send(qbp(control_id="Q-Z32", **ANN))
    seg = _by_id(reply)
    assert seg["MSH"][0][8] == "RSP^K11^RSP_K11"
    assert seg["MSH"][0][20] == "Z32^CDCPHINVS"
    assert seg["MSA"][0][1:3] == ["AA", "Q-Z32"]
    assert seg["QAK"][0][1:3] == ["TAG1", "OK"]
    assert seg["QAK"][0][3].startswith("Z34^")
    assert seg["QPD"][0][2] == "TAG1"
    order = [s[0] for s in segments(reply)]
    assert order[:8] == ["MSH", "MSA", "QAK", "QPD", "PID", "PD1", "NK1", "ORC"]
    assert [s[5].split("^")[0] for s in seg["RXA"]] == ["08", "20"]
    assert "MRN-A^^^EHR^MR" in seg["PID"][0][3]
    for raw in (s for s in reply.decode().split("\r") if s.startswith(("PID", "RXA"))):
        parse_segment(raw, version="2.5", validation_level=VALIDATION_LEVEL.TOLERANT)


def test_query_z44_one_match_returns_z42(loaded: ServerProcess) -> None:
    """Z44 with one match returns Z42 with the patient and each dose."""
    reply = loaded.send(qbp(query="Z44", control_id="Q-Z42", **ANN, limit="1"))
    seg = _by_id(reply)
    assert seg["MSH"][0][20] == "Z42^CDCPHINVS"
    assert seg["QAK"][0][2] == "OK"
    assert len(seg["RXA"]) >= 2
