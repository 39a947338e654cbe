"""QBP^Q11 Z34/Z44 through a real server: outcomes, regions, the lock and the audit trail."""

from __future__ import annotations

from pathlib import Path

import hl7
import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_segment

from tests.e2e.conftest import CONFIG, ServerProcess, start_server
from tests.support.messages import Dose, vxu
from tests.support.mllp import errs, msa_code, segments

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


@pytest.fixture(name="loaded")
def _loaded(server: ServerProcess) -> ServerProcess:
    _load(server)
    return server


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


def test_query_z34_several_candidates_returns_z31(loaded: ServerProcess) -> None:
    """Two possible matches (a typo'd name) within RCP-2 give a Z31 candidate list."""
    reply = loaded.send(
        qbp(control_id="Q-Z31", name="Twinfam^Bem", dob="20210202", sex="F")
    )
    seg = _by_id(reply)
    assert seg["MSH"][0][20] == "Z31^CDCPHINVS"
    assert seg["QAK"][0][2] == "OK"
    assert [p[1] for p in seg["PID"]] == ["1", "2"]


def test_query_more_candidates_than_rcp2_gives_tm(loaded: ServerProcess) -> None:
    """More candidates than RCP-2 allows give Z33 with QAK-2 TM and no PID."""
    reply = loaded.send(
        qbp(control_id="Q-TM", name="Twinfam^Bem", dob="20210202", limit="1")
    )
    seg = _by_id(reply)
    assert seg["MSH"][0][20] == "Z33^CDCPHINVS"
    assert seg["QAK"][0][2] == "TM"
    assert "PID" not in seg


def test_query_no_match_gives_nf(loaded: ServerProcess) -> None:
    """No match gives Z33 with QAK-2 NF."""
    reply = loaded.send(
        qbp(control_id="Q-NF", ids="NOPE^^^EHR^MR", name="Nobody^Known", dob="20200101")
    )
    seg = _by_id(reply)
    assert seg["MSH"][0][20] == "Z33^CDCPHINVS"
    assert seg["MSA"][0][1] == "AA"
    assert seg["QAK"][0][2] == "NF"


def test_query_z44_one_match_returns_z42(loaded: ServerProcess) -> None:
    """Z44 with one match returns Z42 with the patient and each dose."""
    reply = loaded.send(qbp(query="Z44", control_id="Q-Z42", **ANN, limit="1"))
    seg = _by_id(reply)
    assert seg["MSH"][0][20] == "Z42^CDCPHINVS"
    assert seg["QAK"][0][2] == "OK"
    assert len(seg["RXA"]) >= 2


def test_query_z44_possible_matches_only_gives_nf(loaded: ServerProcess) -> None:
    """Z44 returns one patient or none: possible matches only answer NF."""
    reply = loaded.send(
        qbp(
            query="Z44",
            control_id="Q-Z44NF",
            name="Twinfam^Bem",
            dob="20210202",
            limit="1",
        )
    )
    assert _by_id(reply)["QAK"][0][2] == "NF"


def test_query_other_region_does_not_see_patient(loaded: ServerProcess) -> None:
    """A Los Angeles clinic does not see a Bay Area patient, and vice versa."""
    la = loaded.send(qbp(control_id="Q-R1", sender="LACLINIC", **ANN))
    assert _by_id(la)["QAK"][0][2] == "NF"
    own = loaded.send(qbp(control_id="Q-R2", sender="LACLINIC", **AL))
    assert _by_id(own)["QAK"][0][2] == "OK"


def test_query_locked_patient_visible_only_to_submitter(loaded: ServerProcess) -> None:
    """A locked record is shown to the organization that submitted it and is NF to another."""
    owner = loaded.send(qbp(control_id="Q-LK1", sender="CLINIC1", **LIA))
    assert _by_id(owner)["QAK"][0][2] == "OK"
    other = loaded.send(qbp(control_id="Q-LK2", sender="CLINIC2", **LIA))
    assert _by_id(other)["QAK"][0][2] == "NF"
    assert "PID" not in _by_id(other)


def test_query_lock_does_not_leak_through_candidates(loaded: ServerProcess) -> None:
    """A locked record is neither listed as a candidate nor counted toward TM."""
    assert (
        msa_code(
            loaded.send(
                vxu(
                    control_id="L6",
                    mrn="MRN-L2",
                    family="Lockfam",
                    given="Lib",
                    dob="20190303",
                    doses=[Dose()],
                )
            )
        )
        == "AA"
    )
    reply = loaded.send(
        qbp(
            control_id="Q-LK3",
            sender="CLINIC2",
            name="Lockfam^Lix",
            dob="20190303",
            limit="1",
        )
    )
    seg = _by_id(reply)
    assert seg["QAK"][0][2] == "OK"
    assert seg["MSH"][0][20] == "Z31^CDCPHINVS"
    assert len(seg["PID"]) == 1
    assert seg["PID"][0][5].startswith("Lockfam^Lib")


def test_query_statewide_mode_sees_every_region(tmp_path: Path) -> None:
    """With registry.statewide on, a clinic finds a patient of another region."""
    config = CONFIG.replace(
        'unknown_sender_region = "BAY"',
        'unknown_sender_region = "BAY"\nstatewide = true',
    )
    server = start_server(tmp_path, config_text=config)
    try:
        _load(server)
        reply = server.send(qbp(control_id="Q-SW", sender="LACLINIC", **ANN))
        assert _by_id(reply)["QAK"][0][2] == "OK"
    finally:
        assert server.stop() == 0


