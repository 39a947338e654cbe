"""Every shared sample message gets the same response, byte for byte, as recorded.

The golden file ``data/golden_acks.json`` was written from the code *before*
the error codes were named and the validation rules became a table (issue
16), so that "behaviour unchanged" is checked, not assumed: every sample in
``../shared/hl7/samples`` is fed, in name order, then a few hand-made
messages (:data:`SYNTHETIC`), through one in-process
pipeline (VXU and QBP routes, the shared NDC release and CDSi data, a fixed
clock) and each response is compared segment by segment.

Only MSH-10 of the response, whose prefix is random per pipeline, is blanked.
A deliberate change of behaviour rewrites the file with
``CAIRN_WRITE_GOLDEN=1 .venv/bin/pytest tests/handlers/test_golden_acks.py``;
review the diff before committing it.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.pipeline import Inbound, MessagePipeline, Route, SenderPolicy
from forecast import Forecaster, load_supporting_data
from handlers.codes import CodeTables
from handlers.forecasting import CdsiForecastService
from handlers.ndc import load_code_release
from handlers.qbp import QbpHandler, QueryPolicy
from handlers.vxu import VxuHandler
from storage import Database
from tests.conftest import SHARED, shared_path
from tests.support.messages import CANARY_FAMILY, CANARY_GIVEN, CANARY_MRN, Dose, vxu

GOLDEN = Path(__file__).parent / "data" / "golden_acks.json"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module", name="codes")
def _codes() -> CodeTables:
    """The built-in tables with the shared CDC code release (NDC crosswalk)."""
    path = shared_path("CAIRN_CODES_DIR", SHARED / "codes", "CDC code release")
    return CodeTables.load().with_release(load_code_release(path))


@pytest.fixture(scope="module", name="forecaster")
def _forecaster() -> CdsiForecastService:
    """The CDSi forecaster over the shared supporting data."""
    path = shared_path(
        "CAIRN_CDSI_DIR", SHARED / "cdsi" / "supporting-data", "CDSi supporting data"
    )
    return CdsiForecastService(Forecaster(load_supporting_data(path)))


def _query(control_id: str, query: str) -> str:
    """A QBP^Q11 for the synthetic patient below."""
    names = {"Z34": "Request Immunization History", "Z44": "Request Evaluated History"}
    return (
        f"MSH|^~\\&|EHR|CLINIC1|CAIRN|CAIRN|20240601120000-0800||QBP^Q11^QBP_Q11|"
        f"{control_id}|P|2.5.1|||ER|AL|||||{query}^CDCPHINVS\r"
        f"QPD|{query}^{names[query]}^CDCPHINVS|T{control_id}|{CANARY_MRN}^^^EHR^MR|"
        f"{CANARY_FAMILY}^{CANARY_GIVEN}^M^^^^L||20230105|F\r"
        "RCP|I|5^RD&records&HL70126\r"
    )


#: Hand-made messages after the samples: a history with every kind of dose
#: (new, historical, refused, not administered, patient observation, deleted,
#: no ORC), a broken order group, then both queries for that patient, so the
#: dose and forecast paths of the responses are covered too.
SYNTHETIC = (
    (
        "zz-1-vxu-history.hl7",
        vxu(
            control_id="GOLD1",
            doses=[
                Dose(filler="G1", date="20230105", cvx="08"),
                Dose(filler="G2", date="20230305", cvx="20", source="01"),
                Dose(
                    filler="G3",
                    date="20230505",
                    cvx="03",
                    completion="RE",
                    refusal="00",
                ),
                Dose(filler="G4", date="20230605", cvx="10", completion="NA"),
                Dose(
                    filler="G5",
                    date="20230705",
                    cvx="998",
                    source="01",
                    observations=[
                        "OBX|1|CE|59784-9^Disease^LN|1|38907003^Varicella^SCT||||||F"
                    ],
                ),
                Dose(filler="G6", date="20230805", cvx="999", source="01"),
                Dose(filler="9999", date="20230905", cvx="116", with_orc=True),
                Dose(filler="G8", date="20231005", cvx="133", with_orc=False),
            ],
        ),
    ),
    (
        "zz-2-vxu-broken.hl7",
        vxu(
            control_id="GOLD2",
            doses=[
                Dose(filler="G9", date="20990101", cvx="08", amount="x"),
                Dose(filler="", date="2023", cvx="XX", mvx="ZZZ", lot=""),
                Dose(filler="G1", date="20230105", cvx="08", action="D"),
                Dose(
                    filler="G11", date="20230105", cvx="08", action="Q", completion="ZZ"
                ),
            ],
        ),
    ),
    ("zz-3-qbp-z34.hl7", _query("GOLD3", "Z34")),
    ("zz-4-qbp-z44.hl7", _query("GOLD4", "Z44")),
)


def _pipeline(
    db: Database, codes: CodeTables, forecaster: CdsiForecastService
) -> MessagePipeline:
    return MessagePipeline(
        database=db,
        routes={
            "VXU": Route(VxuHandler(codes), "VXU_V04"),
            "QBP": Route(
                QbpHandler(codes, QueryPolicy(False, ("BAY",)), forecaster),
                "QBP_Q11",
                replay_resends=False,
            ),
        },
        senders=SenderPolicy({}, "accept", "BAY"),
        now=lambda: NOW,
    )


#: Registry-assigned patient (PID-3 ``SR``) and dose (ORC-3) ids: numbers that
#: differ between backends (a PostgreSQL sequence keeps no gaps back).
_REGISTRY_ID = re.compile(r"(?<=[|~])(\d+)(?=\^\^\^CAIRN\^SR|\^CAIRN(?:[|\r]|$))")


def _segments(payload: bytes) -> list[str]:
    """The response's segments as text, MSH-10 blanked, registry ids numbered.

    Each registry id becomes ``#n``, n counting distinct ids in order of
    appearance; the forecast's filler ``9999`` is a constant and is kept.
    """
    segments = payload.decode("utf-8").split("\r")
    if segments and segments[-1] == "":
        segments.pop()
    if segments and segments[0].startswith("MSH") and len(segments[0]) > 3:
        sep = segments[0][3]
        fields = segments[0].split(sep)
        if len(fields) > 9:
            fields[9] = ""
        segments[0] = sep.join(fields)
    seen: dict[str, str] = {}

    def number(match: re.Match[str]) -> str:
        value = match.group(1)
        if value == "9999":
            return value
        return seen.setdefault(value, f"#{len(seen) + 1}")

    return [_REGISTRY_ID.sub(number, segment) for segment in segments]


def _responses(
    db: Database, codes: CodeTables, forecaster: CdsiForecastService, samples: Path
) -> dict[str, list[str]]:
    pipeline = _pipeline(db, codes, forecaster)
    answers: dict[str, list[str]] = {}
    messages = [(p.name, p.read_bytes()) for p in sorted(samples.glob("*.hl7"))]
    messages += [(name, text.encode()) for name, text in SYNTHETIC]
    for name, raw in messages:
        (outcome,) = pipeline.process_batch([Inbound(raw, "test", "mllp")])
        answers[name] = _segments(outcome.payload)
    return answers


def test_golden_acks_every_sample_answered_as_recorded(
    db: Database,
    codes: CodeTables,
    forecaster: CdsiForecastService,
    samples_dir: Path,
) -> None:
    """Each sample's ACK or RSP (ERR codes, locations, texts, order) matches the file."""
    answers = _responses(db, codes, forecaster, samples_dir)
    if os.environ.get("CAIRN_WRITE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(
            json.dumps(answers, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert sorted(answers) == sorted(golden)
    for name, segments in answers.items():
        assert segments == golden[name], name


def test_golden_acks_file_covers_errors_of_every_kind() -> None:
    """The recorded answers hold AA, AE and AR and ERR severities E and W, so they test something."""
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    msa = {s.split("|")[1] for seg in golden.values() for s in seg if s[:4] == "MSA|"}
    err = {s.split("|")[4] for seg in golden.values() for s in seg if s[:4] == "ERR|"}
    assert {"AA", "AE", "AR"} <= msa
    assert {"E", "W"} <= err
