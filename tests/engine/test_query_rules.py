"""QBP^Q11 Z34/Z44 in process: outcomes, regions, the lock and the audit trail.

The same assertions the e2e tests made through ``cairn serve``, on the
pipeline the server builds from the same configuration, on SQLite and
PostgreSQL. One Z34 and one Z44 stay end to end in tests/e2e/test_queries.py.
"""

from __future__ import annotations

from pathlib import Path

import hl7
import pytest

from storage import Database
from tests.e2e.conftest import CONFIG
from tests.e2e.test_queries import AL, ANN, LIA, _by_id, _load, qbp
from tests.support.messages import Dose, vxu
from tests.support.mllp import errs, msa_code
from tests.support.registry import InProcessRegistry, build_registry


@pytest.fixture(name="loaded")
def _registry(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> InProcessRegistry:
    """The e2e servers' pipeline in process with the query patients loaded, on both backends."""
    registry = build_registry(db, tmp_path, monkeypatch)
    _load(registry)
    return registry


def test_query_z34_several_candidates_returns_z31(loaded: InProcessRegistry) -> None:
    """Two possible matches (a typo'd name) within RCP-2 give a Z31 candidate list."""
    reply = loaded.send(
        qbp(control_id="Q-Z31", name="Twinfam^Bem", dob="20210202", sex="F")
    )
    seg = _by_id(reply)
    assert seg["MSH"][0][20] == "Z31^CDCPHINVS"
    assert seg["QAK"][0][2] == "OK"
    assert [p[1] for p in seg["PID"]] == ["1", "2"]


def test_query_more_candidates_than_rcp2_gives_tm(loaded: InProcessRegistry) -> None:
    """More candidates than RCP-2 allows give Z33 with QAK-2 TM and no PID."""
    reply = loaded.send(
        qbp(control_id="Q-TM", name="Twinfam^Bem", dob="20210202", limit="1")
    )
    seg = _by_id(reply)
    assert seg["MSH"][0][20] == "Z33^CDCPHINVS"
    assert seg["QAK"][0][2] == "TM"
    assert "PID" not in seg


def test_query_no_match_gives_nf(loaded: InProcessRegistry) -> None:
    """No match gives Z33 with QAK-2 NF."""
    reply = loaded.send(
        qbp(control_id="Q-NF", ids="NOPE^^^EHR^MR", name="Nobody^Known", dob="20200101")
    )
    seg = _by_id(reply)
    assert seg["MSH"][0][20] == "Z33^CDCPHINVS"
    assert seg["MSA"][0][1] == "AA"
    assert seg["QAK"][0][2] == "NF"


def test_query_z44_possible_matches_only_gives_nf(loaded: InProcessRegistry) -> None:
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


def test_query_other_region_does_not_see_patient(loaded: InProcessRegistry) -> None:
    """A Los Angeles clinic does not see a Bay Area patient, and vice versa."""
    la = loaded.send(qbp(control_id="Q-R1", sender="LACLINIC", **ANN))
    assert _by_id(la)["QAK"][0][2] == "NF"
    own = loaded.send(qbp(control_id="Q-R2", sender="LACLINIC", **AL))
    assert _by_id(own)["QAK"][0][2] == "OK"


def test_query_locked_patient_visible_only_to_submitter(
    loaded: InProcessRegistry,
) -> None:
    """A locked record is shown to the organization that submitted it and is NF to another."""
    owner = loaded.send(qbp(control_id="Q-LK1", sender="CLINIC1", **LIA))
    assert _by_id(owner)["QAK"][0][2] == "OK"
    other = loaded.send(qbp(control_id="Q-LK2", sender="CLINIC2", **LIA))
    assert _by_id(other)["QAK"][0][2] == "NF"
    assert "PID" not in _by_id(other)


def test_query_lock_does_not_leak_through_candidates(loaded: InProcessRegistry) -> None:
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


def test_query_statewide_mode_sees_every_region(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With registry.statewide on, a clinic finds a patient of another region."""
    config = CONFIG.replace(
        'unknown_sender_region = "BAY"',
        'unknown_sender_region = "BAY"\nstatewide = true',
    )
    registry = build_registry(db, tmp_path, monkeypatch, config_text=config)
    _load(registry)
    reply = registry.send(qbp(control_id="Q-SW", sender="LACLINIC", **ANN))
    assert _by_id(reply)["QAK"][0][2] == "OK"


def test_query_disclosures_and_refusals_are_audited(loaded: InProcessRegistry) -> None:
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


def test_query_missing_qpd_gives_z33_ae(loaded: InProcessRegistry) -> None:
    """A query without QPD gets Z33, MSA AE, QAK AE and an ERR on QPD."""
    reply = loaded.send(qbp(control_id="Q-B1", qpd=""))
    seg = _by_id(reply)
    assert seg["MSH"][0][20] == "Z33^CDCPHINVS"
    assert (seg["MSA"][0][1], seg["QAK"][0][2]) == ("AE", "AE")
    assert errs(reply)[0][2] == "QPD^1"
    assert errs(reply)[0][3].startswith("100")


def test_query_unknown_query_name_gives_z33_ar(loaded: InProcessRegistry) -> None:
    """An unknown QPD-1 gets Z33, MSA AR, QAK AR and 103 on QPD-1."""
    reply = loaded.send(qbp(query="Z99", control_id="Q-B2", **ANN))
    seg = _by_id(reply)
    assert (seg["MSA"][0][1], seg["QAK"][0][2]) == ("AR", "AR")
    assert errs(reply)[-1][2] == "QPD^1^1"
    assert errs(reply)[-1][3].startswith("103")


def test_query_without_search_keys_gives_z33_ae(loaded: InProcessRegistry) -> None:
    """A query with neither identifier nor name and birth date gets AE naming QPD-3."""
    reply = loaded.send(qbp(control_id="Q-B3", sex="F"))
    seg = _by_id(reply)
    assert (seg["MSA"][0][1], seg["QAK"][0][2]) == ("AE", "AE")
    assert errs(reply)[0][2] == "QPD^1^3"
    assert "no search keys" in errs(reply)[0][8]


def test_query_non_numeric_rcp2_gives_z33_ae(loaded: InProcessRegistry) -> None:
    """An RCP-2 that is not a number gets AE with 102 on RCP-2."""
    reply = loaded.send(qbp(control_id="Q-B4", **ANN, limit="many"))
    seg = _by_id(reply)
    assert (seg["MSA"][0][1], seg["QAK"][0][2]) == ("AE", "AE")
    assert errs(reply)[0][2] == "RCP^1^2"
    assert errs(reply)[0][3].startswith("102")


def test_query_answer_escapes_names_with_delimiters(loaded: InProcessRegistry) -> None:
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


def test_query_echoes_query_tag_and_name(loaded: InProcessRegistry) -> None:
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


def test_query_z44_without_supporting_data_says_so(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no usable CDSi release, Z42 still answers, with an ERR saying the forecast is unavailable."""
    config = CONFIG + '\n[cdsi]\nsupporting_data = "/nonexistent/cdsi"\n'
    registry = build_registry(db, tmp_path, monkeypatch, config_text=config)
    _load(registry)
    reply = registry.send(qbp(query="Z44", control_id="Q-NOCDSI", **ANN, limit="1"))
    seg = _by_id(reply)
    assert seg["MSH"][0][20] == "Z42^CDCPHINVS"
    assert seg["MSA"][0][1] == "AA"
    assert "forecast not available" in errs(reply)[0][8]
    assert [s[5].split("^")[0] for s in seg["RXA"]] == ["08", "20"]