def test_query_disclosures_and_refusals_are_audited(loaded: ServerProcess) -> None:
    """Every patient returned writes an audit row; locked and not-found lookups too."""
    loaded.send(qbp(control_id="Q-A1", **ANN))
    loaded.send(qbp(control_id="Q-A2", sender="CLINIC2", **LIA))
    loaded.send(
        qbp(control_id="Q-A3", ids="NOPE^^^EHR^MR", name="Nobody^Known", dob="20200101")
    )
    rows = loaded.query("SELECT requester, outcome, profile FROM audit_log ORDER BY id")
    assert ("CLINIC1", "disclosed", "Z32") in rows
    assert ("CLINIC2", "locked", "Z33") in rows
    assert ("CLINIC1", "not_found", "Z33") in rows


def test_query_missing_qpd_gives_z33_ae(loaded: ServerProcess) -> None:
    """A query without QPD gets Z33, MSA AE, QAK AE and an ERR on QPD."""
    reply = loaded.send(qbp(control_id="Q-B1", qpd=""))
    seg = _by_id(reply)
    assert seg["MSH"][0][20] == "Z33^CDCPHINVS"
    assert (seg["MSA"][0][1], seg["QAK"][0][2]) == ("AE", "AE")
    assert errs(reply)[0][2] == "QPD^1"
    assert errs(reply)[0][3].startswith("100")


def test_query_unknown_query_name_gives_z33_ar(loaded: ServerProcess) -> None:
    """An unknown QPD-1 gets Z33, MSA AR, QAK AR and 103 on QPD-1."""
    reply = loaded.send(qbp(query="Z99", control_id="Q-B2", **ANN))
    seg = _by_id(reply)
    assert (seg["MSA"][0][1], seg["QAK"][0][2]) == ("AR", "AR")
    assert errs(reply)[-1][2] == "QPD^1^1"
    assert errs(reply)[-1][3].startswith("103")


def test_query_without_search_keys_gives_z33_ae(loaded: ServerProcess) -> None:
    """A query with neither identifier nor name and birth date gets AE naming QPD-3."""
    reply = loaded.send(qbp(control_id="Q-B3", sex="F"))
    seg = _by_id(reply)
    assert (seg["MSA"][0][1], seg["QAK"][0][2]) == ("AE", "AE")
    assert errs(reply)[0][2] == "QPD^1^3"
    assert "no search keys" in errs(reply)[0][8]


def test_query_non_numeric_rcp2_gives_z33_ae(loaded: ServerProcess) -> None:
    """An RCP-2 that is not a number gets AE with 102 on RCP-2."""
    reply = loaded.send(qbp(control_id="Q-B4", **ANN, limit="many"))
    seg = _by_id(reply)
    assert (seg["MSA"][0][1], seg["QAK"][0][2]) == ("AE", "AE")
    assert errs(reply)[0][2] == "RCP^1^2"
    assert errs(reply)[0][3].startswith("102")


def test_query_answer_escapes_names_with_delimiters(loaded: ServerProcess) -> None:
    """Names holding ^, & and \\ come back escaped, and read back unchanged."""
    pid = "PID|1||MRN-X^^^EHR^MR||O\\S\\Brien \\T\\ Sons\\E\\^Ann^^^^^L||20150505|F"
    assert (
        msa_code(loaded.send(vxu(control_id="L-ESC", pid=pid, doses=[Dose()]))) == "AA"
    )
    reply = loaded.send(
        qbp(
            control_id="Q-ESC",
            ids="MRN-X^^^EHR^MR",
            name="O\\S\\Brien \\T\\ Sons\\E\\^Ann",
            dob="20150505",
        )
    )
    parsed = hl7.parse(reply.decode())
    family = parsed.segment("PID")[5][0][0]
    assert parsed.unescape(str(family)) == "O^Brien & Sons\\"


def test_query_echoes_query_tag_and_name(loaded: ServerProcess) -> None:
    """MSA-2 echoes MSH-10; QAK-1 the query tag; QAK-3 the query name; QPD is echoed."""
    reply = loaded.send(qbp(control_id="Q-ECHO", tag="MYTAG-77", **ANN))
    seg = _by_id(reply)
    assert seg["MSA"][0][2] == "Q-ECHO"
    assert seg["QAK"][0][1] == "MYTAG-77"
    assert seg["QAK"][0][3] == "Z34^Request Immunization History^CDCPHINVS"
    assert seg["QPD"][0][1:4] == [
        "Z34^Request Immunization History^CDCPHINVS",
        "MYTAG-77",
        "MRN-A^^^EHR^MR",
    ]


def test_query_z44_without_supporting_data_says_so(tmp_path: Path) -> None:
    """With no usable CDSi release, Z42 still answers, with an ERR saying the forecast is unavailable."""
    config = CONFIG + '\n[cdsi]\nsupporting_data = "/nonexistent/cdsi"\n'
    server = start_server(tmp_path, config_text=config)
    try:
        _load(server)
        reply = server.send(qbp(query="Z44", control_id="Q-NOCDSI", **ANN, limit="1"))
        seg = _by_id(reply)
        assert seg["MSH"][0][20] == "Z42^CDCPHINVS"
        assert seg["MSA"][0][1] == "AA"
        assert "forecast not available" in errs(reply)[0][8]
        assert [s[5].split("^")[0] for s in seg["RXA"]] == ["08", "20"]
    finally:
        assert server.stop() == 0
